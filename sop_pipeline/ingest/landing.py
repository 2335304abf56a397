"""The landing folder as the loader sees it.

The month folders a plan month may read, the files of one month (every required extract,
the ``_COMPLETE`` marker, the dialect and scenario files), and a file's sha256.

Internal to the loader (:mod:`sop_pipeline.ingest.loader`); :func:`check_landing` is the
preflight check of ``sop run``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sop_pipeline.core.months import month_range
from sop_pipeline.ingest.contract import (
    COMPLETE_MARKER,
    DIALECT_FILE,
    EXTRACTS,
    REQUIRED_EXTRACTS,
    SCENARIOS_FILE,
)
from sop_pipeline.ingest.problems import IngestError, display_path

_MONTH_DIR_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


# --------------------------------------------------------------------------------------
# landing folder structure
# --------------------------------------------------------------------------------------


def _month_folders(landing_dir: Path, plan_month: str) -> list[str]:
    """Month folders ``<= plan_month``; bad names, gaps or a missing plan month raise."""
    if not landing_dir.is_dir():
        raise IngestError(
            f"{landing_dir}: the landing folder does not exist; run `sop generate` or point "
            "SOP_HOME at the folder holding landing/."
        )
    names = sorted(
        p.name for p in landing_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )
    bad = [n for n in names if not _MONTH_DIR_RE.match(n)]
    if bad:
        raise IngestError(
            f"{landing_dir.name}/{bad[0]}: folder name is not a month; the landing folder holds one "
            "folder per extract month named YYYY-MM (e.g. 2026-10); rename or move it."
        )
    months = [n for n in names if n <= plan_month]
    if not months:
        raise IngestError(
            f"{landing_dir.name}/: no month folder at or before the plan month {plan_month}; "
            f"add {landing_dir.name}/{plan_month}/ with that month's extracts."
        )
    expected = month_range(months[0], plan_month)
    missing = sorted(set(expected) - set(months))
    if missing:
        what = (
            "the plan month's folder" if missing == [plan_month] else "a gap in the month folders"
        )
        raise IngestError(
            f"{landing_dir.name}/{missing[0]}: missing ({what}: folders run from {months[0]} to "
            f"{months[-1]} but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} absent); "
            "add the missing month's extracts (point in time needs every month)."
        )
    return months


def check_landing(landing_dir: Path, plan_month: str) -> None:
    """Check the landing folder's structure for ``plan_month`` without reading a file.

    The checks the load makes first (month folder names, no gap up to the plan month, each
    month's required extracts present once): ``sop run`` calls this before a Dagster run
    starts, so a missing file does not leave a failed run behind.

    Raises:
        IngestError: what is missing or misnamed, and how to fix it.
    """
    landing_dir = Path(landing_dir)
    for month in _month_folders(landing_dir, plan_month):
        _month_files(landing_dir, month)


def _month_files(landing_dir: Path, month: str) -> tuple[dict[str, Path], Path | None]:
    """Extract → file of one month folder (+ scenarios.yaml); missing/doubled files raise."""
    folder = landing_dir / month
    found: dict[str, list[Path]] = {}
    scenarios = None
    for path in sorted(folder.iterdir()):
        if (
            path.name.startswith(".")
            or path.name in (COMPLETE_MARKER, DIALECT_FILE)
            or path.is_dir()
        ):
            continue
        if path.name == SCENARIOS_FILE:
            scenarios = path
            continue
        suffix = path.suffix.lower()
        if suffix == ".xlsx" and path.name.startswith("~$"):
            raise IngestError(
                f"{landing_dir.name}/{month}/{path.name}: Excel's lock file, so "
                f"{path.name[2:]} is open in Excel and may not be saved yet; save and close it "
                "(or delete the lock file if Excel is not running), then run again."
            )
        if suffix == ".xlsx" and path.stem == "demand_overrides":
            suffix = ".csv"  # the planner's workbook (sop export): read like the CSV
        if suffix not in (".csv", ".parquet"):
            continue  # notes, READMEs: not ours to judge
        if path.stem not in EXTRACTS:
            raise IngestError(
                f"{landing_dir.name}/{month}/{path.name}: not an extract of the contract; expected "
                f"one of {', '.join(EXTRACTS)} (.csv or .parquet); rename or remove the file."
            )
        found.setdefault(path.stem, []).append(path)
    for name, paths in found.items():
        if len(paths) > 1:
            raise IngestError(
                f"{landing_dir.name}/{month}: {name} is there as both "
                f"{' and '.join(p.name for p in paths)}; keep one of them."
            )
    missing = [n for n in REQUIRED_EXTRACTS if n not in found]
    if missing:
        raise IngestError(
            f"{landing_dir.name}/{month}: required extract(s) {', '.join(missing)} missing "
            f"(expected {missing[0]}.csv or {missing[0]}.parquet); add the file(s) from the source system."
        )
    return {n: p[0] for n, p in found.items()}, scenarios


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise IngestError(
            f"{display_path(path)}: the file cannot be read ({exc.strerror or exc}; locked by "
            "another program, or not readable for this user); close it where it is open (Excel "
            "locks a workbook it has open), make it readable and run again."
        ) from None
    return digest.hexdigest()
