"""Human summaries for the CLI: what a run produced, and the state of SOP_HOME."""

from __future__ import annotations

from pathlib import Path

import duckdb

from sop_pipeline.core.settings import Settings
from sop_pipeline.storage.warehouse import table_exists


def _published_db(settings: Settings) -> Path:
    return settings.published_dir / "sop.duckdb"


def run_summary(settings: Settings, month: str) -> str:
    """A few lines about the plan of ``month``: version, families, horizon, gaps, KPIs off track."""
    lines: list[str] = []
    pub = _published_db(settings)
    if pub.exists():
        con = duckdb.connect(str(pub), read_only=True)
        try:
            row = con.execute(
                "select max(plan_version) from plan_versions where plan_month = ?", [month]
            ).fetchone()
            version = row[0] if row else None
            if version is not None:
                lines.append(f"Published plan {month} version {version} → {pub}")
                fam, months_ = con.execute(
                    "select count(distinct family), count(distinct month) from plan_demand "
                    "where plan_month = ? and plan_version = ?",
                    [month, version],
                ).fetchone()
                lines.append(f"  {fam} families, {months_} months of horizon")
                lines.append(_unmet_demand_line(con, month, version, settings.base_currency))
                off = con.execute(
                    "select kpi, scope, value, target from kpi_scorecard "
                    "where plan_month = ? and plan_version = ? and status = 'off_track' "
                    "order by scope <> 'total', kpi, scope limit 10",
                    [month, version],
                ).fetchall()
                n_off = con.execute(
                    "select count(*) from kpi_scorecard "
                    "where plan_month = ? and plan_version = ? and status = 'off_track'",
                    [month, version],
                ).fetchone()[0]
                lines.append(
                    f"  KPIs off track: {n_off}" + (" (first 10:)" if n_off > len(off) else "")
                )
                for kpi, scope, value, target in off:
                    lines.append(f"    {kpi} ({scope}) = {value:.3g} (target {target:.3g})")
        finally:
            con.close()
    if not lines:
        wh = settings.warehouse_path
        if settings.warehouse == "postgres":
            lines.append(
                f"Plan month {month} processed into {wh} and PostgreSQL {settings.postgres_label}:"
            )
            lines.extend(_postgres_mart_counts(settings))
        else:
            con = duckdb.connect(str(wh), read_only=True)
            try:
                lines.append(f"Plan month {month} processed into {wh}:")
                if table_exists(con, "marts", "fct_demand_history"):
                    for table in _SUMMARY_MARTS:
                        n = con.execute(f"select count(*) from marts.{table}").fetchone()[0]
                        lines.append(f"  marts.{table}: {n:,} rows")
            finally:
                con.close()
    return "\n".join(lines)


def _unmet_demand_line(
    con: duckdb.DuckDBPyConnection, month: str, version: int, currency: str
) -> str:
    """The plan's one unmet-demand figure (Σ demand − Σ served of plan_gaps), per its policy.

    The same figure as plan_inventory and the ``unmet_demand_rate`` KPI (the gate's
    consistency suite checks that they agree); under backlog the peak open backlog is shown
    too, since summing month-end backlogs would count a waiting order once per month.
    """
    short, demand, served, peak, peak_value = con.execute(
        "with m as (select month, sum(gap_qty) as gap, sum(gap_value) as value from plan_gaps "
        "where plan_month = ? and plan_version = ? group by month) "
        "select (select count(*) from plan_gaps where plan_month = ? and plan_version = ? "
        "and gap_qty > 0), (select coalesce(sum(demand_qty), 0) from plan_gaps "
        "where plan_month = ? and plan_version = ?), (select coalesce(sum(supply_qty), 0) "
        "from plan_gaps where plan_month = ? and plan_version = ?), "
        "coalesce(max(gap), 0), coalesce(arg_max(value, gap), 0) from m",
        [month, version] * 4,
    ).fetchone()
    policy = "lost_sales"
    has_policy = con.execute(
        "select count(*) from information_schema.columns "
        "where table_name = 'plan_inventory' and column_name = 'unmet_demand'"
    ).fetchone()[0]
    if has_policy:
        row = con.execute(
            "select any_value(unmet_demand) from plan_inventory "
            "where plan_month = ? and plan_version = ?",
            [month, version],
        ).fetchone()
        policy = row[0] or policy
    unmet = max(0.0, float(demand) - float(served))  # float sums: never print "-0"
    if policy == "backlog":
        return (
            f"  unmet demand (backlog): {unmet:,.0f} units still open at the horizon end; "
            f"peak backlog {peak:,.0f} units ({peak_value:,.0f} {currency}); "
            f"{short} family-months with a backlog"
        )
    value = con.execute(
        "select coalesce(sum(gap_value), 0) from plan_gaps where plan_month = ? and plan_version = ?",
        [month, version],
    ).fetchone()[0]
    return (
        f"  unmet demand (lost sales): {unmet:,.0f} units, {value:,.0f} {currency}; "
        f"{short} family-months short"
    )


_SUMMARY_MARTS = ("dim_items", "fct_demand_history", "fct_capacity", "fct_open_supply")


def _postgres_mart_counts(settings: Settings) -> list[str]:
    """Row counts of the summary marts in PostgreSQL, or why they cannot be read."""
    from sop_pipeline.storage.postgres import WarehouseError, open_marts

    try:
        with open_marts(settings) as marts:
            if not marts.has_mart("fct_demand_history"):
                return []
            return [f"  marts.{t}: {marts.count_rows(t):,} rows" for t in _SUMMARY_MARTS]
    except WarehouseError as exc:
        return [f"  marts not read: {exc}"]


def status(settings: Settings) -> list[str]:
    """State of SOP_HOME: landing months, loaded extract months, published versions."""
    lines = [f"SOP_HOME {settings.sop_home}"]
    months = (
        sorted(p.name for p in settings.landing_dir.iterdir() if p.is_dir())
        if settings.landing_dir.exists()
        else []
    )
    lines.append(
        f"  landing: {len(months)} month folders"
        + (f" ({months[0]}..{months[-1]})" if months else "")
    )
    if settings.warehouse_path.exists():
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        try:
            if table_exists(con, "raw", "_ingest_log"):
                n, last = con.execute(
                    "select count(distinct extract_month), max(extract_month) from raw._ingest_log"
                ).fetchone()
                lines.append(f"  loaded: {n} extract months (latest {last})")
                rej = con.execute("select count(*) from raw.rejects").fetchone()[0]
                lines.append(f"  rejected rows on record: {rej}")
        finally:
            con.close()
    pub = _published_db(settings)
    if pub.exists():
        con = duckdb.connect(str(pub), read_only=True)
        try:
            cols = {r[0] for r in con.execute("describe plan_versions").fetchall()}
            approved = (
                "max(plan_version) filter (where status = 'approved')"
                if "status" in cols
                else "null"
            )
            rows = con.execute(
                f"select plan_month, max(plan_version), max(published_at), {approved} "
                "from plan_versions group by plan_month order by plan_month desc limit 12"
            ).fetchall()
            lines.append(f"  published: {len(rows)} plan months (latest first)")
            for month, version, at, approved_version in rows:
                state = (
                    f"approved v{approved_version}" if approved_version else "no approved version"
                )
                lines.append(f"    {month} v{version} at {at} ({state})")
        finally:
            con.close()
    else:
        lines.append("  published: nothing yet")
    return lines
