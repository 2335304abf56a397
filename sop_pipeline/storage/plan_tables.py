"""The plan tables of one plan month: what a planning asset hands to storage, and how it is kept.

A planning asset's value is its own table (a DataFrame) or a :class:`PlanTables`: its table
together with the side tables its stage writes with it (the forecast's backtests and levels,
the consensus plan's override log and snapshots, the gate's results), and, for a stage that is
reused when nothing changed (:mod:`sop_pipeline.storage.incremental`), the :class:`StageRecord`
that vouches for them. :func:`write_plan_tables` keeps it: every table gets the month's rows
replaced (``replace_plan_rows``), with the record forgotten before and written after, as the
incremental rules ask. The IO manager (``defs/resources.py``) is its caller; asset bodies never
write a plan table themselves.

:func:`read_plan_month` is the read side for what is not an asset input: a side table, or an
earlier month (``None`` when the table does not exist yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from sop_pipeline.storage import incremental
from sop_pipeline.storage.warehouse import PLAN_SCHEMA, read_plan, replace_plan_rows, table_exists


@dataclass(frozen=True)
class StageRecord:
    """What an incremental stage keeps once its tables are written (``incremental.record``).

    Attributes:
        stage: the stage's name in ``plan._stage_versions`` (``stat_forecast``).
        fingerprint: what the result was computed from (``incremental.fingerprint``).
        code_version: the source hash of the code that computed it.
        metadata: facts to report again when the result is reused (JSON-safe values).
    """

    stage: str
    fingerprint: str
    code_version: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanTables:
    """Tables of schema ``plan`` that one asset writes for one plan month, written together.

    Attributes:
        tables: table name → the month's rows (without ``plan_month``), written in this order.
            A ``plan/<table>`` asset's own table is the entry named ``<table>``.
        record: for an incremental stage, the record to keep once every table is written.
    """

    tables: Mapping[str, pd.DataFrame]
    record: StageRecord | None = None


def write_plan_tables(
    con: duckdb.DuckDBPyConnection, value: PlanTables, plan_month: str, run_id: str
) -> dict[str, int]:
    """Replace the month's rows of every table of ``value``; keep its stage record last.

    The record is removed before the first table is rewritten and written after the last,
    so a run killed in between leaves no record that vouches for half-written tables.

    Args:
        con: working database connection.
        value: the tables (and the record) of one asset.
        plan_month: ``YYYY-MM``.
        run_id: the Dagster run that computed them (kept in the record).

    Returns:
        Rows written per table.
    """
    record = value.record
    if record is not None:
        incremental.forget(con, record.stage, plan_month)
    rows = {
        name: replace_plan_rows(con, name, frame, plan_month)
        for name, frame in value.tables.items()
    }
    if record is not None:
        incremental.record(
            con,
            record.stage,
            plan_month,
            record.fingerprint,
            record.code_version,
            run_id,
            rows,
            record.metadata,
        )
    return rows


def read_plan_month(
    con: duckdb.DuckDBPyConnection, table: str, plan_month: str
) -> pd.DataFrame | None:
    """The month's rows of ``plan.<table>``, or None when the table does not exist yet."""
    if not table_exists(con, PLAN_SCHEMA, table):
        return None
    return read_plan(con, table, plan_month)
