"""The demo company: a seeded, realistic manufacturer written in the extract contract.

``generate_company`` writes ``landing/<YYYY-MM>/<extract>.csv`` for every month of the
history (DESIGN §4), ``landing/dialect.yaml`` and a ``_COMPLETE`` marker per month folder.
The same arguments give byte-identical files: one ``numpy.random.default_rng(seed)`` drives
every draw in a fixed order, and nothing depends on the clock or on hash order.

The company makes pumps, valves, motors, controllers, sensors, filters, hoses and fittings
in two plants and sells them, with purchased accessories and spare parts, from the plants
and a distribution center. Its data carry what a planner expects to see: trend, family
seasonality, promotions with a dip after, intermittent spare parts, launches with a ramp-up,
end-of-life run-downs, late and short shipments, cancellations and returns, three
currencies, a CRM pipeline, planner overrides, an AOP, and an overhaul of the busiest work
center a few months after the last month, sized so that the supply plan has to pre-build.

Everything is vectorised with numpy over series × months and order lines; Python loops run
only over months, families, work centers and the names of items and customers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import yaml

from sop_pipeline.core.months import latest_complete_month, month_key, month_start, parse_month
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
    OVERRIDE_REASONS,
    PLANNERS,
    WORK_CENTERS,
)
from sop_pipeline.ingest.contract import COMPLETE_MARKER, DIALECT_FILE, EXTRACTS, SCENARIOS_FILE

#: Months after each extract month that the capacity calendar lists.
CALENDAR_HORIZON = 36
#: Months before its launch that a new item appears in the item master.
ITEM_LISTED_MONTHS_AHEAD = 12
#: Work center (index into WORK_CENTERS) whose summer crew is smaller than its machine hours.
CREW_LIMITED_WC = 5
#: Months of the history are at most this many (15 years).
MAX_MONTHS = 180
#: Peak utilization of the bottleneck month of each work center on expected demand.
PEAK_UTILIZATION = 0.92
#: Months after the last month when the overhaul starts, and the share of hours lost.
OVERHAUL_OFFSET = 4
OVERHAUL_LOSS = (0.75, 0.65)
#: Working days lost to holidays per calendar month (summer shutdown, Christmas week).
HOLIDAY_DAYS = {1: 1, 5: 1, 7: 1, 8: 3, 9: 1, 11: 2, 12: 4}
#: Probability of each open opportunity stage and the stage order.
STAGE_PROBABILITY = {
    "prospecting": 0.10,
    "qualification": 0.25,
    "proposal": 0.50,
    "negotiation": 0.75,
}
_OPEN_STAGES = ("prospecting", "qualification", "proposal", "negotiation")
_STAGES = (*_OPEN_STAGES, "closed_won", "closed_lost")
#: Default dialect written next to the month folders.
DEFAULT_DIALECT = {"encoding": "utf-8", "delimiter": ",", "decimal": ".", "date_format": "%Y-%m-%d"}

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate_company`` wrote.

    Attributes:
        landing_dir: the folder holding the month folders.
        months: number of month folders.
        first_month: first extract month (``YYYY-MM``).
        last_month: last extract month (``YYYY-MM``).
        item_count: number of items in the item master.
        series_count: item × location series with at least one sales order line.
        rows: rows written per extract, summed over all months.
        bytes_written: size of all files written.
        seconds: wall time of the generation.
        late_rows: extract month → (order_id, line_no) of sales order lines of the
            previous month that first appear in that month's folder.
        restated_rows: extract month → (order_id, line_no) of sales order lines that repeat
            a key of the previous month's folder with a changed quantity.
        overhaul_work_center: the work center that loses most of its hours for two months.
        overhaul_months: the two overhaul months (``YYYY-MM``), after the last month.
    """

    landing_dir: Path
    months: int
    first_month: str
    last_month: str
    item_count: int
    series_count: int
    rows: dict[str, int]
    bytes_written: int
    seconds: float
    late_rows: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    restated_rows: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    overhaul_work_center: str = ""
    overhaul_months: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------
# Timeline: internal month index 0 = January of the first history year, so that full
# fiscal years (AOP) and the calendar horizon fit on one axis.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Timeline:
    base: date
    n: int
    h0: int
    h1: int
    starts: np.ndarray  # datetime64[D], n + 1 month starts
    keys: list[str]

    @property
    def ends(self) -> np.ndarray:
        return self.starts[1:] - np.timedelta64(1, "D")

    @property
    def days(self) -> np.ndarray:
        return np.diff(self.starts).astype(np.int64)

    @property
    def cal_month(self) -> np.ndarray:
        return np.arange(self.n) % 12 + 1

    @property
    def year(self) -> np.ndarray:
        return self.base.year + np.arange(self.n) // 12

    def month_index(self, dates: np.ndarray) -> np.ndarray:
        base = np.datetime64(self.base, "M")
        return (dates.astype("datetime64[M]") - base).astype(np.int64)

    @property
    def hist(self) -> range:
        return range(self.h0, self.h1 + 1)


def _timeline(end: str, months: int) -> _Timeline:
    last = parse_month(end)
    first = month_start(last, -(months - 1))
    base = date(first.year, 1, 1)
    horizon_end = month_start(last, CALENDAR_HORIZON)
    n = (horizon_end.year - base.year + 1) * 12
    h0 = first.month - 1
    h1 = h0 + months - 1
    starts = np.arange(np.datetime64(base, "M"), np.datetime64(base, "M") + n + 1).astype(
        "datetime64[D]"
    )
    keys = [month_key(month_start(base, i)) for i in range(n)]
    return _Timeline(base=base, n=n, h0=h0, h1=h1, starts=starts, keys=keys)


# --------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------
def _split_counts(
    total: np.ndarray, parts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split each integer ``total`` into ``parts`` positive integer pieces (``parts <= total``).

    Returns:
        ``(group, piece)``: for every piece the index of its total, and its size.
    """
    group = np.repeat(np.arange(total.size), parts)
    if group.size == 0:
        return group, np.zeros(0, dtype=np.int64)
    first = np.cumsum(parts) - parts
    weight = rng.exponential(size=group.size)
    share = weight / np.add.reduceat(weight, first)[group]
    piece = 1 + np.floor((total - parts)[group] * share).astype(np.int64)
    piece[first] += total - np.add.reduceat(piece, first)
    return group, piece


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(
        pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def _take(values: pa.Array | list[str], index: np.ndarray) -> pa.Array:
    array = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    return array.take(pa.array(np.asarray(index, dtype=np.int64)))


def _dates(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(values.astype("datetime64[D]"), type=pa.date32(), mask=null)


def _dec(values: np.ndarray, scale: int, null: np.ndarray | None = None) -> pa.Array:
    rounded = np.round(np.asarray(values, dtype=np.float64), scale)
    return pa.array(rounded, mask=null).cast(pa.decimal128(18, scale), safe=False)


def _ints(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), type=pa.int64(), mask=null)


def _strs(values: list[str] | np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(list(values), type=pa.string(), mask=null)


def _table(extract: str, columns: dict[str, pa.Array]) -> pa.Table:
    """A table with exactly the contract columns of ``extract`` in contract order."""
    expected = EXTRACTS[extract].column_names
    if sorted(columns) != sorted(expected):
        raise AssertionError(
            f"generator bug: {extract} columns {sorted(columns)} != contract {sorted(expected)}"
        )
    return pa.table({name: columns[name] for name in expected})


def _nice_lot(x: np.ndarray) -> np.ndarray:
    """Round lot sizes to the numbers planners use (1, 2, 5, 10, 20, 25, 50, 100, ...)."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 1.0)
    mag = 10.0 ** np.floor(np.log10(x))
    steps = np.array([1.0, 2.0, 2.5, 5.0, 10.0])
    m = x / mag
    pick = steps[np.argmin(np.abs(m[:, None] - steps[None, :]), axis=1)]
    return np.maximum(1, np.round(pick * mag)).astype(np.int64)


def _month_loop_rng(rng: np.random.Generator) -> np.random.Generator:
    """A child generator whose stream does not depend on how many draws came before it."""
    return np.random.default_rng(rng.integers(0, 2**63 - 1))


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
    T = tl.h1 - tl.h0 + 1
    perm = rng.permutation(n_items)
    n_launch = max(2, round(0.08 * n_items)) if T >= 6 else 0
    n_future = max(1, round(0.02 * n_items))
    n_eol = max(2, round(0.05 * n_items)) if T >= 6 else 0
    n_eol_future = max(1, round(0.03 * n_items))
    cut = np.cumsum([n_launch, n_future, n_eol, n_eol_future])
    launch_hist, launch_future, eol_hist, eol_future = np.split(perm[: cut[-1]], cut[:-1])
    launch_t = np.full(n_items, _NO_LAUNCH, dtype=np.int64)
    eol_t = np.full(n_items, _NO_EOL, dtype=np.int64)
    launch_t[launch_hist] = (
        rng.integers(tl.h0 + max(1, T // 6), tl.h1 - 2, size=launch_hist.size) if T >= 6 else 0
    )
    launch_t[launch_future] = rng.integers(tl.h1 + 1, tl.h1 + 7, size=launch_future.size)
    if n_eol:
        eol_t[eol_hist] = rng.integers(tl.h0 + max(2, T // 3), tl.h1, size=eol_hist.size)
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
    """Ordered units per series × month for months h0 … h1+1 (the month after the history
    is needed for the open orders the last extract carries)."""
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
    T = tl.h1 - tl.h0 + 1
    for c in range(1, len(CURRENCIES)):
        walk = FX_START[c] * np.exp(np.cumsum(rng.normal(0.0, 0.015, T)))
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
        T = h1 - h0 + 1
        k = min(T - 1, max(2, T // 10))
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
    T = h1 - h0 + 1
    cover = rng.uniform(0.5, 2.5, series.n)
    exp = series.expected
    fwd = (exp[:, h0 + 1 : h1 + 2] + exp[:, h0 + 2 : h1 + 3] + exp[:, h0 + 3 : h1 + 4]) / 3
    noise = rng.lognormal(0.0, 0.25, (series.n, T))
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


# --------------------------------------------------------------------------------------
# CRM pipeline
# --------------------------------------------------------------------------------------
def _opportunities(
    rng: np.random.Generator,
    items: _Items,
    series: _Series,
    customers: _Customers,
    fx: np.ndarray,
    tl: _Timeline,
) -> tuple[pa.Table, np.ndarray]:
    h0, h1 = tl.h0, tl.h1
    item_expected = np.add.reduceat(series.expected, series.item_first, axis=0)
    n_fam = len(FAMILIES)
    fam_expected = np.zeros((n_fam, tl.n))
    np.add.at(fam_expected, items.fam, item_expected)
    pf = _price_factor(tl)
    rate = max(3.0, items.n * 0.05)
    stage_prob = np.array([STAGE_PROBABILITY[s] for s in _OPEN_STAGES] + [1.0, 0.0])

    cap = int(rate * 2 * (h1 - h0 + 1)) + 100
    o_cust = np.zeros(cap, dtype=np.int64)
    o_item = np.full(cap, -1, dtype=np.int64)
    o_fam = np.zeros(cap, dtype=np.int64)
    o_qty = np.zeros(cap)
    o_amount = np.zeros(cap)
    o_stage = np.zeros(cap, dtype=np.int64)
    o_close = np.zeros(cap, dtype="datetime64[D]")
    count = 0
    v_opp: list[np.ndarray] = []
    v_ext: list[np.ndarray] = []
    v_stage: list[np.ndarray] = []
    v_close: list[np.ndarray] = []
    for t in tl.hist:
        # existing open opportunities move on, slip or close
        live = np.flatnonzero(o_stage[:count] < 4)
        changed = np.zeros(live.size, dtype=bool)
        close_month = tl.month_index(o_close[live])
        due = close_month <= t
        won = rng.random(live.size) < stage_prob[o_stage[live]] + 0.1
        r = rng.random(live.size)
        new_stage = o_stage[live].copy()
        new_stage[due] = np.where(won[due], 4, 5)
        lost_early = ~due & (r < 0.04)
        new_stage[lost_early] = 5
        advance = ~due & (r >= 0.04) & (r < 0.34) & (new_stage < 3)
        new_stage[advance] += 1
        slip = ~due & (r >= 0.34) & (r < 0.42)
        o_close[live[slip]] += rng.integers(25, 62, slip.sum()).astype("timedelta64[D]")
        changed |= due | lost_early | advance | slip
        o_stage[live] = new_stage
        # opportunities closed early close today: the close date is the decision date
        early = live[lost_early]
        o_close[early] = np.minimum(o_close[early], tl.ends[t])
        upd = live[changed]

        k = int(rng.poisson(rate))
        idx = np.arange(count, count + k)
        if count + k > cap:
            raise AssertionError("generator bug: opportunity buffer too small")
        count += k
        cust = rng.choice(customers.n, size=k, p=customers.weight)
        at_item = rng.random(k) < 0.6
        target = item_expected[:, min(t + 3, tl.n - 1)]
        w = np.sqrt(np.maximum(target, 0))
        w = w / w.sum() if w.sum() > 0 else np.full(items.n, 1 / items.n)
        it = rng.choice(items.n, size=k, p=w)
        fam = items.fam[it]
        qty_item = np.maximum(1, np.round(rng.uniform(0.3, 3.0, k) * item_expected[it, t]))
        qty_fam = np.maximum(5, np.round(rng.uniform(0.03, 0.15, k) * fam_expected[fam, t]))
        qty = np.where(at_item, qty_item, qty_fam)
        price_base = items.price[it] * pf[t] * fx[items.ccy[it], t]
        ccy = customers.ccy[cust]
        amount = qty * price_base * (1 - customers.discount[cust]) / fx[ccy, t]
        created = tl.starts[t] + rng.integers(0, tl.days[t], k).astype("timedelta64[D]")
        o_cust[idx] = cust
        o_item[idx] = np.where(at_item, it, -1)
        o_fam[idx] = fam
        o_qty[idx] = qty
        o_amount[idx] = np.round(amount, 2)
        o_stage[idx] = rng.choice(3, size=k, p=[0.5, 0.3, 0.2])
        o_close[idx] = created + rng.integers(32, 271, k).astype("timedelta64[D]")
        both = np.concatenate([upd, idx])
        v_opp.append(both)
        v_ext.append(np.full(both.size, t))
        v_stage.append(o_stage[both].copy())
        v_close.append(o_close[both].copy())
    opp = np.concatenate(v_opp)
    ext = np.concatenate(v_ext)
    stage = np.concatenate(v_stage)
    close = np.concatenate(v_close)
    order = np.lexsort((opp, ext))
    opp, ext, stage, close = opp[order], ext[order], stage[order], close[order]
    at_item = o_item[opp] >= 0
    cust_ids = customers.table.column("customer_id").combine_chunks()
    table = _table(
        "opportunities",
        {
            "opportunity_id": _ids("OPP-", opp + 1, 6),
            "customer_id": _take(cust_ids, o_cust[opp]),
            "item_id": pa.array(
                np.array(items.ids, dtype=object)[np.maximum(o_item[opp], 0)],
                pa.string(),
                mask=~at_item,
            ),
            "family": pa.array(
                np.array([f.name for f in FAMILIES], dtype=object)[o_fam[opp]],
                pa.string(),
                mask=at_item,
            ),
            "expected_qty": _ints(o_qty[opp]),
            "amount": _dec(o_amount[opp], 2),
            "currency": _take(list(CURRENCIES), customers.ccy[o_cust[opp]]),
            "stage": _take(list(_STAGES), stage),
            "probability": _dec(stage_prob[stage], 2),
            "expected_close_date": _dates(close),
        },
    )
    return table, ext


# --------------------------------------------------------------------------------------
# Planning inputs: overrides, AOP, scenarios
# --------------------------------------------------------------------------------------
def _overrides(
    rng: np.random.Generator, items: _Items, series: _Series, tl: _Timeline
) -> dict[int, pa.Table]:
    item_expected = np.add.reduceat(series.expected, series.item_first, axis=0)
    fam_names = [f.name for f in FAMILIES]
    tables: dict[int, pa.Table] = {}
    for t in tl.hist:
        rows: dict[tuple[str, int, str], tuple[str, str, str]] = {}
        # a family override names a family of the month's items extract: a small company
        # (`--items 20`) may have no item of some family listed yet
        listed = items.launch_t <= t + ITEM_LISTED_MONTHS_AHEAD
        fams = sorted({int(f) for f in items.fam[listed]}) or list(range(len(fam_names)))
        for j in range(12):
            month = t + 1 + int(rng.integers(0, 6))
            reason, sign, comment = OVERRIDE_REASONS[int(rng.integers(0, len(OVERRIDE_REASONS)))]
            sign = sign or (1 if rng.random() < 0.5 else -1)
            author = PLANNERS[int(rng.integers(0, len(PLANNERS)))]
            active = np.flatnonzero((item_expected[:, month] > 1) & (items.eol_t > month + 6))
            if j < 7 and active.size:
                it = int(active[rng.integers(0, active.size)])
                base = item_expected[it, month]
                step = 5 if base >= 20 else 1
                size = max(step, int(round(rng.uniform(0.1, 0.4) * base / step)) * step)
                adjustment = f"{sign * size}"
                scope = items.ids[it]
            else:
                scope = fam_names[fams[int(rng.integers(0, len(fams)))]]
                adjustment = f"{'+' if sign > 0 else '-'}{5 * int(rng.integers(1, 5))}%"
            rows.setdefault((scope, month, reason), (adjustment, author, comment))
        keys = sorted(rows, key=lambda k: (k[1], k[0], k[2]))
        tables[t] = _table(
            "demand_overrides",
            {
                "scope": _strs([k[0] for k in keys]),
                "month": _strs([tl.keys[k[1]] for k in keys]),
                "adjustment": _strs([rows[k][0] for k in keys]),
                "reason_code": _strs([k[2] for k in keys]),
                "author": _strs([rows[k][1] for k in keys]),
                "comment": _strs([rows[k][2] for k in keys]),
            },
        )
    return tables


def _aop(
    rng: np.random.Generator, items: _Items, series: _Series, fx: np.ndarray, tl: _Timeline
) -> pa.Table:
    item_expected = np.add.reduceat(series.expected, series.item_first, axis=0)
    pf = _price_factor(tl)
    t_fx = np.clip(np.arange(tl.n), tl.h0, tl.h1)
    price_base = items.price[:, None] * pf[None, :] * fx[items.ccy][:, t_fx]
    cost_base = items.cost[:, None] * pf[None, :] * fx[items.ccy][:, t_fx]
    n_fam = len(FAMILIES)
    revenue = np.zeros((n_fam, tl.n))
    volume = np.zeros((n_fam, tl.n))
    inv_value = np.zeros((n_fam, tl.n))
    np.add.at(revenue, items.fam, item_expected * price_base * 0.94)  # average discount
    np.add.at(volume, items.fam, item_expected)
    np.add.at(inv_value, items.fam, item_expected * cost_base * 1.4)
    # The AOP is set once a year per family, usually a little ambitious.
    years = tl.n // 12
    bias = np.clip(rng.normal(0.03, 0.04, (n_fam, years)), -0.08, 0.10)
    factor = np.repeat(bias, 12, axis=1) + 1 + rng.normal(0, 0.01, (n_fam, tl.n))
    # full fiscal years: the timeline starts in January of the first history year
    month_idx = np.tile(np.arange(tl.n), n_fam)
    fam_idx = np.repeat(np.arange(n_fam), tl.n)
    return _table(
        "aop_targets",
        {
            "family": _take([f.name for f in FAMILIES], fam_idx),
            "month": _take(tl.keys, month_idx),
            "revenue_target": _dec((revenue * factor).ravel(), 2),
            "volume_target": _dec(np.round(volume * factor).ravel(), 0),
            "inventory_value_target": _dec((inv_value * factor).ravel(), 2),
        },
    )


class _Quoted(str):
    """A string YAML writes in quotes (months must stay text for every YAML reader)."""


class _ScenarioDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # C emitter when built
    pass


_ScenarioDumper.add_representer(
    _Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style='"')
)


def _scenarios(t: int, cap: _Capacity, supplier: int, tl: _Timeline) -> str:
    """The what-if scenarios of extract month ``t`` (YAML); ``months`` are ``[first, last]``."""
    wc_id, _, wc_name, _ = WORK_CENTERS[cap.overhaul_wc]
    extended = _Quoted(tl.keys[cap.overhaul_months[1] + 1])
    doc = {
        "scenarios": [
            {
                "name": "overhaul_extended",
                "description": f"The overhaul of {wc_id} ({wc_name}) runs one month longer into {extended}",
                "levers": [
                    {
                        "type": "capacity_loss",
                        "work_center_id": wc_id,
                        "months": [extended, extended],
                        "pct": 0.7,
                    }
                ],
            },
            {
                "name": "demand_upside_pumps",
                "description": "A large irrigation program lifts pump demand 15% for six months",
                "levers": [
                    {
                        "type": "demand_change",
                        "family": "pumps",
                        "months": [_Quoted(tl.keys[t + 3]), _Quoted(tl.keys[t + 8])],
                        "pct": 0.15,
                    }
                ],
            },
            {
                "name": "supplier_delay",
                "description": f"SUP-{supplier + 1:03d} (largest open purchase volume) delivers 45 days late",
                "levers": [
                    {"type": "supplier_delay", "supplier_id": f"SUP-{supplier + 1:03d}", "days": 45}
                ],
            },
            {
                "name": "price_increase",
                "description": "Valve list prices go up 5% from next month",
                "levers": [{"type": "price_change", "family": "valves", "pct": 0.05}],
            },
            {
                "name": "chase_strategy",
                "description": "Produce to demand month by month instead of levelling production",
                "levers": [{"type": "strategy", "value": "chase"}],
            },
        ]
    }
    return yaml.dump(
        doc, Dumper=_ScenarioDumper, sort_keys=False, default_flow_style=None, width=120
    )


# --------------------------------------------------------------------------------------
# Master data snapshots
# --------------------------------------------------------------------------------------
def _items_snapshot(items: _Items, t: int, pf: np.ndarray) -> pa.Table:
    status = np.full(items.n, 1, dtype=np.int64)  # active
    status[t < items.launch_t + 6] = 0  # new: launched within six months or not yet launched
    announced = t >= items.eol_t - 12
    status[announced] = 2
    return _table(
        "items",
        {
            "item_id": _strs(items.ids),
            "description": _strs(items.description),
            "family": _take([f.name for f in FAMILIES], items.fam),
            "category": _strs(items.category),
            "uom": _strs(items.uom),
            "unit_cost": _dec(items.cost * pf[t], 2),
            "unit_price": _dec(items.price * pf[t], 2),
            "currency": _take(list(CURRENCIES), items.ccy),
            "lifecycle_status": _take(["new", "active", "eol"], status),
            "launch_date": _dates(items.launch_date),
            "eol_date": _dates(
                np.where(announced, items.eol_date, np.datetime64("NaT")), ~announced
            ),
            "lead_time_days": _ints(items.lead_time),
            "min_lot_qty": _ints(items.min_lot),
        },
    )


def _static_tables(items: _Items, cap: _Capacity) -> dict[str, pa.Table]:
    wc_ids = [w[0] for w in WORK_CENTERS]
    names = [
        f"{w[2]} ({k} lines)" if k > 1 else w[2]
        for w, k in zip(WORK_CENTERS, cap.lines, strict=True)
    ]
    return {
        "locations": _table(
            "locations",
            {
                "location_id": _strs([loc[0] for loc in LOCATIONS]),
                "name": _strs([loc[1] for loc in LOCATIONS]),
                "type": _strs([loc[2] for loc in LOCATIONS]),
                "region": _strs([loc[3] for loc in LOCATIONS]),
            },
        ),
        "work_centers": _table(
            "work_centers",
            {
                "work_center_id": _strs(wc_ids),
                "location_id": _take(
                    [loc[0] for loc in LOCATIONS], np.array([w[1] for w in WORK_CENTERS])
                ),
                "name": _strs(names),
                "hours_per_day": _dec(cap.hours_per_day, 1),
                "efficiency": _dec(cap.efficiency, 2),
            },
        ),
        "routings": _table(
            "routings",
            {
                "item_id": _take(items.ids, cap.routing_item),
                "work_center_id": _take(wc_ids, cap.routing_wc),
                "hours_per_unit": _dec(cap.routing_hpu, 4),
            },
        ),
    }


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none")


def _write_csv(path: Path, table: pa.Table) -> int:
    """Write ``table`` as contract CSV: plain header, no quoting, ISO dates, empty nulls."""
    with open(path, "wb") as fh:
        fh.write((",".join(table.column_names) + "\n").encode("utf-8"))
        if table.num_rows:
            pacsv.write_csv(table, fh, _WRITE_OPTIONS)
    return path.stat().st_size


def _year_end(t: int) -> int:
    """Internal index of December of the year of month ``t`` (index 0 is a January)."""
    return (t // 12) * 12 + 11


def _slices(extract: np.ndarray, tl: _Timeline) -> dict[int, tuple[int, int]]:
    """Row range of each extract month in a table sorted by extract month."""
    lo = np.searchsorted(extract, np.arange(tl.h0, tl.h1 + 1), side="left")
    hi = np.searchsorted(extract, np.arange(tl.h0, tl.h1 + 1), side="right")
    return {t: (int(a), int(b - a)) for t, a, b in zip(tl.hist, lo, hi, strict=True)}


def _validate_args(items: int, months: int, seed: int, end: str | None) -> None:
    if not isinstance(items, int) or items < 20:
        raise ValueError(
            f"items={items!r}: the demo company needs at least 20 items (one family has several); pass --items 20 or more."
        )
    if not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
        raise ValueError(
            f"months={months!r}: pass a number of history months between 1 and {MAX_MONTHS}, e.g. --months 60."
        )
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: pass a non-negative integer seed, e.g. --seed 42.")
    if end is not None:
        parse_month(end)  # raises with the expected format


def generate_company(
    landing_dir: Path,
    *,
    items: int = 300,
    months: int = 60,
    seed: int = 42,
    end: str | None = None,
    progress: ProgressCallback | None = None,
) -> GenerationSummary:
    """Write the demo company's extracts, one folder per month, into ``landing_dir``.

    Args:
        landing_dir: the landing folder (``$SOP_HOME/landing``); created if missing.
            Month folders that exist are overwritten file by file.
        items: number of items in the item master (about two sales locations each).
        months: number of history months, i.e. month folders.
        seed: random seed; the same arguments give byte-identical files.
        end: last extract month ``YYYY-MM``; default: the last complete month before today.
        progress: optional callback ``(stage, done, total)`` for a progress bar.

    Returns:
        A ``GenerationSummary`` with the months, sizes, late and restated sales order rows
        and the overhaul.

    Raises:
        ValueError: an argument is out of range; the message says which and what to pass.
    """
    started = time.perf_counter()
    _validate_args(items, months, seed, end)
    if end is None:
        end = latest_complete_month()
    report = progress or (lambda stage, done, total: None)
    build_steps = 8
    report("build", 0, build_steps)

    rng = np.random.default_rng(seed)
    tl = _timeline(end, months)
    item_data = _build_items(rng, items, tl)
    series = _build_series(rng, item_data, tl)
    customers = _build_customers(rng, items)
    fx = _fx(rng, tl)
    report("build", 1, build_steps)
    qty = _realise_demand(rng, item_data, series, tl)
    sales = _sales_orders(rng, item_data, series, customers, qty, fx, tl)
    report("build", 2, build_steps)
    cap = _capacity(rng, item_data, series, tl)
    report("build", 3, build_steps)
    inventory, inventory_ext = _inventory(rng, item_data, series, tl)
    report("build", 4, build_steps)
    production, production_ext = _production_orders(rng, item_data, series, cap, tl)
    purchases, purchase_ext, open_by_supplier = _purchase_orders(rng, item_data, series, tl)
    report("build", 5, build_steps)
    opportunities, opportunity_ext = _opportunities(
        _month_loop_rng(rng), item_data, series, customers, fx, tl
    )
    report("build", 6, build_steps)
    overrides = _overrides(_month_loop_rng(rng), item_data, series, tl)
    aop = _aop(rng, item_data, series, fx, tl)
    static = _static_tables(item_data, cap)
    report("build", 7, build_steps)
    pf = _price_factor(tl)
    wc_ids = [w[0] for w in WORK_CENTERS]
    supplier = int(np.argmax(open_by_supplier)) if open_by_supplier.sum() > 0 else 0
    # bills of material, raw materials and their suppliers (a random stream of their own)
    from sop_pipeline.generator.materials import (
        bom_snapshot,
        build_materials,
        material_inventory,
        supplier_capacity_snapshot,
    )

    materials = build_materials(seed, item_data, series, cap, tl)
    report("build", 8, build_steps)

    transactions = {
        "sales_orders": (sales.table, _slices(sales.extract, tl)),
        "inventory": (inventory, _slices(inventory_ext, tl)),
        "production_orders": (production, _slices(production_ext, tl)),
        "purchase_orders": (purchases, _slices(purchase_ext, tl)),
        "opportunities": (opportunities, _slices(opportunity_ext, tl)),
    }
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    dialect_path = landing_dir / DIALECT_FILE
    dialect_path.write_text(yaml.safe_dump(DEFAULT_DIALECT, sort_keys=False), encoding="utf-8")
    total_bytes = dialect_path.stat().st_size
    rows: dict[str, int] = {name: 0 for name in EXTRACTS}
    cal_wc = np.repeat(np.arange(len(WORK_CENTERS)), tl.n)
    cal_month = np.tile(np.arange(tl.n), len(WORK_CENTERS))
    cal_hours = cap.available.ravel()
    crew_limited = (cal_wc == CREW_LIMITED_WC) & np.isin(tl.cal_month[cal_month], (7, 8))
    fx_cur = np.repeat(np.arange(len(CURRENCIES)), tl.n)
    fx_month = np.tile(np.arange(tl.n), len(CURRENCIES))
    aop_month = np.tile(np.arange(tl.n), len(FAMILIES))  # row order of _aop
    for done, t in enumerate(tl.hist):
        folder = landing_dir / tl.keys[t]
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / COMPLETE_MARKER
        if marker.exists():
            marker.unlink()  # a reader must not see a half-rewritten folder as complete
        cal = (cal_month >= tl.h0) & (cal_month <= t + CALENDAR_HORIZON)
        fxm = (fx_month >= tl.h0) & (fx_month <= t)
        # An item enters the item master a year before its launch, not years ahead.
        listed = item_data.launch_t <= t + ITEM_LISTED_MONTHS_AHEAD
        routed = pa.array(listed[cap.routing_item])
        tables: dict[str, pa.Table] = {
            "items": pa.concat_tables(
                [_items_snapshot(item_data, t, pf).filter(pa.array(listed)), materials.items]
            ),
            "bom": bom_snapshot(materials, listed),
            "supplier_capacity": supplier_capacity_snapshot(materials, t, CALENDAR_HORIZON, tl),
            "locations": static["locations"],
            "customers": customers.table,
            "work_centers": static["work_centers"],
            "capacity_calendar": _table(
                "capacity_calendar",
                {
                    "work_center_id": _take(wc_ids, cal_wc[cal]),
                    "month": _take(tl.keys, cal_month[cal]),
                    "available_hours": _dec(cal_hours[cal], 1),
                    # people: final assembly is staffed for 85% of its hours in July and
                    # August (holidays); no crew limit elsewhere
                    "crew_hours": _dec(cal_hours[cal] * 0.85, 1, ~crew_limited[cal]),
                },
            ),
            "routings": static["routings"].filter(routed),
            "fx_rates": _table(
                "fx_rates",
                {
                    "currency": _take(list(CURRENCIES), fx_cur[fxm]),
                    "month": _take(tl.keys, fx_month[fxm]),
                    "rate_to_base": _dec(fx.ravel()[fxm], 6),
                },
            ),
            "demand_overrides": overrides[t],
            # the AOP of every fiscal year up to the one that holds the calendar horizon
            "aop_targets": aop.filter(pa.array(aop_month <= _year_end(t + CALENDAR_HORIZON))),
        }
        for name, (table, slices) in transactions.items():
            offset, length = slices[t]
            tables[name] = table.slice(offset, length)
        tables["inventory"] = pa.concat_tables(
            [tables["inventory"], material_inventory(materials, t, tl)]
        )
        for name in EXTRACTS:
            total_bytes += _write_csv(folder / f"{name}.csv", tables[name])
            rows[name] += tables[name].num_rows
        scen = folder / SCENARIOS_FILE
        scen.write_text(_scenarios(t, cap, supplier, tl), encoding="utf-8")
        total_bytes += scen.stat().st_size
        marker.write_text("", encoding="utf-8")
        report("write", done + 1, months)

    return GenerationSummary(
        landing_dir=landing_dir,
        months=months,
        first_month=tl.keys[tl.h0],
        last_month=tl.keys[tl.h1],
        item_count=items,
        series_count=sales.series_with_sales,
        rows=rows,
        bytes_written=total_bytes,
        seconds=round(time.perf_counter() - started, 3),
        late_rows={tl.keys[m]: v for m, v in sales.late.items()},
        restated_rows={tl.keys[m]: v for m, v in sales.restated.items()},
        overhaul_work_center=WORK_CENTERS[cap.overhaul_wc][0],
        overhaul_months=tuple(tl.keys[m] for m in cap.overhaul_months),
    )
