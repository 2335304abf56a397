"""The demo company's items, demand series, customers, exchange rates and sales orders.

Items by family (launches, end-of-life), expected demand per item × location × month
(trend, family seasonality, promotions, intermittent spare parts), the realised demand,
the customers, FX rates and price factors, and the sales order lines that realise the
demand (late and short shipments, cancellations, returns, restatements).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sop_pipeline.generator.catalog import (
    CURRENCIES,
    CUSTOMER_REGIONS,
    CUSTOMER_SEGMENTS,
    DC_INDEX,
    FAMILIES,
    FX_START,
    LOCATIONS,
    NAME_PREFIXES,
    NAME_SUFFIXES,
)
from sop_pipeline.generator.common import (
    _dates,
    _dec,
    _ids,
    _ints,
    _nice_lot,
    _split_counts,
    _strs,
    _table,
    _take,
    _Timeline,
)


# --------------------------------------------------------------------------------------
# Items, series, expected demand
# --------------------------------------------------------------------------------------
@dataclass
class _Items:
    ids: list[str]
    fam: np.ndarray
    category: list[str]
    description: list[str]
    uom: list[str]
    price: np.ndarray  # list price in item currency at the last history year
    cost: np.ndarray
    ccy: np.ndarray
    purchased: np.ndarray
    level: np.ndarray
    growth: np.ndarray
    amp: np.ndarray
    launch_t: np.ndarray  # month index of launch (very negative for mature items)
    launch_date: np.ndarray
    eol_t: np.ndarray  # last month index with sales (very large if none)
    eol_date: np.ndarray  # NaT if none
    lead_time: np.ndarray
    min_lot: np.ndarray
    supplier: np.ndarray  # -1 for manufactured items
    n_suppliers: int = 0

    @property
    def n(self) -> int:
        return len(self.ids)


_NO_LAUNCH = -(10**6)
_NO_EOL = 10**6


def _family_counts(n: int) -> np.ndarray:
    shares = np.array([f.share for f in FAMILIES])
    raw = shares / shares.sum() * n
    counts = np.floor(raw).astype(np.int64)
    counts = np.maximum(counts, 1)
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    i = 0
    while counts.sum() < n:
        counts[order[i % len(order)]] += 1
        i += 1
    while counts.sum() > n:
        j = int(np.argmax(counts))
        counts[j] -= 1
    return counts


def _build_items(rng: np.random.Generator, n_items: int, tl: _Timeline) -> _Items:
    counts = _family_counts(n_items)
    fam = np.repeat(np.arange(len(FAMILIES)), counts)
    ids: list[str] = []
    category: list[str] = []
    description: list[str] = []
    uom: list[str] = []
    price = np.empty(n_items)
    level = np.empty(n_items)
    growth = np.empty(n_items)
    purchased = np.empty(n_items, dtype=bool)
    lead = np.empty(n_items, dtype=np.int64)
    pos = 0
    for f_idx, family in enumerate(FAMILIES):
        k = int(counts[f_idx])
        cat = rng.integers(0, len(family.categories), size=k)
        spec = rng.integers(0, len(family.specs), size=k)
        for j in range(k):
            ids.append(f"{family.code}-{10001 + j}")
            name = family.categories[cat[j]]
            singular = name[:-1] if name.endswith("s") else name
            description.append(
                f"{singular[0].upper()}{singular[1:]} {family.specs[spec[j]]} {family.code}{101 + j}"
            )
            category.append(name)
            uom.append(family.uom)
        lo, hi = family.price
        p = np.exp(rng.uniform(np.log(lo), np.log(hi), size=k))
        price[pos : pos + k] = np.where(p >= 20, np.round(p) - 0.01, np.round(p, 2))
        lo, hi = family.level
        level[pos : pos + k] = np.exp(rng.uniform(np.log(lo), np.log(hi), size=k))
        growth[pos : pos + k] = np.clip(rng.normal(family.growth, 0.04, size=k), -0.08, 0.25)
        purchased[pos : pos + k] = rng.random(k) < family.purchased_share
        lead[pos : pos + k] = rng.integers(family.lead_days[0], family.lead_days[1] + 1, size=k)
        pos += k
    amp = rng.uniform(0.7, 1.3, size=n_items)
    cost_ratio = np.where(
        purchased, rng.uniform(0.6, 0.78, n_items), rng.uniform(0.45, 0.68, n_items)
    )
    cost = np.round(price * cost_ratio, 2)
    # Most items are priced in USD; some imported lines are priced in EUR or GBP.
    ccy = rng.choice(3, size=n_items, p=[0.8, 0.15, 0.05])

    # Suppliers and their lead times (purchased items only).
    n_sup = int(np.clip(n_items // 25, 4, 40))
    sup_lead = rng.integers(20, 80, size=n_sup)
    supplier = np.where(purchased, rng.integers(0, n_sup, size=n_items), -1)
    lead = np.where(
        purchased,
        np.clip(sup_lead[np.maximum(supplier, 0)] + rng.integers(-7, 8, n_items), 14, 120),
        lead,
    )

    # Lifecycles: launches inside the history, launches just after it, end-of-life items.
    n_hist = tl.h1 - tl.h0 + 1
    perm = rng.permutation(n_items)
    n_launch = max(2, round(0.08 * n_items)) if n_hist >= 6 else 0
    n_future = max(1, round(0.02 * n_items))
    n_eol = max(2, round(0.05 * n_items)) if n_hist >= 6 else 0
    n_eol_future = max(1, round(0.03 * n_items))
    cut = np.cumsum([n_launch, n_future, n_eol, n_eol_future])
    launch_hist, launch_future, eol_hist, eol_future = np.split(perm[: cut[-1]], cut[:-1])
    launch_t = np.full(n_items, _NO_LAUNCH, dtype=np.int64)
    eol_t = np.full(n_items, _NO_EOL, dtype=np.int64)
    launch_t[launch_hist] = (
        rng.integers(tl.h0 + max(1, n_hist // 6), tl.h1 - 2, size=launch_hist.size)
        if n_hist >= 6
        else 0
    )
    launch_t[launch_future] = rng.integers(tl.h1 + 1, tl.h1 + 7, size=launch_future.size)
    if n_eol:
        eol_t[eol_hist] = rng.integers(tl.h0 + max(2, n_hist // 3), tl.h1, size=eol_hist.size)
    eol_t[eol_future] = rng.integers(tl.h1 + 3, tl.h1 + 10, size=eol_future.size)
    # Mature items were launched years before the history starts.
    first = np.datetime64(tl.base, "D")
    mature_launch = first - rng.integers(400, 4000, size=n_items).astype("timedelta64[D]")
    mature_launch = mature_launch.astype("datetime64[M]").astype("datetime64[D]")
    launched = launch_t != _NO_LAUNCH
    launch_date = np.where(launched, tl.starts[np.clip(launch_t, 0, tl.n)], mature_launch)
    has_eol = eol_t != _NO_EOL
    eol_date = np.where(has_eol, tl.ends[np.clip(eol_t, 0, tl.n - 1)], np.datetime64("NaT"))
    # New items start at a modest level: a launch rarely becomes a top seller at once.
    level = np.where(launched, level * 0.8, level)
    min_lot = _nice_lot(level * rng.uniform(0.2, 0.5, n_items))
    return _Items(
        ids=ids,
        fam=fam,
        category=category,
        description=description,
        uom=uom,
        price=price,
        cost=cost,
        ccy=ccy,
        purchased=purchased,
        level=level,
        growth=growth,
        amp=amp,
        launch_t=launch_t,
        launch_date=launch_date.astype("datetime64[D]"),
        eol_t=eol_t,
        eol_date=eol_date.astype("datetime64[D]"),
        lead_time=lead.astype(np.int64),
        min_lot=min_lot,
        supplier=supplier,
        n_suppliers=n_sup,
    )


def _season_profiles() -> np.ndarray:
    """Family × calendar month multipliers (mean 1)."""
    months = np.arange(1, 13)
    prof = np.empty((len(FAMILIES), 12))
    for i, f in enumerate(FAMILIES):
        prof[i] = 1 + f.season_amp * np.cos(
            2 * np.pi * f.season_cycles * (months - f.season_peak) / 12
        )
        prof[i] /= prof[i].mean()
    return prof


def _item_factors(items: _Items, tl: _Timeline) -> np.ndarray:
    """Item × month multiplier of the item level: trend × seasonality × lifecycle."""
    t = np.arange(tl.n)[None, :]
    trend = np.exp(np.log1p(items.growth)[:, None] * (t - tl.h1) / 12)
    prof = _season_profiles()[items.fam][:, tl.cal_month - 1]
    season = 1 + items.amp[:, None] * (prof - 1)
    lt = items.launch_t[:, None]
    ramp = np.where(t >= lt, 1 - np.exp(-(t - lt + 1) / 2.5), 0.0)
    et = items.eol_t[:, None]
    rundown = np.where(t > et, 0.0, np.clip(0.25 + 0.75 * (et - t) / 12, 0.25, 1.0))
    return trend * season * ramp * rundown


@dataclass
class _Series:
    item: np.ndarray
    loc: np.ndarray
    expected: np.ndarray  # series × month expected demand (all months of the timeline)
    intermittent: np.ndarray
    p_occ: np.ndarray
    item_first: np.ndarray  # first series index per item (series are sorted by item)

    @property
    def n(self) -> int:
        return self.item.size


def _build_series(rng: np.random.Generator, items: _Items, tl: _Timeline) -> _Series:
    n = items.n
    home = np.array([FAMILIES[f].plant for f in items.fam])
    other = 1 - home
    p_home = np.where(items.purchased, 0.4, 0.85)
    p_dc = np.where(items.purchased, 0.9, 0.9)
    p_other = np.where(items.purchased, 0.1, 0.35)
    sold = np.zeros((n, len(LOCATIONS)), dtype=bool)
    rows = np.arange(n)
    sold[rows, home] = rng.random(n) < p_home
    sold[rows, DC_INDEX] = rng.random(n) < p_dc
    sold[rows, other] |= rng.random(n) < p_other
    sold[~sold.any(axis=1), DC_INDEX] = True
    s_item, s_loc = np.nonzero(sold)
    # The DC serves the widest market: it gets a larger share of an item's demand.
    weight = rng.gamma(2.0, 1.0, size=s_item.size) * np.where(s_loc == DC_INDEX, 1.5, 1.0)
    share = weight / np.bincount(s_item, weights=weight, minlength=n)[s_item]
    factors = _item_factors(items, tl)
    expected = (items.level[s_item] * share)[:, None] * factors[s_item]
    intermittent = np.array([FAMILIES[f].intermittent for f in items.fam])[s_item]
    p_occ = np.where(intermittent, rng.uniform(0.15, 0.5, s_item.size), 1.0)
    item_first = np.searchsorted(s_item, np.arange(n))
    return _Series(s_item, s_loc, expected, intermittent, p_occ, item_first)


def _realise_demand(
    rng: np.random.Generator, items: _Items, series: _Series, tl: _Timeline
) -> np.ndarray:
    """Ordered units per series × month for months h0 … h1+1.

    The month after the history is needed for the open orders the last extract carries.
    """
    lo, hi = tl.h0, tl.h1 + 2
    exp_w = series.expected[:, lo:hi]
    shape = exp_w.shape
    promo_rate = np.array([FAMILIES[f].promo_rate for f in items.fam])[series.item]
    promo = rng.random(shape) < promo_rate[:, None]
    dip = np.zeros(shape, dtype=bool)
    dip[:, 1:] = promo[:, :-1] & ~promo[:, 1:]
    factor = np.where(promo, rng.uniform(1.6, 2.4, shape), 1.0) * np.where(dip, 0.75, 1.0)
    # Gamma-Poisson: demand more variable than Poisson, as real orders are.
    lam = exp_w * rng.gamma(6.0, 1 / 6.0, shape) * factor
    regular = rng.poisson(lam)
    # Spare parts: a few months with orders, each a lump.
    occurs = rng.random(shape) < series.p_occ[:, None]
    lump = rng.poisson(exp_w / series.p_occ[:, None] * rng.gamma(1.5, 1 / 1.5, shape))
    sporadic = np.where(occurs, np.maximum(lump, (exp_w > 0).astype(np.int64)), 0)
    return np.where(series.intermittent[:, None], sporadic, regular).astype(np.int64)


# --------------------------------------------------------------------------------------
# Customers and money
# --------------------------------------------------------------------------------------
@dataclass
class _Customers:
    table: pa.Table
    weight: np.ndarray
    ccy: np.ndarray
    discount: np.ndarray
    order_day: np.ndarray  # weekday (0 = Monday) the customer places its orders

    @property
    def n(self) -> int:
        return self.weight.size


def _build_customers(rng: np.random.Generator, n_items: int) -> _Customers:
    n = int(np.clip(120 + n_items // 2, 150, 3000))
    reg = rng.choice(len(CUSTOMER_REGIONS), size=n, p=[r[1] for r in CUSTOMER_REGIONS])
    seg = rng.choice(len(CUSTOMER_SEGMENTS), size=n, p=[s[1] for s in CUSTOMER_SEGMENTS])
    combos = [f"{p} {s}" for p in NAME_PREFIXES for s in NAME_SUFFIXES]
    order = rng.permutation(len(combos))
    names = [
        combos[order[i % len(combos)]] + ("" if i < len(combos) else f" {i // len(combos) + 1}")
        for i in range(n)
    ]
    # A few large accounts buy most of the volume (Pareto-like weights).
    weight = rng.lognormal(0.0, 1.2, size=n)
    weight /= weight.sum()
    table = _table(
        "customers",
        {
            "customer_id": _ids("C", np.arange(1, n + 1), 5),
            "name": _strs(names),
            "segment": _take([s[0] for s in CUSTOMER_SEGMENTS], seg),
            "region": _take([r[0] for r in CUSTOMER_REGIONS], reg),
            "channel": _take([s[2] for s in CUSTOMER_SEGMENTS], seg),
        },
    )
    ccy = np.array([r[2] for r in CUSTOMER_REGIONS])[reg]
    discount = np.array([s[3] for s in CUSTOMER_SEGMENTS])[seg]
    order_day = rng.integers(0, 5, size=n)
    return _Customers(table, weight, ccy, discount, order_day)


def _fx(rng: np.random.Generator, tl: _Timeline) -> np.ndarray:
    """Currency × month rate_to_base; flat before the history and after its last month."""
    fx = np.ones((len(CURRENCIES), tl.n))
    n_hist = tl.h1 - tl.h0 + 1
    for c in range(1, len(CURRENCIES)):
        walk = FX_START[c] * np.exp(np.cumsum(rng.normal(0.0, 0.015, n_hist)))
        fx[c, : tl.h0] = walk[0]
        fx[c, tl.h0 : tl.h1 + 1] = walk
        fx[c, tl.h1 + 1 :] = walk[-1]
    return np.round(fx, 6)


def _price_factor(tl: _Timeline) -> np.ndarray:
    """List prices go up 3% every January; 1.0 in the year of the last month."""
    return 1.03 ** (tl.year - tl.year[tl.h1])


# --------------------------------------------------------------------------------------
# Sales orders
# --------------------------------------------------------------------------------------
@dataclass
class _Sales:
    table: pa.Table  # every row version, sorted by extract month
    extract: np.ndarray  # internal month index of each row's extract
    late: dict[int, list[tuple[str, int]]]
    restated: dict[int, list[tuple[str, int]]]
    series_with_sales: int


def _sales_orders(
    rng: np.random.Generator,
    items: _Items,
    series: _Series,
    customers: _Customers,
    qty: np.ndarray,
    fx: np.ndarray,
    tl: _Timeline,
) -> _Sales:
    h0, h1 = tl.h0, tl.h1
    hist_end = tl.ends[h1]
    sm_s, sm_w = np.nonzero(qty > 0)
    sm_t = sm_w + h0
    q = qty[sm_s, sm_w]
    p_split = np.clip(np.log10(q + 1) / 2.5, 0.15, 0.85)
    parts = np.minimum(1 + rng.binomial(3, p_split), q)
    grp, line_q = _split_counts(q, parts, rng)
    n = grp.size
    s = sm_s[grp]
    t = sm_t[grp]
    item = series.item[s]
    cust = rng.choice(customers.n, size=n, p=customers.weight)
    requested = tl.starts[t] + rng.integers(0, tl.days[t]).astype("timedelta64[D]")
    ordered = requested - rng.integers(0, 25, size=n).astype("timedelta64[D]")
    # Customers order on their weekly order day, so one order carries several lines;
    # moving back to it keeps the lead time within 0-30 days.
    weekday = (ordered.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    ordered = ordered - ((weekday - customers.order_day[cust]) % 7).astype("timedelta64[D]")
    ordered = np.maximum(ordered, items.launch_date[item])
    keep = ordered <= hist_end  # an order placed after the last month does not exist yet
    grp, line_q, s, t, item, cust, requested, ordered = (
        a[keep] for a in (grp, line_q, s, t, item, cust, requested, ordered)
    )
    n = grp.size

    u = rng.random(n)
    cancelled = u < 0.02
    late = rng.random(n) < 0.08
    early = rng.integers(0, 4, size=n)
    delay = np.minimum(1 + rng.geometric(0.15, size=n), 45)
    ship = np.where(
        late, requested + delay.astype("timedelta64[D]"), requested - early.astype("timedelta64[D]")
    )
    ship = np.maximum(ship, ordered)
    short = (rng.random(n) < 0.06) & (line_q >= 2) & ~cancelled
    shipped_q = np.where(
        short, np.maximum(1, np.floor(line_q * rng.uniform(0.4, 0.95, n))).astype(np.int64), line_q
    )
    shipped_q = np.where(cancelled, 0, shipped_q)

    ccy = customers.ccy[cust]
    t_ord = np.clip(tl.month_index(ordered), h0, h1)
    pf = _price_factor(tl)
    list_base = items.price[item] * pf[t_ord] * fx[items.ccy[item], t_ord]
    unit_price = (
        list_base / fx[ccy, t_ord] * (1 - customers.discount[cust]) * (1 + rng.normal(0, 0.015, n))
    )
    unit_price = np.round(np.maximum(unit_price, 0.01), 2)

    # Orders: one order per customer and order date, lines numbered within it.
    order_day = ordered.astype(np.int64)
    idx = np.lexsort((s, cust, order_day))
    new = np.ones(n, dtype=bool)
    new[1:] = (np.diff(order_day[idx]) != 0) | (np.diff(cust[idx]) != 0)
    onum_sorted = np.cumsum(new)
    start = np.flatnonzero(new)
    line_sorted = np.arange(n) - np.repeat(start, np.diff(np.append(start, n))) + 1
    order_num = np.empty(n, dtype=np.int64)
    line_no = np.empty(n, dtype=np.int64)
    order_num[idx] = onum_sorted
    line_no[idx] = line_sorted

    order_month = tl.month_index(ordered)
    done_month = np.where(cancelled, t, tl.month_index(ship))

    # Returns: separate lines with negative quantities, in the month of the shipment.
    ret_rate = np.array([FAMILIES[f].return_rate for f in items.fam])[series.item]
    first_line = np.searchsorted(grp, np.arange(sm_s.size))
    has_line = first_line < grp.size
    has_line[has_line] &= grp[first_line[has_line]] == np.arange(sm_s.size)[has_line]
    ret = (rng.random(sm_s.size) < ret_rate[sm_s]) & has_line & (sm_t <= h1)
    r_sm = np.flatnonzero(ret)
    r_line = first_line[r_sm]
    r_q = np.minimum(
        q[r_sm], np.maximum(1, np.round(q[r_sm] * rng.uniform(0.05, 0.25, r_sm.size)))
    ).astype(np.int64)
    r_t = sm_t[r_sm]
    r_date = tl.starts[r_t] + rng.integers(0, tl.days[r_t]).astype("timedelta64[D]")
    r_order = np.lexsort((r_sm, r_date.astype(np.int64)))
    r_num = np.empty(r_sm.size, dtype=np.int64)
    r_num[r_order] = np.arange(1, r_sm.size + 1)

    # Row versions: open (ordered in an earlier month than it ships), final, returns.
    open_v = np.flatnonzero((order_month < done_month) & (order_month >= h0) & (order_month <= h1))
    final_v = np.flatnonzero(done_month <= h1)
    # a first extract carries what shipped just before it (ship-ahead of its first month)
    final_ext = np.maximum(done_month[final_v], h0)

    late_rows: dict[int, list[int]] = {}
    restated_rows: dict[int, list[int]] = {}
    restate_v = np.zeros(0, dtype=np.int64)
    restate_ext = np.zeros(0, dtype=np.int64)
    if h1 > h0:
        n_hist = h1 - h0 + 1
        k = min(n_hist - 1, max(2, n_hist // 10))
        chosen = np.sort(rng.choice(np.arange(h0 + 1, h1 + 1), size=k, replace=False))
        fv_month = done_month[final_v]
        for m in chosen:
            # Late lines: ordered and shipped in m-1 but only extracted in m (new keys).
            pool = np.flatnonzero(
                (fv_month == m - 1)
                & (order_month[final_v] == m - 1)
                & (t[final_v] == m - 1)
                & ~cancelled[final_v]
            )
            pick = rng.choice(pool, size=min(10, pool.size), replace=False) if pool.size else pool
            late_pick, rest_pick = pick[:5], pick[5:]
            final_ext[late_pick] = m
            late_rows[int(m)] = [int(v) for v in final_v[late_pick]]
            restated_rows[int(m)] = [int(v) for v in final_v[rest_pick]]
            restate_v = np.append(restate_v, final_v[rest_pick])
            restate_ext = np.append(restate_ext, np.full(rest_pick.size, m))
    r_q_ord = line_q[restate_v]
    change = np.maximum(1, np.round(r_q_ord * rng.uniform(0.05, 0.25, restate_v.size))).astype(
        np.int64
    )
    sign = np.where((rng.random(restate_v.size) < 0.5) & (r_q_ord - change >= 1), -1, 1)
    new_q = r_q_ord + sign * change
    new_ship = np.where(
        shipped_q[restate_v] >= line_q[restate_v], new_q, np.minimum(shipped_q[restate_v], new_q)
    )

    # Assemble all versions column by column.
    so_ids = _ids("SO", order_num, 8)
    rt_ids = _ids("RT", r_num, 8)
    v_line = np.concatenate([open_v, final_v, restate_v])
    n_open, n_final, n_rest = open_v.size, final_v.size, restate_v.size
    kind_status = np.concatenate(
        [
            np.zeros(n_open, dtype=np.int64),  # open
            np.where(cancelled[final_v], 2, 1),
            np.where(cancelled[restate_v], 2, 1),
        ]
    )
    order_ids = pa.chunked_array([so_ids.take(pa.array(v_line)), rt_ids]).combine_chunks()
    extract = np.concatenate([order_month[open_v], final_ext, restate_ext, r_t])
    status_code = np.concatenate([kind_status, np.full(r_sm.size, 3)])
    is_open = status_code == 0
    line_nos = np.concatenate([line_no[v_line], np.ones(r_sm.size, dtype=np.int64)])
    o_date = np.concatenate([ordered[v_line], r_date])
    rq_date = np.concatenate([requested[v_line], r_date])
    sh_date = np.concatenate([ship[v_line], r_date])
    no_ship = is_open | (status_code == 2)
    q_ord = np.concatenate([line_q[open_v], line_q[final_v], new_q, -r_q])
    q_shp = np.concatenate([np.zeros(n_open, dtype=np.int64), shipped_q[final_v], new_ship, -r_q])
    v_cust = np.concatenate([cust[v_line], cust[r_line]])
    v_item = np.concatenate([item[v_line], item[r_line]])
    v_loc = np.concatenate([series.loc[s[v_line]], series.loc[s[r_line]]])
    v_price = np.concatenate([unit_price[v_line], unit_price[r_line]])
    v_ccy = np.concatenate([ccy[v_line], ccy[r_line]])
    kind = np.concatenate(
        [np.zeros(n_open + n_final + n_rest, dtype=np.int64), np.ones(r_sm.size, dtype=np.int64)]
    )
    v_num = np.concatenate([order_num[v_line], r_num])
    order = np.lexsort((line_nos, v_num, kind, o_date.astype(np.int64), extract))
    cust_ids = customers.table.column("customer_id").combine_chunks()
    table = _table(
        "sales_orders",
        {
            "order_id": order_ids.take(pa.array(order)),
            "line_no": _ints(line_nos[order]),
            "order_date": _dates(o_date[order]),
            "requested_date": _dates(rq_date[order]),
            "ship_date": _dates(sh_date[order], no_ship[order]),
            "customer_id": _take(cust_ids, v_cust[order]),
            "item_id": _take(items.ids, v_item[order]),
            "location_id": _take([loc[0] for loc in LOCATIONS], v_loc[order]),
            "qty_ordered": _ints(q_ord[order]),
            "qty_shipped": _ints(q_shp[order], is_open[order]),
            "unit_price": _dec(v_price[order], 2),
            "currency": _take(list(CURRENCIES), v_ccy[order]),
            "status": _take(["open", "shipped", "cancelled", "returned"], status_code[order]),
        },
    )

    def keys(lines: list[int]) -> list[tuple[str, int]]:
        names = so_ids.take(pa.array(np.asarray(lines, dtype=np.int64))).to_pylist()
        return [(name, int(line_no[v])) for name, v in zip(names, lines, strict=True)]

    late = {m: keys(vs) for m, vs in late_rows.items()}
    restated = {m: keys(vs) for m, vs in restated_rows.items()}
    with_sales = int(np.unique(sm_s[sm_t <= h1]).size)
    return _Sales(table, extract[order], late, restated, with_sales)
