"""The constrained supply plan: a linear program solved with HiGHS (item × location × month).

Model (see ``docs/supply_and_finance.md`` for the full statement and the costs):

- variables per series × month: replenishment ``r`` (production for items with a routing,
  purchase otherwise), ending inventory ``I``, shortage ``b`` (lost sales: unserved demand
  of the month; backlog: the backlog open at month end), safety-stock shortfall ``f``; per manufactured series × month the
  production change ``c ≥ |r_t − r_{t−1}|``; in *chase* the stock above safety stock ``e``;
  per work center × month overtime hours ``o ≤ overtime_share × available``;
- balance ``I_t = I_{t−1} + open receipts_t + r_t − (demand_t − b_t)`` (lost sales) or
  ``− (demand_t + b_{t−1} − b_t)`` (backlog), ``I_{−1}`` = on hand;
- capacity ``Σ hours_per_unit × r − o ≤ available − firm hours`` (firm hours: open production
  orders; they use the calendar and then the overtime first, so the LP's own hours plus the
  firm hours stay within available + overtime unless the firm hours alone exceed it);
- lead time: ``r = 0`` in the first ``ceil(lead_time_days / 30)`` months (purchased items,
  and manufactured items whose lead time exceeds a month); items with no routing and no
  lead time (no supplier) cannot be replenished;
- min lots are applied after the LP by cumulative rounding up to ``min_lot_qty`` multiples
  where the capacity left allows (else one lot earlier, else a part lot), never behind the
  LP's cumulative quantity (see :func:`_round_to_lots`).

The LP decomposes into independent blocks: series linked through shared work centers form
one connected component, purchased series are independent. Components are packed into LPs
of at most ``max_series_per_lp`` series (a bigger component stays whole), which keeps the
solve near-linear in the number of series.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import highspy
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from sop_pipeline.core.settings import STRATEGIES
from sop_pipeline.errors import OperationalError
from sop_pipeline.planning.capacity import rough_cut_capacity
from sop_pipeline.planning.grid import series_month_grid
from sop_pipeline.planning.inventory import (
    KEY,
    SERIES,
    as_month_start,
    horizon_months,
    lead_time_blocked_months,
    project_inventory,
    require_columns,
    stockout_risk,
)

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
# Extra HiGHS options (e.g. {"time_limit": 120.0}); the defaults solve every block size we measured.
_HIGHS_OPTIONS: dict[str, object] = {}


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
    max_production: np.ndarray | None = None  # n × T (materials.py: what the materials allow)
    network: MaterialNetwork | None = None  # materials planned in the same LP
    links: _Links | None = None  # the network's links in this problem's series order


# Assembly -----------------------------------------------------------------------------
def _assemble(
    plan_demand: pd.DataFrame,
    items: pd.DataFrame,
    routings: pd.DataFrame,
    capacity: pd.DataFrame,
    inventory_position: pd.DataFrame,
    open_supply: pd.DataFrame,
    safety_stock: pd.DataFrame | None,
) -> _Problem:
    months = horizon_months(plan_demand)
    demand = plan_demand.copy()
    demand["month"] = as_month_start(demand["month"])
    for frame in (demand, inventory_position, open_supply):
        frame["item_id"] = frame["item_id"].astype(str)
        frame["location_id"] = frame["location_id"].astype(str)
    opens = open_supply.copy()
    if not opens.empty:
        # Overdue orders arrive in the first month; orders due after the horizon are ignored.
        opens["month"] = as_month_start(opens["due_month"]).clip(lower=months[0])
        opens = opens[opens["month"] <= months[-1]]
    keys = pd.concat([demand[SERIES], inventory_position[SERIES], opens[SERIES]], ignore_index=True)
    keys = keys.drop_duplicates().sort_values(SERIES)
    series = pd.MultiIndex.from_frame(keys)
    item_ids = series.get_level_values("item_id")

    item_table = (
        items.assign(item_id=items["item_id"].astype(str))
        .drop_duplicates("item_id")
        .set_index("item_id")
    )
    attrs = item_table.reindex(item_ids)
    routes = routings.assign(
        item_id=routings["item_id"].astype(str),
        work_center_id=routings["work_center_id"].astype(str),
    )
    routes = routes.groupby(["item_id", "work_center_id"], as_index=False)["hours_per_unit"].sum()
    cap = capacity.assign(work_center_id=capacity["work_center_id"].astype(str))
    cap["month"] = as_month_start(cap["month"])
    centers = sorted(set(cap["work_center_id"]) | set(routes["work_center_id"]))
    center_pos = {wc: k for k, wc in enumerate(centers)}
    available = (
        cap.pivot_table(
            index="work_center_id", columns="month", values="available_hours", aggfunc="sum"
        )
        .reindex(index=centers, columns=months)
        .fillna(0.0)
        .to_numpy(dtype=float)
    )

    by_item = pd.DataFrame({"item_id": item_ids, "s": np.arange(len(series))})
    links = by_item.merge(routes, on="item_id")
    route = sparse.csr_matrix(
        (
            links["hours_per_unit"].to_numpy(dtype=float),
            (links["s"].to_numpy(), links["work_center_id"].map(center_pos).to_numpy()),
        ),
        shape=(len(series), len(centers)),
    )
    manufactured = np.asarray(item_ids.isin(set(routes["item_id"])))
    lead_time = pd.to_numeric(attrs.get("lead_time_days"), errors="coerce").to_numpy(dtype=float)
    has_source = manufactured | np.isfinite(lead_time)
    blocked = np.array(
        [
            lead_time_blocked_months(lt, not m)
            for lt, m in zip(lead_time, manufactured, strict=True)
        ],
        dtype=int,
    )
    min_lot = (
        pd.to_numeric(attrs.get("min_lot_qty"), errors="coerce")
        .fillna(0.0)
        .clip(lower=0.0)
        .to_numpy(dtype=float)
    )
    unit_cost = pd.to_numeric(attrs.get("unit_cost"), errors="coerce").to_numpy(dtype=float)
    unit_price = pd.to_numeric(attrs.get("unit_price"), errors="coerce").to_numpy(dtype=float)
    cost = np.where(unit_cost > 0, unit_cost, np.where(unit_price > 0, unit_price, 1.0))
    price = np.where(unit_price > 0, unit_price, cost)

    open_receipts = (
        series_month_grid(opens, series, months, "open_qty")
        if not opens.empty
        else np.zeros((len(series), len(months)))
    )
    open_hours = np.zeros_like(available)
    if not opens.empty and "supply_type" in opens:
        made = opens[opens["supply_type"].astype(str).str.lower() == "production"]
        # the routing says which work centers an order loads (the mart's own work_center_id
        # names only the order's main one)
        load = made.drop(columns=["work_center_id"], errors="ignore").merge(routes, on="item_id")
        if not load.empty:
            load["hours"] = load["open_qty"] * load["hours_per_unit"]
            hours = load.groupby(["work_center_id", "month"])["hours"].sum()
            for (wc, month), value in hours.items():
                open_hours[center_pos[wc], months.get_loc(month)] += value

    if safety_stock is not None and not safety_stock.empty:
        ss = safety_stock[[*KEY, "safety_stock_qty"]].copy()
        ss["item_id"] = ss["item_id"].astype(str)
        ss["location_id"] = ss["location_id"].astype(str)
        ss["month"] = as_month_start(ss["month"])
        safety = np.clip(series_month_grid(ss, series, months, "safety_stock_qty"), 0.0, None)
    else:
        safety = np.zeros((len(series), len(months)))

    family = (
        demand.drop_duplicates(SERIES).set_index(SERIES)["family"] if "family" in demand else None
    )
    families = (
        family.reindex(series).to_numpy(dtype=object)
        if family is not None
        else np.full(len(series), None, dtype=object)
    )
    if "family" in item_table:
        fallback = item_table["family"].reindex(item_ids).to_numpy(dtype=object)
        families = np.where(pd.isna(families), fallback, families)

    on_hand = (
        inventory_position.groupby(SERIES)["on_hand_qty"]
        .sum()
        .reindex(series, fill_value=0.0)
        .to_numpy(dtype=float)
    )
    return _Problem(
        series=series,
        months=months,
        demand=np.clip(series_month_grid(demand, series, months, "consensus_qty"), 0.0, None),
        open_receipts=open_receipts,
        on_hand=np.clip(on_hand, 0.0, None),
        safety=safety,
        manufactured=manufactured,
        has_source=has_source,
        blocked=blocked,
        lead_time=lead_time,
        min_lot=min_lot,
        cost=cost,
        price=price,
        centers=centers,
        available=np.clip(available, 0.0, None),
        open_hours=open_hours,
        route=route,
        families=families,
    )


def _overtime_cost(p: _Problem, costs: SupplyCosts) -> np.ndarray:
    if costs.overtime_cost_per_hour is not None:
        return np.full(len(p.centers), float(costs.overtime_cost_per_hour))
    coo = p.route.tocoo()
    positive = coo.data > 0
    value_per_hour = pd.Series(p.cost[coo.row[positive]] / coo.data[positive])
    per_center = value_per_hour.groupby(coo.col[positive]).median().reindex(range(len(p.centers)))
    fallback = float(value_per_hour.median()) if len(value_per_hour) else 1.0
    return costs.overtime_premium * per_center.fillna(fallback).to_numpy(dtype=float)


def _blocks(
    p: _Problem, max_series: int, item_level_max: int
) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """LP blocks: (series, work centers, aggregated?).

    Series linked through shared work centers form one connected component. A component
    with more than ``item_level_max`` series is planned in aggregate (one LP per
    component over family × location × lead-time groups); smaller ones are packed into
    item-level LPs of up to ``max_series`` series.
    """
    n = p.route.shape[0]
    incidence = p.route
    if p.links is not None and len(p.links.s):
        # series that share a material item share its supplier capacity: one LP
        groups = p.network.material_group[p.links.c]
        shared = sparse.csr_matrix(
            (np.ones(len(groups)), (p.links.s, groups)), shape=(n, int(groups.max()) + 1)
        )
        incidence = sparse.hstack([p.route, shared], format="csr")
    graph = (
        sparse.bmat([[None, incidence], [incidence.T, None]], format="csr")
        if incidence.shape[1]
        else sparse.csr_matrix((n, n))
    )
    _, labels = connected_components(graph, directed=False)
    series_labels = labels[:n]
    order = np.argsort(series_labels, kind="stable")
    comps = np.split(order, np.flatnonzero(np.diff(series_labels[order])) + 1) if n else []
    blocks: list[tuple[np.ndarray, np.ndarray, bool]] = []
    current: list[np.ndarray] = []
    size = 0
    for comp in comps:
        if len(comp) > item_level_max:
            blocks.append((*_close_block(p, [comp]), True))
            continue
        current.append(comp)
        size += len(comp)
        if size >= max_series:
            blocks.append((*_close_block(p, current), False))
            current, size = [], 0
    if current:
        blocks.append((*_close_block(p, current), False))
    return blocks


def _close_block(p: _Problem, parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.sort(np.concatenate(parts))
    centers = np.unique(p.route[rows].indices)
    return rows, centers


# Aggregate planning of large capacity-linked components ------------------------------
def _net_requirements(p: _Problem, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Demand that stock on hand and open orders cannot serve, and the safety-stock gap."""
    demand = p.demand[rows]
    need = np.zeros_like(demand)
    ss_gap = np.zeros_like(demand)
    stock = p.on_hand[rows].copy()
    for t in range(demand.shape[1]):
        available = stock + p.open_receipts[rows, t]
        served = np.minimum(demand[:, t], available)
        need[:, t] = demand[:, t] - served
        stock = available - served
        ss_gap[:, t] = np.clip(p.safety[rows, t] - stock, 0.0, None)
    return need, ss_gap


def _aggregate_problem(
    p: _Problem, rows: np.ndarray, need: np.ndarray, ss_gap: np.ndarray
) -> tuple[_Problem, np.ndarray]:
    """Group the component's series by family × location × lead-time block."""
    keys = pd.DataFrame(
        {
            "family": pd.Series(p.families[rows], dtype=object).fillna("").astype(str),
            "location_id": p.series.get_level_values(1).to_numpy()[rows],
            "blocked": p.blocked[rows],
            "source": p.has_source[rows],
        }
    )
    net = p.network
    if p.links is not None and net is not None and net.scarce is not None and len(p.links.s):
        # series that need a scarce material (one the materials could not supply for the
        # capacity-only plan) form their own groups per set of such materials: pooled with
        # series that do not need it, the group's mix-weighted unit would ration every
        # member by that material (demo 2026-11: Σ backlog 91,623 → 26,944 units)
        limited = net.scarce
        local = np.full(len(p.demand), -1)
        local[rows] = np.arange(len(rows))
        keep = (local[p.links.s] >= 0) & limited[p.links.c]
        pairs = pd.DataFrame(
            {"row": local[p.links.s[keep]], "material": net.material_group[p.links.c[keep]]}
        ).drop_duplicates()
        signature = (
            pairs.sort_values(["row", "material"])
            .groupby("row")["material"]
            .agg(lambda m: ",".join(map(str, m)))
        )
        keys["materials"] = signature.reindex(np.arange(len(rows))).fillna("").to_numpy()
    group = keys.groupby(list(keys.columns), sort=True).ngroup().to_numpy()
    n_groups = int(group.max()) + 1
    member = sparse.csr_matrix(
        (np.ones(len(rows)), (group, np.arange(len(rows)))), shape=(n_groups, len(rows))
    )
    # Mix weights: the net requirement the group must make (demand when nothing is needed).
    weight = need.sum(axis=1) + ss_gap.max(axis=1)
    weight = np.where(weight > 0, weight, p.demand[rows].sum(axis=1) + 1e-9)
    group_weight = member @ weight
    mix = sparse.diags(1.0 / group_weight) @ member @ sparse.diags(weight)
    first = np.unique(group, return_index=True)[1]
    horizon = need.shape[1]
    agg = _Problem(
        series=pd.MultiIndex.from_arrays([np.arange(n_groups).astype(str), np.full(n_groups, "")]),
        months=p.months,
        demand=member @ need,
        open_receipts=np.zeros((n_groups, horizon)),
        on_hand=np.zeros(n_groups),
        safety=member @ ss_gap,
        manufactured=np.ones(n_groups, dtype=bool),
        has_source=p.has_source[rows][first],
        blocked=p.blocked[rows][first],
        lead_time=p.lead_time[rows][first],
        min_lot=np.zeros(n_groups),
        cost=mix @ p.cost[rows],
        price=mix @ p.price[rows],
        centers=p.centers,
        available=p.available,
        open_hours=p.open_hours,
        route=sparse.csr_matrix(mix @ p.route[rows]),
        families=np.full(n_groups, None, dtype=object),
    )
    if p.links is not None:
        # a group's unit uses its members' materials in the mix of its hours and costs
        local = np.full(len(p.demand), -1)
        local[rows] = np.arange(len(rows))
        keep = local[p.links.s] >= 0
        j = local[p.links.s[keep]]
        agg.network = p.network
        agg.links = _Links(
            s=group[j],
            c=p.links.c[keep],
            tau=p.links.tau[keep],
            t=p.links.t[keep],
            qty=p.links.qty[keep] * weight[j] / group_weight[group[j]],
        )
    return agg, group


def _disaggregate(
    group_qty: np.ndarray,
    group: np.ndarray,
    need: np.ndarray,
    ss_gap: np.ndarray,
    demand: np.ndarray,
) -> np.ndarray:
    """Split each group's monthly quantity over its series, most urgent requirement first.

    A month's quantity first covers the series' cumulative requirement (net demand + safety
    stock gap) due by that month, pro rata when it is not enough; what is left covers the
    requirement of the next months in turn (pre-build); any rest follows future demand.
    """
    n, horizon = need.shape
    n_groups = group_qty.shape[0]
    due = np.maximum.accumulate(np.cumsum(need, axis=1) + ss_gap, axis=1)
    given = np.zeros(n)
    out = np.zeros((n, horizon))
    for t in range(horizon):
        left = group_qty[:, t].copy()
        for k in range(t, horizon):
            if not (left > QTY_EPS).any():
                break
            want = np.clip(due[:, k] - given, 0.0, None)
            group_want = np.bincount(group, weights=want, minlength=n_groups)
            take = np.minimum(left, group_want)
            ratio = np.divide(take, group_want, out=np.zeros(n_groups), where=group_want > 0)
            give = want * ratio[group]
            out[:, t] += give
            given += give
            left -= take
        if (left > QTY_EPS).any():
            future = demand[:, t:].sum(axis=1) + 1e-9
            share = future / np.bincount(group, weights=future, minlength=n_groups)[group]
            give = np.clip(left, 0.0, None)[group] * share
            out[:, t] += give
            given += give
    return out


def _scale_to_capacity(p: _Problem, qty: np.ndarray, overtime_share: float) -> np.ndarray:
    """Scale production down pro rata where the item mix overloads a work center."""
    if not p.route.nnz:
        return qty
    room = _capacity_limit(p, overtime_share) - p.open_hours
    by_center = p.route.tocsc()
    for _ in range(10):
        hours = p.route.T @ qty
        over = hours > room + 1e-9 * np.maximum(1.0, room)
        if not over.any():
            break
        ratio = np.where(over, room / np.where(hours > 0, hours, 1.0), 1.0)
        factor = np.ones_like(qty)
        for wc in np.flatnonzero(over.any(axis=1)):
            members = by_center.indices[by_center.indptr[wc] : by_center.indptr[wc + 1]]
            factor[members] = np.minimum(factor[members], ratio[wc][None, :])
        qty = qty * factor * (1 - 1e-12)
    return qty


# The LP -------------------------------------------------------------------------------
@dataclass
class _BlockSolution:
    replenish: np.ndarray
    inventory: np.ndarray
    shortage: np.ndarray
    overtime: np.ndarray
    shadow: np.ndarray
    terms: dict[str, float]
    n_variables: int
    n_constraints: int


def _highs(
    obj: np.ndarray,
    bounds: np.ndarray,
    a_ub: sparse.csr_matrix | None,
    b_ub: np.ndarray | None,
    a_eq: sparse.csr_matrix,
    b_eq: np.ndarray,
    label: str,
    first: np.ndarray | None = None,
    options: dict[str, object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``min obj·x`` with HiGHS; returns x and the row duals (≤ rows first).

    With ``first`` (a cost vector), lexicographically: ``min first·x``, then ``min obj·x``
    with ``first·x`` kept at that minimum; the duals are the first stage's (what one more
    unit of a row saves of ``first``).
    """
    blocks = [a_ub, a_eq] if a_ub is not None else [a_eq]
    matrix = sparse.vstack(blocks, format="csc")
    lower = np.concatenate(
        [np.full(0 if a_ub is None else a_ub.shape[0], -highspy.kHighsInf), b_eq]
    )
    upper = np.concatenate([np.zeros(0) if b_ub is None else b_ub, b_eq])
    lp = highspy.HighsLp()
    lp.num_col_ = len(obj)
    lp.num_row_ = matrix.shape[0]
    lp.col_cost_ = obj if first is None else first
    lp.col_lower_ = bounds[:, 0]
    lp.col_upper_ = np.where(np.isinf(bounds[:, 1]), highspy.kHighsInf, bounds[:, 1])
    lp.row_lower_ = lower
    lp.row_upper_ = upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("random_seed", 0)
    solver.setOptionValue("threads", 1)
    for key, value in {**(options or {}), **_HIGHS_OPTIONS}.items():
        solver.setOptionValue(key, value)
    solver.passModel(lp)
    solver.run()
    if first is not None and solver.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        duals = np.asarray(solver.getSolution().row_dual, dtype=float)
        best = float(solver.getInfo().objective_function_value)
        used = np.flatnonzero(first)
        # keep the first stage's optimum (a hair of slack for the solver's tolerances)
        solver.addRow(
            -highspy.kHighsInf, best + 1e-9 * abs(best) + 1e-6, len(used), used, first[used]
        )
        solver.changeColsCost(len(obj), np.arange(len(obj), dtype=np.int32), obj)
        solver.run()
        status = solver.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            x = np.asarray(solver.getSolution().col_value, dtype=float)
            return x, duals
    status = solver.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise SupplyPlanError(
            f"HiGHS could not solve the supply LP block of {label} "
            f"(status: {solver.modelStatusToString(status)}). Shortages make the model always "
            "feasible, so this points at invalid numbers in the inputs (NaN or infinite demand, "
            "capacity, hours_per_unit or unit costs); check those marts for the block's items."
        )
    solution = solver.getSolution()
    return np.asarray(solution.col_value, dtype=float), np.asarray(solution.row_dual, dtype=float)


@dataclass
class _BlockMaterials:
    s: np.ndarray  # link → local series row
    c: np.ndarray  # link → local material row
    tau: np.ndarray
    t: np.ndarray
    qty: np.ndarray
    materials: np.ndarray  # local material row → network material × location
    src: np.ndarray  # purchase options of the block (network positions)
    src_c: np.ndarray  # option → local material row
    cap_row: np.ndarray  # option → local supplier-capacity row (−1: none)
    caps: np.ndarray  # local supplier-capacity row → network row


def _block_materials(p: _Problem, rows: np.ndarray) -> _BlockMaterials | None:
    """The materials the block's series consume, their purchase options and supplier rows."""
    links, net = p.links, p.network
    if links is None or net is None or not len(links.s):
        return None
    local = np.full(len(p.demand), -1)
    local[rows] = np.arange(len(rows))
    keep = local[links.s] >= 0
    if not keep.any():
        return None
    materials, c = np.unique(links.c[keep], return_inverse=True)
    src = np.flatnonzero(np.isin(net.src_c, materials))
    cap = net.src_cap[src]
    caps, inverse = np.unique(cap[cap >= 0], return_inverse=True)
    cap_row = np.full(len(src), -1)
    cap_row[cap >= 0] = inverse
    return _BlockMaterials(
        s=local[links.s[keep]],
        c=c,
        tau=links.tau[keep],
        t=links.t[keep],
        qty=links.qty[keep],
        materials=materials,
        src=src,
        src_c=np.searchsorted(materials, net.src_c[src]),
        cap_row=cap_row,
        caps=caps,
    )


def _solve_block(
    p: _Problem,
    rows: np.ndarray,
    centers: np.ndarray,
    strategy: str,
    costs: SupplyCosts,
    overtime_share: float,
    overtime_cost: np.ndarray,
    backlog: bool = False,
) -> _BlockSolution:
    n, horizon, w = len(rows), len(p.months), len(centers)
    big_n = n * horizon
    demand = p.demand[rows]
    safety = p.safety[rows]
    cost = p.cost[rows][:, None]
    penalty = costs.shortage_rate * p.price[rows][:, None] * np.ones((1, horizon))
    t_index = np.tile(np.arange(horizon), (n, 1))

    i_r = np.arange(big_n).reshape(n, horizon)
    i_inv = i_r + big_n
    i_short = i_r + 2 * big_n
    nxt = 3 * big_n
    chase = strategy == "chase"
    f_pos = np.arange(big_n) if chase else np.flatnonzero(safety.reshape(-1) > QTY_EPS)
    i_f = nxt + np.arange(len(f_pos))
    nxt += len(f_pos)
    i_e = nxt + np.arange(big_n) if chase else np.array([], dtype=int)
    nxt += len(i_e)
    change_rate = costs.change_rate(strategy)
    change_mask = (
        p.manufactured[rows][:, None] & (t_index > p.blocked[rows][:, None])
        if change_rate > 0
        else np.zeros((n, horizon), dtype=bool)
    )
    c_pos = np.flatnonzero(change_mask.reshape(-1))
    # Production change split into increase and decrease: r_t − r_{t−1} = up − down.
    i_up = nxt + np.arange(len(c_pos))
    i_down = i_up + len(c_pos)
    i_c = np.concatenate([i_up, i_down])
    nxt += 2 * len(c_pos)
    i_o = (nxt + np.arange(w * horizon)).reshape(w, horizon)
    nxt += w * horizon
    # materials (joint LP): stock per material × location × month, purchases per option
    mat = _block_materials(p, rows)
    n_mat = 0 if mat is None else len(mat.materials)
    i_mi = (nxt + np.arange(n_mat * horizon)).reshape(n_mat, horizon)
    nxt += n_mat * horizon
    i_q = nxt + np.arange(0 if mat is None else len(mat.src))
    nxt += len(i_q)

    obj = np.zeros(nxt)
    holding = costs.holding_rate * cost * np.ones((1, horizon))
    obj[i_inv.reshape(-1)] = holding.reshape(-1)
    obj[i_short.reshape(-1)] = penalty.reshape(-1)
    ss_cost = (costs.ss_shortfall_share * penalty / horizon).reshape(-1)
    obj[i_f] = ss_cost[f_pos]
    if chase:
        obj[i_e] = (costs.chase_excess_rate * penalty).reshape(-1)
    change_cost = (change_rate * cost * np.ones((1, horizon))).reshape(-1)
    obj[i_up] = change_cost[c_pos]
    obj[i_down] = change_cost[c_pos]
    obj[i_o] = overtime_cost[centers][:, None]
    if mat is not None:
        obj[i_mi] = p.network.hold_cost[mat.materials][:, None]
        obj[i_q] = p.network.src_cost[mat.src]

    upper = np.full(nxt, np.inf)
    can_supply = p.has_source[rows][:, None] & (t_index >= p.blocked[rows][:, None])
    upper[i_r.reshape(-1)] = np.where(can_supply, np.inf, 0.0).reshape(-1)
    if p.max_production is not None:
        upper[i_r.reshape(-1)] = np.minimum(
            upper[i_r.reshape(-1)], p.max_production[rows].reshape(-1)
        )
    # lost sales: at most the month's demand; backlog: at most the demand due so far
    upper[i_short.reshape(-1)] = (np.cumsum(demand, axis=1) if backlog else demand).reshape(-1)
    available = p.available[centers]
    upper[i_o.reshape(-1)] = (overtime_share * available).reshape(-1)
    if mat is not None:
        upper[i_q] = np.where(p.network.src_open[mat.src], np.inf, 0.0)
    bounds = np.column_stack([np.zeros(nxt), upper])

    # Equalities: inventory balance (and, in chase, the split of stock around safety stock).
    bal = np.arange(big_n)
    prev = bal.reshape(n, horizon)[:, 1:].reshape(-1)  # balance rows of months t ≥ 1
    eq_rows = [bal, bal, bal, prev]
    eq_cols = [i_inv.reshape(-1), i_r.reshape(-1), i_short.reshape(-1), i_inv[:, :-1].reshape(-1)]
    eq_vals = [np.ones(big_n), -np.ones(big_n), -np.ones(big_n), -np.ones(len(prev))]
    if backlog:
        # last month's backlog is due again this month: + b[t−1] in the balance of t
        eq_rows.append(prev)
        eq_cols.append(i_short[:, :-1].reshape(-1))
        eq_vals.append(np.ones(len(prev)))
    b_eq = (p.open_receipts[rows] - demand).astype(float)
    b_eq[:, 0] += p.on_hand[rows]
    b_eq = b_eq.reshape(-1)
    if chase:
        ss_rows = big_n + np.arange(big_n)
        eq_rows += [ss_rows, ss_rows, ss_rows]
        eq_cols += [i_inv.reshape(-1), i_f, i_e]
        eq_vals += [np.ones(big_n), np.ones(big_n), -np.ones(big_n)]
        b_eq = np.concatenate([b_eq, safety.reshape(-1)])
    if len(c_pos):
        here = i_r.reshape(-1)[c_pos]
        change_rows = len(b_eq) + np.arange(len(c_pos))
        ones = np.ones(len(c_pos))
        eq_rows += [change_rows] * 4
        eq_cols += [here, here - 1, i_up, i_down]
        eq_vals += [ones, -ones, -ones, ones]
        b_eq = np.concatenate([b_eq, np.zeros(len(c_pos))])
    if mat is not None:
        # material balance: I[c,t] − I[c,t−1] − Σ q[c,t] + Σ qty × r[s,τ] = receipts (+ on hand)
        first = len(b_eq)
        mat_row = first + np.arange(n_mat * horizon).reshape(n_mat, horizon)
        eq_rows += [mat_row.reshape(-1), mat_row[:, 1:].reshape(-1)]
        eq_cols += [i_mi.reshape(-1), i_mi[:, :-1].reshape(-1)]
        eq_vals += [np.ones(n_mat * horizon), -np.ones(n_mat * (horizon - 1))]
        eq_rows += [mat_row[mat.src_c, p.network.src_t[mat.src]], mat_row[mat.c, mat.t]]
        eq_cols += [i_q, i_r[mat.s, mat.tau]]
        eq_vals += [-np.ones(len(i_q)), mat.qty]
        rhs = p.network.receipts[mat.materials].astype(float)
        rhs[:, 0] += p.network.on_hand[mat.materials]
        b_eq = np.concatenate([b_eq, rhs.reshape(-1)])
    a_eq = sparse.csr_matrix(
        (np.concatenate(eq_vals), (np.concatenate(eq_rows), np.concatenate(eq_cols))),
        shape=(len(b_eq), nxt),
    )

    # Inequalities: safety stock (mixed/level), production change, capacity.
    ub_rows, ub_cols, ub_vals, b_ub = [], [], [], []
    n_ub = 0
    if not chase and len(f_pos):
        k = n_ub + np.arange(len(f_pos))
        ub_rows += [k, k]
        ub_cols += [i_inv.reshape(-1)[f_pos], i_f]
        ub_vals += [-np.ones(len(f_pos)), -np.ones(len(f_pos))]
        b_ub.append(-safety.reshape(-1)[f_pos])
        n_ub += len(f_pos)
    cap_start = n_ub
    if w:
        sub = p.route[rows][:, centers].tocoo()
        local_t = np.arange(horizon)
        cap_row = cap_start + (sub.col[:, None] * horizon + local_t[None, :])
        ub_rows += [cap_row.reshape(-1), cap_start + np.arange(w * horizon)]
        ub_cols += [i_r[sub.row].reshape(-1), i_o.reshape(-1)]
        ub_vals += [np.repeat(sub.data, horizon), -np.ones(w * horizon)]
        # firm hours use the calendar first, then the overtime (never below −overtime)
        b_ub.append(
            np.maximum(available - p.open_hours[centers], -overtime_share * available).reshape(-1)
        )
        n_ub += w * horizon
    if mat is not None and len(mat.caps):
        # supplier capacity: Σ purchases over the material's locations ≤ max_qty
        limited = np.flatnonzero(mat.cap_row >= 0)
        ub_rows.append(n_ub + mat.cap_row[limited])
        ub_cols.append(i_q[limited])
        ub_vals.append(np.ones(len(limited)))
        b_ub.append(p.network.cap_limit[mat.caps])
        n_ub += len(mat.caps)
    a_ub = b_vec = None
    if n_ub:
        a_ub = sparse.csr_matrix(
            (np.concatenate(ub_vals), (np.concatenate(ub_rows), np.concatenate(ub_cols))),
            shape=(n_ub, nxt),
        )
        b_vec = np.concatenate(b_ub)

    # unmet demand first, then the costs: a loss of capacity or material can then never
    # plan less unmet demand (its feasible set is smaller), whatever it does to the costs
    first = np.zeros(nxt)
    first[i_short.reshape(-1)] = obj[i_short.reshape(-1)]
    if chase:
        # chase is defined by this trade: stock above safety stock costs more than a short
        first[i_e] = obj[i_e]
    x, row_dual = _highs(
        obj,
        bounds,
        a_ub,
        b_vec,
        a_eq,
        b_eq,
        f"{n} series and {w} work centers",
        first=first,
        # with materials the dual simplex needed 4× the CPU of the interior point method
        # (with crossover: the same vertex plan) on 1,000 series
        options={"solver": "ipm"} if mat is not None else None,
    )
    shadow = np.zeros((w, horizon))
    if w:
        # A binding ≤ row has a non-positive dual when minimizing: the saving per extra hour is −dual.
        shadow = -row_dual[cap_start : cap_start + w * horizon].reshape(w, horizon)
    terms = {
        "shortage_cost": float(obj[i_short.reshape(-1)] @ x[i_short.reshape(-1)]),
        "holding_cost": float(obj[i_inv.reshape(-1)] @ x[i_inv.reshape(-1)]),
        "safety_stock_shortfall_cost": float(obj[i_f] @ x[i_f]),
        "excess_stock_cost": float(obj[i_e] @ x[i_e]) if chase else 0.0,
        "production_change_cost": float(obj[i_c] @ x[i_c]),
        "overtime_cost": float(obj[i_o.reshape(-1)] @ x[i_o.reshape(-1)]),
    }
    if mat is not None:
        terms["material_holding_cost"] = float(obj[i_mi.reshape(-1)] @ x[i_mi.reshape(-1)])
        terms["material_purchase_cost"] = float(obj[i_q] @ x[i_q])
    return _BlockSolution(
        replenish=np.clip(x[i_r], 0.0, None),
        inventory=x[i_inv],
        shortage=x[i_short],
        overtime=np.clip(x[i_o], 0.0, None),
        shadow=np.clip(shadow, 0.0, None),
        terms=terms,
        n_variables=nxt,
        n_constraints=len(b_eq) + n_ub,
    )


# Min lots -----------------------------------------------------------------------------
def _capacity_limit(p: _Problem, overtime_share: float) -> np.ndarray:
    # firm (open production order) hours above available + overtime are committed work:
    # then the limit is the firm hours and the plan adds nothing
    return np.maximum((1.0 + overtime_share) * p.available, p.open_hours)


def _round_to_lots(
    p: _Problem, qty: np.ndarray, overtime_share: float, exact: np.ndarray | None = None
) -> np.ndarray:
    """Release whole lots where the capacity left allows it, else the LP's own quantity.

    Month by month, each series owes what the LP's cumulative quantity exceeds what was
    released so far. A series with a min lot releases that rounded up to whole lots when
    every work center of its routing still has room for the extra hours (series adding the
    fewest extra hours first); else the whole lots below what it owes, plus one lot in the
    latest earlier month with room (pre-build, not before the lead time allows); else
    exactly what it owes (a part lot, which the ``lp_qty`` / ``min_lot_qty`` columns show).

    So by every month the released quantity is never below the LP's (the plan serves at
    least what the LP served: rounding can never lose service, nor let a capacity loss gain
    it), the hours never exceed available + overtime where the LP's did not, and nothing is
    released before the lead time allows; the total stays within one lot of the LP's.
    Series in ``exact`` (a mask) release the LP's quantities, as if they had no min lot.
    """
    lot = np.where(p.min_lot > QTY_EPS, p.min_lot, 0.0)
    if exact is not None:
        lot = np.where(exact, 0.0, lot)
    if not (lot > 0).any():
        return qty.copy()
    n, horizon = qty.shape
    cumulative = np.cumsum(np.where(qty > QTY_EPS, qty, 0.0), axis=1)
    # series × work centers is small (10,000 × 8 at most): dense rows are read in the loop
    route = p.route.toarray() * p.manufactured[:, None] if p.route.nnz else np.zeros((n, 0))
    limit = _capacity_limit(p, overtime_share) if route.shape[1] else np.zeros((0, horizon))
    room = limit + 1e-6 * np.maximum(1.0, limit) - p.open_hours if route.shape[1] else limit
    released = np.zeros(n)
    out = np.zeros_like(qty)
    size = np.where(lot > 0, lot, 1.0)
    for t in range(horizon):
        owe = np.clip(cumulative[:, t] - released, 0.0, None)
        owe = np.where(owe > QTY_EPS, owe, 0.0)
        whole = np.where(lot > 0, np.ceil(owe / size - 1e-9) * lot, owe)
        month = owe.copy()
        extra = route * (whole - owe)[:, None]
        up = whole - owe > QTY_EPS
        # no hours (purchased, or no routing): the whole lot always fits
        free = up & ~(extra > 0).any(axis=1)
        month[free] = whole[free]
        room[:, t] -= route.T @ owe
        candidates = np.flatnonzero(up & ~free)
        for s in candidates[np.argsort(extra[candidates].sum(axis=1), kind="stable")]:
            if np.all(extra[s] <= room[:, t]):
                room[:, t] -= extra[s]
                month[s] = whole[s]
                continue
            # one lot earlier, the rest at t as whole lots below what is owed
            below = whole[s] - lot[s]
            uses = route[s] > 0
            for u in range(t - 1, int(p.blocked[s]) - 1, -1):
                if np.all(route[s, uses] * lot[s] <= room[uses, u]):
                    room[:, u] -= route[s] * lot[s]
                    room[:, t] += route[s] * (owe[s] - below)
                    out[s, u] += lot[s]
                    released[s] += lot[s]
                    month[s] = below
                    break
        out[:, t] = month
        released += month
    return out


def _materials_cap(
    p: _Problem, qty: np.ndarray, limit_rounded: Callable[[pd.DataFrame], pd.DataFrame | None]
) -> np.ndarray:
    """What the materials allow of a production plan, series × month (inf: no limit)."""
    n, horizon = qty.shape
    rounded = pd.DataFrame(
        {
            "item_id": np.repeat(p.series.get_level_values(0).to_numpy(), horizon),
            "location_id": np.repeat(p.series.get_level_values(1).to_numpy(), horizon),
            "month": np.tile(p.months.to_numpy(), n),
            "planned_production_qty": np.where(p.manufactured[:, None], qty, 0.0).reshape(-1),
        }
    )
    cap = limit_rounded(rounded)
    out = np.full((n, horizon), np.inf)
    if cap is None or cap.empty:
        return out
    cap = cap.assign(month=as_month_start(cap["month"]))
    wide = series_month_grid(cap, p.series, p.months, "max_production_qty")
    listed = p.series.isin(pd.MultiIndex.from_frame(cap[SERIES].astype(str)).unique())
    return np.where(listed[:, None] & p.manufactured[:, None], wide, out)


# Explanations -------------------------------------------------------------------------
def _explain(
    p: _Problem, shortage: np.ndarray, shadow: np.ndarray, strategy: str, rounded_down: np.ndarray
) -> pd.DataFrame:
    n, horizon = shortage.shape
    best_val = np.zeros((n, horizon))
    best_wc = np.full((n, horizon), -1)
    by_center = p.route.tocsc()
    for wc in range(len(p.centers)):
        members = by_center.indices[by_center.indptr[wc] : by_center.indptr[wc + 1]]
        better = shadow[wc][None, :] > best_val[members]
        best_val[members] = np.where(better, shadow[wc][None, :], best_val[members])
        best_wc[members] = np.where(better, wc, best_wc[members])
    labels = p.months.strftime("%Y-%m")
    records = []
    for s, t in np.argwhere(shortage > QTY_EPS):
        item, loc = p.series[s]
        wc_idx, price, kind = -1, np.nan, "trade_off"
        if not p.has_source[s]:
            kind = "no_source"
            text = "no routing and no supplier: the item has no routing and no purchase lead time in dim_items"
        elif t < p.blocked[s]:
            kind = "lead_time"
            what = "purchase" if not p.manufactured[s] else "production"
            text = (
                f"{what} lead time {p.lead_time[s]:.0f} days: no new receipt before "
                f"{labels[p.blocked[s]] if p.blocked[s] < horizon else 'the horizon end'}"
            )
        else:
            window = np.arange(p.blocked[s], t + 1)[::-1]
            hit = window[best_val[s, window] > SHADOW_EPS]
            if p.manufactured[s] and len(hit):
                tt = hit[0]
                wc_idx, price, kind = best_wc[s, tt], best_val[s, tt], "capacity"
                wc = p.centers[wc_idx]
                if p.available[wc_idx, tt] <= 0:
                    text = f"capacity {wc} in {labels[tt]} (no available hours)"
                else:
                    text = f"capacity {wc} in {labels[tt]} (shadow price {price:,.2f} per hour)"
                if tt < t:
                    text += ": no free capacity earlier to pre-build"
            elif rounded_down[s, : t + 1].any():
                kind = "min_lot"
                text = (
                    f"min lot {p.min_lot[s]:g}: the materials allowed less than the LP planned "
                    "once its lots were rounded"
                )
            else:
                text = (
                    f"cost trade-off under the {strategy} strategy: the shortage costs less than "
                    "building ahead or changing the production rate"
                )
        records.append(
            (
                item,
                loc,
                p.months[t],
                shortage[s, t],
                text,
                kind,
                p.centers[wc_idx] if wc_idx >= 0 else None,
                price,
            )
        )
    return pd.DataFrame.from_records(
        records,
        columns=[
            *KEY,
            "shortage_qty",
            "binding_constraint",
            "constraint_type",
            "work_center_id",
            "shadow_price",
        ],
    ).astype({"month": "datetime64[ns]", "shortage_qty": float, "shadow_price": float})


# Entry point --------------------------------------------------------------------------
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
            ``materials.py``); None for none.
        materials: the materials to plan in the same LP (``materials.material_network``:
            production consumes them, purchases within supplier capacity and lead time
            replenish them); None plans capacity only.
        limit_rounded: called with the plan after min-lot rounding (item_id,
            location_id, month, planned_production_qty); returns item_id, location_id,
            month, max_production_qty, a cap on the rounded production (``materials.py``:
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
