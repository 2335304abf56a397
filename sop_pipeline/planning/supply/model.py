"""The supply plan's shared names: published columns, tolerances and data classes.

``PLAN_SUPPLY_COLUMNS``, ``QTY_EPS``, ``SHADOW_EPS``; the error ``SupplyPlanError``; the
objective weights ``SupplyCosts``; the result ``SupplyResult``; the materials of the joint LP
``MaterialNetwork``; and the internal problem arrays ``_Problem`` (with ``_Links``, a
network's links in a problem's series order) that the other modules of the package work on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from sop_pipeline.errors import OperationalError

PLAN_SUPPLY_COLUMNS = [
    "item_id",
    "location_id",
    "month",
    "planned_production_qty",
    "planned_purchase_qty",
    "open_order_receipts_qty",
]
QTY_EPS = 1e-6
SHADOW_EPS = 1e-7


class SupplyPlanError(OperationalError, RuntimeError):
    """The solver failed on the supply LP; the message says which block and what to check."""


@dataclass(frozen=True)
class SupplyCosts:
    """Objective weights of the supply LP, relative to each item's own cost and price.

    ``cost`` is the item's unit_cost (else unit_price, else 1) and ``price`` its unit_price
    (else ``cost``), both in the base currency, so one set of weights fits cheap and dear
    items alike.

    Attributes:
        holding_rate: holding cost per unit and month, × cost (2%/month ≈ 24%/year).
        shortage_rate: lost-sale penalty per unit short, × price (lost margin + goodwill).
        ss_shortfall_share: cost of missing one unit of safety stock for the whole
            horizon, as a share of the shortage penalty (< 1 so that serving demand
            always beats keeping safety stock).
        overtime_premium: overtime cost per hour, × the median value of one hour of the
            work center's output (cost / hours_per_unit over its items).
        overtime_cost_per_hour: a fixed overtime cost per hour instead (base currency).
        change_rate_mixed: cost per unit of production change, × cost, under *mixed*.
        change_rate_level: the same under *level* (strong: production stays flat).
        chase_excess_rate: cost per unit and month of stock above safety stock under
            *chase*, × the shortage penalty (> 1: chase never builds ahead).
    """

    holding_rate: float = 0.02
    shortage_rate: float = 2.0
    ss_shortfall_share: float = 0.5
    overtime_premium: float = 0.10
    overtime_cost_per_hour: float | None = None
    change_rate_mixed: float = 0.05
    change_rate_level: float = 1.0
    chase_excess_rate: float = 1.2

    def change_rate(self, strategy: str) -> float:
        """Production-change cost rate of a strategy (0 for chase)."""
        return {"chase": 0.0, "mixed": self.change_rate_mixed, "level": self.change_rate_level}[
            strategy
        ]


@dataclass
class SupplyResult:
    """The supply plan and everything needed to explain it.

    Attributes:
        plan_supply: item_id, location_id, month, planned_production_qty,
            planned_purchase_qty, open_order_receipts_qty, then family, supply_type
            (production / purchase / none), lp_qty (before min-lot rounding), min_lot_qty.
        plan_inventory: projected inventory (see ``inventory.project_inventory``) plus
            family and binding_constraint (why a shortage could not be avoided).
        plan_capacity: rough-cut capacity with the planned hours of this plan.
        shortages: item_id, location_id, month, shortage_qty, binding_constraint,
            constraint_type (capacity / lead_time / no_source / trade_off), work_center_id,
            shadow_price (objective saving per extra hour of that work center).
        status: ``optimal`` when every LP block solved to optimality.
        objective: LP objective terms (before min-lot rounding) and their total.
        stats: sizes and timings (series, months, lps, variables, constraints, seconds).
        strategy: the strategy planned.
        plan_materials: the material plan (``materials.plan_supply_with_materials``), or
            None when the plan was made without materials.
        safety_stock: the safety stock the plan was made against
            (``materials.plan_supply_review``), or None when the caller gave it.
    """

    plan_supply: pd.DataFrame
    plan_inventory: pd.DataFrame
    plan_capacity: pd.DataFrame
    shortages: pd.DataFrame
    status: str
    objective: dict[str, float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    strategy: str = "mixed"
    plan_materials: pd.DataFrame | None = None
    safety_stock: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The plan tables of the supply review (``plan_materials`` when planned with materials)."""
        out = {
            "plan_supply": self.plan_supply,
            "plan_inventory": self.plan_inventory,
            "plan_capacity": self.plan_capacity,
            "supply_shortages": self.shortages,
        }
        if self.plan_materials is not None:
            out["plan_materials"] = self.plan_materials
        return out


@dataclass
class MaterialNetwork:
    """The materials of the joint LP: what production consumes and what can be bought.

    Built by ``materials.material_network`` from the exploded BOM and supplier capacity;
    ``plan_supply(materials=...)`` then plans production, material purchases and material
    stock in one LP (see ``docs/supply_and_finance.md``, "Materials in the LP").

    Attributes:
        link_item, link_location: the made series a link belongs to (one per BOM leaf ×
            production month whose material is due within the horizon).
        link_c: material × location index (into ``on_hand`` …) the link consumes.
        link_tau: production month index; link_t: month the material is consumed
            (``tau − lead_time_offset_months``).
        link_qty: material per unit produced (scrap included).
        material_group: per material × location, the material item it is (supplier
            capacity spans locations, so series sharing a material item share an LP).
        on_hand: material stock at the start, per material × location.
        receipts: open purchase orders of materials, material × location × month.
        hold_cost: holding cost per unit and month of material stock.
        src_c, src_t: material × location and month of each purchase option.
        src_cost: objective cost per unit bought (a tie-break between suppliers).
        src_open: False in the months the source's lead time blocks.
        src_cap: supplier-capacity row of the option (−1: no stated limit).
        cap_limit: max_qty per supplier × material × month row.
        material_item: per material × location, its material item_id.
        scarce: per material × location, True where the materials could not support the
            capacity-only plan (set by ``plan_supply_with_materials``; None: not known).
    """

    link_item: np.ndarray
    link_location: np.ndarray
    link_c: np.ndarray
    link_tau: np.ndarray
    link_t: np.ndarray
    link_qty: np.ndarray
    material_group: np.ndarray
    on_hand: np.ndarray
    receipts: np.ndarray
    hold_cost: np.ndarray
    src_c: np.ndarray
    src_t: np.ndarray
    src_cost: np.ndarray
    src_open: np.ndarray
    src_cap: np.ndarray
    cap_limit: np.ndarray
    material_item: np.ndarray | None = None
    scarce: np.ndarray | None = None


@dataclass
class _Links:
    """A MaterialNetwork's links in a problem's series order (``s``: row of the problem)."""

    s: np.ndarray
    c: np.ndarray
    tau: np.ndarray
    t: np.ndarray
    qty: np.ndarray


@dataclass
class _Problem:
    series: pd.MultiIndex
    months: pd.DatetimeIndex
    demand: np.ndarray  # n × T
    open_receipts: np.ndarray  # n × T
    on_hand: np.ndarray  # n
    safety: np.ndarray  # n × T
    manufactured: np.ndarray  # n bool
    has_source: np.ndarray  # n bool
    blocked: np.ndarray  # n int
    lead_time: np.ndarray  # n float (days, NaN unknown)
    min_lot: np.ndarray  # n float (0: none)
    cost: np.ndarray  # n
    price: np.ndarray  # n
    centers: list[str]
    available: np.ndarray  # W × T
    open_hours: np.ndarray  # W × T
    route: sparse.csr_matrix  # n × W hours per unit
    families: np.ndarray  # n
    max_production: np.ndarray | None = None  # n × T (planning.materials: what the materials allow)
    network: MaterialNetwork | None = None  # materials planned in the same LP
    links: _Links | None = None  # the network's links in this problem's series order
