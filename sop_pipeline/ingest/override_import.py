"""``sop import-overrides FILE --month M``: a filled planner's workbook → ``landing/M/demand_overrides.csv``.

The Overrides sheet is read by :mod:`sop_pipeline.ingest.workbook` and checked by the same
contract code as the landing file (:mod:`sop_pipeline.ingest.reader`); the scopes must be
items or families of the month's latest ``items`` extract. Nothing is written when a row
is wrong.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from sop_pipeline.errors import InvalidInputError
from sop_pipeline.ingest.checks import check_parsed
from sop_pipeline.ingest.contract import EXTRACTS
from sop_pipeline.ingest.dialect import Dialect, load_dialect
from sop_pipeline.ingest.problems import ExtractError
from sop_pipeline.ingest.reader import parse_extract, read_extract
from sop_pipeline.ingest.workbook import sheet_label


class WorkbookReadError(InvalidInputError, RuntimeError):
    """``sop import-overrides`` refused a workbook: a headline and one line per problem."""

    def __init__(self, headline: str, lines: list[str], exit_code: int = 1):
        self.headline = headline
        self.lines = lines
        self.exit_code = exit_code
        super().__init__("\n".join([headline, *lines]))


@dataclass
class ImportResult:
    """What :func:`import_overrides` wrote."""

    path: Path
    rows: int
    kept: int = 0
    notes: list[str] = field(default_factory=list)


def _known_scopes(landing_dir: Path, month: str) -> tuple[set[str] | None, str]:
    """item_ids and families of the latest items extract at or before ``month``."""
    folders = sorted(
        p
        for p in landing_dir.glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]")
        if p.is_dir() and p.name <= month
    )
    for folder in reversed(folders):
        for suffix in (".csv", ".parquet"):
            items = folder / f"items{suffix}"
            if items.exists():
                try:
                    res = read_extract(
                        items,
                        EXTRACTS["items"],
                        load_dialect(landing_dir).for_extract("items"),
                        extract_month=folder.name,
                    )
                except (ExtractError, OSError, ValueError):
                    return None, ""
                frame = res.frame
                known = set(frame["item_id"].dropna().astype(str)) | set(
                    frame["family"].dropna().astype(str)
                )
                return known, f"{folder.name}/{items.name}"
    return None, ""


def import_overrides(settings, file: Path, month: str) -> ImportResult:
    """Check a filled workbook and write it as ``landing/<month>/demand_overrides.csv``.

    The Overrides sheet is read and checked like the landing file would be (contract types,
    the adjustment pattern, the key, scopes in the latest ``items`` extract at or before
    the month). Overrides already in that CSV whose key (scope, month, reason_code) the
    workbook does not repeat are kept; the workbook's rows replace the others.

    Raises:
        WorkbookReadError: the file is missing (exit 2), unreadable or has bad rows (exit 1);
            nothing is written then.
    """
    file = Path(file)
    shown = str(file)
    if not file.is_file():
        raise WorkbookReadError(
            f"{shown}: no such file", ["give the path of the filled workbook"], 2
        )
    if file.suffix.lower() != ".xlsx":
        raise WorkbookReadError(
            f"{shown}: not an .xlsx workbook",
            ["give the workbook `sop export` wrote, filled in"],
            2,
        )
    extract = EXTRACTS["demand_overrides"]
    folder = Path(settings.landing_dir) / month
    if not folder.is_dir():
        raise WorkbookReadError(
            f"landing/{month}: no such month folder",
            [f"the month's extracts must be in {folder} first (sop generate / the ERP export)"],
            2,
        )
    if (folder / "demand_overrides.xlsx").exists():
        raise WorkbookReadError(
            f"landing/{month}/demand_overrides.xlsx is there already",
            ["the pipeline reads it as it is; remove it to import a workbook as CSV instead"],
            1,
        )
    try:
        parsed = parse_extract(file, extract, Dialect(), extract_month=month)
    except ExtractError as exc:
        raise WorkbookReadError(f"{file.name} was not imported", [str(exc)]) from None
    result = check_parsed([parsed])[0]
    problems = list(result.problems)
    known, items_file = _known_scopes(Path(settings.landing_dir), month)
    notes = list(parsed.notes)
    lines = [p.describe(sheet_label(shown)) for p in problems]
    if known is not None:
        frame = result.frame
        for scope, row in zip(frame["scope"], frame["_source_row"], strict=True):
            if scope is not None and str(scope) not in known:
                lines.append(
                    f"{sheet_label(shown)} row {row}, column scope: '{scope}' is neither an item_id "
                    f"nor a family in landing/{items_file}; use an item_id or a family name of the "
                    "items extract"
                )
    else:
        notes.append(f"no items extract at or before {month}: scopes not checked")
    if lines:
        raise WorkbookReadError(
            f"{file.name} was not imported: {len(lines)} problem(s), nothing was written", lines
        )
    texts = {c: parsed.texts[c].arr.to_pylist() for c in extract.column_names}
    new_rows = [dict(zip(texts, vals, strict=True)) for vals in zip(*texts.values(), strict=True)]
    target = folder / "demand_overrides.csv"
    kept_rows: list[dict] = []
    if target.exists():
        with target.open(newline="", encoding="utf-8") as fh:
            old = list(csv.DictReader(fh))
        keys = {(r["scope"], _month_key(r["month"]), r["reason_code"]) for r in new_rows}
        kept_rows = [
            r
            for r in old
            if (r.get("scope"), _month_key(r.get("month", "")), r.get("reason_code")) not in keys
        ]
        if kept_rows:
            notes.append(f"kept {len(kept_rows)} override(s) already in {target.name}")
    buf = io.StringIO()
    out = csv.DictWriter(
        buf, fieldnames=extract.column_names, lineterminator="\n", extrasaction="ignore"
    )
    out.writeheader()
    for r in kept_rows + new_rows:
        out.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in extract.column_names})
    tmp = folder / ".demand_overrides.csv.tmp"
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, target)
    return ImportResult(path=target, rows=len(new_rows), kept=len(kept_rows), notes=notes)


def _month_key(text: str | None) -> str:
    return (text or "").strip()[:7]
