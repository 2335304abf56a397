"""The pipeline's working DuckDB file: connection and the few write/read helpers every stage uses.

BI never opens this file (it reads ``published/``). Names that reach SQL are checked against
an allow-list pattern first. The marts are read through a :class:`MartReader`: this file's
``marts`` schema (:class:`DuckDBMarts`) or PostgreSQL's (``sop_pipeline.storage.postgres``), as
SOP_WAREHOUSE says; plan tables are always in this file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import duckdb
import pandas as pd

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PLAN_SCHEMA = "plan"


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe SQL identifier (lowercase, digits, underscore), else raise."""
    if not _NAME_RE.match(name or ""):
        raise ValueError(
            f"{what} {name!r} is not allowed: use lowercase letters, digits and underscores "
            "(pattern ^[a-z_][a-z0-9_]{0,62}$)."
        )
    return name


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the working database (creating its folder)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only)


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists in the database."""
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def replace_plan_rows(
    con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, plan_month: str
) -> int:
    """Replace the rows of one plan month in ``plan.<table>`` with ``df`` (in one transaction).

    The table is created from the frame on first use; columns the frame adds later are added
    to the table, so a code change never loses earlier months' rows.

    Args:
        con: working database connection.
        table: table name in schema ``plan``.
        df: rows of this plan month (without ``plan_month``; it is added here).
        plan_month: ``YYYY-MM``.

    Returns:
        Number of rows written.
    """
    check_name(table, "table")
    frame = df.copy()
    frame.insert(0, "plan_month", plan_month)
    # with no values DuckDB cannot tell a text column from a number (it would create an INTEGER
    # column that a later month's text cannot go into): say so explicitly
    for col in frame.columns:
        if frame[col].dtype == object and (frame.empty or frame[col].isna().all()):
            frame[col] = frame[col].astype("string")
    con.execute(f"create schema if not exists {PLAN_SCHEMA}")
    con.register("_frame", frame)
    try:
        con.execute("begin transaction")
        if not table_exists(con, PLAN_SCHEMA, table):
            con.execute(f"create table {PLAN_SCHEMA}.{table} as select * from _frame limit 0")
        existing = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [PLAN_SCHEMA, table],
            ).fetchall()
        }
        for col in frame.columns:
            if col not in existing:
                check_name(col, "column")
                col_type = con.execute(f'select typeof("{col}") from _frame limit 1').fetchone()
                con.execute(
                    f'alter table {PLAN_SCHEMA}.{table} add column "{col}" '
                    f"{col_type[0] if col_type else 'VARCHAR'}"
                )
        con.execute(f"delete from {PLAN_SCHEMA}.{table} where plan_month = ?", [plan_month])
        con.execute(f"insert into {PLAN_SCHEMA}.{table} by name select * from _frame")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_frame")
    return len(frame)


def read_plan(con: duckdb.DuckDBPyConnection, table: str, plan_month: str) -> pd.DataFrame:
    """Rows of one plan month from ``plan.<table>`` (without the ``plan_month`` column)."""
    check_name(table, "table")
    if not table_exists(con, PLAN_SCHEMA, table):
        raise LookupError(
            f"plan.{table} does not exist yet: materialize its asset for {plan_month} first."
        )
    # a fixed row order: sums over the frame must give the same bits on every run
    df = con.execute(
        f"select * from {PLAN_SCHEMA}.{table} where plan_month = ? order by all", [plan_month]
    ).df()
    return df.drop(columns=["plan_month"])


def read_plan_history(
    con: duckdb.DuckDBPyConnection, table: str, before_month: str
) -> pd.DataFrame:
    """Rows of every plan month strictly before ``before_month`` (for snapshots/accuracy)."""
    check_name(table, "table")
    if not table_exists(con, PLAN_SCHEMA, table):
        return pd.DataFrame()
    return con.execute(
        f"select * from {PLAN_SCHEMA}.{table} where plan_month < ? order by all", [before_month]
    ).df()


class MartReader(Protocol):
    """Where the Python stages read the dbt marts: the working DuckDB file or PostgreSQL.

    Both implementations return the same DataFrame for the same mart: its columns in
    contract order, DuckDB's dtypes (DATE columns as datetime64, DOUBLE as float64) and rows
    sorted by every column (float sums over a frame depend on its row order).
    """

    location: str

    def has_mart(self, name: str) -> bool:
        """Whether the mart ``name`` exists."""

    def count_rows(self, name: str) -> int:
        """The number of rows of the mart ``name``."""

    def read_mart(self, name: str) -> pd.DataFrame:
        """The mart ``name``: contract column order, DuckDB's dtypes, rows sorted."""


class DuckDBMarts:
    """The marts in the working DuckDB file (SOP_WAREHOUSE=duckdb, the default)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.location = "the working DuckDB file"

    def has_mart(self, name: str) -> bool:
        """Whether ``marts.<name>`` exists."""
        return table_exists(self._con, "marts", check_name(name, "mart"))

    def count_rows(self, name: str) -> int:
        """Rows of ``marts.<name>``."""
        check_name(name, "mart")
        return int(self._con.execute(f"select count(*) from marts.{name}").fetchone()[0])

    def read_mart(self, name: str) -> pd.DataFrame:
        """``marts.<name>`` as a DataFrame; DATE columns become datetime64."""
        return read_mart(self._con, name)


def read_mart(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """A dbt mart (schema ``marts``) of a DuckDB file as a DataFrame; DATE columns become datetime64."""
    check_name(name, "mart")
    # a fixed row order: DuckDB returns rows in any order, and float sums depend on it
    df = con.execute(f"select * from marts.{name} order by all").df()
    return finish_mart_frame(df)


def finish_mart_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Turn columns of ``datetime.date`` objects into datetime64 (every mart reader's last step)."""
    for col in df.columns:
        if df[col].dtype == object and len(df) and _looks_like_date(df[col]):
            df[col] = pd.to_datetime(df[col])
    return df


def _looks_like_date(series: pd.Series) -> bool:
    import datetime as _dt

    first = series.dropna()
    return bool(len(first)) and isinstance(first.iloc[0], _dt.date)
