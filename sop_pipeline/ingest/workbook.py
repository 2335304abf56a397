"""``demand_overrides.xlsx``: the Overrides sheet of the planner's workbook as an extract.

The workbook ``sop export`` writes (:mod:`sop_pipeline.report.workbook`) comes back with
the ``adjustment`` column filled. :func:`read_overrides_sheet` turns its Overrides sheet
into the same text columns a ``demand_overrides.csv`` gives the reader, so the extract is
checked by the same contract code (types, the adjustment pattern, the key, the GX suite,
scopes known in ``items``) and errors name the sheet, the Excel row and the column.

- Only rows with a filled ``adjustment`` are overrides; the pre-filled rows the planner
  left empty are skipped. Row numbers are the Excel row numbers (header = row 1).
- Reference columns (family, stat and consensus quantities) are ignored, and so are the
  other sheets (a note says so: edits there are not read back).
- A number typed in a percent-formatted cell (Excel stores ``-10%`` as ``-0.1``) is read
  back as ``-10%``; a month Excel turned into a date is read as that month.
- A corrupt, truncated, password-protected or unreadable (locked) file is one clear
  :class:`~sop_pipeline.ingest.problems.ExtractError`; nothing of it loads.

:func:`sop_pipeline.ingest.override_import.import_overrides` (``sop import-overrides FILE
--month M``) checks a workbook the same way and writes ``landing/M/demand_overrides.csv``.
"""

from __future__ import annotations

import zipfile
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from sop_pipeline.ingest.contract import Extract
from sop_pipeline.ingest.problems import ExtractError

SHEET = "Overrides"
#: Reference columns the export writes beside the contract columns (not read back).
REFERENCE_COLUMNS = ("family", "stat_forecast_qty (units)", "consensus_qty (units)")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def sheet_label(shown: str) -> str:
    """``landing/2026-07/demand_overrides.xlsx`` → ``…xlsx, sheet Overrides`` (for messages)."""
    return f"{shown}, sheet {SHEET}"


def _open(path: Path, shown: str):
    """The workbook, read-only, or a clear ExtractError."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        head = path.read_bytes()[:8]
    except PermissionError:
        raise ExtractError(
            shown,
            "the workbook cannot be opened: permission denied (locked by another program, "
            "or not readable for this user)",
            "close it in Excel (or wherever it is open), make it readable and run again",
        ) from None
    except OSError as exc:
        raise ExtractError(
            shown, f"the workbook cannot be read ({exc.strerror or exc})", "copy it again"
        ) from None
    if head == _OLE_MAGIC:
        raise ExtractError(
            shown,
            "the file is a password-protected workbook or an old .xls file, not a plain .xlsx",
            "open it in Excel, remove the password (File → Info → Protect Workbook) and save it "
            "as 'Excel Workbook (*.xlsx)'",
        )
    try:
        return load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise ExtractError(
            shown,
            f"not a readable .xlsx workbook ({type(exc).__name__}: {str(exc)[:120]}); the file "
            "is corrupt or was cut off while being saved or copied",
            "save the workbook again from Excel (File → Save As → Excel Workbook) and copy it again",
        ) from None


def _text(value, number_format: str | None) -> str | None:
    """A cell's value as the text a CSV would hold."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, int | float):
        if number_format and "%" in number_format:
            pct = round(float(value) * 100, 6)
            return f"{pct:+g}%"
        number = round(float(value), 6)
        return f"{int(number)}" if number.is_integer() else f"{number:.6f}".rstrip("0")
    return str(value).strip() or None


def read_overrides_sheet(
    path: Path, extract: Extract, shown: str
) -> tuple[dict[str, pa.Array], np.ndarray, list[str]]:
    """The contract columns of the Overrides sheet as text, for the extract reader.

    Args:
        path: the workbook.
        extract: the ``demand_overrides`` contract entry.
        shown: the file as shown to the user (``landing/2026-07/demand_overrides.xlsx``).

    Returns:
        Column name → text array of the rows with an adjustment, their Excel row numbers,
        and notes (ignored sheets and columns).

    Raises:
        ExtractError: the file cannot be read, has no Overrides sheet, lacks a contract
            column, or has no filled adjustment.
    """
    where = sheet_label(shown)
    wb = _open(path, shown)
    try:
        names = list(wb.sheetnames)
        if SHEET not in names:
            near = [n for n in names if n.strip().lower() == SHEET.lower()]
            hint = (
                f"rename the sheet {near[0]!r} to {SHEET!r}"
                if near
                else f"fill the {SHEET} sheet of the workbook `sop export` writes (keep its name)"
            )
            raise ExtractError(
                shown,
                f"the workbook has no sheet named {SHEET!r} (sheets: {', '.join(names)})",
                hint,
            )
        ws = wb[SHEET]
        rows_iter = ws.iter_rows()
        header_cells = next(rows_iter, ())
        header = [_text(c.value, None) for c in header_cells]
        header = [h.lower() if h else None for h in header]
        position: dict[str, int] = {}
        for i, h in enumerate(header):
            if h is None:
                continue
            if h in position and h in extract.column_names:
                raise ExtractError(
                    where, f"column {h!r} appears twice in the header", "keep one of them", row=1
                )
            position.setdefault(h, i)
        missing = [
            c.name
            for c in extract.columns
            if c.name not in position and c.required and not c.optional_column
        ]
        if missing:
            raise ExtractError(
                where,
                f"the header (row 1) lacks the column(s) {', '.join(missing)} "
                f"(found: {', '.join(h for h in header if h) or 'nothing'})",
                "use the Overrides sheet `sop export` writes, without renaming or deleting its columns",
                row=1,
            )
        values: dict[str, list[str | None]] = {c.name: [] for c in extract.columns}
        rows: list[int] = []
        adj = position["adjustment"]
        for excel_row, cells in enumerate(rows_iter, start=2):
            if adj >= len(cells):
                continue
            cell = cells[adj]
            if _text(cell.value, getattr(cell, "number_format", None)) is None:
                continue  # a pre-filled row the planner did not change
            rows.append(excel_row)
            for col in extract.columns:
                i = position.get(col.name)
                c = cells[i] if i is not None and i < len(cells) else None
                values[col.name].append(
                    None if c is None else _text(c.value, getattr(c, "number_format", None))
                )
        if not rows:
            raise ExtractError(
                where,
                "no row has a filled adjustment, so the workbook holds no override",
                "fill the adjustment column of the rows to change, or remove the workbook from "
                "the folder",
            )
    finally:
        wb.close()
    notes = []
    others = [n for n in names if n != SHEET]
    if others:
        notes.append(
            f"{shown}: only the {SHEET} sheet is read; edits of the other sheets "
            f"({', '.join(others)}) are ignored"
        )
    unknown = [
        h for h in header if h and h not in extract.column_names and h not in REFERENCE_COLUMNS
    ]
    if unknown:
        notes.append(
            f"{where}: column(s) {', '.join(unknown)} are not part of the contract, ignored"
        )
    cols = {name: pa.array(v, type=pa.string()) for name, v in values.items()}
    return cols, np.asarray(rows, dtype=np.int64), notes
