"""What a scenario is planned from and what it yields: ``ScenarioInputs``, ``ScenarioOutputs``.

Also the published ``scenario_comparison`` columns and the compared metrics.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from sop_pipeline.planning.supply import SupplyResult
from sop_pipeline.storage.warehouse import DuckDBMarts, MartReader, read_plan

SCENARIO_COMPARISON_COLUMNS = [
    "scenario",
    "family",
    "month",
    "metric",
    "base_value",
    "scenario_value",
    "delta",
]
METRICS = (
    "demand_qty",
    "supply_qty",
    "gap_qty",
    "gap_value",
    "revenue",
    "gross_margin",
    "inventory_value",
    "capacity_utilization",
)


@dataclass(frozen=True)
class ScenarioInputs:
    """Everything the base plan is planned from, after the consensus demand.

    Frames are the marts of ``docs/internals.md`` and the published ``plan_demand``; a
    scenario never changes them in place (:func:`apply_levers` returns new frames).

    Attributes:
        plan_demand: consensus plan (published ``plan_demand`` columns).
        items: dim_items, including supplier_id.
        routings: fct_routings.
        capacity: fct_capacity (work_center_id, month, available_hours).
        inventory_position: fct_inventory_position.
        open_supply: fct_open_supply, including supplier_id.
        aop: fct_aop_targets (may be empty).
        strategy: supply strategy (chase / level / mixed).
        service_level: safety-stock service level, in (0, 1).
        overtime_share: overtime allowed per work center and month, share of available.
        notes: what the levers applied did not change (e.g. months outside the horizon).
        unmet_demand: ``backlog`` or ``lost_sales`` (settings ``unmet_demand``).
        bom_exploded: fct_bom_exploded (empty: no BOM).
        supplier_capacity: fct_supplier_capacity (empty: no supplier limit).
    """

    plan_demand: pd.DataFrame
    items: pd.DataFrame
    routings: pd.DataFrame
    capacity: pd.DataFrame
    inventory_position: pd.DataFrame
    open_supply: pd.DataFrame
    aop: pd.DataFrame
    strategy: str = "mixed"
    service_level: float = 0.95
    overtime_share: float = 0.10
    notes: tuple[str, ...] = ()
    unmet_demand: str = "lost_sales"
    bom_exploded: pd.DataFrame = field(default_factory=pd.DataFrame)
    supplier_capacity: pd.DataFrame = field(default_factory=pd.DataFrame)

    def copy(self) -> ScenarioInputs:
        """A deep copy (frames included), so a lever can change it freely."""
        frames = {
            f.name: getattr(self, f.name).copy(deep=True)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), pd.DataFrame)
        }
        return dataclasses.replace(self, **frames)

    @classmethod
    def from_warehouse(
        cls,
        con: duckdb.DuckDBPyConnection,
        plan_month: str,
        *,
        marts: MartReader | None = None,
        strategy: str = "mixed",
        service_level: float = 0.95,
        overtime_share: float = 0.10,
        unmet_demand: str = "lost_sales",
    ) -> ScenarioInputs:
        """Read the base plan's inputs from the working database.

        Args:
            con: connection to the working DuckDB (read-only is enough).
            plan_month: ``YYYY-MM`` whose ``plan.plan_demand`` rows and marts to read.
            marts: where the marts are (default: the marts schema of ``con``'s file).
            strategy: settings ``strategy`` of the base plan.
            service_level: settings ``service_level``.
            overtime_share: settings ``overtime_share``.
            unmet_demand: settings ``unmet_demand``.

        Returns:
            The inputs the supply and finance assets planned the base from.
        """
        marts = marts or DuckDBMarts(con)
        return cls(
            plan_demand=read_plan(con, "plan_demand", plan_month),
            items=marts.read_mart("dim_items"),
            routings=marts.read_mart("fct_routings"),
            capacity=marts.read_mart("fct_capacity"),
            inventory_position=marts.read_mart("fct_inventory_position"),
            open_supply=marts.read_mart("fct_open_supply"),
            aop=marts.read_mart("fct_aop_targets"),
            bom_exploded=(
                marts.read_mart("fct_bom_exploded")
                if marts.has_mart("fct_bom_exploded")
                else pd.DataFrame()
            ),
            supplier_capacity=(
                marts.read_mart("fct_supplier_capacity")
                if marts.has_mart("fct_supplier_capacity")
                else pd.DataFrame()
            ),
            strategy=strategy,
            service_level=service_level,
            overtime_share=overtime_share,
            unmet_demand=unmet_demand,
        )


@dataclass
class ScenarioOutputs:
    """A plan made by :func:`plan_from_inputs` (the base or a scenario).

    Attributes:
        plan_demand: the consensus plan that was planned (with the levers applied).
        safety_stock: item × location × month safety stock.
        supply: the ``plan_supply`` result (plan_supply, plan_inventory, plan_capacity,
            shortages, status, objective, strategy).
        plan_gaps: family × month gaps (``finance.gaps``).
        plan_financials: family × month financials (``finance.financials``).
        family_utilization: family × month capacity_utilization (see
            :func:`family_capacity_utilization`).
        notes: the inputs' notes (levers that changed nothing).
    """

    plan_demand: pd.DataFrame
    safety_stock: pd.DataFrame
    supply: SupplyResult
    plan_gaps: pd.DataFrame
    plan_financials: pd.DataFrame
    family_utilization: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)
