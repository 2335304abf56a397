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
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml

from sop_pipeline.core.months import latest_complete_month, parse_month
from sop_pipeline.generator.catalog import CURRENCIES, FAMILIES, WORK_CENTERS
from sop_pipeline.generator.common import (
    CALENDAR_HORIZON,
    ITEM_LISTED_MONTHS_AHEAD,
    _dec,
    _month_loop_rng,
    _table,
    _take,
    _Timeline,
    _timeline,
)
from sop_pipeline.generator.demand import (
    _build_customers,
    _build_items,
    _build_series,
    _fx,
    _price_factor,
    _realise_demand,
    _sales_orders,
)
from sop_pipeline.generator.inputs import (
    _aop,
    _items_snapshot,
    _opportunities,
    _overrides,
    _scenarios,
    _static_tables,
)
from sop_pipeline.generator.materials import (
    bom_snapshot,
    build_materials,
    material_inventory,
    supplier_capacity_snapshot,
)
from sop_pipeline.generator.operations import (
    _capacity,
    _inventory,
    _production_orders,
    _purchase_orders,
)
from sop_pipeline.ingest.contract import COMPLETE_MARKER, DIALECT_FILE, EXTRACTS, SCENARIOS_FILE

#: Work center (index into WORK_CENTERS) whose summer crew is smaller than its machine hours.
CREW_LIMITED_WC = 5
#: Months of the history are at most this many (15 years).
MAX_MONTHS = 180
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
