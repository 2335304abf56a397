"""The published tables of DESIGN §5 as data: stable columns, DuckDB types and grain.

This module is the single description of the published interface. The writer creates the
published DuckDB tables and Parquet files from it, the gate reads the key columns from it,
and ``conform`` makes a candidate frame match it. Columns listed here are the stable
interface BI tools rely on; a frame may carry more columns, which are kept after them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sop_pipeline.core.months import parse_month
from sop_pipeline.errors import InvalidInputError

VERSION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("plan_month", "VARCHAR"),
    ("plan_version", "INTEGER"),
)


@dataclass(frozen=True)
class TableSpec:
    """One published table.

    Attributes:
        name: table name in ``published/sop.duckdb`` and the Parquet folder name.
        columns: stable columns in order, as ``(name, DuckDB type)``, starting with
            ``plan_month`` and ``plan_version``.
        key: the grain inside one plan version (``plan_month``/``plan_version`` excluded).
        grain: one sentence, "One row per ...", used for table comments and docs.
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    grain: str

    @property
    def column_names(self) -> list[str]:
        """Stable column names in order."""
        return [name for name, _ in self.columns]

    @property
    def types(self) -> dict[str, str]:
        """Stable column name → DuckDB type."""
        return dict(self.columns)

    @property
    def sort_key(self) -> list[str]:
        """Full row order of the published table: plan month, version, then the grain."""
        key = [c for c in self.key if c not in ("plan_month", "plan_version")]
        return ["plan_month", "plan_version", *key]


def _spec(name: str, grain: str, key: tuple[str, ...], columns: list[tuple[str, str]]) -> TableSpec:
    return TableSpec(name=name, columns=(*VERSION_COLUMNS, *columns), key=key, grain=grain)


_Q = "DOUBLE"
_T = "VARCHAR"

#: Published tables in the order the writer creates them (``plan_versions`` last: it is the
#: record that a version is complete).
TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "plan_demand",
            "One row per item × location × month of the horizon.",
            ("item_id", "location_id", "month"),
            [
                ("item_id", _T),
                ("location_id", _T),
                ("family", _T),
                ("month", "DATE"),
                ("stat_forecast_qty", _Q),
                ("stat_lo80_qty", _Q),
                ("stat_hi80_qty", _Q),
                ("stat_lo95_qty", _Q),
                ("stat_hi95_qty", _Q),
                ("stat_model", _T),
                ("crm_adjustment_qty", _Q),
                ("override_qty", _Q),
                ("consensus_qty", _Q),
                ("consensus_revenue", _Q),
                # added after DESIGN §5's columns: who changed the number and why (the
                # override log's reason codes and authors of the row, "; "-joined)
                ("override_reason_code", _T),
                ("override_author", _T),
            ],
        ),
        _spec(
            "plan_supply",
            "One row per item × location × month of the horizon.",
            ("item_id", "location_id", "month"),
            [
                ("item_id", _T),
                ("location_id", _T),
                ("month", "DATE"),
                ("planned_production_qty", _Q),
                ("planned_purchase_qty", _Q),
                ("open_order_receipts_qty", _Q),
            ],
        ),
        _spec(
            "plan_inventory",
            "One row per item × location × month of the horizon.",
            ("item_id", "location_id", "month"),
            [
                ("item_id", _T),
                ("location_id", _T),
                ("month", "DATE"),
                ("opening_qty", _Q),
                ("receipts_qty", _Q),
                ("demand_qty", _Q),
                ("closing_qty", _Q),
                ("safety_stock_qty", _Q),
                ("days_of_cover", _Q),
                ("shortage_qty", _Q),
                ("stockout_probability", _Q),
                ("expected_fill_rate", _Q),
            ],
        ),
        _spec(
            "plan_materials",
            "One row per purchased material (BOM component) × location × month of the horizon; "
            "empty when there is no bill of material.",
            ("component_item_id", "location_id", "month"),
            [
                ("component_item_id", _T),
                ("location_id", _T),
                ("month", "DATE"),
                ("dependent_demand_qty", _Q),
                ("planned_purchase_qty", _Q),
                ("supplier_capacity_qty", _Q),
                ("closing_qty", _Q),
                ("shortage_qty", _Q),
            ],
        ),
        _spec(
            "plan_capacity",
            "One row per work center × month of the horizon.",
            ("work_center_id", "month"),
            [
                ("work_center_id", _T),
                ("month", "DATE"),
                ("available_hours", _Q),
                ("required_hours", _Q),
                ("planned_hours", _Q),
                ("utilization", _Q),
            ],
        ),
        _spec(
            "plan_gaps",
            "One row per family × month of the horizon.",
            ("family", "month"),
            [
                ("family", _T),
                ("month", "DATE"),
                ("demand_qty", _Q),
                ("supply_qty", _Q),
                ("gap_qty", _Q),
                ("gap_value", _Q),
            ],
        ),
        _spec(
            "plan_financials",
            "One row per family × month of the horizon.",
            ("family", "month"),
            [
                ("family", _T),
                ("month", "DATE"),
                ("revenue", _Q),
                ("cogs", _Q),
                ("gross_margin", _Q),
                ("inventory_value", _Q),
                ("aop_revenue", _Q),
                ("revenue_vs_aop", _Q),
            ],
        ),
        _spec(
            "kpi_scorecard",
            "One row per KPI × scope × month.",
            ("kpi", "scope", "month"),
            [
                ("kpi", _T),
                ("scope", _T),
                ("month", "DATE"),
                ("value", _Q),
                ("target", _Q),
                ("status", _T),
            ],
        ),
        _spec(
            "forecast_accuracy",
            "One row per forecast kind × level × lag × month with actuals.",
            ("forecast_kind", "level", "lag", "month"),
            [
                ("forecast_kind", _T),
                ("level", _T),
                ("lag", "INTEGER"),
                ("month", "DATE"),
                ("mape", _Q),
                ("wape", _Q),
                ("bias", _Q),
                ("mase", _Q),
            ],
        ),
        # Added by #19 (forecast_accuracy also carries coverage_80, coverage_95 and
        # interval_score after its stable columns, NaN where a kind has no range).
        # The statistical forecast at every aggregate level, coherent with
        # plan_demand (points are sums; ranges see docs/forecasting.md §Hierarchy)
        _spec(
            "forecast_levels",
            "One row per level (item, location, family, total) × scope × month of the horizon.",
            ("level", "scope_id", "month"),
            [
                ("level", _T),
                ("scope_id", _T),
                ("month", "DATE"),
                ("stat_forecast_qty", _Q),
                ("stat_lo80_qty", _Q),
                ("stat_hi80_qty", _Q),
                ("stat_lo95_qty", _Q),
                ("stat_hi95_qty", _Q),
                ("n_series", "INTEGER"),
            ],
        ),
        _spec(
            "scenario_comparison",
            "One row per scenario × family × month × metric.",
            ("scenario", "family", "month", "metric"),
            [
                ("scenario", _T),
                ("family", _T),
                ("month", "DATE"),
                ("metric", _T),
                ("base_value", _Q),
                ("scenario_value", _Q),
                ("delta", _Q),
            ],
        ),
        # Added to DESIGN §5 (new tables, nothing renamed): what the executive pack shows.
        _spec(
            "plan_exceptions",
            "One row per exception a planner must act on (type × scope × month).",
            ("exception_type", "scope", "scope_id", "month"),
            [
                ("exception_type", _T),
                ("severity", _T),
                ("scope", _T),
                ("scope_id", _T),
                ("month", "DATE"),
                ("value", _Q),
                ("threshold", _Q),
                ("reason", _T),
                ("binding_constraint", _T),
            ],
        ),
        _spec(
            "plan_waterfall",
            "One row per family × component of the change from last month's plan.",
            ("family", "component"),
            [
                ("family", _T),
                ("component", _T),
                ("qty", _Q),
                ("revenue", _Q),
                ("sort_order", "INTEGER"),
            ],
        ),
        _spec(
            "plan_versions",
            "One row per published plan (plan month × plan version).",
            (),
            [
                ("run_id", _T),
                ("published_at", "TIMESTAMP"),
                ("input_fingerprint", _T),
                ("code_version", _T),
                ("checks_passed", "INTEGER"),
                ("checks_failed", "INTEGER"),
                # executive approval (issue #14): derived from plan_decisions, see
                # sop_pipeline/publish/approval.py
                ("status", _T),
                ("approved_by", _T),
                ("approved_at", "TIMESTAMP"),
                ("decision_note", _T),
                ("chosen_scenario", _T),
            ],
        ),
        _spec(
            "plan_decisions",
            "One row per approval or rejection of a published plan version (append only).",
            ("decision_id",),
            [
                ("decision", _T),
                ("decided_by", _T),
                ("decided_at", "TIMESTAMP"),
                ("note", _T),
                ("chosen_scenario", _T),
                ("decision_id", "INTEGER"),
            ],
        ),
    )
}

#: Tables the publication machinery itself writes (not plan content, no ``_current`` views).
RECORD_TABLES: tuple[str, ...] = ("plan_versions", "plan_decisions")

#: Tables a publication receives from the pipeline (``plan_versions`` is the writer's).
PLAN_TABLES: tuple[str, ...] = tuple(name for name in TABLES if name not in RECORD_TABLES)

#: Published plan tables the gate validates with a Great Expectations suite
#: (``data_quality/plan/<table>.json``); a failure blocks publication. One list for the gate
#: (``quality/gate.py``) and its Dagster checks (``defs/publish/assets.py``).
GATED_TABLES: tuple[str, ...] = (
    "plan_demand",
    "plan_supply",
    "plan_inventory",
    "plan_capacity",
    "plan_gaps",
    "plan_financials",
    "kpi_scorecard",
)

#: Published tables the executive pack reads (``plan_versions`` gives version and lineage).
PACK_TABLES: tuple[str, ...] = (*GATED_TABLES, "forecast_accuracy", "scenario_comparison")

#: Extra (non-stable) columns the writer adds to ``plan_versions``.
PLAN_VERSIONS_EXTRA: tuple[tuple[str, str], ...] = (("is_backfill", "BOOLEAN"),)
#: The currency of every money column of the version (column descriptions: dictionary.py).
PLAN_VERSIONS_EXTRA += (("base_currency", "VARCHAR"),)


class ConformError(InvalidInputError, ValueError):
    """A frame does not match its published table; the message says what is missing."""


def _cast(series: pd.Series, duck_type: str, table: str) -> pd.Series:
    """Cast one column to the pandas dtype DuckDB maps to ``duck_type``."""
    try:
        if duck_type == "VARCHAR":
            # pandas' string dtype keeps missing values as NA and maps to VARCHAR
            return series.astype("string")
        if duck_type == "INTEGER":
            return pd.to_numeric(series).astype("Int32")
        if duck_type == "DOUBLE":
            return pd.to_numeric(series).astype("float64")
        if duck_type == "DATE":
            # month columns are datetime64 month starts in Python; the writer stores DATE
            return pd.to_datetime(series).dt.normalize().astype("datetime64[ns]")
        if duck_type == "TIMESTAMP":
            return pd.to_datetime(series).astype("datetime64[ns]")
        if duck_type == "BOOLEAN":
            return series.astype("boolean")
    except (TypeError, ValueError) as exc:
        raise ConformError(
            f"{table}.{series.name}: cannot convert to {duck_type} ({exc}); fix the values the "
            f"stage writes to this column."
        ) from None
    raise ConformError(f"{table}.{series.name}: unsupported type {duck_type}.")


def conform(table: str, df: pd.DataFrame, plan_month: str, plan_version: int) -> pd.DataFrame:
    """Make a frame match its published table.

    Args:
        table: a published table name (a key of ``TABLES``).
        df: the stage's frame; it must hold every stable column except ``plan_month`` and
            ``plan_version`` (which are added; if present they must already equal the
            arguments).
        plan_month: ``YYYY-MM``.
        plan_version: 1, 2, ... for this plan month.

    Returns:
        A new frame: stable columns first in the published order and cast to the types
        DuckDB stores them as, then any extra columns in their original order.

    Raises:
        ConformError: unknown table, missing stable columns (all named), a
            ``plan_month``/``plan_version`` that disagrees with the arguments, or a value
            that cannot be cast.
    """
    if table not in TABLES:
        raise ConformError(f"{table!r} is not a published table; use one of {', '.join(TABLES)}.")
    parse_month(plan_month)
    if int(plan_version) < 1:
        raise ConformError(f"plan_version must be 1 or more, not {plan_version}.")
    spec = TABLES[table]
    missing = [
        c
        for c in spec.column_names
        if c not in df.columns and c not in ("plan_month", "plan_version")
    ]
    if missing:
        raise ConformError(
            f"{table}: missing stable column(s) {', '.join(missing)}; the stage must produce every "
            f"column of DESIGN §5 ({', '.join(spec.column_names[2:])})."
        )
    for col, expected in (("plan_month", plan_month), ("plan_version", int(plan_version))):
        if col in df.columns and len(df) and not (df[col].astype(type(expected)) == expected).all():
            found = sorted(set(df[col].astype(str)))[:5]
            raise ConformError(
                f"{table}.{col}: the frame holds {found}, but this publication is {expected}."
            )
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    out["plan_month"] = pd.Series([plan_month] * len(df), dtype="string")
    out["plan_version"] = pd.Series([int(plan_version)] * len(df), dtype="Int32")
    source = df.reset_index(drop=True)
    for name, duck_type in spec.columns[2:]:
        out[name] = _cast(source[name], duck_type, table)
    for name in source.columns:
        if name not in out.columns:
            out[name] = source[name]
    return out
