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

The steps live in their own modules; this one chains them: :mod:`.files` (bytes → text
columns), :mod:`.parsing` (text → typed columns), :mod:`.checks` (the contract suite and
rules, :func:`~sop_pipeline.ingest.checks.check_parsed`), :mod:`.problems` (what they
report).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sop_pipeline.ingest.checks import check_parsed
from sop_pipeline.ingest.contract import Extract
from sop_pipeline.ingest.dialect import Dialect
from sop_pipeline.ingest.files import PARQUET_DIALECT, read_csv_columns, read_parquet_columns
from sop_pipeline.ingest.parsing import ParsedExtract, parse_columns
from sop_pipeline.ingest.problems import ExtractError, ReadResult, dialect_file_of, display_path
from sop_pipeline.ingest.workbook import read_overrides_sheet


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
        cols, rows = read_parquet_columns(path, extract)
        dialect = PARQUET_DIALECT
    elif path.suffix.lower() == ".xlsx":
        # the planner's workbook (sop export): its Overrides sheet, as text like a CSV
        if extract.name != "demand_overrides":
            raise ExtractError(
                display_path(path),
                f"{extract.name} cannot be an .xlsx workbook (only demand_overrides can)",
                f"export {extract.name} as .csv or .parquet",
            )
        cols, rows, notes = read_overrides_sheet(path, extract, display_path(path))
        dialect = PARQUET_DIALECT  # cell values come back as ISO dates / dot decimals
    else:
        cols, rows = read_csv_columns(path, raw, extract, dialect)
    del raw
    typed_frame, gx_frame, texts, problems = parse_columns(
        cols, rows, extract, dialect, extract_month, dialect_file_of(path)
    )
    return ParsedExtract(
        path, extract, extract_month, typed_frame, gx_frame, len(rows), sha, texts, problems, notes
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
