"""The demo company's operations: routings, capacity, inventory, production and purchases.

Work centers, routings and capacity calendar, inventory snapshots, production orders and
purchase orders.

Capacity is sized so that the busiest month of each work center runs at
``PEAK_UTILIZATION`` on expected demand, with an overhaul of the busiest work center
``OVERHAUL_OFFSET`` months after the last month (the supply plan has to pre-build).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sop_pipeline.generator.catalog import FAMILIES, LOCATIONS, WORK_CENTERS
from sop_pipeline.generator.common import (
    _dates,
    _ids,
    _ints,
    _split_counts,
    _table,
    _take,
    _Timeline,
)
from sop_pipeline.generator.demand import _NO_EOL, _Items, _Series

#: Peak utilization of the bottleneck month of each work center on expected demand.
PEAK_UTILIZATION = 0.92
#: Months after the last month when the overhaul starts, and the share of hours lost.
OVERHAUL_OFFSET = 4
OVERHAUL_LOSS = (0.75, 0.65)
#: Working days lost to holidays per calendar month (summer shutdown, Christmas week).
HOLIDAY_DAYS = {1: 1, 5: 1, 7: 1, 8: 3, 9: 1, 11: 2, 12: 4}


# --------------------------------------------------------------------------------------
# Capacity: work centers, routings, calendar
# --------------------------------------------------------------------------------------
@dataclass
class _Capacity:
    routing_item: np.ndarray
    routing_wc: np.ndarray
    routing_hpu: np.ndarray
    primary_wc: np.ndarray  # per item, -1 for purchased
    hours_per_day: np.ndarray
    lines: np.ndarray
    efficiency: np.ndarray
    available: np.ndarray  # wc × month available hours
    overhaul_wc: int
    overhaul_months: tuple[int, int]


def _working_days(tl: _Timeline) -> np.ndarray:
    weekdays = np.busday_count(tl.starts[:-1], tl.starts[1:])
    holidays = np.array([HOLIDAY_DAYS.get(int(m), 0) for m in tl.cal_month])
    return (weekdays - holidays).astype(np.float64)


def _capacity(rng: np.random.Generator, items: _Items, series: _Series, tl: _Timeline) -> _Capacity:
    wc_index = {w[0]: i for i, w in enumerate(WORK_CENTERS)}
    n_wc = len(WORK_CENTERS)
    made = np.flatnonzero(~items.purchased)
    r_item, r_wc, r_hpu = [], [], []
    for f_idx, family in enumerate(FAMILIES):
        fam_items = made[items.fam[made] == f_idx]
        for wc, lo, hi in family.routing:
            r_item.append(fam_items)
            r_wc.append(np.full(fam_items.size, wc_index[wc]))
            r_hpu.append(np.exp(rng.uniform(np.log(lo), np.log(hi), fam_items.size)))
    routing_item = np.concatenate(r_item)
    routing_wc = np.concatenate(r_wc)
    routing_hpu = np.concatenate(r_hpu)

    item_expected = np.add.reduceat(series.expected, series.item_first, axis=0)
    load = np.zeros((n_wc, tl.n))
    np.add.at(load, routing_wc, routing_hpu[:, None] * item_expected[routing_item])
    workdays = _working_days(tl)
    efficiency = np.array([w[3] for w in WORK_CENTERS])
    peak_window = slice(tl.h1 + 1, tl.h1 + 13)
    peak_per_day = (load[:, peak_window] / workdays[peak_window]).max(axis=1)
    need = peak_per_day / (PEAK_UTILIZATION * efficiency)  # clock hours a day at the peak
    hours_per_day = np.empty(n_wc)
    lines = np.ones(n_wc, dtype=np.int64)
    for w in range(n_wc):
        if need[w] <= 0:
            hours_per_day[w] = 8.0
        elif need[w] < 8:
            hours_per_day[w] = max(0.5, np.ceil(need[w] * 10) / 10)
        else:
            # the smallest shift pattern × parallel lines that covers the need
            options = [
                (h * np.ceil(need[w] / h), -h, h, int(np.ceil(need[w] / h)))
                for h in (8.0, 16.0, 20.0, 24.0)
            ]
            best = min(options)
            hours_per_day[w], lines[w] = best[2], best[3]
    # Scale the routings so that the peak month runs at PEAK_UTILIZATION exactly.
    scale = np.where(need > 0, hours_per_day * lines / np.where(need > 0, need, 1.0), 1.0)
    routing_hpu = np.maximum(np.round(routing_hpu * scale[routing_wc], 4), 0.0001)

    # the primary work center of an item is its longest operation (the one orders book)
    primary = np.full(items.n, -1, dtype=np.int64)
    by_hours = np.lexsort((-routing_hpu, routing_item))
    first = np.ones(by_hours.size, dtype=bool)
    first[1:] = np.diff(routing_item[by_hours]) != 0
    primary[routing_item[by_hours][first]] = routing_wc[by_hours][first]

    available = (lines * hours_per_day * efficiency)[:, None] * workdays[None, :]
    overhaul_wc = int(np.argmax(peak_per_day))
    months = (tl.h1 + OVERHAUL_OFFSET, tl.h1 + OVERHAUL_OFFSET + 1)
    for m, loss in zip(months, OVERHAUL_LOSS, strict=True):
        available[overhaul_wc, m] *= 1 - loss
    available = np.round(available, 1)
    order = np.lexsort((routing_wc, routing_item))
    return _Capacity(
        routing_item[order],
        routing_wc[order],
        routing_hpu[order],
        primary,
        hours_per_day,
        lines,
        efficiency,
        available,
        overhaul_wc,
        months,
    )


# --------------------------------------------------------------------------------------
# Inventory, production orders, purchase orders
# --------------------------------------------------------------------------------------
def _inventory(
    rng: np.random.Generator, items: _Items, series: _Series, tl: _Timeline
) -> tuple[pa.Table, np.ndarray]:
    h0, h1 = tl.h0, tl.h1
    n_hist = h1 - h0 + 1
    cover = rng.uniform(0.5, 2.5, series.n)
    exp = series.expected
    fwd = (exp[:, h0 + 1 : h1 + 2] + exp[:, h0 + 2 : h1 + 3] + exp[:, h0 + 3 : h1 + 4]) / 3
    noise = rng.lognormal(0.0, 0.25, (series.n, n_hist))
    on_hand = np.round(cover[:, None] * fwd * noise)
    # Spare parts are stocked on the mean even in months without orders.
    on_hand = np.where((fwd > 0) & series.intermittent[:, None], np.maximum(on_hand, 1), on_hand)
    # Some end-of-life items keep dead stock after their last sale (inventory aging).
    eol_t = items.eol_t[series.item]
    dead = (rng.random(series.n) < 0.5) & (eol_t < _NO_EOL)
    t = np.arange(h0, h1 + 1)[None, :]
    dead_qty = np.ceil(cover * exp[np.arange(series.n), np.clip(eol_t - 3, 0, tl.n - 1)] * 0.5)
    after = (t > eol_t[:, None]) & dead[:, None]
    on_hand = np.where(after, dead_qty[:, None], on_hand).astype(np.int64)

    ss, ww = np.nonzero(on_hand > 0)
    qty = on_hand[ss, ww]
    parts = np.minimum(1 + rng.binomial(2, 0.5, qty.size), qty)
    grp, lot_q = _split_counts(qty, parts, rng)
    s = ss[grp]
    m = ww[grp] + h0
    snap = tl.ends[m]
    max_age = np.where(after[ss, ww], 540, np.maximum(20, cover[ss] * 45)).astype(np.int64)[grp]
    age = np.floor(rng.random(grp.size) * max_age).astype(np.int64)
    receipt = snap - age.astype("timedelta64[D]")
    lot_k = np.arange(grp.size) - np.repeat(np.cumsum(parts) - parts, parts) + 1
    ymd = pc.strftime(_dates(receipt), format="%y%m%d")
    lot_id = pc.binary_join_element_wise("L", ymd, "-", pa.array(lot_k).cast(pa.string()), "")
    table = _table(
        "inventory",
        {
            "snapshot_date": _dates(snap),
            "item_id": _take(items.ids, series.item[s]),
            "location_id": _take([loc[0] for loc in LOCATIONS], series.loc[s]),
            "lot_id": lot_id,
            "receipt_date": _dates(receipt),
            "qty_on_hand": _ints(lot_q),
        },
    )
    # rows are already grouped by series; order by month for slicing
    order = np.argsort(m, kind="stable")
    return table.take(pa.array(order)), m[order]


def _batch_months(
    rng: np.random.Generator, need: np.ndarray, t_lo: int, t_hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lot-for-period batching: small runners are made or bought every 2-3 months.

    Returns:
        ``(row, month, qty_need)`` for every batch with a positive need.
    """
    avg = need[:, t_lo:t_hi].mean(axis=1)
    period = np.where(avg >= 20, 1, np.where(avg >= 5, 2, 3))
    offset = rng.integers(0, 3, size=need.shape[0]) % period
    months = np.arange(t_lo, t_hi)
    is_batch = ((months[None, :] + offset[:, None]) % period[:, None]) == 0
    cum = np.concatenate([np.zeros((need.shape[0], 1)), np.cumsum(need, axis=1)], axis=1)
    end = np.minimum(months[None, :] + period[:, None], need.shape[1])
    covered = cum[np.arange(need.shape[0])[:, None], end] - cum[:, t_lo:t_hi]
    row, col = np.nonzero(is_batch & (covered > 0.05))
    return row, months[col], covered[row, col]


def _production_orders(
    rng: np.random.Generator, items: _Items, series: _Series, cap: _Capacity, tl: _Timeline
) -> tuple[pa.Table, np.ndarray]:
    h0, h1 = tl.h0, tl.h1
    made = np.flatnonzero(~items.purchased)
    item_expected = np.add.reduceat(series.expected, series.item_first, axis=0)[made]
    row, s_month, need = _batch_months(rng, item_expected, h0, h1 + 3)
    item = made[row]
    n = item.size
    lot = items.min_lot[item]
    qty = np.maximum(lot, np.ceil(need * rng.uniform(0.9, 1.15, n) / lot) * lot).astype(np.int64)
    created = s_month - rng.integers(1, 4, size=n)
    start = tl.starts[s_month] + rng.integers(0, np.minimum(20, tl.days[s_month])).astype(
        "timedelta64[D]"
    )
    duration = np.clip(items.lead_time[item] // 2, 2, 15) + rng.integers(0, 4, n)
    due = start + duration.astype("timedelta64[D]")
    late = rng.random(n) < 0.15
    delay = np.where(late, rng.integers(4, 21, n), rng.integers(-2, 3, n))
    completed = np.maximum(due + delay.astype("timedelta64[D]"), start)
    c_month = tl.month_index(completed)
    cancelled = rng.random(n) < 0.02
    done_q = np.where(rng.random(n) < 0.25, np.floor(qty * rng.uniform(0.9, 1.0, n)), qty).astype(
        np.int64
    )
    order_num = np.arange(1, n + 1)  # already sorted by item then month: renumber below
    by_start = np.lexsort((item, s_month))
    order_num[by_start] = np.arange(1, n + 1)

    # versions: planned at creation, released at start (if it completes later), then final
    v_planned = np.flatnonzero((created >= h0) & (created <= h1))
    v_released = np.flatnonzero(~cancelled & (c_month > s_month) & (s_month <= h1))
    v_final = np.flatnonzero(np.where(cancelled, s_month, c_month) <= h1)
    v = np.concatenate([v_planned, v_released, v_final])
    extract = np.concatenate(
        [created[v_planned], s_month[v_released], np.where(cancelled, s_month, c_month)[v_final]]
    )
    status = np.concatenate(
        [
            np.zeros(v_planned.size, dtype=np.int64),
            np.ones(v_released.size, dtype=np.int64),
            np.where(cancelled[v_final], 3, 2),
        ]
    )
    done = status == 2
    order = np.lexsort((order_num[v], extract))
    v, extract, status, done = v[order], extract[order], status[order], done[order]
    wc_ids = [w[0] for w in WORK_CENTERS]
    table = _table(
        "production_orders",
        {
            "order_id": _ids("MO", order_num[v], 8),
            "item_id": _take(items.ids, item[v]),
            "location_id": _take(
                [loc[0] for loc in LOCATIONS],
                np.array([FAMILIES[f].plant for f in items.fam])[item[v]],
            ),
            "work_center_id": _take(wc_ids, cap.primary_wc[item[v]]),
            "qty_planned": _ints(qty[v]),
            "qty_completed": _ints(np.where(status == 3, 0, done_q[v]), ~done & (status != 3)),
            "start_date": _dates(start[v]),
            "due_date": _dates(due[v]),
            "completed_date": _dates(completed[v], ~done),
            "status": _take(list(("planned", "released", "completed", "cancelled")), status),
        },
    )
    return table, extract


def _purchase_orders(
    rng: np.random.Generator, items: _Items, series: _Series, tl: _Timeline
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    h0, h1 = tl.h0, tl.h1
    bought = np.flatnonzero(items.purchased[series.item])
    row, d_month, need = _batch_months(rng, series.expected[bought], h0, h1 + 4)
    s = bought[row]
    item = series.item[s]
    n = s.size
    lot = items.min_lot[item]
    qty = np.maximum(lot, np.ceil(need * rng.uniform(0.9, 1.15, n) / lot) * lot).astype(np.int64)
    due = tl.starts[d_month] + rng.integers(0, tl.days[d_month]).astype("timedelta64[D]")
    ordered = due - (items.lead_time[item] + rng.integers(0, 6, n)).astype("timedelta64[D]")
    late = rng.random(n) < 0.12
    delay = np.where(late, rng.integers(5, 31, n), rng.integers(-3, 5, n))
    received = np.maximum(due + delay.astype("timedelta64[D]"), ordered)
    o_month = tl.month_index(ordered)
    r_month = tl.month_index(received)
    cancelled = rng.random(n) < 0.02
    got_q = np.where(rng.random(n) < 0.1, np.floor(qty * rng.uniform(0.85, 1.0, n)), qty).astype(
        np.int64
    )
    exists = o_month <= h1
    po_num = np.zeros(n, dtype=np.int64)
    by_order = np.lexsort((s, ordered.astype(np.int64)))
    po_num[by_order] = np.arange(1, n + 1)

    v_open = np.flatnonzero(
        exists & (o_month >= h0) & (o_month < np.where(cancelled, d_month, r_month))
    )
    fin_month = np.maximum(np.where(cancelled, np.maximum(d_month, o_month), r_month), h0)
    v_final = np.flatnonzero(exists & (fin_month <= h1))
    v = np.concatenate([v_open, v_final])
    extract = np.concatenate([o_month[v_open], fin_month[v_final]])
    status = np.concatenate(
        [np.zeros(v_open.size, dtype=np.int64), np.where(cancelled[v_final], 2, 1)]
    )
    order = np.lexsort((po_num[v], extract))
    v, extract, status = v[order], extract[order], status[order]
    got = status == 1
    table = _table(
        "purchase_orders",
        {
            "po_id": _ids("PO", po_num[v], 8),
            "item_id": _take(items.ids, item[v]),
            "location_id": _take([loc[0] for loc in LOCATIONS], series.loc[s[v]]),
            "supplier_id": _ids("SUP-", items.supplier[item[v]] + 1, 3),
            "qty_ordered": _ints(qty[v]),
            "qty_received": _ints(np.where(status == 2, 0, got_q[v]), status == 0),
            "order_date": _dates(ordered[v]),
            "due_date": _dates(due[v]),
            "received_date": _dates(received[v], ~got),
            "status": _take(["open", "received", "cancelled"], status),
        },
    )
    # open quantity per supplier at the last month, for the supplier_delay scenario
    open_last = np.zeros(items.n_suppliers)
    last_open = exists & (fin_month > h1)
    np.add.at(open_last, items.supplier[item[last_open]], qty[last_open])
    return table, extract, open_last
