"""Aggregate planning of large capacity-linked components.

A component with more than ``item_level_max_series`` series is planned as family ×
location × lead-time groups: ``_net_requirements`` (what stock and open orders cannot serve),
``_aggregate_problem`` (the group problem and its mix weights), ``_disaggregate`` (each
group's quantity split over its series, most urgent requirement first) and
``_scale_to_capacity`` (production scaled down where the item mix overloads a work center).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from sop_pipeline.planning.supply.lots import _capacity_limit
from sop_pipeline.planning.supply.model import QTY_EPS, _Links, _Problem


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
