"""The entry point of the supply plan: ``plan_supply``.

It checks the inputs, assembles the problem (``assembly``), solves its blocks at item level
or in aggregate (``lp``, ``aggregate``), rounds to min lots (``lots``) and builds the plan,
its inventory projection, its capacity load and the explained shortages (``explain``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from sop_pipeline.core.settings import STRATEGIES
from sop_pipeline.planning.capacity import rough_cut_capacity
from sop_pipeline.planning.grid import series_month_grid
from sop_pipeline.planning.inventory import (
    KEY,
    SERIES,
    as_month_start,
    project_inventory,
    require_columns,
    stockout_risk,
)
from sop_pipeline.planning.supply.aggregate import (
    _aggregate_problem,
    _disaggregate,
    _net_requirements,
    _scale_to_capacity,
)
from sop_pipeline.planning.supply.assembly import _assemble, _blocks, _overtime_cost
from sop_pipeline.planning.supply.explain import _explain
from sop_pipeline.planning.supply.lots import _materials_cap, _round_to_lots
from sop_pipeline.planning.supply.lp import _solve_block
from sop_pipeline.planning.supply.model import (
    QTY_EPS,
    MaterialNetwork,
    SupplyCosts,
    SupplyPlanError,
    SupplyResult,
    _Links,
)


def plan_supply(
    plan_demand: pd.DataFrame,
    items: pd.DataFrame,
    routings: pd.DataFrame,
    capacity: pd.DataFrame,
    inventory_position: pd.DataFrame,
    open_supply: pd.DataFrame,
    safety_stock: pd.DataFrame | None,
    *,
    strategy: str = "mixed",
    overtime_share: float = 0.10,
    costs: SupplyCosts | None = None,
    max_series_per_lp: int = 500,
    item_level_max_series: int = 150,
    unmet_demand: str = "lost_sales",
    max_production: pd.DataFrame | None = None,
    materials: MaterialNetwork | None = None,
    limit_rounded: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> SupplyResult:
    """Plan production and purchases against capacity, lead times and min lots.

    Args:
        plan_demand: consensus plan (item_id, location_id, family, month, consensus_qty).
        items: dim_items (item_id, family, unit_cost, unit_price, lead_time_days,
            min_lot_qty).
        routings: fct_routings (item_id, work_center_id, hours_per_unit); an item with a
            routing is manufactured, one without is purchased.
        capacity: fct_capacity (work_center_id, month, available_hours).
        inventory_position: fct_inventory_position (item_id, location_id, on_hand_qty).
        open_supply: fct_open_supply (supply_type, item_id, location_id, due_month,
            open_qty).
        safety_stock: item_id, location_id, month, safety_stock_qty (``inventory.
            safety_stock``), or None for none.
        strategy: ``chase``, ``level`` or ``mixed`` (see ``docs/supply_and_finance.md``).
        overtime_share: overtime allowed per work center and month, share of available.
        costs: objective weights; default ``SupplyCosts()``.
        max_series_per_lp: series packed into one item-level LP.
        item_level_max_series: a capacity-linked component with more series than this is
            planned in aggregate (family × location × lead-time groups, then split over
            its items by urgency of their net requirements).
        unmet_demand: ``backlog`` (unserved demand waits for the next receipts) or
            ``lost_sales`` (settings ``unmet_demand``; see ``inventory.project_inventory``).
        max_production: item_id, location_id, month, max_production_qty: an upper bound on
            planned production (the materials the suppliers can deliver, see
            ``planning.materials``); None for none.
        materials: the materials to plan in the same LP (``materials.material_network``:
            production consumes them, purchases within supplier capacity and lead time
            replenish them); None plans capacity only.
        limit_rounded: called with the plan after min-lot rounding (item_id,
            location_id, month, planned_production_qty); returns item_id, location_id,
            month, max_production_qty, a cap on the rounded production (``planning.materials``:
            what the materials allow of lots rounded up). None for none.

    Returns:
        The plan, its inventory projection and capacity load, the explained shortages,
        the solver status, objective terms and timings.

    Raises:
        ValueError: an input misses a column or the strategy is unknown.
        SupplyPlanError: HiGHS failed on a block (the message names its size).
    """
    started = time.perf_counter()
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is unknown; use one of {', '.join(STRATEGIES)}.")
    if not 0.0 <= overtime_share <= 1.0:
        raise ValueError(f"overtime_share={overtime_share} must be between 0 and 1 (e.g. 0.10).")
    costs = costs or SupplyCosts()
    if unmet_demand not in ("backlog", "lost_sales"):
        raise ValueError(f"unmet_demand={unmet_demand!r} is unknown; use backlog or lost_sales.")
    backlog = unmet_demand == "backlog"
    require_columns(plan_demand, "plan_demand", [*KEY, "consensus_qty"])
    require_columns(
        items, "items", ["item_id", "unit_cost", "unit_price", "lead_time_days", "min_lot_qty"]
    )
    require_columns(routings, "routings", ["item_id", "work_center_id", "hours_per_unit"])
    require_columns(capacity, "capacity", ["work_center_id", "month", "available_hours"])
    require_columns(inventory_position, "inventory_position", [*SERIES, "on_hand_qty"])
    if open_supply is None:
        open_supply = pd.DataFrame(columns=["supply_type", *SERIES, "due_month", "open_qty"])
    require_columns(open_supply, "open_supply", [*SERIES, "due_month", "open_qty"])

    for frame, name, col in (
        (plan_demand, "plan_demand", "consensus_qty"),
        (routings, "routings", "hours_per_unit"),
        (capacity, "capacity", "available_hours"),
        (inventory_position, "inventory_position", "on_hand_qty"),
        (open_supply, "open_supply", "open_qty"),
    ):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        if len(values) and not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(
                f"{name}.{col} has a missing or non-numeric value (first at row {bad}: "
                f"{frame[col].iloc[bad]!r}); fix the upstream mart or fill it before planning supply."
            )
    p = _assemble(
        plan_demand,
        items,
        routings,
        capacity,
        inventory_position.copy(),
        open_supply.copy(),
        safety_stock,
    )
    n, horizon = p.demand.shape
    if max_production is not None and not max_production.empty:
        limit = max_production.assign(month=as_month_start(max_production["month"]))
        wide = series_month_grid(limit, p.series, p.months, "max_production_qty")
        listed = pd.MultiIndex.from_frame(limit[SERIES].astype(str)).unique()
        p.max_production = np.where(p.series.isin(listed)[:, None], wide, np.inf)
    if materials is not None and len(materials.link_item):
        at = p.series.get_indexer(
            pd.MultiIndex.from_arrays(
                [materials.link_item.astype(str), materials.link_location.astype(str)]
            )
        )
        ok = at >= 0
        ok[ok] = p.manufactured[at[ok]]
        p.network = materials
        p.links = _Links(
            s=at[ok],
            c=materials.link_c[ok],
            tau=materials.link_tau[ok],
            t=materials.link_t[ok],
            qty=materials.link_qty[ok].astype(float),
        )
    w = len(p.centers)
    overtime_cost = _overtime_cost(p, costs)
    built = time.perf_counter()

    lp_qty = np.zeros((n, horizon))
    overtime = np.zeros((w, horizon))
    shadow = np.zeros((w, horizon))
    terms: dict[str, float] = {}
    n_vars = n_cons = 0
    blocks = _blocks(p, max_series_per_lp, item_level_max_series)
    aggregated = 0
    for rows, centers, aggregate in blocks:
        if aggregate:
            need, ss_gap = _net_requirements(p, rows)
            agg, group = _aggregate_problem(p, rows, need, ss_gap)
            sol = _solve_block(
                agg,
                np.arange(len(agg.series)),
                centers,
                strategy,
                costs,
                overtime_share,
                overtime_cost,
                backlog,
            )
            lp_qty[rows] = _disaggregate(sol.replenish, group, need, ss_gap, p.demand[rows])
            if p.max_production is not None:
                lp_qty[rows] = np.minimum(lp_qty[rows], p.max_production[rows])
            aggregated += len(rows)
        else:
            sol = _solve_block(
                p, rows, centers, strategy, costs, overtime_share, overtime_cost, backlog
            )
            lp_qty[rows] = sol.replenish
        overtime[centers] = sol.overtime
        shadow[centers] = sol.shadow
        for key, value in sol.terms.items():
            terms[key] = terms.get(key, 0.0) + value
        n_vars += sol.n_variables
        n_cons += sol.n_constraints
    terms["total"] = float(sum(terms.values()))
    solved = time.perf_counter()

    lp_qty = np.where(lp_qty > QTY_EPS, lp_qty, 0.0)
    if aggregated:
        lp_qty = np.where(
            p.manufactured[:, None], _scale_to_capacity(p, lp_qty, overtime_share), lp_qty
        )
    qty = _round_to_lots(p, lp_qty, overtime_share)
    if p.max_production is not None:
        # a bound is what the materials allow: a min lot rounded up (or moved earlier)
        # past it could not be made, so the bound wins over the lot
        qty = np.minimum(qty, p.max_production)
    if limit_rounded is not None and (qty > lp_qty + QTY_EPS).any():
        # a whole lot buys material earlier than the LP planned, which can leave too little
        # for a later month: a series the materials cannot support rounded releases the
        # LP's own quantities instead (the LP planned those with the materials, so they
        # are not cut again: the material plan of plan_materials is a separate LP whose
        # priorities can differ from the joint one)
        exact = np.zeros(n, dtype=bool)
        for _ in range(5):
            rounded_up = (qty > lp_qty + QTY_EPS).any(axis=1)
            cap = _materials_cap(p, qty, limit_rounded)
            cut = rounded_up & (qty > cap + QTY_EPS).any(axis=1)
            if not cut.any():
                break
            # rounded again with those series exact: the capacity their lots held is free
            # for the others, and none of them takes hours another lot was given
            exact |= cut
            qty = _round_to_lots(p, lp_qty, overtime_share, exact)
            if p.max_production is not None:
                qty = np.minimum(qty, p.max_production)
    # behind the LP by that month (rounding never is; a materials bound can be)
    rounded_down = (np.cumsum(qty - lp_qty, axis=1) < -QTY_EPS) & (p.min_lot[:, None] > QTY_EPS)

    made = p.manufactured[:, None]
    plan = pd.DataFrame(
        {
            "item_id": np.repeat(p.series.get_level_values(0).to_numpy(), horizon),
            "location_id": np.repeat(p.series.get_level_values(1).to_numpy(), horizon),
            "month": np.tile(p.months.to_numpy(), n),
            "planned_production_qty": np.where(made, qty, 0.0).reshape(-1),
            "planned_purchase_qty": np.where(made, 0.0, qty).reshape(-1),
            "open_order_receipts_qty": p.open_receipts.reshape(-1),
            "family": np.repeat(p.families, horizon),
            "supply_type": np.repeat(
                np.where(p.manufactured, "production", np.where(p.has_source, "purchase", "none")),
                horizon,
            ),
            "lp_qty": lp_qty.reshape(-1),
            "min_lot_qty": np.repeat(p.min_lot, horizon),
        }
    )
    plan["month"] = plan["month"].astype("datetime64[ns]")

    demand_frame = pd.DataFrame(
        {
            "item_id": plan["item_id"],
            "location_id": plan["location_id"],
            "month": plan["month"],
            "consensus_qty": p.demand.reshape(-1),
        }
    )
    safety_frame = demand_frame[KEY].assign(safety_stock_qty=p.safety.reshape(-1))
    position = pd.DataFrame(
        {
            "item_id": p.series.get_level_values(0),
            "location_id": p.series.get_level_values(1),
            "on_hand_qty": p.on_hand,
        }
    )
    inventory = project_inventory(
        demand_frame, plan, position, safety_frame, unmet_demand=unmet_demand
    )
    if not np.array_equal(
        inventory["item_id"].to_numpy()[::horizon], p.series.get_level_values(0).to_numpy()
    ):
        raise SupplyPlanError(
            "internal error: the inventory projection lost the series order of the plan."
        )
    inventory["family"] = np.repeat(p.families, horizon)
    shortage = inventory["shortage_qty"].to_numpy(dtype=float).reshape(n, horizon)
    shortages = _explain(p, shortage, shadow, strategy, rounded_down)
    inventory = inventory.merge(shortages[[*KEY, "binding_constraint"]], on=KEY, how="left")
    # stock-out risk from the demand distribution safety stock is sized on (same σ, same L + R)
    inventory = stockout_risk(inventory, plan_demand, items)
    # the published order (publish/dictionary.py PUBLISHED_EXTRAS): the reason last
    inventory = inventory[
        [c for c in inventory.columns if c != "binding_constraint"] + ["binding_constraint"]
    ]

    planned = p.route.T @ np.where(made, qty, 0.0) + p.open_hours if w else np.zeros((0, horizon))
    hours = pd.DataFrame(
        {
            "work_center_id": np.repeat(np.array(p.centers, dtype=object), horizon),
            "month": np.tile(p.months.to_numpy(), w),
            "planned_hours": planned.reshape(-1),
            "overtime_hours": np.minimum(
                np.clip(planned - p.available, 0.0, None), overtime_share * p.available
            ).reshape(-1),
            "open_order_hours": p.open_hours.reshape(-1),
            # firm: open production orders; lp: what this plan adds; excess: firm hours
            # above available + overtime (an exception, never added to by the plan)
            "firm_hours": p.open_hours.reshape(-1),
            "lp_hours": (planned - p.open_hours).reshape(-1),
            "firm_excess_hours": np.clip(
                p.open_hours - (1.0 + overtime_share) * p.available, 0.0, None
            ).reshape(-1),
        }
    )
    plan_capacity = rough_cut_capacity(plan_demand, routings, capacity, hours)
    finished = time.perf_counter()
    return SupplyResult(
        plan_supply=plan,
        plan_inventory=inventory,
        plan_capacity=plan_capacity,
        shortages=shortages,
        status="optimal",
        objective=terms,
        stats={
            "series": n,
            "months": horizon,
            "work_centers": w,
            "lps": len(blocks),
            "aggregated_series": aggregated,
            "variables": n_vars,
            "constraints": n_cons,
            "build_seconds": built - started,
            "solve_seconds": solved - built,
            "total_seconds": finished - started,
        },
        strategy=strategy,
    )
