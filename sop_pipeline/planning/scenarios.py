"""What-if scenarios: re-plan supply and finance with levers applied, compare with the base.

A scenario is a list of levers (``scenarios.yaml`` of the landing month, loaded into
``raw.scenarios``). Each lever changes a copy of the base plan's inputs; the changed inputs
are planned by :func:`plan_from_inputs` (safety stock → ``plan_supply`` → gaps →
financials, the same calls the supply and finance assets make) and :func:`compare` turns the
two plans into the published ``scenario_comparison`` rows (scenario × family × month ×
metric). Demand is *not* re-forecast: a scenario starts from the consensus plan.

Levers (months are ``[first, last]`` inclusive, ``pct`` a fraction: 0.15 = +15%):

- ``capacity_loss`` (work_center_id, months, pct): available hours × (1 − pct);
- ``demand_change`` (family or item_id, months (optional: the whole horizon), pct): consensus
  qty and revenue × (1 + pct);
- ``supplier_delay`` (supplier_id, days): + days on the lead time of the supplier's items
  (``dim_items.supplier_id``) and of its rows in ``fct_supplier_capacity`` (the months it
  can no longer deliver in time are lost capacity for the BOM's materials), and its open
  purchase orders due ``ceil(days / 30)`` months later (orders pushed past the horizon
  drop out);
- ``price_change`` (family or item_id, pct, optional elasticity): unit price and consensus
  revenue × (1 + pct); with ``elasticity`` ε (e.g. −1.2) the volume responds, consensus qty ×
  (1 + pct)^ε; without it the volume is unchanged and the scenario notes that price
  elasticity is not modelled;
- ``strategy`` (value): plan with ``chase``, ``level`` or ``mixed``.

The file's schema (lever types, fields, months, pct) is ``core.scenario_schema``, which ingest
checks the file with too. See ``docs/scenarios.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from sop_pipeline.core import scenario_schema
from sop_pipeline.core.months import parse_month
from sop_pipeline.core.scenario_schema import (
    WORSENING_LEVERS,
    Lever,
    ScenarioError,
    check_scenario_name,
)
from sop_pipeline.planning.finance import financials, gaps
from sop_pipeline.planning.inventory import (
    DAYS_PER_LEAD_TIME_MONTH,
    as_month_start,
    horizon_months,
    require_columns,
    safety_stock,
)
from sop_pipeline.planning.materials import plan_supply_with_materials
from sop_pipeline.planning.supply import SupplyResult
from sop_pipeline.storage.warehouse import DuckDBMarts, MartReader, read_plan, table_exists

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


# Parsing (the schema is core.scenario_schema, shared with ingest) ---------------------
def parse_levers(
    levers_json: str | Sequence[Mapping[str, Any]],
    *,
    scenario: str = "",
    inputs: ScenarioInputs | None = None,
) -> list[Lever]:
    """Parse and validate the levers of one scenario (``core.scenario_schema.parse_levers``).

    Args:
        levers_json: the ``levers`` list of ``scenarios.yaml`` or its JSON text
            (``raw.scenarios.levers_json``).
        scenario: scenario name, used in error messages.
        inputs: when given, every family, item, work center and supplier a lever names
            must exist in them (see :func:`check_references`).

    Returns:
        The levers, in file order.

    Raises:
        ScenarioError: the file's schema is broken (an unknown type or field, a bad month /
            number) or, with ``inputs``, a family / work center / supplier is unknown; the
            message names the scenario and the lever.
    """
    levers = scenario_schema.parse_levers(levers_json, scenario=scenario)
    if inputs is not None:
        check_references(levers, inputs)
    return levers


def _known(values: Iterable[Any]) -> set[str]:
    """Distinct non-null values as text (unique first: columns have 100,000s of rows)."""
    return {str(v) for v in pd.unique(pd.Series(values, dtype=object).dropna())}


def _suggest(known: set[str]) -> str:
    shown = sorted(known)
    more = f" (+{len(shown) - 12} more)" if len(shown) > 12 else ""
    return ", ".join(shown[:12]) + more if shown else "none"


def check_references(levers: Sequence[Lever], inputs: ScenarioInputs) -> None:
    """Every family, item, work center and supplier a lever names exists in the inputs.

    Args:
        levers: parsed levers.
        inputs: the base plan's inputs.

    Raises:
        ScenarioError: naming the scenario, the lever, the unknown value and the known ones.
    """
    families = _known(inputs.items["family"]) | _known(inputs.plan_demand.get("family", []))
    item_ids = _known(inputs.items["item_id"])
    centers = _known(inputs.capacity["work_center_id"]) | _known(inputs.routings["work_center_id"])
    for lever in levers:
        if lever.family is not None and lever.family not in families:
            raise ScenarioError(
                f"{lever.where}: family {lever.family!r} is not in dim_items; known families: "
                f"{_suggest(families)}."
            )
        if lever.item_id is not None and lever.item_id not in item_ids:
            raise ScenarioError(
                f"{lever.where}: item_id {lever.item_id!r} is not in dim_items; fix the scenario."
            )
        if lever.work_center_id is not None and lever.work_center_id not in centers:
            raise ScenarioError(
                f"{lever.where}: work center {lever.work_center_id!r} is not in fct_capacity or "
                f"fct_routings; known work centers: {_suggest(centers)}."
            )
        if lever.supplier_id is not None:
            for frame, name in (
                (inputs.items, "dim_items"),
                (inputs.open_supply, "fct_open_supply"),
            ):
                if "supplier_id" not in frame:
                    raise ScenarioError(
                        f"{lever.where}: {name} has no supplier_id column; rebuild the marts "
                        "(dbt build) with this version of the project."
                    )
            suppliers = _known(inputs.items["supplier_id"]) | _known(
                inputs.open_supply["supplier_id"]
            )
            if "supplier_id" in inputs.supplier_capacity:
                suppliers |= _known(inputs.supplier_capacity["supplier_id"])
            if lever.supplier_id not in suppliers:
                raise ScenarioError(
                    f"{lever.where}: supplier {lever.supplier_id!r} is neither the main supplier "
                    f"of an item nor on an open purchase order; known suppliers: "
                    f"{_suggest(suppliers)}."
                )


def _check_inputs(inputs: ScenarioInputs) -> None:
    require_columns(inputs.plan_demand, "plan_demand", ["item_id", "month", "consensus_qty"])
    require_columns(inputs.plan_demand, "plan_demand", ["consensus_revenue"])
    require_columns(inputs.items, "items", ["item_id", "family", "unit_price", "lead_time_days"])
    require_columns(inputs.capacity, "capacity", ["work_center_id", "month", "available_hours"])
    require_columns(inputs.open_supply, "open_supply", ["item_id", "due_month", "open_qty"])


# Levers -----------------------------------------------------------------------------------
def _in_months(months: pd.Series, lever: Lever) -> pd.Series:
    if lever.first_month is None:
        return pd.Series(True, index=months.index)
    m = as_month_start(months)
    return (m >= lever.first_month) & (m <= lever.last_month)


def _scope(frame: pd.DataFrame, lever: Lever, items: pd.DataFrame) -> pd.Series:
    """Rows of ``frame`` (with item_id, maybe family) in the lever's family / item."""
    ids = frame["item_id"].astype(str)
    if lever.item_id is not None:
        return ids == lever.item_id
    if "family" in frame:
        family = frame["family"].astype(str)
    else:
        family = ids.map(
            items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["family"]
        )
    return family == lever.family


def _note_if_outside(inputs: ScenarioInputs, lever: Lever, hits: int, what: str) -> ScenarioInputs:
    if hits:
        return inputs
    months = horizon_months(inputs.plan_demand)
    horizon = f"{months[0]:%Y-%m}..{months[-1]:%Y-%m}" if len(months) else "(empty)"
    note = (
        f"{lever.where}: no {what} in {lever.months_text} (plan horizon {horizon}); "
        "the lever changes nothing."
    )
    return dataclasses.replace(inputs, notes=(*inputs.notes, note))


def _demand_change(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    demand = inputs.plan_demand
    rows = _scope(demand, lever, inputs.items) & _in_months(demand["month"], lever)
    factor = 1.0 + float(lever.pct)
    added = demand.loc[rows, "consensus_qty"] * lever.pct
    demand.loc[rows, "consensus_qty"] = demand.loc[rows, "consensus_qty"] * factor
    demand.loc[rows, "consensus_revenue"] = demand.loc[rows, "consensus_revenue"] * factor
    # book the change as an override so consensus = stat + crm + override (+ clipped) holds
    if "override_qty" in demand:
        demand.loc[rows, "override_qty"] = demand.loc[rows, "override_qty"] + added
    return _note_if_outside(inputs, lever, int(rows.sum()), "consensus rows of that scope")


def _capacity_loss(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    cap = inputs.capacity
    rows = (cap["work_center_id"].astype(str) == lever.work_center_id) & _in_months(
        cap["month"], lever
    )
    cap.loc[rows, "available_hours"] = cap.loc[rows, "available_hours"] * (1.0 - float(lever.pct))
    return _note_if_outside(inputs, lever, int(rows.sum()), "capacity rows of that work center")


def _supplier_delay(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    items, opens = inputs.items, inputs.open_supply
    own = items["supplier_id"].astype("string") == lever.supplier_id
    items["lead_time_days"] = pd.to_numeric(items["lead_time_days"], errors="coerce").astype(float)
    # an item without a lead time has no supplier in the LP; a delay does not give it one
    items.loc[own.fillna(False), "lead_time_days"] += lever.days
    sc = inputs.supplier_capacity
    if "supplier_id" in sc and len(sc):
        # the supplier's materials arrive later: the first months' capacity is lost
        mine = (sc["supplier_id"].astype("string") == lever.supplier_id).fillna(False)
        lead = pd.to_numeric(sc["lead_time_days"], errors="coerce").astype(float)
        item_lead = pd.to_numeric(
            sc["item_id"].map(
                items.drop_duplicates("item_id").set_index("item_id")["lead_time_days"]
            ),
            errors="coerce",
        )
        sc["lead_time_days"] = lead.where(~mine, lead.fillna(item_lead).fillna(0.0) + lever.days)
    shift = math.ceil(lever.days / DAYS_PER_LEAD_TIME_MONTH - 1e-9)
    late = (opens["supplier_id"].astype("string") == lever.supplier_id).fillna(False)
    if shift and late.any():
        due = as_month_start(opens["due_month"])
        due.loc[late] = due.loc[late] + pd.DateOffset(months=shift)
        horizon_end = horizon_months(inputs.plan_demand)[-1]
        opens["due_month"] = due
        # pushed past the horizon: no longer a receipt of this plan (the LP ignores them too)
        keep = ~late | (due <= horizon_end)
        inputs = dataclasses.replace(inputs, open_supply=opens[keep].reset_index(drop=True))
    return inputs


def _price_change(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    factor = 1.0 + float(lever.pct)
    items = inputs.items
    rows = _scope(items, lever, items)
    items.loc[rows, "unit_price"] = pd.to_numeric(items.loc[rows, "unit_price"]) * factor
    demand = inputs.plan_demand
    in_scope = _scope(demand, lever, items)
    demand.loc[in_scope, "consensus_revenue"] = demand.loc[in_scope, "consensus_revenue"] * factor
    if lever.elasticity is None:
        note = (
            f"{lever.where}: price elasticity is not modelled, demand volume is unchanged (the "
            "revenue change is price only); add elasticity (e.g. -1.2) to the lever for a "
            "volume response."
        )
        return dataclasses.replace(inputs, notes=(*inputs.notes, note))
    volume = factor**lever.elasticity
    added = demand.loc[in_scope, "consensus_qty"] * (volume - 1.0)
    demand.loc[in_scope, "consensus_qty"] = demand.loc[in_scope, "consensus_qty"] * volume
    demand.loc[in_scope, "consensus_revenue"] = demand.loc[in_scope, "consensus_revenue"] * volume
    if "override_qty" in demand:
        demand.loc[in_scope, "override_qty"] = demand.loc[in_scope, "override_qty"] + added
    return inputs


def _strategy(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    return dataclasses.replace(inputs, strategy=str(lever.value))


_APPLY = {
    "demand_change": _demand_change,
    "capacity_loss": _capacity_loss,
    "supplier_delay": _supplier_delay,
    "price_change": _price_change,
    "strategy": _strategy,
}


def apply_levers(inputs: ScenarioInputs, levers: Sequence[Lever]) -> ScenarioInputs:
    """The inputs with the levers applied, in order (levers of one kind compound).

    Pure: the returned inputs hold new frames; ``inputs`` is never changed.

    Args:
        inputs: the base plan's inputs.
        levers: parsed levers (:func:`parse_levers`).

    Returns:
        New inputs; ``notes`` lists levers that changed nothing (e.g. months outside the
        horizon).

    Raises:
        ScenarioError: a lever names a family, item, work center or supplier the inputs do
            not have.
    """
    _check_inputs(inputs)
    check_references(levers, inputs)
    out = inputs.copy()
    for lever in levers:
        out = _APPLY[lever.type](out, lever)
    return out


# Planning ---------------------------------------------------------------------------------
def family_capacity_utilization(
    plan_capacity: pd.DataFrame,
    plan_demand: pd.DataFrame,
    routings: pd.DataFrame,
    items: pd.DataFrame,
) -> pd.DataFrame:
    """Utilization of the work centers a family loads, weighted by the family's hours there.

    ``Σ_w required_hours[f, w, t] × utilization[w, t] / Σ_w required_hours[f, w, t]`` where
    required hours are the family's consensus × hours_per_unit (the load it asks of each
    work center) and utilization is ``plan_capacity.utilization`` (planned / available).
    Work centers with no hours that month (utilization null) are left out. Families of
    purchased items only have no row.

    Args:
        plan_capacity: work_center_id, month, utilization.
        plan_demand: item_id, month, consensus_qty (family optional).
        routings: item_id, work_center_id, hours_per_unit.
        items: item_id, family.

    Returns:
        family, month, capacity_utilization, required_hours.
    """
    columns = ["family", "month", "capacity_utilization", "required_hours"]
    demand = plan_demand[["item_id", "month", "consensus_qty"]].copy()
    demand["item_id"] = demand["item_id"].astype(str)
    demand["month"] = as_month_start(demand["month"])
    family_of = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    demand["family"] = demand["item_id"].map(family_of.set_index("item_id")["family"])
    if "family" in plan_demand:
        demand["family"] = plan_demand["family"].to_numpy()
    routes = routings.assign(
        item_id=routings["item_id"].astype(str),
        work_center_id=routings["work_center_id"].astype(str),
    )
    load = demand.merge(routes[["item_id", "work_center_id", "hours_per_unit"]], on="item_id")
    if load.empty:
        return pd.DataFrame(columns=columns).astype({"month": "datetime64[ns]"})
    load["required_hours"] = load["consensus_qty"] * load["hours_per_unit"]
    load = load.groupby(["family", "work_center_id", "month"], as_index=False)[
        "required_hours"
    ].sum()
    cap = plan_capacity[["work_center_id", "month", "utilization"]].copy()
    cap["work_center_id"] = cap["work_center_id"].astype(str)
    cap["month"] = as_month_start(cap["month"])
    load = load.merge(cap, on=["work_center_id", "month"], how="left")
    load = load[load["utilization"].notna() & (load["required_hours"] > 0)]
    load["weighted"] = load["required_hours"] * load["utilization"]
    out = load.groupby(["family", "month"], as_index=False)[["weighted", "required_hours"]].sum()
    out["capacity_utilization"] = out["weighted"] / out["required_hours"]
    out["month"] = out["month"].astype("datetime64[ns]")
    return out[columns].sort_values(["family", "month"]).reset_index(drop=True)


def plan_from_inputs(inputs: ScenarioInputs) -> ScenarioOutputs:
    """Plan supply and finance from the inputs: the one call sequence of base and scenarios.

    ``safety_stock`` → ``plan_supply`` → ``gaps`` → ``financials``, with the inputs'
    strategy, service level and overtime share, exactly as the supply and finance assets
    plan the base.

    Args:
        inputs: base or scenario inputs.

    Returns:
        The plan's tables (see :class:`ScenarioOutputs`).
    """
    demand = inputs.plan_demand
    ss = safety_stock(demand, inputs.items, service_level=inputs.service_level)
    supply = plan_supply_with_materials(
        demand,
        inputs.items,
        inputs.routings,
        inputs.capacity,
        inputs.inventory_position,
        inputs.open_supply,
        ss,
        strategy=inputs.strategy,
        overtime_share=inputs.overtime_share,
        unmet_demand=inputs.unmet_demand,
        bom_exploded=inputs.bom_exploded,
        supplier_capacity=inputs.supplier_capacity,
    )
    inv = supply.plan_inventory
    return ScenarioOutputs(
        plan_demand=demand,
        safety_stock=ss,
        supply=supply,
        plan_gaps=gaps(demand, inv, inputs.items),
        plan_financials=financials(demand, inv, inputs.items, inputs.aop),
        family_utilization=family_capacity_utilization(
            supply.plan_capacity, demand, inputs.routings, inputs.items
        ),
        notes=inputs.notes,
    )


def run_scenario(inputs: ScenarioInputs, levers: Sequence[Lever] = ()) -> ScenarioOutputs:
    """Apply the levers (if any) and plan the result with :func:`plan_from_inputs`.

    Args:
        inputs: the base plan's inputs (or already modified ones, with no levers).
        levers: parsed levers to apply first.

    Returns:
        The scenario's plan.
    """
    return plan_from_inputs(apply_levers(inputs, levers) if levers else inputs)


# Comparison -------------------------------------------------------------------------------
def family_metrics(outputs: ScenarioOutputs) -> pd.DataFrame:
    """The compared metrics of one plan, long: family, month, metric, value.

    Args:
        outputs: a plan from :func:`plan_from_inputs`.

    Returns:
        One row per family × month × metric of :data:`METRICS` (capacity_utilization only
        for families with a routing).
    """
    parts = []
    g = outputs.plan_gaps
    for metric, col in (
        ("demand_qty", "demand_qty"),
        ("supply_qty", "supply_qty"),
        ("gap_qty", "gap_qty"),
        ("gap_value", "gap_value"),
    ):
        parts.append(g[["family", "month"]].assign(metric=metric, value=g[col].astype(float)))
    fin = outputs.plan_financials
    for metric in ("revenue", "gross_margin", "inventory_value"):
        parts.append(
            fin[["family", "month"]].assign(metric=metric, value=fin[metric].astype(float))
        )
    util = outputs.family_utilization
    parts.append(
        util[["family", "month"]].assign(
            metric="capacity_utilization", value=util["capacity_utilization"].astype(float)
        )
    )
    out = pd.concat(parts, ignore_index=True)
    out["family"] = out["family"].astype(str)
    out["month"] = as_month_start(out["month"])
    return out


def compare(base: ScenarioOutputs, scen: ScenarioOutputs, scenario: str) -> pd.DataFrame:
    """The published ``scenario_comparison`` rows of one scenario against the base.

    Args:
        base: the base plan.
        scen: the scenario's plan.
        scenario: scenario name.

    Returns:
        scenario, family, month, metric, base_value, scenario_value, delta (scenario −
        base), one row per family × month × metric of either plan. A family-month only one
        plan has counts 0 in the other (utilization stays null).
    """
    keys = ["family", "month", "metric"]
    both = family_metrics(base).merge(
        family_metrics(scen), on=keys, how="outer", suffixes=("_base", "_scen")
    )
    additive = both["metric"] != "capacity_utilization"
    for col in ("value_base", "value_scen"):
        both.loc[additive, col] = both.loc[additive, col].fillna(0.0)
    order = {m: i for i, m in enumerate(METRICS)}
    both = (
        both.assign(_order=both["metric"].map(order))
        .sort_values(["family", "month", "_order"])
        .reset_index(drop=True)
    )
    out = pd.DataFrame(
        {
            "scenario": scenario,
            "family": both["family"],
            "month": both["month"].astype("datetime64[ns]"),
            "metric": both["metric"],
            "base_value": both["value_base"].astype(float),
            "scenario_value": both["value_scen"].astype(float),
        }
    )
    out["delta"] = out["scenario_value"] - out["base_value"]
    return out[SCENARIO_COMPARISON_COLUMNS]


def lever_kinds(levers: Sequence[Lever]) -> str:
    """What a scenario's levers do, for the gate's monotonicity check (``lever_kinds``).

    capacity_loss, supplier_delay, demand_up / demand_down, price_up / price_down,
    strategy; comma-separated, sorted.
    """
    kinds = set()
    for lever in levers:
        if lever.type in ("demand_change", "price_change"):
            word = "demand" if lever.type == "demand_change" else "price"
            kinds.add(f"{word}_{'up' if (lever.pct or 0.0) >= 0 else 'down'}")
        elif lever.type == "capacity_loss" and not lever.pct:
            continue  # a 0% loss changes nothing
        else:
            kinds.add(lever.type)
    return ",".join(sorted(kinds))


def _mix_shift_note(rows: pd.DataFrame, kinds: str) -> list[str]:
    """A capacity loss or supplier delay with fewer units short but more value short.

    The supply LP minimizes the value short first (``docs/supply_and_finance.md``): with
    less capacity it can move the shortage onto fewer, dearer units, so the gap in units
    falls while its value rises. That is a mix shift, not a better plan; say so.
    """
    if not kinds or not set(kinds.split(",")) <= WORSENING_LEVERS:
        return []
    total = rows.groupby("metric")[["base_value", "scenario_value"]].sum()
    if not {"gap_qty", "gap_value"} <= set(total.index):
        return []
    qty, value = total.loc["gap_qty"], total.loc["gap_value"]
    fewer = qty["base_value"] - qty["scenario_value"]
    dearer = value["scenario_value"] - value["base_value"]
    if fewer <= 1e-6 * max(1.0, abs(qty["base_value"])) or dearer <= 0:
        return []
    return [
        f"The gap is {fewer:,.1f} units smaller than the base's but worth {dearer:,.0f} more: "
        "with less capacity the plan moves the shortage onto fewer, dearer units (supply "
        "minimizes the value short first), so it may also serve more units; service by "
        "value is worse and revenue no higher."
    ]


def _scenario_levers(spec: Mapping[str, Any], position: int) -> tuple[str, list[Lever]]:
    name = check_scenario_name(spec.get("name"), position)
    levers = spec.get("levers", spec.get("levers_json"))
    if levers is None:
        raise ScenarioError(f"scenario {name}: needs levers (a list, or levers_json text).")
    return name, parse_levers(levers, scenario=name)


def run_scenarios(
    inputs: ScenarioInputs,
    scenarios: Sequence[Mapping[str, Any]],
    *,
    base: ScenarioOutputs | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> pd.DataFrame:
    """Plan every scenario and compare it with the base plan.

    All scenarios are validated before anything is planned, so a typo in the last one
    fails fast. The base inputs are never changed.

    Args:
        inputs: the base plan's inputs.
        scenarios: ``{name, levers}`` (scenarios.yaml) or ``{name, levers_json}``
            (``raw.scenarios`` rows) mappings; names must be unique.
        base: the base plan, if already made from ``inputs`` by :func:`plan_from_inputs`.
        progress: called ``(done, total, name)`` after each scenario is planned (the CLI's
            progress bar).

    Returns:
        ``scenario_comparison`` rows of all scenarios, in the given order, then lever_kinds
        (:func:`lever_kinds`) and note (what the levers did not change or model, e.g.
        price elasticity); ``attrs["notes"]`` maps scenario names to those notes.

    Raises:
        ScenarioError: a malformed scenario or lever, a duplicate name, or an unknown
            family / item / work center / supplier.
    """
    parsed: list[tuple[str, list[Lever]]] = []
    for i, spec in enumerate(scenarios):
        name, levers = _scenario_levers(spec, i + 1)
        if any(name == seen for seen, _ in parsed):
            raise ScenarioError(f"scenario {name}: the name is used twice; names must be unique.")
        check_references(levers, inputs)
        parsed.append((name, levers))
    if not parsed:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="object" if c in ("scenario", "family", "metric") else "float64")
                for c in SCENARIO_COMPARISON_COLUMNS
            }
        ).astype({"month": "datetime64[ns]"})
    base = base if base is not None else plan_from_inputs(inputs)
    frames, notes = [], {}
    for done, (name, levers) in enumerate(parsed, start=1):
        scen = run_scenario(inputs, levers)
        rows = compare(base, scen, name)
        kinds = lever_kinds(levers)
        said = [*scen.notes, *_mix_shift_note(rows, kinds)]
        if said:
            notes[name] = said
        frames.append(rows.assign(lever_kinds=kinds, note=" ".join(said) or None))
        if progress is not None:
            progress(done, len(parsed), name)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["notes"] = notes
    return out


def read_scenarios(con: duckdb.DuckDBPyConnection, plan_month: str) -> list[dict[str, Any]]:
    """The scenarios of a plan month: ``raw.scenarios`` of the latest extract ≤ the month.

    Planning inputs are snapshots: the newest scenarios file at or before the plan month
    is the one planners meant (point in time, like the other planning extracts).

    Args:
        con: working database connection.
        plan_month: ``YYYY-MM``.

    Returns:
        ``{name, description, levers_json}`` dicts in name order; empty without scenarios.
    """
    parse_month(plan_month)
    if not table_exists(con, "raw", "scenarios"):
        return []
    rows = con.execute(
        "select name, description, levers_json from raw.scenarios "
        "where extract_month = (select max(extract_month) from raw.scenarios "
        "where extract_month <= ?) order by name",
        [plan_month],
    ).fetchall()
    return [{"name": n, "description": d, "levers_json": j} for n, d, j in rows]
