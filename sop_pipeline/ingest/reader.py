"""Read one extract file (CSV with its declared dialect, or Parquet) and check it against the contract.

Two kinds of problems:

* **File-level** problems make the file unusable and raise :class:`ExtractError`
  (undecodable bytes, wrong delimiter, missing / extra / duplicated columns, empty file,
  a row with the wrong number of fields).
* **Row-level** problems are collected as :class:`RowProblem` (a value that does not parse,
  an empty required value, a code outside its allowed set, a number out of range, a
  duplicate key …); the loader decides whether the file is loaded (reject-rate policy).

Parsing is vectorised: pyarrow reads the CSV as text, pyarrow compute / DuckDB / pandas
parse whole columns at once (dates are parsed once per distinct value). The contract rules
Great Expectations can express (not null, in set, between, unique key, pattern) run as the
extract's GX suite (``data_quality/extracts/<extract>.json``) on the typed frame.

Row numbers are file line numbers: header = line 1, first data row = line 2. For Parquet,
row ``i`` (0-based) is numbered ``i + 2`` so ``_source_row`` means the same for both formats.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.errors import InvalidInputError
from sop_pipeline.ingest.bom_rules import bom_rules, supplier_capacity_rules
from sop_pipeline.ingest.contract import DIALECT_FILE, Column, Extract
from sop_pipeline.ingest.dialect import Dialect
from sop_pipeline.quality.extract_suites import extract_suite
from sop_pipeline.quality.gx import validate_dataframe

#: Dates before this are typing errors, not history.
MIN_PLAUSIBLE_DATE = pd.Timestamp("1990-01-01")
#: Dates more than this many years after the extract month are typing errors.
MAX_YEARS_AHEAD = 5
#: Exact type of ``num`` columns in the typed frame (matches raw's DECIMAL(18,6)).
DECIMAL_TYPE = pa.decimal128(18, 6)

#: Dates of events that have happened by the close of the extract month (the extract is
#: written after it): a later date is a typing error or a clock problem in the source.
#: Planned and expected dates (requested, due, start, expected close) may be in the future.
NOT_AFTER_EXTRACT_MONTH: dict[str, tuple[str, ...]] = {
    "sales_orders": ("order_date", "ship_date"),
    "inventory": ("snapshot_date", "receipt_date"),
    "production_orders": ("completed_date",),
    "purchase_orders": ("order_date", "received_date"),
}
#: Dates that must fall in the extract month itself: the inventory is the snapshot taken at
#: the month's close, so an earlier snapshot_date means a stale extract was delivered.
IN_EXTRACT_MONTH: dict[str, tuple[str, ...]] = {"inventory": ("snapshot_date",)}

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
_PARQUET_DIALECT = Dialect()  # Parquet carries its own types; text values are ISO / dot decimals


class ExtractError(InvalidInputError, ValueError):
    """A file cannot be read as its extract; ``str()`` is one sentence with the fix.

    Attributes:
        file: the file, as shown to the user (``landing/2026-10/sales_orders.csv``).
        row: file line number (header = 1), or None.
        column: column name, or None.
        problem: what is wrong.
        fix: how to fix it.
    """

    def __init__(
        self,
        file: str,
        problem: str,
        fix: str,
        *,
        row: int | None = None,
        column: str | None = None,
    ):
        self.file = file
        self.row = row
        self.column = column
        self.problem = problem
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f", column {self.column}" if self.row is not None else f" column {self.column}"
        return f"{where}: {self.problem}; {self.fix}"


@dataclass(frozen=True)
class RowProblem:
    """One bad value in one row (the row is rejected).

    Attributes:
        row: file line number (header = 1); None only for a file-level problem the loader
            records in ``raw.rejects``.
        column: the column (several joined by ``", "`` for a key), or None.
        value: the value as written in the file (None when empty).
        reason: what is wrong.
        fix: how to fix it.
    """

    row: int | None
    column: str | None
    value: str | None
    reason: str
    fix: str

    def describe(self, file: str) -> str:
        """``"<file> row 12, column qty_ordered: 'abc' is not a number; fix ..."``."""
        col = f", column {self.column}" if self.column else ""
        return f"{file} row {self.row}{col}: {self.reason}; {self.fix}"


@dataclass
class ReadResult:
    """What :func:`read_extract` returns.

    Attributes:
        frame: every data row, typed: contract columns (str → object, int → Int64,
            num → ``decimal128(18, 6)[pyarrow]`` (exact), date / month → datetime64) plus
            ``_source_row`` (file line number). Unparseable cells are null; rows with a
            problem are still present (see ``bad_rows``).
        problems: row-level problems, sorted by row then column.
        row_count: number of data rows.
        sha256: hex digest of the file's bytes.
    """

    frame: pd.DataFrame
    problems: list[RowProblem]
    row_count: int
    sha256: str
    bad_rows: set[int] = field(default_factory=set)


def display_path(path: Path) -> str:
    """``…/landing/2026-10/items.csv`` → ``landing/2026-10/items.csv`` (what users see)."""
    return "/".join(Path(path).parts[-3:])


def _dialect_file(path: Path) -> str:
    return f"{Path(path).parent.parent.name}/{DIALECT_FILE}"


# --------------------------------------------------------------------------------------
# file level
# --------------------------------------------------------------------------------------


def _decode(raw: bytes, path: Path, extract: Extract, dialect: Dialect) -> str:
    """Decode with the declared encoding; undecodable bytes raise with their line."""
    try:
        return raw.decode(dialect.encoding)
    except UnicodeDecodeError as exc:
        line_no = raw.count(b"\n", 0, exc.start) + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line_end = raw.find(b"\n", exc.start)
        line = raw[line_start : None if line_end < 0 else line_end]
        column = None
        header = raw[: max(raw.find(b"\n"), 0) or len(raw)].decode(
            dialect.encoding, errors="replace"
        )
        try:
            names = [h.strip() for h in next(csv.reader([header], delimiter=dialect.delimiter), [])]
            fields = next(
                csv.reader(
                    [line.decode(dialect.encoding, errors="replace")], delimiter=dialect.delimiter
                ),
                [],
            )
        except csv.Error:  # a stray carriage return or NUL: name the row only
            names, fields = [], []
        for i, value in enumerate(fields):
            if "\ufffd" in value and line_no > 1 and i < len(names):
                column = names[i]
                break
        bad = raw[exc.start : exc.end]
        raise ExtractError(
            display_path(path),
            f"byte(s) {bad!r} cannot be decoded as {dialect.encoding}, the declared encoding",
            f"re-export the file as {dialect.encoding} or declare its real encoding in "
            f"{_dialect_file(path)} (e.g. extracts: {{{extract.name}: {{encoding: cp1252}}}})",
            row=line_no,
            column=column,
        ) from None


def _check_header(
    names: list[str],
    header_text: str,
    path: Path,
    extract: Extract,
    dialect: Dialect,
    *,
    is_csv: bool,
) -> None:
    """Columns are matched by name: no duplicates, no missing required, no extras."""
    shown = display_path(path)
    contract = extract.column_names
    required = [c.name for c in extract.columns if not c.optional_column]
    matched = [n for n in names if n in contract]
    if is_csv and len(contract) > 1 and (len(names) == 1 or not matched):
        raise ExtractError(
            shown,
            f"the header does not split into the contract columns with the declared delimiter "
            f"{dialect.delimiter!r}; it reads {header_text[:120]!r}",
            f"declare the file's delimiter in {_dialect_file(path)} "
            f"(e.g. extracts: {{{extract.name}: {{delimiter: ';'}}}}) or re-export it with {dialect.delimiter!r}",
            row=1,
        )
    dups = [n for n, k in Counter(names).items() if k > 1]
    if dups:
        raise ExtractError(
            shown,
            f"the header names {', '.join(repr(d) for d in dups)} more than once",
            "give every column a unique name (columns are matched by name)",
            row=1,
            column=dups[0],
        )
    missing = [n for n in required if n not in names]
    if missing:
        raise ExtractError(
            shown,
            f"required column(s) {', '.join(missing)} missing (the header has {', '.join(names)})",
            f"add the column(s) to the {extract.name} extract; columns are matched by name, in any order",
            row=1,
            column=missing[0],
        )
    extra = [n for n in names if n not in contract]
    if extra:
        hint = " (an empty name usually means a trailing delimiter)" if "" in extra else ""
        raise ExtractError(
            shown,
            f"unexpected column(s) {', '.join(repr(e) for e in extra)} not in the contract of {extract.name}{hint}",
            "remove them from the extract, or add them to the contract in sop_pipeline/ingest/contract.py",
            row=1,
            column=extra[0],
        )
    if extract.name == "opportunities" and "item_id" not in names and "family" not in names:
        raise ExtractError(
            shown,
            "neither an item_id nor a family column is present",
            "add item_id or family (or both); every opportunity names one of them",
            row=1,
        )
    if extract.name == "supplier_capacity" and "item_id" not in names and "family" not in names:
        raise ExtractError(
            shown,
            "neither an item_id nor a family column is present",
            "add item_id or family (or both); every capacity row names one of them",
            row=1,
        )


def _record_lines(text: str, delimiter: str, n_records: int) -> np.ndarray:
    """File line number of each record (header = 1).

    Fast path: every line after the header is one record. Otherwise (blank lines, quoted
    newlines) count lines with the csv module; only such unusual files pay for that.
    """
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if n_lines == n_records + 1:
        return np.arange(2, n_records + 2, dtype=np.int64)
    starts: list[int] = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    prev = 0
    try:
        for i, row in enumerate(reader):
            start = prev + 1
            prev = reader.line_num
            if i == 0 or not row or (len(row) == 1 and row[0] == ""):
                continue
            starts.append(start)
    except csv.Error:  # e.g. a field over the csv module's size limit: number the records
        return np.arange(2, n_records + 2, dtype=np.int64)
    if len(starts) != n_records:  # should not happen; fall back to record numbering
        return np.arange(2, n_records + 2, dtype=np.int64)
    return np.asarray(starts, dtype=np.int64)


def _read_csv(
    path: Path, raw: bytes, extract: Extract, dialect: Dialect
) -> tuple[dict[str, pa.Array], np.ndarray]:
    shown = display_path(path)
    enc = codecs.lookup(dialect.encoding).name
    unicode_enc = enc.startswith(("utf-8", "utf-16", "utf-32"))
    if raw.startswith(codecs.BOM_UTF8) and not enc.startswith(("utf-16", "utf-32")):
        raw = raw[len(codecs.BOM_UTF8) :]
        if not unicode_enc and not raw.isascii():
            # the BOM says UTF-8; decoding the rest as cp1252 & co would garble every umlaut
            raise ExtractError(
                shown,
                f"the file starts with a UTF-8 byte order mark but the declared encoding is "
                f"{dialect.encoding}; its non-ASCII text would be misread",
                f"declare encoding: utf-8 for {extract.name} in {_dialect_file(path)}, or "
                f"re-export the file as {dialect.encoding} without a byte order mark",
                row=1,
            )
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not enc.startswith(
        ("utf-16", "utf-32")
    ):
        raise ExtractError(
            shown,
            f"the file starts with a UTF-16 byte order mark but the declared encoding is "
            f"{dialect.encoding}",
            f"declare encoding: utf-16 for {extract.name} in {_dialect_file(path)}, or "
            f"re-export the file as {dialect.encoding}",
            row=1,
        )
    text = _decode(raw, path, extract, dialect)
    if enc in ("utf-8-sig", "utf-16", "utf-32") and text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise ExtractError(
            shown,
            "the file is empty (no header row, no data)",
            "re-export it with a header row; an optional extract with no rows should be left out of the folder",
        )
    header_text = text.split("\n", 1)[0].rstrip("\r")
    try:
        names = [n.strip() for n in next(csv.reader([header_text], delimiter=dialect.delimiter))]
    except csv.Error as exc:
        raise ExtractError(
            shown,
            f"the header row cannot be parsed ({exc})",
            "re-export the file with a plain header row of column names",
            row=1,
        ) from None
    _check_header(names, header_text, path, extract, dialect, is_csv=True)
    body = text.split("\n", 1)[1] if "\n" in text else ""
    if not body.strip():
        raise ExtractError(
            shown,
            "the file has a header but no data rows",
            "re-export it with its rows; an optional extract with no rows should be left out of the folder",
        )
    data = raw if enc == "utf-8" else text.encode("utf-8")
    invalid: list[tuple[str, int, int]] = []

    def on_invalid(row) -> str:
        invalid.append((row.text, row.expected_columns, row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=dialect.delimiter,
                newlines_in_values='"' in text,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ExtractError(
            shown,
            f"the CSV cannot be parsed ({str(exc).splitlines()[0]})",
            "check for an unbalanced quote or a line cut off while the file was written; re-export it",
        ) from None
    if invalid:
        text_row, expected, actual = invalid[0]
        lines = text.split("\n")
        first_line = text_row.split("\n", 1)[0].rstrip("\r")
        line_no = next(
            (i + 1 for i, ln in enumerate(lines) if i > 0 and ln.rstrip("\r") == first_line),
            None,
        )
        last = len(lines) - (1 if lines and lines[-1].strip() == "" else 0)
        spans = text_row.rstrip("\r\n").count("\n")
        truncated = line_no is not None and line_no + spans == last and actual < expected
        problem = f"the row has {actual} fields but the header has {expected}"
        if spans and text_row.count('"') % 2:
            problem += (
                f" (a quote opened in this row is not closed, so {spans + 1} lines were read "
                "as one row)"
            )
            fix = "close the quote or remove it, or re-export the file with proper CSV quoting"
        elif truncated:
            problem += " (the last line is truncated)"
            fix = "re-export the complete file; it was probably cut off while being written"
        else:
            fix = (
                f"quote values that contain the delimiter {dialect.delimiter!r}, or re-export the file "
                f"(and check the delimiter declared in {_dialect_file(path)})"
            )
        if len(invalid) > 1:
            problem += f"; {len(invalid) - 1} more row(s) have the wrong number of fields"
        raise ExtractError(shown, problem, fix, row=line_no)
    rows = _record_lines(text, dialect.delimiter, table.num_rows)
    return {n: table.column(n).combine_chunks() for n in names}, rows


def _to_text(arr: pa.Array) -> pa.Array:
    """A Parquet column as text in the ISO / dot-decimal form the parsers accept.

    Timestamps become the date written (a zoned timestamp: its local date), like a
    ``2026-10-31 23:59`` in a CSV date column.
    """
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            arr = pc.local_timestamp(arr)
        arr = pc.cast(arr, pa.date32(), safe=False)
        t = arr.type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_large_string(t):
        return pc.cast(arr, pa.string())
    return pc.cast(arr, pa.string())


def _read_parquet(path: Path, extract: Extract) -> tuple[dict[str, pa.Array], np.ndarray]:
    shown = display_path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ExtractError(
            shown, f"not a readable Parquet file ({str(exc).splitlines()[0]})", "re-export the file"
        ) from None
    names = [str(n) for n in table.column_names]
    _check_header(names, ",".join(names), path, extract, _PARQUET_DIALECT, is_csv=False)
    if table.num_rows == 0:
        raise ExtractError(
            shown,
            "the file has columns but no rows",
            "re-export it with its rows; an optional extract with no rows should be left out of the folder",
        )
    cols = {}
    for n in names:
        column = table.column(n)
        try:
            cols[n] = _to_text(column.combine_chunks())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ExtractError(
                shown,
                f"the Parquet type {column.type} cannot be read as this column "
                f"({str(exc).splitlines()[0]})",
                "write the column as text, a number, a date or a timestamp",
                row=1,
                column=n,
            ) from None
    return cols, np.arange(2, table.num_rows + 2, dtype=np.int64)


# --------------------------------------------------------------------------------------
# row level
# --------------------------------------------------------------------------------------


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


def _quoted(values: pd.Series) -> pd.Series:
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
            lambda t: _quoted(t) + " is not a whole number",
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
                    _quoted(t)
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
                    _quoted(t) + f" is not a number (declared decimal mark {dialect.decimal!r})"
                ),
                f"fix the extract or declare the decimal mark in {dialect_file}",
            )
        valid_text = pc.if_else(pa.array(ok), norm, pa.scalar(None, pa.string()))
        dec, too_big, too_precise = _decimal_cast(valid_text)
        flag(
            too_big,
            lambda t: (
                _quoted(t)
                + " does not fit DECIMAL(18,6) (at most 12 digits before the decimal mark)"
            ),
            "fix the value in the extract",
        )
        flag(
            too_precise,
            lambda t: (
                _quoted(t)
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
            lambda t: _quoted(t) + f" is not a date in the declared format {dialect.date_format}",
            f"fix the extract or declare its date_format in {dialect_file}",
        )
        flag(
            ((typed < MIN_PLAUSIBLE_DATE) | (typed >= latest)).to_numpy(),
            lambda t: (
                _quoted(t)
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
        lambda t: _quoted(t) + " is not a month (use YYYY-MM or the first day of the month)",
        "fix the value in the extract",
    )
    flag(
        nf,
        lambda t: _quoted(t) + " is a date but not the first day of a month",
        "write the month as YYYY-MM or as the first day of the month",
    )
    flag(
        ((typed < MIN_PLAUSIBLE_DATE) | (typed >= latest)).to_numpy(),
        lambda t: (
            _quoted(t)
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


def parse_extract(
    path: Path,
    extract: Extract,
    dialect: Dialect,
    *,
    extract_month: str,
    data: bytes | None = None,
) -> ParsedExtract:
    """Read one file and parse its columns (file-level checks, types, ranges of dates).

    Args:
        path: ``landing/<YYYY-MM>/<extract>.csv`` or ``.parquet``.
        extract: the contract entry of the file.
        dialect: the declared CSV dialect of this extract (ignored for Parquet).
        extract_month: ``YYYY-MM`` of the month folder.
        data: the file's bytes if the caller already read them.

    Returns:
        The parsed file; pass it to :func:`check_parsed` for the contract suite.

    Raises:
        ExtractError: the file as a whole cannot be read as this extract.
    """
    path = Path(path)
    try:
        raw = path.read_bytes() if data is None else data
    except OSError as exc:
        raise ExtractError(
            display_path(path),
            f"the file cannot be read ({exc.strerror or exc}; locked by another program, "
            "or not readable for this user)",
            "close it where it is open (Excel locks a workbook it has open), make it readable "
            "and run again",
        ) from None
    sha = hashlib.sha256(raw).hexdigest()
    notes: list[str] = []
    if path.suffix.lower() == ".parquet":
        cols, rows = _read_parquet(path, extract)
        dialect = _PARQUET_DIALECT
    elif path.suffix.lower() == ".xlsx":
        # the planner's workbook (sop export): its Overrides sheet, as text like a CSV
        from sop_pipeline.ingest.workbook import read_overrides_sheet

        if extract.name != "demand_overrides":
            raise ExtractError(
                display_path(path),
                f"{extract.name} cannot be an .xlsx workbook (only demand_overrides can)",
                f"export {extract.name} as .csv or .parquet",
            )
        cols, rows, notes = read_overrides_sheet(path, extract, display_path(path))
        dialect = _PARQUET_DIALECT  # cell values come back as ISO dates / dot decimals
    else:
        cols, rows = _read_csv(path, raw, extract, dialect)
    del raw
    n = len(rows)
    problems = _Problems()
    frame: dict[str, pd.Series] = {}
    gx_cols: dict[str, pd.Series] = {}
    texts: dict[str, _Text] = {}
    for col in extract.columns:
        arr = _clean(cols[col.name]) if col.name in cols else pa.nulls(n, pa.string())
        typed, for_gx = _parse_column(
            col, arr, rows, dialect, extract_month, problems, _dialect_file(path)
        )
        frame[col.name] = typed
        gx_cols[col.name] = for_gx
        texts[col.name] = _Text(arr, rows)
    typed_frame = pd.DataFrame(frame)
    typed_frame["_source_row"] = rows
    gx_frame = pd.DataFrame(gx_cols)
    gx_frame.index = rows
    return ParsedExtract(
        path, extract, extract_month, typed_frame, gx_frame, n, sha, texts, problems, notes
    )


# --------------------------------------------------------------------------------------
# the contract suite (Great Expectations), one run per batch of files
# --------------------------------------------------------------------------------------

_UNIQUE = ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique")


def _file_scoped_suite(suite: dict) -> tuple[dict, dict[str, tuple[str, ...]]]:
    """The suite for a frame that stacks several files: keys are unique *within a file*.

    Every other expectation is row by row and runs unchanged. A key-uniqueness expectation
    gets a leading scope column holding the file's number, so a key repeated in two files
    (a full snapshot every month, a restated order) is not a duplicate, and rows GX would
    ignore on one file are ignored here too: ``expect_column_values_to_be_unique`` ignores
    empty values (``ignore_row_if: any_value_is_missing``); the compound form ignores rows
    whose key is all empty by default, so its scope is empty on exactly those rows.

    Returns:
        (the suite, scope column → the key columns whose all-empty rows have no scope)
    """
    out = []
    scopes: dict[str, tuple[str, ...]] = {}
    for i, exp in enumerate(suite["expectations"]):
        kwargs = dict(exp.get("kwargs", {}))
        if exp["type"] not in _UNIQUE:
            out.append({"type": exp["type"], "kwargs": kwargs})
            continue
        scope = f"_file_scope_{i}"
        if exp["type"] == "expect_column_values_to_be_unique":
            key = (kwargs.pop("column"),)
            kwargs["ignore_row_if"] = "any_value_is_missing"
            scopes[scope] = ()
        else:
            key = tuple(kwargs["column_list"])
            rule = kwargs.get("ignore_row_if", "all_values_are_missing")
            scopes[scope] = key if rule == "all_values_are_missing" else ()
        kwargs["column_list"] = [scope, *key]
        out.append({"type": "expect_compound_columns_to_be_unique", "kwargs": kwargs})
    return {"name": suite["name"], "expectations": out}, scopes


def check_parsed(parsed: list[ParsedExtract]) -> list[ReadResult]:
    """Run the extract's GX suite once over all ``parsed`` files and finish their checks.

    The files must be of one extract. The typed frames are stacked with a file number, GX
    validates the stack in one run (GX costs ~0.1 s per run whatever the size, so one run
    per file dominated a first load), and each failing row is mapped back to its file and
    line. Key uniqueness stays per file (see :func:`_file_scoped_suite`). The result is the
    same as checking every file on its own.

    Args:
        parsed: files of one extract, from :func:`parse_extract`.

    Returns:
        One :class:`ReadResult` per file, in the same order.
    """
    if not parsed:
        return []
    extract = parsed[0].extract
    if any(p.extract.name != extract.name for p in parsed):
        raise ValueError("check_parsed: every file of a batch must be of the same extract")
    suite, scopes = _file_scoped_suite(extract_suite(extract.name))
    sizes = np.asarray([p.row_count for p in parsed], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    stacked = (
        pd.concat([p.gx_frame for p in parsed], ignore_index=True)
        if len(parsed) > 1
        else parsed[0].gx_frame.reset_index(drop=True)
    )
    file_no = np.repeat(np.arange(len(parsed), dtype=np.float64), sizes)
    for scope, key in scopes.items():
        col = file_no
        if key:
            all_empty = stacked[list(key)].isna().all(axis=1).to_numpy()
            col = np.where(all_empty, np.nan, file_no)
        stacked[scope] = col
    outcome = validate_dataframe(stacked, suite, index_limit=None)
    per_file: list[list[tuple[str, str | None, np.ndarray]]] = [[] for _ in parsed]
    for failure in outcome.failures:
        positions = np.asarray(failure.unexpected_index, dtype=np.int64)
        if len(positions) == 0:
            if failure.expectation != "expect_column_to_exist":
                raise RuntimeError(f"extract suite {extract.name}: {failure.message}")
            continue
        which = np.searchsorted(offsets, positions, side="right") - 1
        for i in np.unique(which):
            local = positions[which == i] - offsets[i]
            lines = parsed[i].frame["_source_row"].to_numpy()[local]
            per_file[i].append((failure.expectation, failure.column, lines))
    results = []
    for p, failures in zip(parsed, per_file, strict=True):
        _gx_problems(p, failures)
        _extract_rules(p)
        problem_list = p.problems.to_list()
        results.append(
            ReadResult(
                frame=p.frame,
                problems=problem_list,
                row_count=p.row_count,
                sha256=p.sha256,
                bad_rows={pr.row for pr in problem_list},
            )
        )
    return results


def _gx_problems(parsed: ParsedExtract, failures: list[tuple[str, str | None, np.ndarray]]) -> None:
    """Turn the GX failures of one file (expectation, column, line numbers) into RowProblems."""
    extract, frame, texts, problems = (
        parsed.extract,
        parsed.frame,
        parsed.texts,
        parsed.problems,
    )
    for expectation, column, rows in failures:
        if expectation in _UNIQUE:
            key = list(extract.key)
            dup_later = frame.duplicated(key, keep="first").to_numpy()
            rows = frame["_source_row"].to_numpy()[dup_later]
            if len(rows) == 0:
                continue
            sub = frame.loc[dup_later]
            first_row = frame.groupby(key, dropna=False, sort=False)["_source_row"].transform(
                "min"
            )[dup_later]
            key_text = sub[key[0]].astype(str)
            for k in key[1:]:
                key_text = key_text + ", " + sub[k].astype(str)
            reason = (
                f"duplicate key ({', '.join(key)}) = ("
                + key_text
                + "); the first row with this key is row "
                + first_row.astype(str)
            )
            problems.add(
                rows,
                ", ".join(key),
                key_text,
                reason,
                "keep one row per key in the extract (a restatement belongs in a later month's extract)",
            )
            continue
        text = texts[column].at_rows(rows) if column in texts else pd.Series([None] * len(rows))
        if expectation == "expect_column_values_to_not_be_null":
            problems.add(
                rows,
                column,
                text,
                "a value is required but the cell is empty",
                f"fill {column} in the source system (or drop the row from the extract)",
            )
        elif expectation == "expect_column_values_to_be_in_set":
            allowed = ", ".join(extract.column(column).allowed or ())
            problems.add(
                rows,
                column,
                text,
                _quoted(text) + f" is not an allowed {column} (allowed: {allowed})",
                "use one of the allowed codes in the extract",
            )
        elif expectation == "expect_column_values_to_be_between":
            col = extract.column(column)
            vals = parsed.gx_frame.loc[rows, column]
            below = (
                (vals < col.min_value).to_numpy()
                if col.min_value is not None
                else np.zeros(len(rows), bool)
            )
            reason = np.where(
                below,
                _quoted(text) + f" is below the minimum {col.min_value:g}",
                _quoted(text)
                + f" is above the maximum {col.max_value if col.max_value is None else f'{col.max_value:g}'}",
            )
            problems.add(
                rows, column, text, pd.Series(reason), "correct the value in the source system"
            )
        elif expectation == "expect_column_values_to_match_regex":
            problems.add(
                rows,
                column,
                text,
                _quoted(text) + " is not a quantity (120, -40) or a percent (+15%, -10%)",
                "write the adjustment as a quantity like 120 or -40, or a percent like +15% or -10%",
            )
        else:
            problems.add(
                rows,
                column,
                text,
                f"the value fails the contract check {expectation}",
                "fix the extract",
            )


def _extract_rules(parsed: ParsedExtract) -> None:
    """Rules GX cannot express on one column: two columns, or the extract month."""
    extract, frame, texts, problems = (
        parsed.extract,
        parsed.frame,
        parsed.texts,
        parsed.problems,
    )
    rows = frame["_source_row"].to_numpy()
    if extract.name == "sales_orders":
        not_return = frame["status"].notna() & (frame["status"] != "returned")
        for qty in ("qty_ordered", "qty_shipped"):
            neg = (frame[qty] < 0).fillna(False).astype(bool) & not_return
            neg = neg.to_numpy()
            if not neg.any():
                continue
            problems.add(
                rows[neg],
                qty,
                texts[qty][neg].reset_index(drop=True),
                "negative quantity "
                + texts[qty][neg].astype(str).reset_index(drop=True)
                + " on a line whose status is '"
                + frame.loc[neg, "status"].astype(str).reset_index(drop=True)
                + "'; only returns may be negative",
                "book the line with status returned, or correct the quantity in the source system",
            )
    if extract.name == "opportunities":
        neither = (frame["item_id"].isna() & frame["family"].isna()).to_numpy()
        problems.add(
            rows[neither],
            "item_id",
            [None] * int(neither.sum()),
            "neither item_id nor family is filled",
            "fill item_id or family for every opportunity",
        )
    if extract.name == "bom":
        bom_rules(frame, texts, problems.add)
    if extract.name == "supplier_capacity":
        supplier_capacity_rules(frame, problems.add)
    month = parse_month(parsed.extract_month)
    first = pd.Timestamp(month)
    after_end = pd.Timestamp(month_start(month, 1))
    for column in IN_EXTRACT_MONTH.get(extract.name, ()):
        before = (frame[column] < first).to_numpy()
        if before.any():
            text = texts[column][before]
            problems.add(
                rows[before],
                column,
                text,
                _quoted(text)
                + f" is before the extract month {parsed.extract_month} (stale extract: "
                "this snapshot is not the one taken at the month's close)",
                f"re-export {extract.name} with the snapshot of {parsed.extract_month}'s close",
            )
    for column in NOT_AFTER_EXTRACT_MONTH.get(extract.name, ()):
        future = (frame[column] >= after_end).to_numpy()
        if future.any():
            text = texts[column][future]
            problems.add(
                rows[future],
                column,
                text,
                _quoted(text) + f" is after the end of the extract month {parsed.extract_month} "
                f"({column} cannot be in the future of the extract)",
                "correct the date in the source system (or move the row to the extract of its month)",
            )


def read_extract(
    path: Path, extract: Extract, dialect: Dialect, *, extract_month: str
) -> ReadResult:
    """Read one extract file and check it against the contract.

    Args:
        path: ``landing/<YYYY-MM>/<extract>.csv`` or ``.parquet``.
        extract: the contract entry of the file.
        dialect: the declared CSV dialect of this extract (ignored for Parquet).
        extract_month: ``YYYY-MM`` of the month folder (for the date checks).

    Returns:
        The typed frame (every row, contract columns + ``_source_row``), the row problems,
        the row count and the file's sha256.

    Raises:
        ExtractError: the file as a whole cannot be read as this extract.
    """
    parsed = parse_extract(path, extract, dialect, extract_month=extract_month)
    return check_parsed([parsed])[0]
