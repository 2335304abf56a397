"""Write-audit-publish of a plan into ``published/`` (DESIGN §5).

What BI reads:

- ``published/sop.duckdb``: every published version of every table, ``<table>_current``
  views (the latest plan version of the latest plan month), ``<table>_latest_versions``
  views (the latest version of every plan month) and ``<table>_approved`` views (the
  approved version of every plan month; decisions: ``publish/approval.py``, which rewrites
  the file with the same steps). Written with DuckDB storage version
  ``v1.0.0`` (``STORAGE_VERSION``) so BI tools bundling any DuckDB ≥ 1.0 can open it.
- ``published/parquet/<table>/plan_month=YYYY-MM/plan_version=N/part-0.parquet``.

How a publication stays all-or-nothing:

1. take an exclusive ``flock`` on ``published/.publish.lock`` (two publishers never
   interleave), delete ``.staging-*`` folders and Parquet version folders that a killed
   run left behind (not listed in the current file's ``plan_versions``);
2. build a complete NEW database in ``published/.staging-<run_id>/sop.duckdb``: the old
   file's rows (read-only) plus the new version, sorted by the grain;
3. write the new version's Parquet files under the staging folder;
4. audit: reopen the staged file read-only and compare row counts per table and version
   with what was written; check the ``plan_versions`` row and the Parquet row counts;
5. rename the new Parquet version folders into place (``plan_versions`` last, so a Parquet
   reader joining to it only sees complete versions); a new version folder never replaces
   an existing one;
6. ``os.replace`` the staged file over ``published/sop.duckdb`` (an atomic rename on the
   same filesystem), fsync the folder. This is the commit point.

A failure before step 6 removes what the run added and leaves the published files
byte-identical (a full disk or a read-only/unwritable ``published/`` is reported as
``PublishDiskFullError`` / ``PublishNotWritableError`` with the path and what to do); a kill before step 6 leaves the previous file complete (stale staging and
orphan Parquet folders are cleaned up by the next publication). Readers that hold the old
file open keep reading the old inode, new readers open the new file.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from sop_pipeline.core.months import parse_month
from sop_pipeline.publish.published_file import (
    DB_NAME,
    FILES_DIR,
    PARQUET_DIR,
    STAGING_PREFIX,
    PublishError,
    _fsync_path,
    _lit,
    _publish_lock,
    _q,
    _storage_error,
)
from sop_pipeline.publish.staging import _audit, _build, _write_parquet
from sop_pipeline.publish.tables import PLAN_TABLES, TABLES, conform

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

#: Test hook: called with the staging folder after the new file is built and audited, just
#: before the Parquet folders are renamed into place (tests kill the process here).
_before_swap: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class PublishResult:
    """Outcome of one publication.

    Attributes:
        plan_month: ``YYYY-MM``.
        plan_version: the version number given to this publication.
        path: the published DuckDB file.
        row_counts: rows written for this version, per table (``plan_versions`` included).
        seconds: wall time of the publication, lock wait included.
    """

    plan_month: str
    plan_version: int
    path: Path
    row_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _published_versions(db_path: Path) -> pd.DataFrame:
    """``plan_versions`` of the current published file (empty frame if there is none)."""
    if not db_path.exists():
        return pd.DataFrame(
            {"plan_month": pd.Series(dtype="string"), "plan_version": pd.Series(dtype="Int32")}
        )
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {_lit(str(db_path))} AS cur (READ_ONLY)")
        return con.execute(
            "SELECT plan_month, plan_version FROM cur.main.plan_versions ORDER BY 1, 2"
        ).df()
    except duckdb.Error as exc:
        raise PublishError(
            f"{db_path} cannot be read as a published plan ({exc}); restore it from a backup "
            f"or move it away to start a new publication history."
        ) from exc
    finally:
        con.close()


def _remove_leftovers(published_dir: Path, versions: pd.DataFrame) -> list[Path]:
    """Delete what a killed publication left: staging folders and orphan version folders.

    An orphan is a ``plan_month=…/plan_version=N`` folder that the published file's
    ``plan_versions`` does not list: its run died after renaming Parquet and before the
    DuckDB swap, so that version was never published.
    """
    removed: list[Path] = []
    for stale in sorted(published_dir.glob(f"{STAGING_PREFIX}*")):
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    known = {
        (str(m), int(v))
        for m, v in zip(versions["plan_month"], versions["plan_version"], strict=True)
    }
    for root in (published_dir / PARQUET_DIR, published_dir / FILES_DIR):
        if not root.is_dir():
            continue
        for version_dir in sorted(root.glob("**/plan_month=*/plan_version=*")):
            month = version_dir.parent.name.split("=", 1)[1]
            try:
                version = int(version_dir.name.split("=", 1)[1])
            except ValueError:
                continue
            if (month, version) not in known:
                shutil.rmtree(version_dir, ignore_errors=True)
                removed.append(version_dir)
    return removed


def _plan_versions_row(
    plan_month: str,
    plan_version: int,
    *,
    run_id: str,
    input_fingerprint: str,
    code_version: str,
    checks_passed: int,
    checks_failed: int,
    is_backfill: bool,
    base_currency: str = "USD",
) -> pd.DataFrame:
    published_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    row = pd.DataFrame(
        {
            "run_id": [run_id],
            "published_at": [pd.Timestamp(published_at)],
            "input_fingerprint": [input_fingerprint],
            "code_version": [code_version],
            "checks_passed": [int(checks_passed)],
            "checks_failed": [int(checks_failed)],
            "is_backfill": pd.Series([bool(is_backfill)], dtype="boolean"),
            # a new version awaits the executives' decision (publish/approval.py)
            "status": ["candidate"],
            "approved_by": [None],
            "approved_at": pd.Series([pd.NaT], dtype="datetime64[ns]"),
            "decision_note": [None],
            "chosen_scenario": [None],
            "base_currency": pd.Series([str(base_currency)], dtype="string"),
        }
    )
    return conform("plan_versions", row, plan_month, plan_version)


def _publish_locked(
    published_dir: Path,
    db_path: Path,
    plan_month: str,
    tables: dict[str, pd.DataFrame],
    *,
    run_id: str,
    input_fingerprint: str,
    code_version: str,
    checks_passed: int,
    checks_failed: int,
    is_backfill: bool,
    extra_files: dict[str, bytes] | None,
    base_currency: str = "USD",
) -> tuple[int, dict[str, tuple[int, int]]]:
    """Steps 1-6 of the module doc under the publication lock; see :func:`publish_plan`.

    Returns:
        The new plan version and, per table, (rows of the new version, total rows).
    """
    with _publish_lock(published_dir):
        versions = _published_versions(db_path)
        _remove_leftovers(published_dir, versions)
        same_month = versions.loc[versions["plan_month"] == plan_month, "plan_version"]
        plan_version = int(same_month.max()) + 1 if len(same_month) else 1

        frames: dict[str, pd.DataFrame] = {}
        for name in PLAN_TABLES:
            spec = TABLES[name]
            df = tables.get(name)
            if df is None:
                df = pd.DataFrame({c: pd.Series(dtype="object") for c in spec.column_names[2:]})
            frames[name] = conform(name, df, plan_month, plan_version)
        frames["plan_decisions"] = conform(
            "plan_decisions",
            pd.DataFrame(
                {c: pd.Series(dtype="object") for c in TABLES["plan_decisions"].column_names[2:]}
            ),
            plan_month,
            plan_version,
        )  # decisions of earlier versions are carried over from the old file by _build
        frames["plan_versions"] = _plan_versions_row(
            plan_month,
            plan_version,
            run_id=run_id,
            input_fingerprint=input_fingerprint,
            code_version=code_version,
            checks_passed=checks_passed,
            checks_failed=checks_failed,
            is_backfill=is_backfill,
            base_currency=base_currency,
        )

        stage_dir = published_dir / f"{STAGING_PREFIX}{run_id}"
        stage_dir.mkdir()
        stage_db = stage_dir / DB_NAME
        moved: list[Path] = []
        created_parents: list[Path] = []
        try:
            counts = _build(stage_db, db_path if db_path.exists() else None, frames)
            _fsync_path(stage_db)
            parquet = _write_parquet(stage_db, stage_dir, plan_month, plan_version)
            _audit(stage_db, stage_dir, parquet, counts, plan_month, plan_version)
            renames = [rel for name, rel in parquet.items() if name != "plan_versions"]
            if extra_files:
                rel_files = (
                    Path(FILES_DIR) / f"plan_month={plan_month}" / f"plan_version={plan_version}"
                )
                (stage_dir / rel_files).mkdir(parents=True)
                for fname, content in sorted(extra_files.items()):
                    (stage_dir / rel_files / fname).write_bytes(content)
                    _fsync_path(stage_dir / rel_files / fname)
                renames.append(rel_files)
            renames.append(parquet["plan_versions"])  # last: marks the Parquet version complete
            if _before_swap is not None:
                _before_swap(stage_dir)
            for rel in renames:
                target = published_dir / rel
                for parent in reversed(target.parents):
                    if (
                        parent != published_dir
                        and published_dir in parent.parents
                        and not parent.exists()
                    ):
                        parent.mkdir()
                        created_parents.append(parent)
                if target.exists():
                    raise PublishError(
                        f"{target} already exists; a published version is never overwritten."
                    )
                os.rename(stage_dir / rel, target)
                moved.append(target)
                _fsync_path(target.parent)
            os.replace(stage_db, db_path)  # the commit point
        except BaseException:
            for target in reversed(moved):
                shutil.rmtree(target, ignore_errors=True)
            for parent in reversed(created_parents):
                with suppress(OSError):
                    parent.rmdir()
            shutil.rmtree(stage_dir, ignore_errors=True)
            raise
        _fsync_path(published_dir)
        shutil.rmtree(stage_dir, ignore_errors=True)

    return plan_version, counts


def publish_plan(
    published_dir: Path,
    plan_month: str,
    tables: dict[str, pd.DataFrame],
    *,
    run_id: str,
    input_fingerprint: str,
    code_version: str,
    checks_passed: int,
    checks_failed: int,
    is_backfill: bool = False,
    extra_files: dict[str, bytes] | None = None,
    base_currency: str = "USD",
) -> PublishResult:
    """Publish a plan as the next version of its plan month, all at once or not at all.

    Args:
        published_dir: ``$SOP_HOME/published`` (created if missing).
        plan_month: ``YYYY-MM``.
        tables: published table name → frame with its stable columns (without
            ``plan_month``/``plan_version``; see ``tables.conform``). A plan table left
            out is published with zero rows for this version.
        run_id: the orchestrator's run id (also names the staging folder).
        input_fingerprint: hash of the inputs the plan was computed from.
        code_version: version of the code (package version / git commit).
        checks_passed: gate checks that passed.
        checks_failed: gate checks that failed (non-blocking ones, since the gate passed).
        is_backfill: the plan was produced by a backfill of a past month.
        extra_files: file name → bytes published with this version under
            ``published/files/plan_month=YYYY-MM/plan_version=N/`` (e.g. the report).
        base_currency: currency of every money column (``plan_versions.base_currency``).

    Returns:
        The plan month, the new version number, the DuckDB path, rows per table, seconds.

    Raises:
        PublishError: bad arguments, a lock held too long, or an unreadable published file.
        AuditError: the staged publication does not hold what was written.
        PublishDiskFullError: the disk holding ``published_dir`` is full (or over quota).
        PublishNotWritableError: ``published_dir`` is read-only or not writable.
        ConformError: a frame lacks stable columns or holds values of the wrong type.

    Whatever the error, nothing of this publication is left behind and the previous
    publication is byte-identical.
    """
    started = time.monotonic()
    parse_month(plan_month)
    unknown = sorted(set(tables) - set(PLAN_TABLES))
    if unknown:
        raise PublishError(
            f"unknown published table(s) {', '.join(unknown)}; publish only {', '.join(PLAN_TABLES)} "
            f"(plan_versions is written by the publisher)."
        )
    if not run_id or not _SAFE_NAME.match(run_id):
        raise PublishError(
            f"run_id {run_id!r} must be letters, digits, '.', '_' or '-' (it names a folder)."
        )
    for name in extra_files or {}:
        if not _SAFE_NAME.match(name):
            raise PublishError(f"extra file name {name!r} must be a plain file name (no folders).")
    published_dir = Path(published_dir)
    db_path = published_dir / DB_NAME
    try:
        published_dir.mkdir(parents=True, exist_ok=True)
        plan_version, counts = _publish_locked(
            published_dir,
            db_path,
            plan_month,
            tables,
            run_id=run_id,
            input_fingerprint=input_fingerprint,
            code_version=code_version,
            checks_passed=checks_passed,
            checks_failed=checks_failed,
            is_backfill=is_backfill,
            extra_files=extra_files,
            base_currency=base_currency,
        )
    except PublishError:
        raise
    except (OSError, duckdb.Error) as exc:
        storage = _storage_error(exc, published_dir, plan_month, db_path)
        if storage is None:
            raise
        raise storage from exc

    return PublishResult(
        plan_month=plan_month,
        plan_version=plan_version,
        path=db_path,
        row_counts={name: new for name, (new, _total) in counts.items()},
        seconds=round(time.monotonic() - started, 3),
    )


def read_published(
    published_dir: Path,
    table: str,
    plan_month: str | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """Read a published table from ``published/sop.duckdb``, read-only.

    Each call attaches the file afresh, so it always sees the latest publication (a
    ``duckdb.connect(path)`` in the same process could reuse a cached older instance).

    Args:
        published_dir: ``$SOP_HOME/published``.
        table: a table or view name (``plan_demand``, ``plan_demand_current``, ...).
        plan_month: only this plan month (``YYYY-MM``); None for all.
        version: only this plan version; None for all (with ``plan_month``: use the
            ``_latest_versions`` view for the latest one).

    Returns:
        The rows, sorted by the table's grain.

    Raises:
        PublishError: nothing is published yet, or the table does not exist.
    """
    db_path = Path(published_dir) / DB_NAME
    if not db_path.exists():
        raise PublishError(
            f"{db_path} does not exist; nothing has been published yet (run `sop run`)."
        )
    base = table.removesuffix("_current").removesuffix("_latest_versions").removesuffix("_approved")
    spec = TABLES.get(base)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {_lit(str(db_path))} AS pub (READ_ONLY)")
        names = set(
            con.execute(
                "SELECT table_name AS n FROM duckdb_tables() WHERE database_name = 'pub' "
                "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 'pub'"
            )
            .fetchnumpy()["n"]
            .tolist()
        )
        if table not in names:
            raise PublishError(
                f"{table!r} is not published in {db_path}; tables: {', '.join(sorted(names))}."
            )
        where, params = [], {}
        if plan_month is not None:
            where.append("plan_month = $m")
            params["m"] = plan_month
        if version is not None:
            where.append("plan_version = $v")
            params["v"] = int(version)
        sql = f"SELECT * FROM pub.main.{_q(table)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if spec is not None:
            sql += " ORDER BY " + ", ".join(_q(c) for c in spec.sort_key)
        return con.execute(sql, params).df()
    finally:
        con.close()
