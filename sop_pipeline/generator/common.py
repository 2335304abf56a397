"""The demo company's calendar and the small array helpers every part of the generator uses.

Internal to :mod:`sop_pipeline.generator` (the names keep their leading underscore): the
generator modules share them, nothing outside the package should.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sop_pipeline.core.months import month_key, month_start, parse_month
from sop_pipeline.ingest.contract import EXTRACTS

#: Months after each extract month that the capacity calendar lists.
CALENDAR_HORIZON = 36
#: Months before its launch that a new item appears in the item master.
ITEM_LISTED_MONTHS_AHEAD = 12


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
