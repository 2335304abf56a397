"""Property test of the reader: whatever bytes arrive, no bad row is loaded.

The reader raises ExtractError or returns rows of which every one not flagged as bad
satisfies the contract.

Hypothesis writes CSV files for a few extracts with random column subsets and orders,
cells that are valid values, near misses or arbitrary unicode (quotes, separators,
newlines), empty lines, truncated endings, random encodings and byte order marks, and reads
them with a randomly declared dialect that may not match.
"""

from __future__ import annotations

import codecs
import csv
import io
from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sop_pipeline.ingest.checks import IN_EXTRACT_MONTH, NOT_AFTER_EXTRACT_MONTH
from sop_pipeline.ingest.contract import EXTRACTS, Column
from sop_pipeline.ingest.dialect import Dialect
from sop_pipeline.ingest.parsing import MAX_YEARS_AHEAD, MIN_PLAUSIBLE_DATE
from sop_pipeline.ingest.problems import ExtractError
from sop_pipeline.ingest.reader import read_extract

MONTH = "2026-10"
# a master extract, a transaction extract with two-column rules, a month column, optional
# columns and bounds on both sides
FUZZED = (
    "items",
    "sales_orders",
    "capacity_calendar",
    "opportunities",
    "work_centers",
    "inventory",
)
DIALECTS = [
    Dialect(),
    Dialect(delimiter=";", decimal=","),
    Dialect(encoding="cp1252", delimiter=";", decimal=",", date_format="%d.%m.%Y"),
    Dialect(encoding="utf-16", delimiter="\t"),
    Dialect(encoding="latin-1", delimiter="|", date_format="%m/%d/%Y"),
]
NASTY = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(['"', '""', ",", ";", "\t", "\n", "\r\n", " ", "\ufeff", "\x00", "ü", "€"])


def good_value(col: Column, dialect: Dialect) -> st.SearchStrategy[str]:
    """A value the contract accepts, written in ``dialect``."""
    if col.allowed:
        return st.sampled_from(col.allowed)
    if col.type == "int":
        return st.integers(int(col.min_value or 0), int(col.max_value or 800)).map(str)
    if col.type == "num":
        lo = Decimal(str(col.min_value)) if col.min_value is not None else Decimal(-1000)
        hi = Decimal(str(col.max_value)) if col.max_value is not None else Decimal(10**6)
        return st.integers(0, 6).flatmap(
            lambda places: st.decimals(lo, hi, places=places).map(
                lambda d: str(d).replace(".", dialect.decimal)
            )
        )
    if col.type == "date":
        return st.dates(
            min_value=pd.Timestamp("2020-01-01").date(), max_value=pd.Timestamp("2026-10-31").date()
        ).map(lambda d: d.strftime(dialect.date_format))
    if col.type == "month":
        return st.sampled_from(["2026-10", "2026-11-01", "2027-03"])
    return st.sampled_from(["A-1", "A-2", "IT-1", "x", "Müller", "USD"])


def near_miss(col: Column) -> st.SearchStrategy[str]:
    """A value that may or may not pass: other formats, bounds, precision, garbage."""
    if col.type in ("num", "int"):
        edge = ["-1", "1e3", "1,5", "1.234,5", ".5", "1e-9", "1.1234567", "1234567890123", "abc"]
    elif col.type == "date":
        edge = ["2026-10-31 23:59", "2026-11-01", "31.10.2026", "2026-02-30", "1985-01-01"]
    elif col.type == "month":
        edge = ["2026-11-15", "Nov 2026", "1989-12", "2040-01", "2026-13"]
    else:
        edge = ["closed", "EA ", "?"]
    return st.sampled_from([*edge, ""]) | NASTY


@st.composite
def row_for(draw, extract, columns: list[str], dialect: Dialect) -> list[str]:
    """Half of the rows are clean; the others have a near miss in some cells."""
    clean = draw(st.booleans())
    cells = []
    for c in columns:
        if c not in extract.column_names:
            cells.append(draw(NASTY))
        elif clean or draw(st.integers(0, 3)):
            cells.append(draw(good_value(extract.column(c), dialect)))
        else:
            cells.append(draw(near_miss(extract.column(c))))
    return cells


@st.composite
def csv_files(draw):
    extract = EXTRACTS[draw(st.sampled_from(FUZZED))]
    dialect = draw(st.sampled_from(DIALECTS))
    # four times in five the file is written in the declared dialect, else in another one
    written_as = dialect if draw(st.integers(0, 4)) else draw(st.sampled_from(DIALECTS))
    names = extract.column_names
    required = [c for c in names if not extract.column(c).optional_column]
    # usually every required column, in any order; sometimes one missing, extra or doubled
    columns = draw(st.permutations(names))
    columns = [c for c in columns if c in required or draw(st.booleans())]
    mutation = draw(st.sampled_from(["none"] * 5 + ["drop", "extra", "double"]))
    if mutation == "drop" and columns:
        columns.pop(draw(st.integers(0, len(columns) - 1)))
    elif mutation == "extra":
        columns.append(draw(st.sampled_from(["colour", "", "Item_ID"])))
    elif mutation == "double" and columns:
        columns.append(columns[0])
    n_rows = draw(st.integers(0, 8))
    rows = [draw(row_for(extract, columns, written_as)) for _ in range(n_rows)]
    delimiter = written_as.delimiter
    out = io.StringIO()
    if draw(st.booleans()):
        csv.writer(
            out, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
        ).writerows([columns, *rows])
    else:  # naive writers do not quote
        out.write("\n".join(delimiter.join(r) for r in [columns, *rows]) + "\n")
    text = out.getvalue()
    if draw(st.integers(0, 3)) == 0:
        lines = text.split("\n")
        lines.insert(draw(st.integers(1, len(lines))), "")
        text = "\n".join(lines)
    data = text.encode(written_as.encoding, errors="replace")
    if draw(st.integers(0, 4)) == 0:
        data = codecs.BOM_UTF8 + data
    if draw(st.integers(0, 4)) == 0 and data:  # cut off while being written
        data = data[: len(data) - draw(st.integers(1, min(len(data), 40)))]
    return extract, data, dialect


def assert_contract(extract, result) -> None:
    """Every row not in bad_rows satisfies the contract rules the reader promises."""
    frame = result.frame
    assert list(frame.columns) == [*extract.column_names, "_source_row"]
    assert frame["_source_row"].is_unique
    assert result.bad_rows <= set(frame["_source_row"])
    for p in result.problems:
        assert p.row in result.bad_rows and p.reason and p.fix
    good = frame[~frame["_source_row"].isin(result.bad_rows)]
    latest = pd.Timestamp(MONTH + "-01") + pd.DateOffset(months=12 * MAX_YEARS_AHEAD + 1)
    month_end = pd.Timestamp(MONTH + "-01") + pd.DateOffset(months=1)
    for col in extract.columns:
        values = good[col.name]
        present = values.notna()
        if col.required:
            assert present.all(), f"{col.name}: empty required value loaded"
        if col.allowed:
            assert values[present].isin(col.allowed).all(), f"{col.name}: code outside the set"
        if col.type == "num":
            assert all(isinstance(v, Decimal) for v in values[present])
            assert all(v == v.quantize(Decimal("0.000001")) for v in values[present])
        if col.type in ("num", "int"):
            numbers = values[present].astype("float64")
            if col.min_value is not None:
                assert (numbers >= col.min_value).all(), f"{col.name} below minimum"
            if col.max_value is not None:
                assert (numbers <= col.max_value).all(), f"{col.name} above maximum"
        if col.type in ("date", "month"):
            assert values.dtype == "datetime64[ns]"
            assert ((values[present] >= MIN_PLAUSIBLE_DATE) & (values[present] < latest)).all()
            assert (values[present] == values[present].dt.normalize()).all()
            if col.type == "month":
                assert (values[present].dt.day == 1).all()
        if col.name in NOT_AFTER_EXTRACT_MONTH.get(extract.name, ()):
            assert (values[present] < month_end).all(), f"{col.name} in the future"
        if col.name in IN_EXTRACT_MONTH.get(extract.name, ()):
            assert (values[present] >= pd.Timestamp(MONTH + "-01")).all(), "stale snapshot"
    assert not good.duplicated(list(extract.key)).any(), "duplicate key loaded"
    if extract.name == "sales_orders":
        negative = (good["qty_ordered"].astype("float64") < 0) | (
            good["qty_shipped"].astype("float64").fillna(0) < 0
        )
        assert (good.loc[negative, "status"] == "returned").all()
    if extract.name == "opportunities":
        assert (good["item_id"].notna() | good["family"].notna()).all()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(case=csv_files())
def test_reader_never_crashes_and_never_lets_a_bad_row_through(tmp_path_factory, case):
    extract, data, dialect = case
    folder = tmp_path_factory.mktemp("case") / "landing" / MONTH
    folder.mkdir(parents=True)
    path = folder / f"{extract.name}.csv"
    path.write_bytes(data)
    try:
        result = read_extract(path, extract, dialect, extract_month=MONTH)
    except ExtractError as exc:
        event("file rejected: " + exc.problem[:30])
        assert str(exc).startswith(f"landing/{MONTH}/{extract.name}.csv")
        assert exc.fix
        return
    event(
        "file read, some rows good"
        if len(result.bad_rows) < result.row_count
        else "file read, every row bad"
    )
    assert result.row_count == len(result.frame) > 0
    assert_contract(extract, result)
    assert np.issubdtype(result.frame["_source_row"].dtype, np.integer)
