"""The second warehouse: dbt's staging, intermediate and marts in PostgreSQL (SOP_WAREHOUSE=postgres).

What lives where in postgres mode (docs/postgres.md):

- the DuckDB working file keeps ``raw`` (the audited landing store: lineage columns,
  ``raw.rejects``, ``raw._ingest_log``) and ``plan`` (the candidate plan the stages write);
- PostgreSQL holds ``raw`` (a copy of the working file's raw extract tables, brought up to
  date by :func:`sync_raw` before every dbt build) and what dbt builds from it: ``staging``,
  ``intermediate``, ``marts``;
- ``published/`` is written exactly as in DuckDB mode.

The Python stages read the marts through :class:`PostgresMarts`, which returns the same
DataFrames (columns, dtypes, row order) as :class:`sop_pipeline.storage.warehouse.DuckDBMarts`.
psycopg2 comes with the ``postgres`` extra (``make setup`` installs it); it is imported only
when PostgreSQL is used.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from sop_pipeline.core.settings import PG_PASSWORD_VAR, Settings
from sop_pipeline.errors import OperationalError
from sop_pipeline.storage.warehouse import check_name, finish_mart_frame

if TYPE_CHECKING:  # psycopg2 is optional: only annotations use it at import time
    from psycopg2.extensions import connection as PgConnection  # noqa: N812 - a class, named as one

RAW_SCHEMA = "raw"
MARTS_SCHEMA = "marts"
_MONTH_RE = re.compile(r"^\d{4}-\d{2}$")
_DECIMAL_RE = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")
_NUMERIC_RE = re.compile(r"^numeric\((\d+),(\d+)\)$")

# DuckDB type of a raw column -> the PostgreSQL type it is copied into (format_type spelling,
# so an existing table's columns can be compared with it)
_DUCKDB_TO_PG = {
    "VARCHAR": "character varying",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp without time zone",
}
# PostgreSQL type of a mart column -> the DuckDB type it is read as (so the DataFrame has the
# dtypes the DuckDB warehouse gives)
_PG_TO_DUCKDB = {
    "character varying": "VARCHAR",
    "text": "VARCHAR",
    "double precision": "DOUBLE",
    "real": "FLOAT",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp without time zone": "TIMESTAMP",
}
# every session: ISO dates and round-trip floats in COPY's text, whatever the server's defaults
_SESSION_SQL = (
    "set datestyle = 'ISO, YMD'; set extra_float_digits = 3; set client_encoding = 'UTF8'"
)


class WarehouseError(OperationalError, RuntimeError):
    """The PostgreSQL warehouse cannot be reached or used; the message says what to check."""


@dataclass(frozen=True)
class PostgresTarget:
    """Where the PostgreSQL warehouse is (the SOP_PG_* settings)."""

    host: str
    port: int
    user: str
    dbname: str
    # repr=False: a target is shown in messages, its password never
    password: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresTarget:
        """The PostgreSQL target the settings name."""
        return cls(
            host=settings.pg_host,
            port=settings.pg_port,
            user=settings.pg_user,
            dbname=settings.pg_dbname,
            password=settings.pg_password,
        )

    @property
    def label(self) -> str:
        """``user@host:port/dbname``, for messages and metadata (never the password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def connect(target: PostgresTarget) -> PgConnection:
    """Open a session on the PostgreSQL warehouse (not in autocommit; commit what you write).

    Args:
        target: host, port, user, database and password.

    Returns:
        A psycopg2 connection with ISO dates and round-trip float output.

    Raises:
        WarehouseError: psycopg2 is missing or the server refuses the connection.
    """
    try:
        import psycopg2
    except ImportError:
        raise WarehouseError(
            "SOP_WAREHOUSE=postgres needs psycopg2: install the postgres extra "
            "(`pip install -e '.[postgres]'`; `make setup` does it)."
        ) from None
    try:
        con = psycopg2.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            dbname=target.dbname,
            # empty: libpq falls back to ~/.pgpass or a password-less method
            password=target.password or None,
            connect_timeout=10,
            application_name="sop-pipeline",
        )
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WarehouseError(
            f"cannot connect to PostgreSQL {target.label}: {reason}. Check that the server "
            f"runs and SOP_PG_HOST, SOP_PG_PORT, SOP_PG_USER, SOP_PG_DBNAME and {PG_PASSWORD_VAR} "
            "(see .env.example)."
        ) from None
    with con.cursor() as cur:
        cur.execute(_SESSION_SQL)
    con.commit()
    return con


# --- raw: the working file's extract tables, copied -------------------------------------------


def _pg_type(duckdb_type: str, table: str, column: str) -> str:
    if duckdb_type in _DUCKDB_TO_PG:
        return _DUCKDB_TO_PG[duckdb_type]
    m = _DECIMAL_RE.match(duckdb_type)
    if m:
        return f"numeric({m.group(1)},{m.group(2)})"
    raise WarehouseError(
        f"raw.{table}.{column} has DuckDB type {duckdb_type}, which has no PostgreSQL mapping "
        "in sop_pipeline/storage/postgres.py: add it to _DUCKDB_TO_PG."
    )


def _pg_columns(cur, schema: str, table: str) -> list[tuple[str, str]]:
    """(name, format_type) of every column of ``schema.table`` in order; [] when it is missing."""
    cur.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) "
        "from pg_attribute a join pg_class c on c.oid = a.attrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'v', 'm', 'p') "
        "and a.attnum > 0 and not a.attisdropped order by a.attnum",
        [schema, table],
    )
    return [(name, typ) for name, typ in cur.fetchall()]


def _month_fingerprints(rows) -> dict[str, tuple]:
    return {month: (int(n), first, last) for month, n, first, last in rows}


_FINGERPRINT_SQL = (
    "select _extract_month, count(*), min(_loaded_at), max(_loaded_at) "
    "from {schema}.{table} group by _extract_month"
)


def sync_raw(
    duck: duckdb.DuckDBPyConnection, pg: PgConnection, tables: list[str]
) -> dict[str, int]:
    """Make PostgreSQL's ``raw`` tables hold the same rows as the working file's, in one transaction.

    Only extract months whose rows differ are copied (compared by row count and load times
    per ``_extract_month``; the loader reloads a changed file with new load times): a monthly
    run copies the new month. A table whose columns changed is dropped and copied whole (with
    the dbt views on it, which the next ``dbt build`` recreates). Rows go through ``COPY``
    (CSV), ordered by month, file and line.

    Args:
        duck: the working DuckDB file (schema ``raw`` as the ingest stage left it).
        pg: a session on the PostgreSQL warehouse (see :func:`connect`).
        tables: raw tables to copy (the dbt sources: the extract tables).

    Returns:
        Rows copied per table (0 when a table was already up to date).

    Raises:
        WarehouseError: a raw column has a type with no PostgreSQL mapping.
    """
    copied: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="sop-pg-sync-") as tmp, pg.cursor() as cur:
        # one sync at a time, whichever process runs it
        cur.execute("select pg_advisory_xact_lock(hashtext('sop_pipeline.sync_raw'))")
        cur.execute(f"create schema if not exists {RAW_SCHEMA}")
        for table in tables:
            check_name(table, "table")
            columns = duck.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [RAW_SCHEMA, table],
            ).fetchall()
            if not columns:
                raise WarehouseError(
                    f"raw.{table} is not in the working DuckDB file: run the ingest stage first."
                )
            wanted = [
                (check_name(name, "column"), _pg_type(typ, table, name)) for name, typ in columns
            ]
            existing = _pg_columns(cur, RAW_SCHEMA, table)
            if existing != wanted:
                if existing:
                    cur.execute(f"drop table {RAW_SCHEMA}.{table} cascade")
                cols_ddl = ", ".join(f'"{name}" {typ}' for name, typ in wanted)
                cur.execute(f"create table {RAW_SCHEMA}.{table} ({cols_ddl})")
            source = _month_fingerprints(
                duck.execute(_FINGERPRINT_SQL.format(schema=RAW_SCHEMA, table=table)).fetchall()
            )
            cur.execute(_FINGERPRINT_SQL.format(schema=RAW_SCHEMA, table=table))
            copy = _month_fingerprints(cur.fetchall())
            stale = sorted(m for m in copy if copy[m] != source.get(m))
            missing = sorted(m for m in source if source[m] != copy.get(m))
            if stale:
                cur.execute(
                    f"delete from {RAW_SCHEMA}.{table} where _extract_month = any(%s)", [stale]
                )
            copied[table] = 0
            if missing:
                bad = [m for m in missing if not _MONTH_RE.match(str(m))]
                if bad:
                    raise WarehouseError(
                        f"raw.{table} has _extract_month values {bad[:3]} that are not YYYY-MM: "
                        "reload the working file with the ingest stage."
                    )
                names = ", ".join(f'"{name}"' for name, _ in wanted)
                months = ", ".join(f"'{m}'" for m in missing)
                path = Path(tmp) / f"{table}.csv"
                # DuckDB writes NULL as an empty field and '' as "", as PostgreSQL's CSV reads them
                duck.execute(
                    f"copy (select {names} from {RAW_SCHEMA}.{table} "
                    f"where _extract_month in ({months}) "
                    "order by _extract_month, _source_file, _source_row) "
                    f"to '{path}' (format csv, header false)"
                )
                with open(path, encoding="utf-8") as f:
                    cur.copy_expert(
                        f"copy {RAW_SCHEMA}.{table} ({names}) from stdin with (format csv)", f
                    )
                copied[table] = cur.rowcount
                path.unlink()
            if stale or missing:
                cur.execute(f"analyze {RAW_SCHEMA}.{table}")
    pg.commit()
    return copied


# --- marts: read as the DuckDB warehouse gives them ---------------------------------------------


def _duckdb_type(pg_type: str, name: str, column: str) -> str:
    if pg_type in _PG_TO_DUCKDB:
        return _PG_TO_DUCKDB[pg_type]
    if pg_type.startswith("character varying("):
        return "VARCHAR"
    m = _NUMERIC_RE.match(pg_type)
    if m:
        return f"DECIMAL({m.group(1)},{m.group(2)})"
    raise WarehouseError(
        f"marts.{name}.{column} has PostgreSQL type {pg_type}, which the mart reader does not "
        "map: add it to _PG_TO_DUCKDB in sop_pipeline/storage/postgres.py."
    )


class PostgresMarts:
    """The marts in PostgreSQL, read as :class:`sop_pipeline.storage.warehouse.DuckDBMarts` reads them.

    Rows come out through ``COPY ... TO STDOUT`` (CSV) and are loaded into an in-memory DuckDB
    with the mart's column types mapped to DuckDB's, then sorted by every column: the
    DataFrame has the dtypes and the row order the DuckDB warehouse gives.
    """

    def __init__(self, con: PgConnection, label: str) -> None:
        self._con = con
        self.location = f"PostgreSQL {label}"

    def has_mart(self, name: str) -> bool:
        """Whether ``marts.<name>`` exists."""
        check_name(name, "mart")
        try:
            with self._con.cursor() as cur:
                return bool(_pg_columns(cur, MARTS_SCHEMA, name))
        finally:
            self._con.rollback()  # hold no lock between reads (dbt may be rebuilding)

    def count_rows(self, name: str) -> int:
        """Rows of ``marts.<name>``."""
        check_name(name, "mart")
        try:
            with self._con.cursor() as cur:
                cur.execute(f"select count(*) from {MARTS_SCHEMA}.{name}")
                return int(cur.fetchone()[0])
        finally:
            self._con.rollback()

    def read_mart(self, name: str) -> pd.DataFrame:
        """``marts.<name>`` as a DataFrame; DATE columns become datetime64.

        Raises:
            LookupError: the mart does not exist (dbt has not built it in this database).
            WarehouseError: a column has a type the reader does not map.
        """
        check_name(name, "mart")
        try:
            return finish_mart_frame(self._read(name))
        finally:
            self._con.rollback()  # end the read-only transaction psycopg2 opened

    def _read(self, name: str) -> pd.DataFrame:
        with self._con.cursor() as cur:
            columns = _pg_columns(cur, MARTS_SCHEMA, name)
            if not columns:
                raise LookupError(
                    f"marts.{name} does not exist in {self.location}: build the dbt models for "
                    "the plan month first (materialize the clean assets, or `sop run`)."
                )
            types = {
                check_name(col, "column"): _duckdb_type(typ, name, col) for col, typ in columns
            }
            names = ", ".join(f'"{col}"' for col in types)
            with tempfile.TemporaryDirectory(prefix="sop-pg-read-") as tmp:
                path = Path(tmp) / f"{name}.csv"
                with open(path, "w", encoding="utf-8", newline="") as f:
                    cur.copy_expert(
                        f"copy (select {names} from {MARTS_SCHEMA}.{name}) to stdout "
                        "with (format csv)",
                        f,
                    )
                spec = ", ".join(f"'{col}': '{typ}'" for col, typ in types.items())
                local = duckdb.connect()
                try:
                    # PostgreSQL writes NULL as an empty field and '' as "": keep them apart
                    df = local.execute(
                        f"select * from read_csv(?, header = false, auto_detect = false, "
                        f"delim = ',', quote = '\"', escape = '\"', columns = {{{spec}}}, "
                        "allow_quoted_nulls = false) order by all",
                        [str(path)],
                    ).df()
                finally:
                    local.close()
        return df


@contextmanager
def open_marts(settings: Settings) -> Iterator[PostgresMarts]:
    """The PostgreSQL marts of ``settings`` (for the CLI's summary and report), closed afterwards.

    Raises:
        WarehouseError: the server cannot be reached (see :func:`connect`).
    """
    target = PostgresTarget.from_settings(settings)
    con = connect(target)
    try:
        yield PostgresMarts(con, target.label)
    finally:
        con.close()
