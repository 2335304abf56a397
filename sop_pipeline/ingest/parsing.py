"""Row level of the extract reader: text columns → typed columns and row problems.

Each contract column is parsed as a whole (pyarrow compute; dates once per distinct
value): str stays text, int → Int64, num → exact ``decimal128(18, 6)``, date / month →
datetime64. A value that does not parse, or a date outside the plausible range, becomes a
:class:`~sop_pipeline.ingest.problems.RowProblem`; the row stays in the frame with a null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.ingest.contract import Column, Extract
from sop_pipeline.ingest.dialect import Dialect
from sop_pipeline.ingest.problems import RowProblem

#: Dates before this are typing errors, not history.
MIN_PLAUSIBLE_DATE = pd.Timestamp("1990-01-01")

#: Dates more than this many years after the extract month are typing errors.
MAX_YEARS_AHEAD = 5

#: Exact type of ``num`` columns in the typed frame (matches raw's DECIMAL(18,6)).
DECIMAL_TYPE = pa.decimal128(18, 6)

_INT_RE = r"^[+-]?\d{1,18}$"

_NUM_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"

_YM_RE = r"^\d{4}-\d{2}$"

#: Numbers written with the other decimal mark (for the hint in the message).
_COMMA_NUM_RE = r"^[+-]?\d{1,3}(\.\d{3})*,\d+$|^[+-]?\d+,\d+$"

_DOT_NUM_RE = r"^[+-]?\d{1,3}(,\d{3})*\.\d+$|^[+-]?\d+\.\d+$"

#: A time of day after a date: ``[ T]23:59[:59[.123]]`` with an optional zone.
_TIME_SUFFIX_RE = r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?\s*(Z|[+-]\d{2}:?\d{2})?$"

_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%p", "%f", "%z", "%Z", "%X", "%c", "%T", "%R")

_ISO_DATE = "%Y-%m-%d"


class _Problems:
    """Row problems gathered as small frames (only bad rows), merged at the end."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, rows, column: str | None, values, reason, fix: str) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return
        values = pd.Series(values, dtype=object).reset_index(drop=True)
        reason = reason.reset_index(drop=True) if isinstance(reason, pd.Series) else reason
        self.parts.append(
            pd.DataFrame(
                {"row": rows, "column": column, "value": values, "reason": reason, "fix": fix}
            )
        )

    def to_list(self) -> list[RowProblem]:
        if not self.parts:
            return []
        df = pd.concat(self.parts, ignore_index=True)
        # one problem per cell: a parse error hides the "empty" GX failure it causes
        df = df.drop_duplicates(["row", "column"], keep="first")
        df = df.sort_values(["row"], kind="stable")
        values = df["value"].astype(object).where(df["value"].notna(), None)
        return [
            RowProblem(int(r), c, v, reason, fix)
            for r, c, v, reason, fix in zip(
                df["row"], df["column"], values, df["reason"], df["fix"], strict=True
            )
        ]


class _Text:
    """A column's text as read, turned into Python strings only at the rows that need it.

    Materialising millions of strings per column costs ~0.1 s each; problems need a few.
    """

    def __init__(self, arr: pa.Array, rows: np.ndarray):
        self.arr = arr
        self.rows = rows

    def __getitem__(self, mask: np.ndarray) -> pd.Series:
        return pd.Series(self.arr.filter(pa.array(mask)).to_pylist(), dtype=object)

    def at_rows(self, rows: np.ndarray) -> pd.Series:
        """Text at file line numbers ``rows`` (the index of the GX frame)."""
        positions = np.searchsorted(self.rows, rows)
        return pd.Series(self.arr.take(pa.array(positions)).to_pylist(), index=rows, dtype=object)


def quoted(values: pd.Series) -> pd.Series:
    """Each value in single quotes, for messages about bad cells."""
    return "'" + values.astype(str) + "'"


def _clean(arr: pa.Array) -> pa.Array:
    """Trim spaces; empty text is a missing value."""
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _mask(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a numpy mask (null = False)."""
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


def _date_only_format(fmt: str) -> bool:
    return not any(d in fmt for d in _TIME_DIRECTIVES)


def _parse_dates(arr: pa.Array, fmt: str) -> pd.Series:
    """Parse text dates with an exact format, once per distinct value (dates repeat a lot).

    A time of day after the date (``2026-10-31 23:59``, ``2026-10-31T23:59:00Z``) is dropped
    when the declared format has none: the column is a DATE and the date is the one written,
    so an order at 23:59 on the last day of a month stays in that month.
    """
    encoded = pc.dictionary_encode(arr)
    uniques = pd.Series(encoded.dictionary.to_pandas(), dtype=object)
    if len(uniques) and _date_only_format(fmt):
        uniques = uniques.str.replace(_TIME_SUFFIX_RE, "", regex=True)
    parsed = pd.to_datetime(uniques, format=fmt, errors="coerce")
    if len(parsed) and not _date_only_format(fmt):
        parsed = parsed.dt.normalize()
    idx = encoded.indices.to_numpy(zero_copy_only=False)
    nulls = pc.is_null(encoded.indices).to_numpy(zero_copy_only=False)
    values = (
        parsed.to_numpy()[np.where(nulls, 0, idx).astype(np.int64)]
        if len(parsed)
        else np.full(len(arr), np.datetime64("NaT"), dtype="datetime64[ns]")
    )
    values = np.where(nulls, np.datetime64("NaT"), values).astype("datetime64[ns]")
    return pd.Series(values)


def _parse_months(arr: pa.Array, dialect: Dialect) -> tuple[pd.Series, pd.Series]:
    """``YYYY-MM``, an ISO date or a date in the declared format that is a first of month.

    Returns:
        (month starts, mask of values that are valid dates but not a first of month)
    """
    encoded = pc.dictionary_encode(arr)
    uniques = pd.Series(encoded.dictionary.to_pandas(), dtype=object)
    if len(uniques) == 0:
        empty = pd.Series(np.full(len(arr), np.datetime64("NaT"), dtype="datetime64[ns]"))
        return empty, pd.Series(np.zeros(len(arr), dtype=bool))
    ym = pd.to_datetime(uniques.where(uniques.str.match(_YM_RE)), format="%Y-%m", errors="coerce")
    iso = pd.to_datetime(uniques, format=_ISO_DATE, errors="coerce")
    declared = pd.to_datetime(uniques, format=dialect.date_format, errors="coerce")
    as_date = iso.fillna(declared)
    not_first = as_date.notna() & (as_date.dt.day != 1)
    parsed = ym.fillna(as_date.where(~not_first)).dt.normalize()
    idx = encoded.indices.to_numpy(zero_copy_only=False)
    nulls = pc.is_null(encoded.indices).to_numpy(zero_copy_only=False)
    take = np.where(nulls, 0, idx).astype(np.int64)
    values = np.where(nulls, np.datetime64("NaT"), parsed.to_numpy()[take]).astype("datetime64[ns]")
    bad_day = np.where(nulls, False, not_first.to_numpy()[take])
    return pd.Series(values), pd.Series(bad_day)


def _decimal_cast(text: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Exact text → DECIMAL(18,6) with Arrow, which refuses to round or overflow.

    Args:
        text: dot-decimal number text (already matched against ``_NUM_RE``) or null.

    Returns:
        (decimals with null where the value cannot be kept exactly, mask of values with
        more than 12 digits before the decimal mark, mask of values with more than 6
        decimals)
    """
    n = len(text)
    try:
        return pc.cast(text, DECIMAL_TYPE), np.zeros(n, bool), np.zeros(n, bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # rare path: find the values that do not fit, one distinct value at a time
    encoded = pc.dictionary_encode(text)
    kinds = []
    for value in encoded.dictionary.to_pylist():
        try:
            pc.cast(pa.array([value]), DECIMAL_TYPE)
            kinds.append(0)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            kinds.append(2 if "data loss" in str(exc) else 1)
    kind = np.asarray(kinds, dtype=np.int8)[
        pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
    ]
    kind[pc.is_null(encoded.indices).to_numpy(zero_copy_only=False)] = 0
    keep = pa.array(kind == 0)
    dec = pc.cast(pc.if_else(keep, text, pa.scalar(None, pa.string())), DECIMAL_TYPE)
    return dec, kind == 1, kind == 2


def _parse_column(
    col: Column,
    arr: pa.Array,
    rows: np.ndarray,
    dialect: Dialect,
    extract_month: str,
    problems: _Problems,
    dialect_file: str,
) -> tuple[pd.Series, pd.Series]:
    """Typed values (for the frame) and GX values (floats for numbers) of one column."""
    if col.type == "str":
        values = arr.to_pandas()  # object dtype, None for missing
        return values, values
    present = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    text = _Text(arr, rows)

    def flag(mask: np.ndarray, reason, fix: str) -> None:
        """Record a problem at the rows of ``mask``; ``reason(text)`` builds the sentences."""
        if not mask.any():
            return
        values = text[mask]
        problems.add(rows[mask], col.name, values, reason(values), fix)

    if col.type == "int":
        ok = _mask(pc.match_substring_regex(arr, _INT_RE))
        flag(
            present & ~ok,
            lambda t: quoted(t) + " is not a whole number",
            "fix the value in the extract (whole numbers only, no decimal mark or thousands separator)",
        )
        typed = pd.Series(
            pc.cast(
                pc.if_else(pa.array(ok), arr, pa.scalar(None, pa.string())), pa.int64()
            ).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        )
        return typed, typed.astype("float64")
    if col.type == "num":
        comma = dialect.decimal == ","
        norm = pc.replace_substring(arr, ",", ".") if comma else arr
        ok = _mask(pc.match_substring_regex(norm, _NUM_RE))
        if comma:
            # a dot in a decimal-comma file is a thousands separator or a different dialect
            ok &= ~_mask(pc.match_substring(arr, "."))
        bad = present & ~ok
        if bad.any():
            other = _mask(pc.match_substring_regex(arr, _DOT_NUM_RE if comma else _COMMA_NUM_RE))
            looks_other = bad & other
            hint = "a decimal point" if comma else "a decimal comma"
            flag(
                looks_other,
                lambda t: (
                    quoted(t)
                    + f" is not a number with the declared decimal mark {dialect.decimal!r}"
                    + f" (it looks like {hint})"
                ),
                f"declare the file's decimal mark in {dialect_file} (e.g. extracts: "
                f"{{<extract>: {{decimal: '{'.' if comma else ','}'}}}}) or re-export it "
                f"with {dialect.decimal!r} decimals",
            )
            flag(
                bad & ~other,
                lambda t: (
                    quoted(t) + f" is not a number (declared decimal mark {dialect.decimal!r})"
                ),
                f"fix the extract or declare the decimal mark in {dialect_file}",
            )
        valid_text = pc.if_else(pa.array(ok), norm, pa.scalar(None, pa.string()))
        dec, too_big, too_precise = _decimal_cast(valid_text)
        flag(
            too_big,
            lambda t: (
                quoted(t)
                + " does not fit DECIMAL(18,6) (at most 12 digits before the decimal mark)"
            ),
            "fix the value in the extract",
        )
        flag(
            too_precise,
            lambda t: (
                quoted(t)
                + " has more than 6 decimal places; raw keeps exactly 6 (DECIMAL(18,6)) and does not round silently"
            ),
            "round the value to at most 6 decimals in the source system",
        )
        typed = pd.Series(dec.to_pandas(types_mapper=pd.ArrowDtype))
        floats = pd.Series(pc.cast(dec, pa.float64()).to_numpy(zero_copy_only=False))
        return typed, floats
    latest = pd.Timestamp(month_start(parse_month(extract_month), 12 * MAX_YEARS_AHEAD + 1))
    if col.type == "date":
        typed = _parse_dates(arr, dialect.date_format)
        flag(
            present & typed.isna().to_numpy(),
            lambda t: quoted(t) + f" is not a date in the declared format {dialect.date_format}",
            f"fix the extract or declare its date_format in {dialect_file}",
        )
        flag(
            ((typed < MIN_PLAUSIBLE_DATE) | (typed >= latest)).to_numpy(),
            lambda t: (
                quoted(t)
                + f" is not a plausible date (before 1990 or more than {MAX_YEARS_AHEAD} years after the extract month {extract_month})"
            ),
            "correct the date in the source system",
        )
        return typed, typed
    # month
    typed, not_first = _parse_months(arr, dialect)
    nf = not_first.to_numpy()
    flag(
        present & typed.isna().to_numpy() & ~nf,
        lambda t: quoted(t) + " is not a month (use YYYY-MM or the first day of the month)",
        "fix the value in the extract",
    )
    flag(
        nf,
        lambda t: quoted(t) + " is a date but not the first day of a month",
        "write the month as YYYY-MM or as the first day of the month",
    )
    flag(
        ((typed < MIN_PLAUSIBLE_DATE) | (typed >= latest)).to_numpy(),
        lambda t: (
            quoted(t)
            + f" is not a plausible month (before 1990 or more than {MAX_YEARS_AHEAD} years after the extract month {extract_month})"
        ),
        "correct the month in the source system",
    )
    return typed, typed


@dataclass
class ParsedExtract:
    """One file read and parsed, before its Great Expectations suite ran.

    :func:`check_parsed` runs the suite over several of these at once (one GX run per
    batch instead of one per file) and turns them into :class:`ReadResult`.

    Attributes:
        path: the file.
        extract: its contract entry.
        extract_month: ``YYYY-MM`` of its month folder.
        frame: the typed frame (contract columns + ``_source_row``).
        gx_frame: what GX validates (numbers as floats), index = file line numbers.
        row_count: number of data rows.
        sha256: hex digest of the file's bytes.
    """

    path: Path
    extract: Extract
    extract_month: str
    frame: pd.DataFrame
    gx_frame: pd.DataFrame
    row_count: int
    sha256: str
    texts: dict[str, _Text] = field(repr=False, default_factory=dict)
    problems: _Problems = field(repr=False, default_factory=_Problems)
    #: what the reader skipped on purpose (a workbook's other sheets), for the run's log
    notes: list[str] = field(default_factory=list)


def parse_columns(
    cols: dict[str, pa.Array],
    rows: np.ndarray,
    extract: Extract,
    dialect: Dialect,
    extract_month: str,
    dialect_file: str,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, _Text], _Problems]:
    """Parse every contract column of one file.

    Args:
        cols: column name → text array, from the file level (:mod:`.files`).
        rows: the file line number of each record.
        extract: the contract entry of the file.
        dialect: the dialect the text was written in.
        extract_month: ``YYYY-MM`` of the month folder.
        dialect_file: the dialect file as shown in messages.

    Returns:
        The typed frame (contract columns + ``_source_row``), the frame GX validates
        (index = file line numbers), each column's text and the row problems found.
    """
    n = len(rows)
    problems = _Problems()
    frame: dict[str, pd.Series] = {}
    gx_cols: dict[str, pd.Series] = {}
    texts: dict[str, _Text] = {}
    for col in extract.columns:
        arr = _clean(cols[col.name]) if col.name in cols else pa.nulls(n, pa.string())
        typed, for_gx = _parse_column(
            col, arr, rows, dialect, extract_month, problems, dialect_file
        )
        frame[col.name] = typed
        gx_cols[col.name] = for_gx
        texts[col.name] = _Text(arr, rows)
    typed_frame = pd.DataFrame(frame)
    typed_frame["_source_row"] = rows
    gx_frame = pd.DataFrame(gx_cols)
    gx_frame.index = rows
    return typed_frame, gx_frame, texts, problems
