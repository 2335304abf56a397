"""What the executive pack reads: one published plan version, and the working-database extras.

The pack is built from the PUBLISHED tables only (DESIGN §5), so every number in it is one
BI users can find in ``published/sop.duckdb``. Two optional inputs come from elsewhere and
are labelled as such: the demand history (family × month actual demand, from the working
database's ``marts.fct_demand_history``) and the exceptions list (``plan.plan_exceptions``),
with the plan-change waterfall (``plan.plan_waterfall``).

This module reads; it writes no HTML. The sections' figures and tables are prepared from a
:class:`PackData` by ``report/sections_plan.py`` and ``report/sections_review.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.core.settings import Settings
from sop_pipeline.errors import OperationalError
from sop_pipeline.publish.decision_log import pick_version
from sop_pipeline.publish.tables import PACK_TABLES, TABLES
from sop_pipeline.publish.writer import DB_NAME, PublishError, read_published
from sop_pipeline.report.approval_section import ApprovedReference, load_approved_reference

#: Months of actual demand drawn before the horizon in the demand charts.
HISTORY_MONTHS = 36


class ReportError(OperationalError, RuntimeError):
    """The pack cannot be built; the message says what is missing and how to fix it."""


@dataclass
class PackData:
    """Everything the pack shows, for one plan month and version.

    Attributes:
        plan_month: ``YYYY-MM``.
        plan_version: the published version shown.
        tables: published table name → that version's rows (every name of
            ``PACK_TABLES``; empty frames when a table holds no rows).
        version_row: the ``plan_versions`` row of this version (lineage).
        versions: every ``plan_versions`` row of the plan month (to list other versions).
        history: family × month actual demand (``family``, ``month``, ``demand_qty``), or
            None to leave the history out of the charts.
        exceptions: the plan's exceptions (``exception_type``, ``severity``, ``scope_id``,
            ``month``, ``reason`` ...), or None when not available.
        waterfall: the plan-change waterfall (``family``, ``component``, ``qty``,
            ``revenue``, ``sort_order``), or None when not available.
        base_currency: currency of every money column.
        notes: what was left out and why (shown in the lineage section).
        approved: the last approved plan, to show what a candidate changes.
    """

    plan_month: str
    plan_version: int
    tables: dict[str, pd.DataFrame]
    version_row: dict[str, object]
    versions: pd.DataFrame
    history: pd.DataFrame | None = None
    exceptions: pd.DataFrame | None = None
    waterfall: pd.DataFrame | None = None
    base_currency: str = "USD"
    notes: list[str] = field(default_factory=list)
    approved: ApprovedReference | None = None

    def table(self, name: str) -> pd.DataFrame:
        """A published table of this version (empty frame with the stable columns if absent)."""
        df = self.tables.get(name)
        if df is None:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in TABLES[name].column_names})
        return df


def family_order(data: PackData) -> list[str]:
    """Families by consensus revenue, largest first (the order every per-family view uses)."""
    demand = data.table("plan_demand")
    families: list[str] = []
    if len(demand):
        rev = demand.groupby("family")["consensus_revenue"].sum().sort_values(ascending=False)
        families = [str(f) for f in rev.index]
    for name in ("plan_gaps", "plan_financials"):
        for fam in sorted(data.table(name)["family"].dropna().astype(str).unique()):
            if fam not in families:
                families.append(fam)
    return families


# --------------------------------------------------------------------------------------
# The published tables
# --------------------------------------------------------------------------------------


def _published_dir(published_path: Path) -> Path:
    path = Path(published_path)
    return path.parent if path.suffix == ".duckdb" else path


def _months_to_datetime(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in ("month", "published_at"):
        if col in df.columns and len(df):
            df[col] = pd.to_datetime(df[col])
    return df


def _has_table(published_dir: Path, name: str) -> bool:
    try:
        read_published(published_dir, name, plan_month="0000-00")
    except PublishError:
        return False
    return True


def _normalise_history(history: pd.DataFrame | None, plan_month: str) -> pd.DataFrame | None:
    """Family × month actual demand up to the plan month, the last ``HISTORY_MONTHS``."""
    if history is None:
        return None
    missing = {"family", "month", "demand_qty"} - set(history.columns)
    if missing:
        raise ReportError(
            f"history lacks column(s) {', '.join(sorted(missing))}; pass family × month actual "
            f"demand (family, month, demand_qty), e.g. from marts.fct_demand_history."
        )
    end = pd.Timestamp(parse_month(plan_month))
    start = pd.Timestamp(month_start(parse_month(plan_month), -(HISTORY_MONTHS - 1)))
    hist = history.assign(month=pd.to_datetime(history["month"]))
    hist = hist[(hist["month"] >= start) & (hist["month"] <= end)]
    return (
        hist.groupby(["family", "month"], as_index=False)["demand_qty"]
        .sum()
        .sort_values(["family", "month"])
        .reset_index(drop=True)
    )


def load_pack_data(
    published_path: Path,
    month: str,
    version: int | None = None,
    history: pd.DataFrame | None = None,
    *,
    exceptions: pd.DataFrame | None = None,
    waterfall: pd.DataFrame | None = None,
    base_currency: str = "USD",
) -> PackData:
    """Read one published plan version for the pack.

    Args:
        published_path: ``$SOP_HOME/published`` (or the ``sop.duckdb`` file in it).
        month: plan month ``YYYY-MM``.
        version: plan version; None for the latest version of the month.
        history: family × month actual demand (family, month, demand_qty; item rows are
            summed), or None to omit history from the charts.
        exceptions: the plan's exceptions, or None. A published ``plan_exceptions`` table
            with rows for this version is used instead when there is one.
        waterfall: plan-change waterfall rows, or None. A published ``plan_waterfall``
            table with rows for this version is used instead when there is one.
        base_currency: currency code shown with money.

    Returns:
        The pack's data.

    Raises:
        ReportError: the month (or version) is not published; the message says how to fix it.
    """
    parse_month(month)
    pub = _published_dir(published_path)
    try:
        versions = read_published(pub, "plan_versions", plan_month=month)
    except PublishError as exc:
        raise ReportError(str(exc)) from None
    if versions.empty:
        raise ReportError(
            f"plan month {month} is not published in {pub / DB_NAME}; run `sop run --month {month}` "
            f"first (or pick a published month: `sop status`)."
        )
    version = pick_version(versions["plan_version"], version, month, ReportError)
    tables = {
        name: _months_to_datetime(read_published(pub, name, plan_month=month, version=version))
        for name in PACK_TABLES
    }
    if _has_table(pub, "plan_materials"):  # published since bills of material (optional)
        tables["plan_materials"] = _months_to_datetime(
            read_published(pub, "plan_materials", plan_month=month, version=version)
        )
    # a published exceptions / waterfall table, once there is one, wins over a frame passed in
    for name, given in (("plan_exceptions", exceptions), ("plan_waterfall", waterfall)):
        if not _has_table(pub, name):
            continue
        found = _months_to_datetime(read_published(pub, name, plan_month=month, version=version))
        if len(found) or given is None:
            if name == "plan_exceptions":
                exceptions = found
            else:
                waterfall = found
    versions = _months_to_datetime(versions)
    row = versions[versions["plan_version"] == version].iloc[0].to_dict()
    return PackData(
        plan_month=month,
        plan_version=version,
        tables=tables,
        version_row=row,
        versions=versions,
        history=_normalise_history(history, month),
        exceptions=None if exceptions is None else _months_to_datetime(exceptions),
        waterfall=waterfall,
        base_currency=base_currency,
        approved=load_approved_reference(pub, month, version),
    )


# --------------------------------------------------------------------------------------
# The working database: history, exceptions, waterfall
# --------------------------------------------------------------------------------------


@dataclass
class WorkingInputs:
    """What the pack takes from the working database (everything else is published)."""

    history: pd.DataFrame | None = None
    exceptions: pd.DataFrame | None = None
    waterfall: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def read_working_inputs(
    warehouse_path: Path, month: str, attempts: int = 5, *, with_history: bool = True
) -> WorkingInputs:
    """Demand history, exceptions and waterfall of ``month`` from the working database.

    The working database is the pipeline's; a running pipeline may hold its write lock, so
    opening is retried briefly and then skipped (the pack then says so in its lineage).

    Args:
        warehouse_path: ``$SOP_HOME/warehouse/sop.duckdb``.
        month: plan month ``YYYY-MM``.
        attempts: tries to open the file, one second apart.
        with_history: read the demand history from this file's marts (False when the marts
            are in PostgreSQL: see :func:`read_postgres_history`).

    Returns:
        The frames found (None where a table is missing) and notes for the pack.
    """
    out = WorkingInputs()
    left_out = "demand history and exceptions" if with_history else "exceptions"
    if not Path(warehouse_path).exists():
        if with_history:
            out.notes.append(f"No working database at {warehouse_path}: demand history left out.")
        return out
    con = None
    for attempt in range(attempts):
        try:
            con = duckdb.connect(str(warehouse_path), read_only=True)
            break
        except duckdb.Error:  # locked by a writer (another process or this one)
            if attempt < attempts - 1:
                time.sleep(1.0)
    if con is None:
        out.notes.append(
            f"The working database {warehouse_path} was locked by a running pipeline: "
            f"{left_out} left out; run `sop report` again later."
        )
        return out
    end = parse_month(month)
    queries = {
        "history": (
            "SELECT family, month, sum(demand_qty) AS demand_qty FROM marts.fct_demand_history "
            "WHERE month <= $end GROUP BY family, month ORDER BY family, month",
            {"end": end},
        ),
        "exceptions": ("SELECT * FROM plan.plan_exceptions WHERE plan_month = $m", {"m": month}),
        "waterfall": ("SELECT * FROM plan.plan_waterfall WHERE plan_month = $m", {"m": month}),
    }
    if not with_history:
        del queries["history"]
    try:
        for attr, (sql, params) in queries.items():
            try:
                setattr(out, attr, con.execute(sql, params).df())
            except duckdb.Error:
                if attr == "history":
                    out.notes.append("marts.fct_demand_history is missing: history left out.")
    finally:
        con.close()
    _drop_empty_history(out, month, "The working database")
    if out.waterfall is not None and out.waterfall.empty:
        out.waterfall = None  # the first plan month has no previous plan to bridge from
    return out


def _drop_empty_history(out: WorkingInputs, month: str, where: str) -> None:
    if out.history is not None and out.history.empty:
        out.notes.append(
            f"{where} holds no demand history up to {month} (it was last built "
            "for another month): history left out."
        )
        out.history = None


def read_postgres_history(settings: Settings, month: str, out: WorkingInputs) -> None:
    """Put the demand history of ``month`` from the PostgreSQL marts into ``out`` (SOP_WAREHOUSE=postgres).

    The same family × month sums the DuckDB path queries; a server that cannot be reached
    or a missing mart leaves the history out with a note, as a locked working file does.

    Args:
        settings: pipeline settings (SOP_PG_*).
        month: plan month ``YYYY-MM``.
        out: the working inputs to complete.
    """
    from sop_pipeline.storage.postgres import WarehouseError, open_marts

    try:
        with open_marts(settings) as marts:
            history = marts.read_mart("fct_demand_history")
    except WarehouseError as exc:
        out.notes.append(f"The PostgreSQL warehouse could not be read ({exc}): history left out.")
        return
    except LookupError:
        out.notes.append("marts.fct_demand_history is missing in PostgreSQL: history left out.")
        return
    history = history[history["month"] <= pd.Timestamp(parse_month(month))]
    out.history = history.groupby(["family", "month"], as_index=False, dropna=False)[
        "demand_qty"
    ].sum()
    _drop_empty_history(out, month, f"PostgreSQL {settings.postgres_label}")


def load_working_pack_data(settings: Settings, month: str, version: int | None = None) -> PackData:
    """The pack's data of ``month`` with the working database's history, exceptions, waterfall.

    Args:
        settings: pipeline settings (published dir, warehouse, base currency).
        month: plan month ``YYYY-MM``.
        version: a published version; None for the latest.

    Returns:
        The pack's data, with notes on what the working database could not give.

    Raises:
        ReportError: the month is not published.
    """
    postgres = settings.warehouse == "postgres"
    working = read_working_inputs(settings.warehouse_path, month, with_history=not postgres)
    if postgres:
        read_postgres_history(settings, month, working)
    data = load_pack_data(
        settings.published_dir,
        month,
        version,
        working.history,
        exceptions=working.exceptions,
        waterfall=working.waterfall,
        base_currency=settings.base_currency,
    )
    data.notes.extend(working.notes)
    return data
