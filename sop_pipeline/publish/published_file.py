"""The published folder's layout, its errors, and the primitives every writer of it uses.

The layout: ``sop.duckdb``, ``parquet/``, ``files/``, the lock and the staging folders. The
primitives: SQL quoting, fsync, the publication lock, the ``<table>_approved`` views and the
read-only BI connection.

Shared by :mod:`sop_pipeline.publish.writer` (publication) and
:mod:`sop_pipeline.publish.approval` (decisions), which rewrite the file with the same steps.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from sop_pipeline.errors import InvalidInputError, OperationalError
from sop_pipeline.storage.runlock import try_flock

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


def _q(name: str) -> str:
    """Quote an identifier (``month`` is a keyword in DuckDB)."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _fsync_path(path: Path) -> None:
    """Flush (fsync) a file or a directory so a rename survives a power cut, not only a kill."""
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
        while not try_flock(fd):
            if time.monotonic() > deadline:
                raise PublishError(
                    f"another publication holds {lock_path} for more than {timeout:.0f} s; "
                    f"wait for it to finish (or end the stuck process) and run again."
                )
            time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


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
