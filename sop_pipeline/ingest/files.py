"""File level of the extract reader: bytes → one text array per contract column.

Decoding with the declared encoding, the header against the contract, CSV records with
their file line numbers (header = line 1), and Parquet columns turned into the same text
(row ``i`` is numbered ``i + 2``). A file that cannot be read as its extract raises
:class:`~sop_pipeline.ingest.problems.ExtractError`.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sop_pipeline.ingest.contract import Extract
from sop_pipeline.ingest.dialect import Dialect
from sop_pipeline.ingest.problems import ExtractError, dialect_file_of, display_path

PARQUET_DIALECT = Dialect()  # Parquet carries its own types; text values are ISO / dot decimals


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
            f"{dialect_file_of(path)} (e.g. extracts: {{{extract.name}: {{encoding: cp1252}}}})",
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
            f"declare the file's delimiter in {dialect_file_of(path)} "
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


def read_csv_columns(
    path: Path, raw: bytes, extract: Extract, dialect: Dialect
) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Decode and parse a CSV file into text columns, and the file line number of each row."""
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
                f"declare encoding: utf-8 for {extract.name} in {dialect_file_of(path)}, or "
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
            f"declare encoding: utf-16 for {extract.name} in {dialect_file_of(path)}, or "
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
                f"(and check the delimiter declared in {dialect_file_of(path)})"
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


def read_parquet_columns(path: Path, extract: Extract) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Read a Parquet file into text columns, and the row numbers a CSV would have."""
    shown = display_path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ExtractError(
            shown, f"not a readable Parquet file ({str(exc).splitlines()[0]})", "re-export the file"
        ) from None
    names = [str(n) for n in table.column_names]
    _check_header(names, ",".join(names), path, extract, PARQUET_DIALECT, is_csv=False)
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
