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

import errno
import fcntl
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sop_pipeline.core.months import parse_month
from sop_pipeline.errors import InvalidInputError, OperationalError
from sop_pipeline.publish import dictionary
from sop_pipeline.publish.tables import (
    PLAN_TABLES,
    PLAN_VERSIONS_EXTRA,
    TABLES,
    TableSpec,
    conform,
)

DB_NAME = "sop.duckdb"
PARQUET_DIR = "parquet"
FILES_DIR = "files"
LOCK_NAME = ".publish.lock"
STAGING_PREFIX = ".staging-"
#: Oldest on-disk format DuckDB 1.5 can write; readable by every DuckDB ≥ 1.0 (header 64).
STORAGE_VERSION = "v1.0.0"
LOCK_TIMEOUT_SECONDS = 600.0

#: Read-only, no file access, no extension downloads, settings frozen (see docs/bi.md).
BI_CONFIG: dict[str, object] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

#: Test hook: called with the staging folder after the new file is built and audited, just
#: before the Parquet folders are renamed into place (tests kill the process here).
_before_swap: Callable[[Path], None] | None = None


class PublishError(OperationalError, RuntimeError):
    """The publication failed; the previous publication is unchanged."""


class AuditError(PublishError):
    """The staged database does not hold what was written; nothing was published."""


class PublishStorageError(PublishError):
    """The disk refused a write (full, read-only, no permission); nothing was published."""


class PublishDiskFullError(PublishStorageError):
    """No space left on the device holding ``published/`` (a retry may help once freed)."""


class PublishNotWritableError(PublishStorageError, InvalidInputError):
    """``published/`` is read-only or not writable for this user (retrying cannot help)."""


#: errno → what the disk said, for messages; the first group is "full", the rest "not writable".
_DISK_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
_NOT_WRITABLE = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_MESSAGE_ERRNO = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "read-only file system": errno.EROFS,
    "permission denied": errno.EACCES,
    "operation not permitted": errno.EPERM,
}


def _storage_error(
    exc: BaseException, published_dir: Path, plan_month: str, db_path: Path
) -> PublishStorageError | None:
    """A clear :class:`PublishStorageError` for a write the disk refused, else None.

    Python's file operations raise ``OSError`` with an errno; DuckDB (the database and the
    Parquet files) raises ``duckdb.IOException`` whose text carries the OS message.
    """
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None and isinstance(exc, duckdb.Error | OSError):  # pyarrow: OSError, no errno
        text = str(exc).lower()
        code = next((c for m, c in _MESSAGE_ERRNO.items() if m in text), None)
    if code not in _DISK_FULL and code not in _NOT_WRITABLE:
        return None
    where = getattr(exc, "filename", None) or published_dir
    detail = str(exc).splitlines()[0]
    unchanged = "Nothing was published; the previous publication is unchanged."
    again = f"then run `sop run --month {plan_month}` again."
    if code in _DISK_FULL:
        size_mb = db_path.stat().st_size / 1e6 if db_path.exists() else 0.0
        return PublishDiskFullError(
            f"publication of plan {plan_month} failed: {_DISK_FULL[code]} writing {where} "
            f"({detail}). {unchanged} Free space on the disk holding {published_dir} (a "
            f"publication writes a new copy of sop.duckdb beside the current {size_mb:.1f} MB "
            f"one, plus its Parquet files), {again}"
        )
    return PublishNotWritableError(
        f"publication of plan {plan_month} failed: {_NOT_WRITABLE[code]} writing {where} "
        f"({detail}). {unchanged} The pipeline needs write access to {published_dir} (BI "
        f"users need read access only): make it writable for the user running the pipeline "
        f"(or point SOP_HOME at a writable folder), {again}"
    )


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


def _q(name: str) -> str:
    """Quote an identifier (``month`` is a keyword in DuckDB)."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory so a rename survives a power cut, not only a kill."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _publish_lock(published_dir: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Exclusive lock on ``published/.publish.lock`` (released by the kernel if we die)."""
    lock_path = published_dir / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise PublishError(
                        f"another publication holds {lock_path} for more than {timeout:.0f} s; "
                        f"wait for it to finish (or end the stuck process) and run again."
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


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


def _select_new(spec: TableSpec, view: str, extras: list[str], types: dict[str, str]) -> str:
    """SELECT of a registered frame with stable columns cast to their published types."""
    cols = [f"CAST({_q(c)} AS {t}) AS {_q(c)}" for c, t in spec.columns]
    cols += [f"CAST({_q(c)} AS {types[c]}) AS {_q(c)}" if c in types else _q(c) for c in extras]
    return f"SELECT {', '.join(cols)} FROM {view}"


def _create_views(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """``<table>_current`` and ``<table>_latest_versions``, resolved via ``plan_versions``.

    Versions come from ``plan_versions`` (not the table) so a version that published zero
    rows for a table shows as empty rather than falling back to an older version.
    """
    t = _q(table)
    con.execute(
        f"""
        CREATE VIEW {_q(table + "_current")} AS
        SELECT * FROM {t}
        WHERE plan_month = (SELECT max(plan_month) FROM plan_versions)
          AND plan_version = (
            SELECT max(plan_version) FROM plan_versions
            WHERE plan_month = (SELECT max(plan_month) FROM plan_versions))
        """
    )
    con.execute(
        f"""
        CREATE VIEW {_q(table + "_latest_versions")} AS
        SELECT t.* FROM {t} AS t
        JOIN (SELECT plan_month, max(plan_version) AS plan_version
              FROM plan_versions GROUP BY plan_month) AS l
          ON t.plan_month = l.plan_month AND t.plan_version = l.plan_version
        """
    )
    create_approved_view(con, table)


def _comment_columns(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> None:
    """``COMMENT ON`` a table or view and each of its columns, from the data dictionary.

    A column without a description is left without a comment (``tests/test_dictionary.py``
    names it); the publication does not fail for a missing text.
    """
    base = dictionary.base_table(name)
    text = dictionary.table_description(base) if base == name else dictionary.view_description(name)
    con.execute(f"COMMENT ON {kind} {_q(name)} IS {_lit(text)}")
    columns = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = $t ORDER BY column_index",
        {"t": name},
    ).fetchall()
    for (column,) in columns:
        described = dictionary.column_description(base, column)
        if described:
            con.execute(f"COMMENT ON COLUMN {_q(name)}.{_q(column)} IS {_lit(described)}")


def _build(
    stage_db: Path,
    old_db: Path | None,
    frames: dict[str, pd.DataFrame],
) -> dict[str, tuple[int, int]]:
    """Build the staged database; return per table (rows of the new version, total rows)."""
    con = duckdb.connect()
    counts: dict[str, tuple[int, int]] = {}
    try:
        if old_db is not None:
            con.execute(f"ATTACH {_lit(str(old_db))} AS old (READ_ONLY)")
            old_tables = set(
                con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'old'")
                .fetchnumpy()["table_name"]
                .tolist()
            )
        else:
            old_tables = set()
        con.execute(
            f"ATTACH {_lit(str(stage_db))} AS pub (STORAGE_VERSION {_lit(STORAGE_VERSION)})"
        )
        for name, spec in TABLES.items():
            df = frames[name]
            view = f"new_{name}"
            con.register(view, df)
            extras = [c for c in df.columns if c not in spec.types]
            extra_types = dict(PLAN_VERSIONS_EXTRA) if name == "plan_versions" else {}
            new_sql = _select_new(spec, view, extras, extra_types)
            order = ", ".join(_q(c) for c in spec.sort_key)
            if name in old_tables:
                # BY NAME: an older publication may lack extra columns added since
                source = f"SELECT * FROM old.main.{_q(name)} UNION ALL BY NAME {new_sql}"
            else:
                source = new_sql
            con.execute(
                f"CREATE TABLE pub.main.{_q(name)} AS SELECT * FROM ({source}) ORDER BY {order}"
            )
            con.unregister(view)
            total = con.execute(f"SELECT count(*) FROM pub.main.{_q(name)}").fetchone()[0]
            counts[name] = (len(df), int(total))
        con.execute("USE pub")  # views bind names in the file's own catalog
        for name in TABLES:
            _comment_columns(con, name, "TABLE")
        for name in PLAN_TABLES:
            _create_views(con, name)
        # every view of a published table (_current, _latest_versions, _approved, ...)
        for (view,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = 'pub' AND NOT internal"
        ).fetchall():
            if dictionary.base_table(view) in TABLES:
                _comment_columns(con, view, "VIEW")
        con.execute("USE memory")
        if old_db is not None:
            con.execute("DETACH old")
        con.execute("CHECKPOINT pub")
        con.execute("DETACH pub")
    finally:
        con.close()
    return counts


def _write_parquet(
    stage_db: Path, stage_dir: Path, plan_month: str, plan_version: int
) -> dict[str, Path]:
    """Write the new version of every table as Parquet under the staging folder."""
    con = duckdb.connect()
    written: dict[str, Path] = {}
    try:
        con.execute(f"ATTACH {_lit(str(stage_db))} AS pub (READ_ONLY)")
        for name, spec in TABLES.items():
            rel = (
                Path(PARQUET_DIR)
                / name
                / f"plan_month={plan_month}"
                / f"plan_version={plan_version}"
            )
            target = stage_dir / rel
            target.mkdir(parents=True)
            order = ", ".join(_q(c) for c in spec.sort_key)
            table = con.execute(
                f"SELECT * FROM pub.main.{_q(name)} WHERE plan_month = {_lit(plan_month)} "
                f"AND plan_version = {int(plan_version)} ORDER BY {order}"
            ).to_arrow_table()
            pq.write_table(
                _with_descriptions(name, table), target / "part-0.parquet", compression="zstd"
            )
            _fsync_path(target / "part-0.parquet")
            written[name] = rel
    finally:
        con.close()
    return written


def _with_descriptions(name: str, table: pa.Table) -> pa.Table:
    """The table with the dictionary's texts as Parquet schema metadata.

    Each field carries ``description`` (what pyarrow, pandas and Spark show as the field's
    metadata); the file carries ``description`` (the table's purpose and grain) and
    ``sop_table``.
    """
    fields = []
    for field_ in table.schema:
        text = dictionary.column_description(name, field_.name)
        fields.append(field_.with_metadata({"description": text}) if text else field_)
    schema = pa.schema(
        fields,
        metadata={"description": dictionary.table_description(name), "sop_table": name},
    )
    return pa.Table.from_arrays(table.columns, schema=schema)


def _audit(
    stage_db: Path,
    stage_dir: Path,
    parquet: dict[str, Path],
    counts: dict[str, tuple[int, int]],
    plan_month: str,
    plan_version: int,
) -> None:
    """Reopen the staged file read-only and check it holds exactly what was written."""
    con = duckdb.connect()
    problems: list[str] = []
    try:
        con.execute(f"ATTACH {_lit(str(stage_db))} AS pub (READ_ONLY)")
        tag = con.execute(
            "SELECT tags FROM duckdb_databases() WHERE database_name = 'pub'"
        ).fetchone()[0]
        if not str(tag.get("storage_version", "")).startswith(STORAGE_VERSION):
            problems.append(
                f"storage version is {tag.get('storage_version')}, expected {STORAGE_VERSION}"
            )
        for name, (new_rows, total_rows) in counts.items():
            found_new, found_total = con.execute(
                f"SELECT count(*) FILTER (WHERE plan_month = $m AND plan_version = $v), count(*) "
                f"FROM pub.main.{_q(name)}",
                {"m": plan_month, "v": plan_version},
            ).fetchone()
            if (found_new, found_total) != (new_rows, total_rows):
                problems.append(
                    f"{name}: {found_new} rows of version {plan_version} and {found_total} in total, "
                    f"expected {new_rows} and {total_rows}"
                )
            path = stage_dir / parquet[name] / "part-0.parquet"
            in_parquet = con.execute(
                f"SELECT count(*) FROM read_parquet({_lit(str(path))})"
            ).fetchone()[0]
            if in_parquet != new_rows:
                problems.append(f"{name}: Parquet holds {in_parquet} rows, expected {new_rows}")
        for name in PLAN_TABLES:
            con.execute(f"SELECT count(*) FROM pub.main.{_q(name + '_current')}").fetchone()
        current = con.execute(
            "SELECT count(*) FROM pub.main.plan_versions WHERE plan_month = $m AND plan_version = $v",
            {"m": plan_month, "v": plan_version},
        ).fetchone()[0]
        if current != 1:
            problems.append(
                f"plan_versions holds {current} rows for {plan_month} v{plan_version}, expected 1"
            )
    except duckdb.Error as exc:
        problems.append(f"cannot read the staged file: {exc}")
    finally:
        con.close()
    if problems:
        raise AuditError(
            f"audit of the staged publication {stage_db} failed: {'; '.join(problems)}. Nothing "
            f"was published; the previous publication is unchanged."
        )


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


def bi_connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open a published DuckDB file the way a BI tool should: read-only and locked down.

    No file system access (``read_csv('/etc/passwd')``, ``COPY … TO``, ``ATTACH`` fail), no
    extension install/auto-load, settings cannot be changed back, no writes.

    Note: DuckDB caches one database instance per file within a Python process; close
    earlier connections to the file to see a newer publication from the same process.

    Args:
        path: ``published/sop.duckdb``.

    Returns:
        A read-only DuckDB connection.
    """
    return duckdb.connect(str(path), read_only=True, config=dict(BI_CONFIG))


def create_approved_view(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """``<table>_approved``: the rows of the approved version of every plan month.

    Called with the published file as the current catalog (the writer's ``USE pub``).
    A month without an approved version has no rows in the view.
    """
    q = _q
    con.execute(
        f"""
        CREATE OR REPLACE VIEW {q(table + "_approved")} AS
        SELECT t.* FROM {q(table)} AS t
        JOIN (SELECT plan_month, max(plan_version) AS plan_version
              FROM plan_versions WHERE status = 'approved' GROUP BY plan_month) AS a
          ON t.plan_month = a.plan_month AND t.plan_version = a.plan_version
        """
    )
    con.execute(
        f"COMMENT ON VIEW {q(table + '_approved')} IS "
        f"{_lit(f'{table} of the approved plan of every plan month (the official numbers).')}"
    )
