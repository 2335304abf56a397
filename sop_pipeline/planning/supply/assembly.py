"""Assembly of the supply problem: the marts become a ``_Problem``, which splits into LP blocks.

``_assemble`` builds the series × month arrays (demand, open receipts, safety stock, lead-time
blocks, min lots, costs) and the work-center arrays (available and firm hours, routing);
``_overtime_cost`` prices an overtime hour per work center; ``_blocks`` / ``_close_block``
group the series into connected components (shared work centers or material items) and pack
them into item-level or aggregate LP blocks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from sop_pipeline.planning.grid import series_month_grid
from sop_pipeline.planning.inventory import (
    KEY,
    SERIES,
    as_month_start,
    horizon_months,
    lead_time_blocked_months,
)
from sop_pipeline.planning.supply.model import SupplyCosts, _Problem


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
