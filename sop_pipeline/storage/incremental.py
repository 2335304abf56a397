"""Incremental runs: the bookkeeping that lets an expensive stage skip work it already did.

This module only computes hashes and keeps records; the stage's asset decides, logs and reports
the reuse (``defs/demand/assets.py`` for ``stat_forecast``, whose fingerprint is
``planning/statistical.py``'s; ``defs/clean/builds.py`` for dbt).

- :func:`fingerprint` hashes what decides a stage's result: named input frames
  (:func:`frame_digest`: columns, dtypes, row count and values, row order included), a mapping
  of settings and tool versions, and a code version string: :func:`source_hash` of Python
  modules' source, or :func:`files_digest` of files (the dbt project).
- :func:`record` keeps one row per stage and plan month in ``plan._stage_versions``: the
  fingerprint, the code version, the run id, when, the metadata to report again, and the
  **row count** of each table the stage wrote. The caller records after writing its tables and
  calls :func:`forget` before rewriting them, so a run killed in between leaves no record
  (for a plan stage the IO manager does both: ``storage/plan_tables.py::write_plan_tables``).
- :func:`find_reusable` returns that record only when the fingerprint is the same and every
  recorded table still has exactly the recorded row count (:func:`tables_rows`: a plain name is
  a ``plan`` table counted for the plan month; ``schema.name`` is a whole table of another
  schema, e.g. the dbt marts, which hold one month at a time); otherwise None.

The fingerprint also becomes the ``stat_forecast`` asset's Dagster ``DataVersion``. Nothing here
sets a Dagster code version: the code version is only the ``code_version`` column of the record.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from sop_pipeline.storage.warehouse import PLAN_SCHEMA, check_name, table_exists

VERSIONS_TABLE = "_stage_versions"


@cache
def source_hash(*modules: str) -> str:
    """16 hex digits of a hash of the source of ``modules`` (dotted names).

    Any edit to the code that computes a stage gives a new version, so results computed by
    older code are never reused. A package counts with every module in it (its ``__init__``
    and all its submodules, at any depth), so a module added to the package is covered too.
    """
    digest = hashlib.sha256()
    for name in sorted(modules):
        for part in _package_modules(name):
            digest.update(part.encode())
            digest.update(inspect.getsource(importlib.import_module(part)).encode())
    return digest.hexdigest()[:16]


def _package_modules(name: str) -> list[str]:
    """``name`` itself, then, for a package, the dotted names of all its submodules (sorted)."""
    module = importlib.import_module(name)
    if not hasattr(module, "__path__"):
        return [name]
    found = pkgutil.walk_packages(module.__path__, prefix=f"{name}.")
    return [name, *sorted(info.name for info in found)]


def frame_digest(df: pd.DataFrame) -> str:
    """Hash of a frame's columns, dtypes and values (row order included)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    digest.update(str(len(df)).encode())
    if len(df):
        digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def fingerprint(frames: Mapping[str, pd.DataFrame], settings: Mapping[str, Any], code: str) -> str:
    """One fingerprint over named input frames, settings values and a source hash."""
    digest = hashlib.sha256()
    for name in sorted(frames):
        digest.update(name.encode())
        digest.update(frame_digest(frames[name]).encode())
    digest.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    digest.update(code.encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Reuse:
    """A previous run's result that may stand for this one."""

    run_id: str
    computed_at: str
    tables: dict[str, int]
    metadata: dict[str, Any]


def _ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {PLAN_SCHEMA}")
    con.execute(
        f"""
        create table if not exists {PLAN_SCHEMA}.{VERSIONS_TABLE} (
            stage varchar, plan_month varchar, fingerprint varchar, code_version varchar,
            run_id varchar, computed_at varchar, tables varchar, metadata varchar,
            primary key (stage, plan_month)
        )
        """
    )


def find_reusable(
    con: duckdb.DuckDBPyConnection, stage: str, plan_month: str, fp: str
) -> Reuse | None:
    """The earlier result of ``stage`` for ``plan_month`` that can be reused, else None.

    It can be reused if it had fingerprint ``fp`` and every table it wrote still holds the
    month's rows.
    """
    return _find(con, stage, plan_month, fp)


def find_record(con: duckdb.DuckDBPyConnection, stage: str, plan_month: str) -> Reuse | None:
    """The earlier result of ``stage`` for ``plan_month`` whatever its fingerprint, else None.

    Found if every table it wrote still holds the month's rows (a stage that can redo part of
    its work reads from its metadata what it was computed from).
    """
    return _find(con, stage, plan_month)


def _find(
    con: duckdb.DuckDBPyConnection, stage: str, plan_month: str, fp: str | None = None
) -> Reuse | None:
    check_name(stage, "stage")
    if not table_exists(con, PLAN_SCHEMA, VERSIONS_TABLE):
        return None
    row = con.execute(
        f"select fingerprint, run_id, computed_at, tables, metadata "
        f"from {PLAN_SCHEMA}.{VERSIONS_TABLE} where stage = ? and plan_month = ?",
        [stage, plan_month],
    ).fetchone()
    if row is None or (fp is not None and row[0] != fp):
        return None
    tables = json.loads(row[3])
    if tables_rows(con, tables, plan_month) != tables:
        return None
    return Reuse(run_id=row[1], computed_at=row[2], tables=tables, metadata=json.loads(row[4]))


def record(
    con: duckdb.DuckDBPyConnection,
    stage: str,
    plan_month: str,
    fp: str,
    code: str,
    run_id: str,
    tables: Mapping[str, int],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Remember that ``stage`` for ``plan_month`` wrote ``tables`` (name → rows) from ``fp``.

    Call it after the tables are written: a run killed in between leaves no record, and the
    next run recomputes.
    """
    check_name(stage, "stage")
    _ensure_table(con)
    con.execute(
        f"insert or replace into {PLAN_SCHEMA}.{VERSIONS_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            stage,
            plan_month,
            fp,
            code,
            run_id,
            datetime.now(UTC).isoformat(timespec="seconds"),
            json.dumps(dict(tables), sort_keys=True),
            json.dumps(_plain(metadata or {}), sort_keys=True),
        ],
    )


def forget(con: duckdb.DuckDBPyConnection, stage: str, plan_month: str) -> None:
    """Drop the record of ``stage`` for ``plan_month`` (before rewriting its tables)."""
    check_name(stage, "stage")
    if table_exists(con, PLAN_SCHEMA, VERSIONS_TABLE):
        con.execute(
            f"delete from {PLAN_SCHEMA}.{VERSIONS_TABLE} where stage = ? and plan_month = ?",
            [stage, plan_month],
        )


def _plain(value: Any) -> Any:
    """JSON-safe copy of metadata made of dicts, lists, numbers and strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def stage_history(con: duckdb.DuckDBPyConnection, plan_month: str) -> pd.DataFrame:
    """What each stage recorded for ``plan_month`` (for ``sop status`` and tests)."""
    if not table_exists(con, PLAN_SCHEMA, VERSIONS_TABLE):
        return pd.DataFrame(columns=["stage", "fingerprint", "run_id", "computed_at"])
    return con.execute(
        f"select stage, fingerprint, code_version, run_id, computed_at "
        f"from {PLAN_SCHEMA}.{VERSIONS_TABLE} where plan_month = ? order by stage",
        [plan_month],
    ).df()


def tables_rows(
    con: duckdb.DuckDBPyConnection, tables: Iterable[str], plan_month: str
) -> dict[str, int | None]:
    """Rows per table, None when the table does not exist.

    ``name`` is a plan table (rows of ``plan_month``), ``schema.name`` a whole table of
    another schema (dbt's marts hold one plan month at a time).
    """
    out: dict[str, int | None] = {}
    for name in tables:
        schema, _, table = name.rpartition(".")
        schema = check_name(schema or PLAN_SCHEMA, "schema")
        check_name(table, "table")
        if not table_exists(con, schema, table):
            out[name] = None
        elif schema == PLAN_SCHEMA:
            out[name] = con.execute(
                f"select count(*) from {schema}.{table} where plan_month = ?", [plan_month]
            ).fetchone()[0]
        else:
            out[name] = con.execute(f"select count(*) from {schema}.{table}").fetchone()[0]
    return out


def files_digest(root: Path, patterns: Iterable[str]) -> str:
    """Hash of the names and bytes of the files under ``root`` matching ``patterns``."""
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
