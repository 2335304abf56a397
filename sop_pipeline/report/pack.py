"""The executive S&OP pack: one self-contained HTML file per published plan version.

The pack is built from the PUBLISHED tables only (DESIGN §5), so every number in it is one
BI users can find in ``published/sop.duckdb``. Two optional inputs come from elsewhere and
are labelled as such: the demand history (family × month actual demand, from the working
database's ``marts.fct_demand_history``) and the exceptions list (``plan.plan_exceptions``).

Layout (top to bottom): headline figures, KPI scorecard with traffic lights, decisions
needed (top gaps by value with the binding constraint and options), demand plan per family
(history + consensus + statistical 80/95% bands), demand vs constrained supply, capacity
utilization heatmaps, projected inventory vs safety stock, finance vs AOP, scenarios, the
plan-change waterfall, exceptions, forecast accuracy by lag (forecast value added), and the
data lineage of the plan version.

The file opens offline: plotly.js is inlined once in ``<head>``, charts only carry their
data, nothing is fetched from a network. Key figures carry ``data-key`` / ``data-value``
attributes (the exact number, before rounding for display) so tests and scrapers can check
them against the published tables. The same published version gives the same bytes.
"""

from __future__ import annotations

import html
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from sop_pipeline.core.months import month_key, month_start, parse_month
from sop_pipeline.core.settings import Settings
from sop_pipeline.errors import OperationalError
from sop_pipeline.planning.charts import family_forecast_figure, waterfall_axis_range
from sop_pipeline.publish.tables import PACK_TABLES, TABLES
from sop_pipeline.publish.writer import DB_NAME, PublishError, read_published
from sop_pipeline.report.approval_section import (
    ApprovedReference,
    load_approved_reference,
    status_section,
)

#: Months of actual demand drawn before the horizon in the demand charts.
HISTORY_MONTHS = 36
#: Rows in the "decisions needed" and exceptions tables.
TOP_GAPS = 8
TOP_EXCEPTIONS = 12

#: KPI display order and labels (docs/kpis.md).
KPI_LABELS: dict[str, str] = {
    "forecast_accuracy": "Forecast accuracy",
    "forecast_bias": "Forecast bias",
    "revenue_forecast_accuracy": "Revenue forecast accuracy",
    "total_sales_vs_forecast": "Total sales vs forecast",
    "inventory_turns": "Inventory turns",
    "inventory_aging": "Inventory aging (>180 days)",
    "capacity_utilization": "Capacity utilization",
    "production_schedule_attainment": "Production schedule attainment",
    "on_time_delivery": "On-time delivery",
    "order_fill_rate": "Order fill rate",
    "backorder_rate": "Backorder rate",
    "gross_margin_pct": "Gross margin %",
    "revenue_to_aop_ratio": "Revenue ÷ AOP",
    "working_capital_vs_plan": "Working capital vs plan",
}
STATUS_LABELS = {"on_track": "on track", "at_risk": "at risk", "off_track": "off track"}
DIRECTION_LABELS = {
    "higher": "↑ higher is better",
    "lower": "↓ lower is better",
    "closer": "◎ closer to target is better",
}
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
#: ``family`` values a waterfall may use for its all-families rows.
TOTAL_FAMILIES = ("total", "all", "(all)", "all families", "*")
EXCEPTION_ORDER = {"capacity_overload": 0, "stock_out": 1}
KIND_ORDER = ("naive", "statistical", "consensus")

# Colours: one palette for the whole pack (charts and CSS agree).
C_ACTUAL = "#111827"
C_DEMAND = "#6b7280"
C_SUPPLY = "#2563eb"
C_GAP = "#dc2626"
C_AOP = "#f59e0b"
C_MARGIN = "#059669"
C_SAFETY = "#9333ea"
PLOTLY_CONFIG = {"displaylogo": False, "displayModeBar": False, "responsive": True}


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
    #: the last approved plan, to show what a candidate changes (report/approval_section.py)
    approved: ApprovedReference | None = None

    def table(self, name: str) -> pd.DataFrame:
        """A published table of this version (empty frame with the stable columns if absent)."""
        df = self.tables.get(name)
        if df is None:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in TABLES[name].column_names})
        return df


# --------------------------------------------------------------------------------------
# Loading
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
    known = sorted(int(v) for v in versions["plan_version"])
    if version is None:
        version = known[-1]
    elif int(version) not in known:
        raise ReportError(
            f"plan month {month} has no version {version}; published versions are "
            f"{', '.join(map(str, known))}."
        )
    version = int(version)
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
# Formatting
# --------------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _isnum(value: object) -> bool:
    try:
        return value is not None and not pd.isna(value) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt_money(value: float, currency: str = "") -> str:
    """``54645802.1`` → ``'54.65 M'`` (with the currency code first when given)."""
    if not _isnum(value):
        return "–"
    v = float(value)
    a = abs(v)
    if a >= 1e9:
        text = f"{v / 1e9:,.2f} B"
    elif a >= 1e6:
        text = f"{v / 1e6:,.2f} M"
    elif a >= 1e4:
        text = f"{v / 1e3:,.1f} k"
    else:
        text = f"{v:,.0f}"
    return f"{currency} {text}".strip()


def fmt_qty(value: float) -> str:
    """Units with thousands separators."""
    return f"{float(value):,.0f}" if _isnum(value) else "–"


def fmt_pct(value: float, digits: int = 1) -> str:
    """A ratio as a percentage: ``0.4216`` → ``'42.2%'``."""
    return f"{float(value) * 100:.{digits}f}%" if _isnum(value) else "–"


def fmt_kpi(value: float, unit: str | None) -> str:
    """A KPI value in its unit (ratios and shares as %, turns as ``7.66×``)."""
    if not _isnum(value):
        return "–"
    if unit and "turn" in str(unit):
        return f"{float(value):.2f}×"
    return fmt_pct(value)


def _num(value: float, text: str, key: str | None = None, cls: str = "num") -> str:
    """A number with its exact value in ``data-value`` (and a ``data-key`` to find it)."""
    attrs = f' class="{cls}"'
    if key is not None:
        attrs += f' data-key="{_esc(key)}"'
    if _isnum(value):
        attrs += f' data-value="{float(value)!r}"'
    return f"<span{attrs}>{_esc(text)}</span>"


def _no_data(message: str) -> str:
    return f'<div class="nodata">No data: {_esc(message)}</div>'


def _mkey(value: object) -> str:
    return month_key(pd.Timestamp(value).date()) if _isnum_date(value) else "–"


def _isnum_date(value: object) -> bool:
    return value is not None and not pd.isna(value)


def _family_order(data: PackData) -> list[str]:
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


def _figure_html(fig: go.Figure, div_id: str, height: int) -> str:
    fig.update_layout(height=height)
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=PLOTLY_CONFIG,
        default_height=f"{height}px",
    )


def _base_layout(fig: go.Figure, **kwargs: object) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        font={"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 12},
        legend={"orientation": "h", "y": 1.08, "x": 0},
        hovermode="x unified",
        **kwargs,
    )
    return fig


def _dropdown(groups: list[tuple[str, int]], n_traces: int) -> list[dict]:
    """Plotly ``updatemenus`` showing one group of traces at a time."""
    buttons = []
    start = 0
    for label, count in groups:
        visible = [False] * n_traces
        for i in range(start, start + count):
            visible[i] = True
        buttons.append({"label": label, "method": "update", "args": [{"visible": visible}]})
        start += count
    return [
        {
            "buttons": buttons,
            "direction": "down",
            "x": 1.0,
            "xanchor": "right",
            "y": 1.18,
            "yanchor": "top",
            "showactive": True,
        }
    ]


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------


def _headline(data: PackData) -> str:
    cur = data.base_currency
    demand = data.table("plan_demand")
    fin = data.table("plan_financials")
    gaps = data.table("plan_gaps")
    kpis = data.table("kpi_scorecard")
    cards: list[str] = []

    def card(label: str, body: str, sub: str = "", cls: str = "") -> None:
        cards.append(
            f'<div class="card {cls}"><div class="label">{_esc(label)}</div>'
            f'<div class="big">{body}</div><div class="sub">{sub}</div></div>'
        )

    cons_rev = float(demand["consensus_revenue"].sum()) if len(demand) else float("nan")
    cons_qty = float(demand["consensus_qty"].sum()) if len(demand) else float("nan")
    card(
        "Consensus demand (unconstrained)",
        _num(cons_rev, fmt_money(cons_rev, cur), "consensus_revenue_total"),
        _num(cons_qty, fmt_qty(cons_qty), "consensus_qty_total") + " units over the horizon",
    )
    rev = float(fin["revenue"].sum()) if len(fin) else float("nan")
    aop_rows = fin[fin["aop_revenue"].notna()] if len(fin) else fin
    aop = float(aop_rows["aop_revenue"].sum()) if len(aop_rows) else float("nan")
    rev_in_aop = float(aop_rows["revenue"].sum()) if len(aop_rows) else float("nan")
    vs_aop = rev_in_aop - aop if _isnum(aop) and len(aop_rows) else float("nan")
    card(
        "Planned revenue (constrained)",
        _num(rev, fmt_money(rev, cur), "revenue_total"),
        "AOP "
        + _num(aop, fmt_money(aop, cur), "aop_revenue_total")
        + " · Δ "
        + _num(
            vs_aop,
            ("+" if _isnum(vs_aop) and vs_aop >= 0 else "") + fmt_money(vs_aop, ""),
            "revenue_vs_aop_total",
        ),
        "bad" if _isnum(vs_aop) and vs_aop < 0 else "good" if _isnum(vs_aop) else "",
    )
    gm = float(fin["gross_margin"].sum()) if len(fin) else float("nan")
    gm_pct = gm / rev if _isnum(gm) and _isnum(rev) and rev else float("nan")
    card(
        "Gross margin",
        _num(gm, fmt_money(gm, cur), "gross_margin_total"),
        _num(gm_pct, fmt_pct(gm_pct), "gross_margin_pct_total") + " of planned revenue",
    )
    gap_value = float(gaps["gap_value"].sum()) if len(gaps) else float("nan")
    gap_qty = float(gaps["gap_qty"].sum()) if len(gaps) else float("nan")
    short = int((gaps["gap_qty"] > 0).sum()) if len(gaps) else 0
    inv = data.table("plan_inventory")
    if len(gaps) and "unmet_demand" in inv and (inv["unmet_demand"] == "backlog").any():
        # a backlog waits: month-end backlogs do not add up over months, so the card shows
        # the peak and what is still open at the horizon end (docs/supply_and_finance.md)
        unmet = max(0.0, float(gaps["demand_qty"].sum() - gaps["supply_qty"].sum()))
        by_month = gaps.groupby("month")[["gap_qty", "gap_value"]].sum()
        peak_qty, peak_value = by_month.loc[by_month["gap_qty"].idxmax()]
        card(
            "Backlog (demand served late)",
            _num(peak_qty, fmt_qty(peak_qty), "backlog_peak_qty") + " units at peak",
            _num(peak_value, fmt_money(peak_value, cur), "backlog_peak_value")
            + f" · {_num(unmet, fmt_qty(unmet), 'unmet_qty_total')} units still open at the "
            "horizon end",
            "bad" if unmet > 1e-6 else "",
        )
    else:
        card(
            "Supply gap (demand not met)",
            _num(gap_value, fmt_money(gap_value, cur), "gap_value_total"),
            _num(gap_qty, fmt_qty(gap_qty), "gap_qty_total")
            + f" units in {_num(short, str(short), 'gap_family_months')} family-months",
            "bad" if _isnum(gap_value) and gap_value > 0 else "good",
        )
    if len(fin):
        by_month = fin.groupby("month")["inventory_value"].sum().sort_index()
        first, last = float(by_month.iloc[0]), float(by_month.iloc[-1])
        card(
            "Projected inventory value",
            _num(last, fmt_money(last, cur), "inventory_value_end"),
            f"end of {_mkey(by_month.index[-1])} (from "
            + _num(first, fmt_money(first, cur), "inventory_value_first")
            + f" end of {_mkey(by_month.index[0])})",
        )
    total = kpis[kpis["scope"] == "total"] if len(kpis) else kpis
    counts = total["status"].value_counts() if len(total) else pd.Series(dtype=int)
    lights = " ".join(
        f'<span class="light {s}"></span>{_num(int(counts.get(s, 0)), str(int(counts.get(s, 0))), f"kpi_count:{s}")}'
        for s in ("on_track", "at_risk", "off_track")
    )
    card("KPIs (total scope)", lights, "on track · at risk · off track")
    return '<section class="headline">' + "".join(cards) + "</section>"


def _kpi_section(data: PackData) -> str:
    kpis = data.table("kpi_scorecard")
    if kpis.empty:
        return _no_data(
            "the scorecard of this plan is empty (see the kpi_scorecard asset's 'missing' metadata)."
        )
    order = {k: i for i, k in enumerate(KPI_LABELS)}
    kpis = kpis.assign(
        kpi_order=kpis["kpi"].map(order).fillna(len(order)), month_key=kpis["month"].map(_mkey)
    ).sort_values(["kpi_order", "kpi", "month_key"])
    total = kpis[kpis["scope"] == "total"]
    rows = []
    for r in total.itertuples(index=False):
        unit = getattr(r, "unit", None)
        direction = getattr(r, "direction", None)
        definition = getattr(r, "definition", None)
        key = f"kpi:{r.kpi}:{r.scope}:{r.month_key}"
        label = KPI_LABELS.get(r.kpi, str(r.kpi).replace("_", " ").capitalize())
        rows.append(
            f'<tr data-kpi="{_esc(r.kpi)}" data-status="{_esc(r.status)}">'
            f'<td><span class="light {_esc(r.status)}" title="{_esc(STATUS_LABELS.get(r.status, r.status))}"></span></td>'
            f'<td><b>{_esc(label)}</b><div class="def">{_esc(definition or "")}</div></td>'
            f"<td>{_esc(r.month_key)}</td>"
            f'<td class="r">{_num(r.value, fmt_kpi(r.value, unit), key)}</td>'
            f'<td class="r">{_num(r.target, fmt_kpi(r.target, unit), key + ":target")}</td>'
            f'<td class="status {_esc(r.status)}">{_esc(STATUS_LABELS.get(r.status, r.status))}</td>'
            f'<td class="muted">{_esc(DIRECTION_LABELS.get(direction or "", direction or ""))}</td>'
            "</tr>"
        )
    table = (
        '<table class="kpi"><thead><tr><th></th><th>KPI</th><th>month</th><th class="r">value</th>'
        '<th class="r">target</th><th>status</th><th>direction</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )
    fam = kpis[kpis["scope"].astype(str).str.startswith("family:")]
    matrix = ""
    if len(fam):
        families = [f for f in _family_order(data) if f"family:{f}" in set(fam["scope"])]
        families += sorted(
            {s.split(":", 1)[1] for s in fam["scope"]} - set(families)
        )  # families with KPIs but no plan rows
        head = "".join(f"<th>{_esc(f)}</th>" for f in families)
        body = []
        for kpi, grp in fam.groupby("kpi", sort=False):
            cells = []
            unit = grp["unit"].iloc[0] if "unit" in grp.columns else None
            by_scope = {s: g.iloc[0] for s, g in grp.groupby("scope")}
            for f in families:
                r = by_scope.get(f"family:{f}")
                if r is None:
                    cells.append('<td class="cell none">–</td>')
                    continue
                key = f"kpi:{kpi}:family:{f}:{_mkey(r['month'])}"
                cells.append(
                    f'<td class="cell {_esc(r["status"])}" title="{_esc(STATUS_LABELS.get(r["status"], r["status"]))}; '
                    f'target {_esc(fmt_kpi(r["target"], unit))}">{_num(r["value"], fmt_kpi(r["value"], unit), key)}</td>'
                )
            label = KPI_LABELS.get(str(kpi), str(kpi))
            body.append(f"<tr><th class='rowh'>{_esc(label)}</th>{''.join(cells)}</tr>")
        matrix = (
            "<h3>By family</h3><div class='scroll'><table class='matrix'><thead><tr><th></th>"
            + head
            + "</tr></thead><tbody>"
            + "".join(body)
            + "</tbody></table></div>"
        )
    return table + matrix


_CAPACITY_RE = re.compile(r"capacity\s+(\S+)\s+in\s+(\d{4}-\d{2})")


def capacity_shortfall_text(row: pd.Series) -> str:
    """What is short at a work center in a month, in hours, said plainly.

    Args:
        row: a ``plan_capacity`` row (available_hours, required_hours, planned_hours).

    Returns:
        ``": short 123 h (demand needs 843 h; the plan uses 706 h of the 720 h available,
        98%)"``, or, when this month's demand alone fits, that no hours are short then.
    """
    avail = float(row["available_hours"] or 0.0)
    required = float(row["required_hours"] or 0.0)
    planned = float(row["planned_hours"] or 0.0)
    if avail <= 0:
        return f": no hours available, demand needs {fmt_qty(required)} h"
    short = required - planned
    used = f"the plan uses {fmt_qty(planned)} h of the {fmt_qty(avail)} h available, {fmt_pct(planned / avail, 0)}"
    if short > 0.5:
        return f": short {fmt_qty(short)} h (demand needs {fmt_qty(required)} h; {used})"
    return (
        f": no hours short in that month itself ({used}; that month's own demand needs "
        f"{fmt_qty(required)} h, {fmt_pct(required / avail, 0)}, the other planned hours build "
        "stock for other months)"
    )


def decision_options(constraint: str | None, capacity: pd.DataFrame | None = None) -> list[str]:
    """Options a planner can put to the executives for a gap with this binding constraint.

    Args:
        constraint: the gap's binding constraint text (e.g. ``capacity WC-W-MOLD in
            2026-12 (100% of gap value)`` or ``purchase lead time 44 days: ...``).
        capacity: ``plan_capacity`` rows, to quote the work center's planned load.

    Returns:
        Short option sentences, most direct first.
    """
    text = (constraint or "").strip()
    match = _CAPACITY_RE.search(text)
    if match:
        wc, month = match.group(1), match.group(2)
        load = ""
        if capacity is not None and len(capacity):
            rows = capacity[
                (capacity["work_center_id"].astype(str) == wc)
                & (capacity["month"].map(_mkey) == month)
            ]
            if len(rows):
                load = capacity_shortfall_text(rows.iloc[0])
        options = [f"Overtime or extra shift on {wc} in {month}{load}"]
        if "no free capacity earlier" not in text:
            options.append(f"Pre-build in the months before {month}")
        options += [
            "Re-prioritise the constrained hours to the highest-margin items",
            "Move volume to another work center or subcontract",
        ]
        return options
    if "lead time" in text or "purchase" in text:
        return [
            "Expedite purchase orders with the supplier",
            "Re-prioritise stock across locations and customers",
            "Agree the shortfall or a later date with sales",
        ]
    return [
        "Re-prioritise supply to the most valuable orders",
        "Expedite purchase or add capacity",
        "Agree the shortfall with sales",
    ]


def _decisions_section(data: PackData) -> str:
    gaps = data.table("plan_gaps")
    short = gaps[gaps["gap_value"] > 0] if len(gaps) else gaps
    if short.empty:
        return (
            '<div class="ok">No supply gaps: constrained supply covers consensus demand in '
            "every family and month of the horizon.</div>"
        )
    top = short.sort_values(["gap_value", "family"], ascending=[False, True]).head(TOP_GAPS)
    cap = data.table("plan_capacity")
    rows = []
    for i, r in enumerate(top.itertuples(index=False), start=1):
        constraint = getattr(r, "binding_constraint", None)
        constraint = None if constraint is None or pd.isna(constraint) else str(constraint)
        options = "".join(f"<li>{_esc(o)}</li>" for o in decision_options(constraint, cap))
        rows.append(
            f"<tr><td class='r'>{i}</td><td><b>{_esc(r.family)}</b></td><td>{_mkey(r.month)}</td>"
            f"<td class='r'>{_num(r.gap_qty, fmt_qty(r.gap_qty), f'gap_qty:{r.family}:{_mkey(r.month)}')}</td>"
            f"<td class='r'>{_num(r.gap_value, fmt_money(r.gap_value), f'gap_value:{r.family}:{_mkey(r.month)}')}</td>"
            f"<td class='r'>{fmt_pct(r.gap_qty / r.demand_qty if r.demand_qty else float('nan'))}</td>"
            f"<td>{_esc(constraint or 'not recorded')}</td><td><ul class='opts'>{options}</ul></td></tr>"
        )
    shown = float(top["gap_value"].sum())
    total = float(short["gap_value"].sum())
    return (
        f"<p>The {len(top)} largest gaps by value hold "
        f"{_num(shown, fmt_money(shown, data.base_currency), 'gap_value_top')} of the "
        f"{_num(total, fmt_money(total, data.base_currency), 'gap_value_all')} unmet demand "
        f"({len(short)} family-months short). Each needs a decision: accept the shortfall or "
        "fund one of the options.</p>"
        "<table class='dec'><thead><tr><th class='r'>#</th><th>family</th><th>month</th>"
        f"<th class='r'>gap units</th><th class='r'>gap value ({_esc(data.base_currency)})</th>"
        "<th class='r'>% of demand</th><th>binding constraint</th><th>options</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


_BAND_NAMES = {
    "95% interval": "95% band (sum of item bands)",
    "80% interval": "80% band (sum of item bands)",
}


def _demand_section(data: PackData) -> str:
    demand = data.table("plan_demand")
    if demand.empty:
        return _no_data("plan_demand holds no rows for this plan version.")
    history = data.history
    hist = (
        history
        if history is not None
        else pd.DataFrame(
            {
                "family": pd.Series(dtype="object"),
                "month": pd.Series(dtype="datetime64[ns]"),
                "demand_qty": pd.Series(dtype="float64"),
            }
        )
    )
    tiles = []
    for i, family in enumerate(f for f in _family_order(data) if f in set(demand["family"])):
        fig = family_forecast_figure(hist, demand, family)
        if history is None:
            fig.data = tuple(t for t in fig.data if t.name != "actual demand")
        fig.for_each_trace(lambda t: t.update(name=_BAND_NAMES.get(t.name, t.name)))
        fig.update_layout(
            title={"text": f"<b>{html.escape(family)}</b>", "font": {"size": 13}, "x": 0.02},
            showlegend=False,
            margin={"l": 45, "r": 10, "t": 34, "b": 28},
            xaxis_title=None,
            yaxis_title=None,
            font={"size": 11},
        )
        rev = float(demand.loc[demand["family"] == family, "consensus_revenue"].sum())
        qty = float(demand.loc[demand["family"] == family, "consensus_qty"].sum())
        tiles.append(
            f"<div class='tile'>{_figure_html(fig, f'fig-demand-{i}', 250)}"
            f"<div class='cap'>consensus {_num(qty, fmt_qty(qty), f'consensus_qty:{family}')} units · "
            f"{_num(rev, fmt_money(rev, data.base_currency), f'consensus_revenue:{family}')}</div></div>"
        )
    legend = (
        "<div class='legend'>"
        + (
            f"<span><i style='background:{C_ACTUAL}'></i>actual demand</span>"
            if history is not None
            else "<span class='muted'>history not provided</span>"
        )
        + "<span><i style='background:#d62728'></i>consensus forecast</span>"
        "<span><i class='dash' style='border-color:#1f77b4'></i>statistical forecast</span>"
        "<span><i style='background:rgba(31,119,180,.45)'></i>80% band</span>"
        "<span><i style='background:rgba(31,119,180,.18)'></i>95% band</span>"
        "</div><p class='muted'>Bands are the sums of the item × location bands of the "
        "statistical forecast (wider than a family-level interval, since item errors partly "
        "cancel). Units are summed across the family's items.</p>"
    )
    return legend + "<div class='grid'>" + "".join(tiles) + "</div>"


def _supply_section(data: PackData) -> str:
    gaps = data.table("plan_gaps")
    if gaps.empty:
        return _no_data("plan_gaps holds no rows for this plan version.")
    families = [f for f in _family_order(data) if f in set(gaps["family"])]
    groups: list[tuple[str, pd.DataFrame]] = [
        (
            "All families",
            gaps.groupby("month", as_index=False)[["demand_qty", "supply_qty", "gap_qty"]].sum(),
        )
    ]
    groups += [(f, gaps[gaps["family"] == f].sort_values("month")) for f in families]
    fig = go.Figure()
    for gi, (_label, g) in enumerate(groups):
        vis = gi == 0
        x = g["month"].map(_mkey)
        fig.add_trace(
            go.Bar(
                x=x,
                y=g["supply_qty"],
                name="constrained supply",
                marker_color=C_SUPPLY,
                visible=vis,
            )
        )
        fig.add_trace(
            go.Bar(
                x=x,
                y=g["gap_qty"].clip(lower=0),
                name="gap (unmet demand)",
                marker_color=C_GAP,
                visible=vis,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=g["demand_qty"],
                name="consensus demand",
                mode="lines+markers",
                line={"color": C_ACTUAL, "width": 2},
                visible=vis,
            )
        )
    _base_layout(fig, barmode="stack", yaxis_title="units")
    fig.update_layout(updatemenus=_dropdown([(label, 3) for label, _ in groups], len(fig.data)))
    chart = _figure_html(fig, "fig-supply", 380)

    pivot = gaps.assign(m=gaps["month"].map(_mkey)).pivot_table(
        index="family", columns="m", values="gap_value", aggfunc="sum"
    )
    pivot = pivot.reindex([f for f in families if f in pivot.index])
    heat = go.Figure(
        go.Heatmap(
            z=pivot.values,
            x=list(pivot.columns),
            y=list(pivot.index),
            colorscale=[[0, "#f8fafc"], [0.01, "#fee2e2"], [1, C_GAP]],
            zmin=0,
            colorbar={"title": {"text": data.base_currency}},
            hovertemplate="%{y} %{x}<br>gap value %{z:,.0f}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    _base_layout(heat, title={"text": "Gap value by family × month", "font": {"size": 13}})
    heat.update_layout(yaxis={"autorange": "reversed"}, hovermode="closest")
    return (
        "<p>Bars stack constrained supply and the gap (unmet demand) to the consensus demand "
        "line; pick a family in the menu.</p>"
        + chart
        + _figure_html(heat, "fig-gap-heatmap", 60 + 26 * max(len(pivot), 3))
        + material_constraints_html(data.table("plan_materials"))
    )


#: Rows in the supply section's "top material constraints" table.
TOP_MATERIALS = 5


def material_constraints_html(materials: pd.DataFrame) -> str:
    """The supply section's top material constraints (``plan_materials``); "" without a BOM.

    One row per material × location that is short in some month, largest shortage first:
    total units short, the first month short, and the binding supplier constraint.
    """
    if materials is None or materials.empty:
        return ""
    short = materials[pd.to_numeric(materials["shortage_qty"], errors="coerce") > 1e-6]
    if short.empty:
        return (
            "<h3>Material constraints</h3><div class='ok'>Suppliers cover the materials of the "
            f"whole production plan ({materials['component_item_id'].nunique()} materials).</div>"
        )
    top = (
        short.sort_values("month")
        .groupby(["component_item_id", "location_id"], as_index=False)
        .agg(
            shortage_qty=("shortage_qty", "sum"),
            first_month=("month", "min"),
            months=("month", "nunique"),
            binding=("binding_constraint", "first"),
        )
        .sort_values(["shortage_qty", "component_item_id"], ascending=[False, True])
        .head(TOP_MATERIALS)
    )
    rows = "".join(
        f"<tr><td>{_esc(r['component_item_id'])}</td><td>{_esc(r['location_id'])}</td>"
        f"<td class='r'>{_num(r['shortage_qty'], fmt_qty(r['shortage_qty']), 'material_short:' + str(r['component_item_id']))}</td>"
        f"<td>{_mkey(r['first_month'])}</td><td class='r'>{int(r['months'])}</td>"
        f"<td>{_esc(r['binding'] or '')}</td></tr>"
        for r in top.to_dict("records")
    )
    return (
        "<h3>Top material constraints</h3><p>Materials the suppliers cannot deliver in time for "
        "the production plan; production of the items made from them is cut (see the exceptions "
        "list, type material short).</p><table class='ex'><thead><tr><th>material</th>"
        "<th>location</th><th class=r>units short</th><th>first month</th><th class=r>months</th>"
        "<th>binding constraint</th></tr></thead><tbody>" + rows + "</tbody></table>"
    )


_UTIL_SCALE = [
    [0.0, "#f0fdf4"],
    [0.55, "#86efac"],
    [0.66, "#fde68a"],
    [0.75, "#fb923c"],
    [1.0, "#b91c1c"],
]


def _capacity_section(data: PackData) -> str:
    cap = data.table("plan_capacity")
    if cap.empty:
        return _no_data("plan_capacity holds no rows for this plan version.")
    cap = cap.assign(
        m=cap["month"].map(_mkey),
        required_util=cap["required_hours"]
        / cap["available_hours"].where(cap["available_hours"] > 0),
    )
    wcs = sorted(cap["work_center_id"].astype(str).unique())
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            "Planned hours ÷ available hours (constrained plan, overtime included)",
            "Required hours ÷ available hours (unconstrained demand)",
        ),
    )
    for row, col in ((1, "utilization"), (2, "required_util")):
        p = cap.pivot_table(index="work_center_id", columns="m", values=col, aggfunc="sum").reindex(
            wcs
        )
        fig.add_trace(
            go.Heatmap(
                z=p.values,
                x=list(p.columns),
                y=list(p.index),
                zmin=0,
                zmax=1.5,
                colorscale=_UTIL_SCALE,
                coloraxis=None,
                showscale=row == 1,
                colorbar={"title": {"text": "load"}, "tickformat": ".0%"},
                texttemplate="%{z:.0%}",
                textfont={"size": 10},
                hovertemplate="%{y} %{x}<br>%{z:.1%}<extra></extra>",
                xgap=1,
                ygap=1,
            ),
            row=row,
            col=1,
        )
    _base_layout(fig)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    over = cap[cap["utilization"] > 1.0]
    note = (
        f"<p>{_num(len(over), str(len(over)), 'capacity_over_100')} work-center months are planned "
        "above 100% of available hours (overtime). Colour scale: green up to 85%, amber to 100%, "
        "red above.</p>"
    )
    return note + _figure_html(fig, "fig-capacity", 140 + 2 * 28 * max(len(wcs), 3))


def _inventory_section(data: PackData) -> str:
    inv = data.table("plan_inventory")
    if inv.empty:
        return _no_data("plan_inventory holds no rows for this plan version.")
    demand = data.table("plan_demand")
    fam_of = demand.drop_duplicates("item_id").set_index("item_id")["family"] if len(demand) else {}
    family = inv["item_id"].map(fam_of)
    if "family" in inv.columns:
        family = family.fillna(inv["family"])
    inv = inv.assign(family=family.fillna("(unknown)"))
    # a sum over items hides the series below safety stock (one item's surplus covers another's
    # deficit): count them per month, and list the items at risk
    inv = inv.assign(
        below=inv["closing_qty"] < inv["safety_stock_qty"] - 1e-9,
        deficit=(inv["safety_stock_qty"] - inv["closing_qty"]).clip(lower=0),
    )

    def per_month(g: pd.DataFrame) -> pd.DataFrame:
        out = g.groupby("month", as_index=False).agg(
            closing_qty=("closing_qty", "sum"),
            safety_stock_qty=("safety_stock_qty", "sum"),
            shortage_qty=("shortage_qty", "sum"),
            n_below=("below", "sum"),
        )
        n = g[["item_id", "location_id"]].drop_duplicates().shape[0]
        return out.assign(share_below=out["n_below"] / n if n else 0.0)

    groups = [("All families", per_month(inv))]
    for f in _family_order(data) + sorted(set(inv["family"]) - set(_family_order(data))):
        g = inv[inv["family"] == f]
        if len(g):
            groups.append((f, per_month(g)))
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        row_heights=[0.45, 0.55],
        subplot_titles=(
            "Item × location series below safety stock (count; share in the label)",
            "Units summed across items",
        ),
    )
    for gi, (_label, g) in enumerate(groups):
        vis = gi == 0
        x = g["month"].map(_mkey)
        fig.add_trace(
            go.Bar(
                x=x,
                y=g["n_below"],
                name="series below safety stock",
                marker_color=C_SAFETY,
                text=[
                    f"{int(n)} ({s:.0%})"
                    for n, s in zip(g["n_below"], g["share_below"], strict=True)
                ],
                textposition="outside",
                cliponaxis=False,
                visible=vis,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=g["closing_qty"],
                name="projected closing inventory",
                mode="lines",
                line={"color": C_SUPPLY, "width": 2.5},
                fill="tozeroy",
                fillcolor="rgba(37,99,235,0.10)",
                visible=vis,
            ),
            row=2,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=g["safety_stock_qty"],
                name="safety stock",
                mode="lines",
                line={"color": C_SAFETY, "dash": "dash", "width": 2},
                visible=vis,
            ),
            row=2,
            col=1,
        )
        fig.add_trace(
            go.Bar(x=x, y=g["shortage_qty"], name="shortage", marker_color=C_GAP, visible=vis),
            row=2,
            col=1,
        )
    _base_layout(fig)
    # the legend above the upper chart's title, not over it
    fig.update_layout(margin={"t": 80}, legend={"yanchor": "bottom", "y": 1.07})
    fig.update_yaxes(title_text="series", row=1, col=1)
    fig.update_yaxes(title_text="units", row=2, col=1)
    fig.update_layout(updatemenus=_dropdown([(label, 4) for label, _ in groups], len(fig.data)))
    below = inv[inv["below"]]
    n_series = inv[["item_id", "location_id"]].drop_duplicates().shape[0]
    n_below = below[["item_id", "location_id"]].drop_duplicates().shape[0]
    total = groups[0][1]
    worst = total.loc[total["n_below"].idxmax()] if len(total) else None
    worst_text = ""
    if worst is not None and worst["n_below"] > 0:
        worst_text = (
            f" The worst month is {_mkey(worst['month'])}: "
            f"{_num(int(worst['n_below']), str(int(worst['n_below'])), 'series_below_safety_stock_worst_month')}"
            f" series ({fmt_pct(worst['share_below'], 0)}) below safety stock."
        )
    return (
        f"<p>{_num(n_below, str(n_below), 'series_below_safety_stock')} of "
        f"{_num(n_series, str(n_series), 'inventory_series')} item × location series "
        f"({fmt_pct(n_below / n_series if n_series else 0.0, 0)}) fall below safety stock in at "
        f"least one month of the horizon.{worst_text} The upper chart counts them per month; the "
        "lower one sums units across items, where one item's surplus hides another's deficit. "
        "Pick a family in the menu.</p>"
        + _figure_html(fig, "fig-inventory", 520)
        + _items_at_risk(inv)
        + _inventory_vs_aop_note(data)
    )


#: rows of the "items at risk" table of the inventory section
TOP_ITEMS_AT_RISK = 10


def _items_at_risk(inv: pd.DataFrame) -> str:
    """The series furthest below safety stock over the horizon (largest total deficit first)."""
    below = inv[inv["below"]]
    if below.empty:
        return ""
    risk = (
        below.groupby(["item_id", "location_id"], as_index=False)
        .agg(
            family=("family", "first"),
            months_below=("month", "nunique"),
            first_month=("month", "min"),
            deficit=("deficit", "sum"),
            worst_deficit=("deficit", "max"),
            shortage=("shortage_qty", "sum"),
        )
        .sort_values(["shortage", "deficit", "item_id"], ascending=[False, False, True])
    )
    top = risk.head(TOP_ITEMS_AT_RISK)
    rows = "".join(
        f"<tr><td>{_esc(r.item_id)}</td><td>{_esc(r.location_id)}</td><td>{_esc(r.family)}</td>"
        f"<td class='r'>{int(r.months_below)}</td><td>{_mkey(r.first_month)}</td>"
        f"<td class='r'>{_num(r.worst_deficit, fmt_qty(r.worst_deficit), f'risk_deficit:{r.item_id}@{r.location_id}')}</td>"
        f"<td class='r'>{fmt_qty(r.shortage)}</td></tr>"
        for r in top.itertuples(index=False)
    )
    more = (
        f" ({len(risk) - len(top)} more in plan_inventory: closing_qty below safety_stock_qty)"
        if len(risk) > len(top)
        else ""
    )
    return (
        f"<h3>Items at risk: the {len(top)} series with the largest shortage, then the largest "
        f"deficit below safety stock{_esc(more)}</h3>"
        "<table class='risk'><thead><tr><th>item</th><th>location</th><th>family</th>"
        "<th class='r'>months below</th><th>first month below</th>"
        "<th class='r'>largest deficit (units)</th><th class='r'>shortage (units)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _inventory_vs_aop_note(data: PackData) -> str:
    """Where the projected inventory value goes, against the AOP inventory target.

    Reads plan_financials' safety_stock_value (Σ min(closing, safety stock) × unit cost),
    inventory_value and aop_inventory_value over the horizon months with a target.
    """
    fin = data.table("plan_financials")
    need = {"inventory_value", "aop_inventory_value", "safety_stock_value"}
    if fin.empty or not need <= set(fin.columns):
        return ""
    fin = fin[fin["aop_inventory_value"].fillna(0) > 0]
    if fin.empty:
        return ""
    inv, aop = float(fin["inventory_value"].sum()), float(fin["aop_inventory_value"].sum())
    ss = float(fin["safety_stock_value"].sum())
    by = fin.groupby("family")[["inventory_value", "aop_inventory_value"]].sum()
    ratio = (by["inventory_value"] / by["aop_inventory_value"]).sort_values(ascending=False)
    over = ", ".join(f"{_esc(f)} {r:.1f}×" for f, r in ratio.head(3).items())
    return (
        f"<p>Projected inventory value is {_num(inv / aop, f'{inv / aop:.2f}×', 'inventory_vs_aop_ratio')} "
        f"the AOP inventory target over the horizon months with a target (highest: {over}). "
        f"Safety stock is {_num(ss / inv if inv else 0.0, fmt_pct(ss / inv if inv else 0.0), 'safety_stock_share')} "
        f"of it, and safety stock alone is {fmt_pct(ss / aop)} of the target: the AOP does not "
        "fund the service level the plan protects (safety stock = z × σ × √(lead time + 1 "
        "month), SOP_SERVICE_LEVEL). The rest is cycle stock of min lots and pre-build ahead "
        "of capacity shortfalls and seasons. Shortages persist next to this stock because "
        "they sit in other items and months (capacity and lead-time limits, see the gaps "
        "above): stock of one item does not serve another's demand.</p>"
    )


def _finance_section(data: PackData) -> str:
    fin = data.table("plan_financials")
    if fin.empty:
        return _no_data("plan_financials holds no rows for this plan version.")
    cur = data.base_currency
    demand = data.table("plan_demand")
    monthly = fin.groupby("month", as_index=False).agg(
        revenue=("revenue", "sum"),
        gross_margin=("gross_margin", "sum"),
        aop_revenue=("aop_revenue", lambda s: s.sum(min_count=1)),
    )
    monthly["gm_pct"] = monthly["gross_margin"] / monthly["revenue"].where(monthly["revenue"] != 0)
    x = monthly["month"].map(_mkey)
    fig = make_subplots(
        rows=1,
        cols=2,
        specs=[[{}, {"secondary_y": True}]],
        subplot_titles=(f"Revenue vs AOP ({cur})", f"Gross margin ({cur}) and margin %"),
        horizontal_spacing=0.1,
    )
    fig.add_trace(
        go.Bar(
            x=x, y=monthly["revenue"], name="planned revenue (constrained)", marker_color=C_SUPPLY
        ),
        1,
        1,
    )
    if len(demand):
        cons = demand.groupby("month", as_index=False)["consensus_revenue"].sum()
        fig.add_trace(
            go.Scatter(
                x=cons["month"].map(_mkey),
                y=cons["consensus_revenue"],
                name="consensus revenue (unconstrained)",
                mode="lines",
                line={"color": C_DEMAND, "dash": "dot"},
            ),
            1,
            1,
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=monthly["aop_revenue"],
            name="AOP revenue",
            mode="lines+markers",
            line={"color": C_AOP, "width": 2.5},
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Bar(x=x, y=monthly["gross_margin"], name="gross margin", marker_color=C_MARGIN), 1, 2
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=monthly["gm_pct"],
            name="gross margin %",
            mode="lines+markers",
            line={"color": C_ACTUAL},
        ),
        1,
        2,
        secondary_y=True,
    )
    _base_layout(fig)
    fig.update_layout(legend={"y": -0.15, "orientation": "h"}, margin={"t": 50})
    fig.update_yaxes(tickformat=".0%", secondary_y=True, row=1, col=2, rangemode="tozero")
    chart = _figure_html(fig, "fig-finance", 400)

    rows = []
    for f in [f for f in _family_order(data) if f in set(fin["family"])] + ["Total"]:
        g = fin if f == "Total" else fin[fin["family"] == f]
        rev, gm = float(g["revenue"].sum()), float(g["gross_margin"].sum())
        with_aop = g[g["aop_revenue"].notna()]
        aop = float(with_aop["aop_revenue"].sum()) if len(with_aop) else float("nan")
        delta = float(with_aop["revenue"].sum()) - aop if len(with_aop) else float("nan")
        last_month = g["month"].max()
        inv_end = float(g.loc[g["month"] == last_month, "inventory_value"].sum())
        key = "total" if f == "Total" else f
        cls = ' class="total"' if f == "Total" else ""
        ratio = (float(with_aop["revenue"].sum()) / aop) if _isnum(aop) and aop else float("nan")
        rows.append(
            f"<tr{cls}><td>{_esc(f)}</td>"
            f"<td class='r'>{_num(rev, fmt_money(rev), f'fin_revenue:{key}')}</td>"
            f"<td class='r'>{_num(aop, fmt_money(aop), f'fin_aop_revenue:{key}')}</td>"
            f"<td class='r {'neg' if _isnum(delta) and delta < 0 else 'pos'}'>"
            f"{_num(delta, ('+' if _isnum(delta) and delta >= 0 else '') + fmt_money(delta), f'fin_revenue_vs_aop:{key}')}"
            f" <span class='muted'>({fmt_pct(ratio - 1 if _isnum(ratio) else ratio)})</span></td>"
            f"<td class='r'>{_num(gm, fmt_money(gm), f'fin_gross_margin:{key}')}</td>"
            f"<td class='r'>{fmt_pct(gm / rev if rev else float('nan'))}</td>"
            f"<td class='r'>{_num(inv_end, fmt_money(inv_end), f'fin_inventory_value_end:{key}')}</td></tr>"
        )
    table = (
        f"<table class='fin'><thead><tr><th>family</th><th class='r'>planned revenue ({_esc(cur)})</th>"
        "<th class='r'>AOP revenue</th><th class='r'>planned vs AOP</th>"
        "<th class='r'>gross margin</th><th class='r'>margin %</th>"
        "<th class='r'>inventory value, horizon end</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    note = (
        "<p class='muted'>Planned revenue and margin cover the whole horizon; the AOP columns "
        "compare planned with AOP revenue over the months that have an AOP target.</p>"
    )
    return chart + table + note


def _metric_rank(metric: str) -> tuple[int, str]:
    """Revenue, gap and inventory first (what executives ask for), then the rest."""
    m = metric.lower()
    for i, word in enumerate(("revenue", "gap", "inventory", "margin", "demand", "supply")):
        if word in m:
            return i, m
    return 9, m


def metric_kind(metric: str) -> str:
    """``flow`` (summed over months), ``stock`` (a level) or ``ratio`` (a rate)."""
    m = metric.lower()
    if any(w in m for w in ("utilization", "pct", "ratio", "rate")):
        return "ratio"
    if "inventory" in m or "stock" in m:
        return "stock"
    return "flow"


def _is_good(metric: str, delta: float) -> bool | None:
    """Whether a delta helps: more revenue or margin is good, more gap or shortage is bad."""
    if not _isnum(delta) or delta == 0:
        return None
    m = metric.lower()
    if any(w in m for w in ("demand", "utilization", "inventory")):
        return None  # depends on the situation: shown without colour
    bad_up = any(w in m for w in ("gap", "short", "cost", "cogs", "backorder"))
    return (delta < 0) if bad_up else (delta > 0)


def scenario_totals(scenarios: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario × metric: base, scenario and delta over the horizon.

    Flows (revenue, margin, gap and other quantities) are summed over families and months;
    stocks (inventory) are summed over families and averaged over months; ratios
    (utilization) are averaged over families and months.

    Args:
        scenarios: ``scenario_comparison`` rows.

    Returns:
        scenario, metric, base_value, scenario_value, delta.
    """
    cols = ["base_value", "scenario_value", "delta"]
    keys = ["scenario", "metric"]
    kind = scenarios["metric"].astype(str).map(metric_kind)
    flows = scenarios[kind == "flow"].groupby(keys, as_index=False)[cols].sum()
    stocks = (
        scenarios[kind == "stock"]
        .groupby([*keys, "month"], as_index=False)[cols]
        .sum()
        .groupby(keys, as_index=False)[cols]
        .mean()
    )
    ratios = scenarios[kind == "ratio"].groupby(keys, as_index=False)[cols].mean()
    return pd.concat([flows, stocks, ratios], ignore_index=True)


def _fmt_delta(metric: str, delta: float) -> str:
    kind = metric_kind(metric)
    if kind == "ratio":
        return f"{delta * 100:+.1f} pp"
    fmt = fmt_qty if "qty" in metric.lower() else fmt_money
    return ("+" if delta > 0 else "") + fmt(delta)


def _scenario_section(data: PackData) -> str:
    sc = data.table("scenario_comparison")
    if sc.empty:
        return _no_data(
            "no what-if scenarios were run for this plan (add scenarios to the planning inputs "
            "to compare them with the base plan)."
        )
    totals = scenario_totals(sc)
    metrics = sorted(totals["metric"].astype(str).unique(), key=_metric_rank)
    scenarios = sorted(totals["scenario"].astype(str).unique())
    head = "".join(
        f"<th class='r'>Δ {_esc(m.replace('_', ' '))}"
        + {
            "stock": " <span class='muted'>(avg month)</span>",
            "ratio": " <span class='muted'>(avg)</span>",
        }.get(metric_kind(m), "")
        + "</th>"
        for m in metrics
    )
    rows = []
    for s in scenarios:
        cells = []
        for m in metrics:
            r = totals[(totals["scenario"] == s) & (totals["metric"] == m)]
            if r.empty:
                cells.append("<td class='r muted'>–</td>")
                continue
            d = float(r["delta"].iloc[0])
            base = float(r["base_value"].iloc[0])
            pct = ""
            if base and metric_kind(m) != "ratio":
                pct = f" <span class='muted'>({fmt_pct(d / base)})</span>"
            good = _is_good(m, d)
            cells.append(
                f"<td class='r {'' if good is None else 'pos' if good else 'neg'}'>"
                f"{_num(d, _fmt_delta(m, d), f'scenario:{s}:{m}')}{pct}</td>"
            )
        rows.append(f"<tr><td><b>{_esc(s)}</b></td>{''.join(cells)}</tr>")
    charted = metrics[:3]  # the table has them all; the chart keeps to the headline three
    fig = make_subplots(
        rows=1,
        cols=len(charted),
        shared_yaxes=True,
        horizontal_spacing=0.06,
        subplot_titles=[m.replace("_", " ") for m in charted],
    )
    for i, m in enumerate(charted, start=1):
        t = totals[totals["metric"] == m].set_index("scenario").reindex(scenarios)
        fig.add_trace(
            go.Bar(
                y=scenarios,
                x=t["delta"],
                orientation="h",
                marker_color=[C_MARGIN if _is_good(m, v) else C_GAP for v in t["delta"].fillna(0)],
                name=m,
                showlegend=False,
                hovertemplate="%{y}: Δ %{x:,.0f}<extra></extra>",
            ),
            1,
            i,
        )
    _base_layout(fig)
    fig.update_layout(hovermode="closest")
    return (
        "<p>Deltas of each scenario against the base plan over the horizon, all families "
        f"({_esc(data.base_currency)} for money; inventory as the average month, utilization as "
        "the average).</p>"
        "<table class='sc'><thead><tr><th>scenario</th>"
        + head
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + _figure_html(fig, "fig-scenarios", 80 + 40 * max(len(scenarios), 2))
    )


def _waterfall_measures(values: list[float]) -> list[str]:
    """``absolute`` for the first and last bars when they are the totals the steps join."""
    if len(values) >= 3:
        start, steps, end = values[0], values[1:-1], values[-1]
        if abs(start + sum(steps) - end) <= 1e-6 * max(1.0, abs(end)):
            return ["absolute"] + ["relative"] * len(steps) + ["total"]
    return ["relative"] * len(values)


#: Waterfall components (sop_pipeline/planning/waterfall.py) as executives read them.
COMPONENT_LABELS = {
    "start": "last plan",
    "new_actuals": "new actuals",
    "model_change": "model change",
    "crm_change": "CRM pipeline",
    "override_change": "overrides",
    "capacity_change": "capacity",
    "price_change": "price",
    "end": "this plan",
}


def _component_label(component: object) -> str:
    return COMPONENT_LABELS.get(str(component), str(component).replace("_", " "))


def _waterfall_section(data: PackData) -> str:
    wf = data.waterfall
    if wf is None or wf.empty:
        return _no_data(
            "the plan-change waterfall is not available for this plan (it needs an earlier "
            "published plan to compare with)."
        )
    family = wf["family"].astype(str).str.strip().str.lower() if "family" in wf.columns else None
    if family is not None and family.isin(TOTAL_FAMILIES).any():
        wf = wf[family.isin(TOTAL_FAMILIES)]  # use the all-families rows, not their parts
    group_cols = ["sort_order", "component"]
    steps = (
        wf.groupby(group_cols, as_index=False)[["qty", "revenue"]].sum().sort_values("sort_order")
    )
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Units", f"Revenue ({data.base_currency})"))
    zoomed = []
    for col, name in ((1, "qty"), (2, "revenue")):
        values = [float(v) for v in steps[name]]
        measures = _waterfall_measures(values)
        # changes on their own scale: a -7.7k change on 690k is invisible on an axis from 0
        axis = waterfall_axis_range(values, measures)
        if axis is not None:
            fig.update_yaxes(range=axis, row=1, col=col)
            zoomed.append("units" if name == "qty" else "revenue")
        fig.add_trace(
            go.Waterfall(
                x=[_component_label(c) for c in steps["component"]],
                y=values,
                measure=measures,
                increasing={"marker": {"color": C_MARGIN}},
                decreasing={"marker": {"color": C_GAP}},
                totals={"marker": {"color": C_SUPPLY}},
                connector={"line": {"color": "#9ca3af"}},
                showlegend=False,
                name=name,
            ),
            1,
            col,
        )
    _base_layout(fig)
    fig.update_layout(hovermode="closest")
    rows = "".join(
        f"<tr><td>{_esc(_component_label(r.component))}</td><td class='r'>{_num(r.qty, fmt_qty(r.qty), f'waterfall_qty:{r.component}')}</td>"
        f"<td class='r'>{_num(r.revenue, fmt_money(r.revenue), f'waterfall_revenue:{r.component}')}</td></tr>"
        for r in steps.itertuples(index=False)
    )
    axis_note = (
        f" The {' and '.join(zoomed)} axis does not start at 0, so that the changes show on "
        "their own scale; the totals' bars are cut at the bottom."
        if zoomed
        else ""
    )
    return (
        f"<p>How the plan moved since the previous one, all families.{axis_note}</p>"
        + _figure_html(fig, "fig-waterfall", 380)
        + f"<table class='wf'><thead><tr><th>component</th><th class='r'>units</th><th class='r'>revenue ({_esc(data.base_currency)})</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _exceptions_section(data: PackData) -> str:
    ex = data.exceptions
    if ex is None:
        return _no_data("the exceptions list was not provided to the pack.")
    if ex.empty:
        return "<div class='ok'>No exceptions: nothing in this plan needs a planner's action.</div>"
    ex = ex.copy()
    sev = ex["severity"] if "severity" in ex.columns else pd.Series("", index=ex.index)
    kind = ex["exception_type"] if "exception_type" in ex.columns else pd.Series("", index=ex.index)
    counts = pd.crosstab(kind.astype(str), sev.astype(str))
    sev_cols = sorted(counts.columns, key=lambda s: SEVERITY_ORDER.get(s, 9))
    summary = "".join(
        f"<tr><td>{_esc(t.replace('_', ' '))}</td>"
        + "".join(
            f"<td class='r'>{_num(int(counts.loc[t, s]), str(int(counts.loc[t, s])), f'exceptions:{t}:{s}')}</td>"
            for s in sev_cols
        )
        + "</tr>"
        for t in counts.index
    )
    # most severe first; within a severity, capacity before stock-outs (one overload causes
    # many stock-outs), then the largest value. One row per exception type × scope (an item
    # short in five months is one line), the action list first, the low-priority rows (excess
    # inventory: often thousands) grouped and capped below it; the full list is plan_exceptions.
    ex["_sev"] = sev.map(lambda s: SEVERITY_ORDER.get(str(s), 9))
    ex["_type"] = kind.map(lambda t: EXCEPTION_ORDER.get(str(t), 9))
    ex["_abs"] = pd.to_numeric(ex["value"], errors="coerce").abs() if "value" in ex.columns else 0
    action = ex[ex["_sev"] < SEVERITY_ORDER["low"]]
    low = ex[ex["_sev"] >= SEVERITY_ORDER["low"]]
    action_groups = _group_exceptions(action)
    low_groups = _group_exceptions(low)
    top = action_groups.head(TOP_EXCEPTIONS)
    top_low = low_groups.head(TOP_LOW_EXCEPTIONS)

    def rows_of(frame: pd.DataFrame) -> str:
        return "".join(
            f"<tr><td class='sev {_esc(r['severity'])}'>{_esc(r['severity'])}</td>"
            f"<td>{_esc(str(r['exception_type']).replace('_', ' '))}</td>"
            f"<td>{_esc(r['scope_id'])}</td><td>{_esc(r['months'])}</td>"
            f"<td>{_esc(r['reason'])}</td></tr>"
            for r in frame.to_dict("records")
        )

    head = (
        "<thead><tr><th>severity</th><th>type</th><th>scope</th><th>months</th>"
        "<th>reason and action (worst month)</th></tr></thead>"
    )
    low_kinds = (
        ", ".join(sorted({str(t).replace("_", " ") for t in low["exception_type"]}))
        if len(low)
        else ""
    )
    parts = [
        f"<p>{_num(len(ex), str(len(ex)), 'exceptions_total')} exceptions in this plan "
        "(from the pipeline's exception check of the same run): "
        f"{_num(len(action), str(len(action)), 'exceptions_action')} {'needs' if len(action) == 1 else 'need'} action "
        f"(high or medium severity, {len(action_groups)} items or work centers)"
        + (
            f", {_num(len(low), str(len(low)), 'exceptions_low')} {'is' if len(low) == 1 else 'are'} low priority "
            f"({_esc(low_kinds)}, {len(low_groups)} items) and are grouped at the end"
            if len(low)
            else ""
        )
        + ". The full list is the plan_exceptions table.</p>",
        f"<table class='exs'><thead><tr><th>type</th>{''.join(f'<th class=r>{_esc(s)}</th>' for s in sev_cols)}"
        f"</tr></thead><tbody>{summary}</tbody></table>",
    ]
    if len(top):
        shown = (
            f"the {len(top)} of {len(action_groups)}" if len(action_groups) > len(top) else "all"
        )
        parts.append(
            f"<h3>Needs action: {shown} most severe</h3>"
            f"<table class='ex ex-action'>{head}<tbody>{rows_of(top)}</tbody></table>"
        )
    else:
        parts.append("<div class='ok'>No high or medium exception: nothing urgent.</div>")
    if len(top_low):
        parts.append(
            f"<h3>Low priority: the {len(top_low)} largest of {len(low_groups)} items "
            f"({len(low)} rows)</h3>"
            f"<table class='ex ex-low'>{head}<tbody>{rows_of(top_low)}</tbody></table>"
        )
    return "".join(parts)


#: rows of the low-priority (grouped) exceptions table
TOP_LOW_EXCEPTIONS = 5


def _group_exceptions(ex: pd.DataFrame) -> pd.DataFrame:
    """One row per exception type × scope, ranked: severity, type order, largest value.

    Columns: severity, exception_type, scope_id, months (``2026-06`` or
    ``2026-06..2026-09 (4 months)``), reason (of the worst row), rows.
    """
    cols = ["severity", "exception_type", "scope_id", "months", "reason", "rows"]
    if ex.empty:
        return pd.DataFrame(columns=cols)
    ex = ex.assign(
        scope_id=ex["scope_id"].astype(str) if "scope_id" in ex.columns else "",
        exception_type=ex["exception_type"].astype(str),
        _m=ex["month"].map(lambda m: _mkey(m) if _isnum_date(m) else "")
        if "month" in ex.columns
        else "",
        _absf=pd.to_numeric(ex["_abs"], errors="coerce").fillna(0.0),
    )
    worst = ex.sort_values(["_sev", "_type", "_absf"], ascending=[True, True, False], kind="stable")
    groups = []
    for (_t, _s), g in worst.groupby(["exception_type", "scope_id"], sort=False):
        first = g.iloc[0]
        months = sorted(m for m in g["_m"].unique() if m)
        if not months:
            span = "–"
        elif len(months) == 1:
            span = months[0]
        else:
            span = f"{months[0]}..{months[-1]} ({len(months)} months)"
        groups.append(
            {
                "severity": str(first.get("severity", "")),
                "exception_type": first["exception_type"],
                "scope_id": first["scope_id"],
                "months": span,
                "reason": str(first.get("reason", "")),
                "rows": len(g),
                "_sev": first["_sev"],
                "_type": first["_type"],
                "_absf": first["_absf"],
            }
        )
    out = pd.DataFrame(groups).sort_values(
        ["_sev", "_type", "_absf", "rows"], ascending=[True, True, False, False], kind="stable"
    )
    return out[cols].reset_index(drop=True)


def _accuracy_section(data: PackData) -> str:
    acc = data.table("forecast_accuracy")
    if not acc.empty and "forecast_kind" in acc.columns:
        # the stage's own backtest rows (forecast_kind *_backtest) are for BI, not this table
        acc = acc[acc["forecast_kind"].isin(KIND_ORDER)]
    if acc.empty:
        return _no_data(
            "no earlier published plan forecast this month yet, so accuracy cannot be measured "
            "(backfill earlier months with `sop backfill` to build the track record)."
        )
    latest = acc["month"].max()
    acc = acc[acc["month"] == latest]
    levels = [lv for lv in ("item", "family", "total") if lv in set(acc["level"])]
    levels += sorted(set(acc["level"].astype(str)) - set(levels))
    rows = []
    for level in levels:
        for lag in sorted(acc.loc[acc["level"] == level, "lag"].unique()):
            g = acc[(acc["level"] == level) & (acc["lag"] == lag)].set_index("forecast_kind")
            wape = {
                k: (float(g.loc[k, "wape"]) if k in g.index else float("nan")) for k in KIND_ORDER
            }
            fva_stat = wape["naive"] - wape["statistical"]
            fva_cons = wape["statistical"] - wape["consensus"]
            bias = float(g.loc["consensus", "bias"]) if "consensus" in g.index else float("nan")
            cells = "".join(
                f"<td class='r'>{_num(wape[k], fmt_pct(wape[k]), f'wape:{k}:{level}:{lag}')}</td>"
                for k in KIND_ORDER
            )

            def fva(v: float, key: str) -> str:
                cls = "pos" if _isnum(v) and v > 0 else "neg" if _isnum(v) and v < 0 else ""
                text = f"{'+' if _isnum(v) and v > 0 else ''}{v * 100:.1f} pp" if _isnum(v) else "–"
                return f"<td class='r {cls}'>{_num(v, text, key)}</td>"

            rows.append(
                f"<tr><td>{_esc(level)}</td><td class='r'>{int(lag)}</td>{cells}"
                f"{fva(fva_stat, f'fva_stat:{level}:{lag}')}{fva(fva_cons, f'fva_consensus:{level}:{lag}')}"
                f"<td class='r'>{_num(bias, fmt_pct(bias), f'bias:consensus:{level}:{lag}')}</td></tr>"
            )
    level = levels[0]
    g = acc[acc["level"] == level]
    fig = go.Figure()
    colors = {"naive": C_DEMAND, "statistical": "#1f77b4", "consensus": "#d62728"}
    for k in KIND_ORDER:
        gk = g[g["forecast_kind"] == k].sort_values("lag")
        if len(gk):
            fig.add_trace(
                go.Bar(
                    x=[f"lag {int(v)}" for v in gk["lag"]],
                    y=gk["wape"],
                    name=k,
                    marker_color=colors[k],
                )
            )
    _base_layout(fig, barmode="group", yaxis_tickformat=".0%", yaxis_title=f"WAPE ({level} level)")
    return (
        f"<p>Forecasts that earlier plans made for {_mkey(latest)}, measured against its actuals. "
        "Forecast value added (FVA) is the WAPE points a step removes: the statistical forecast "
        "against the seasonal naive one, the consensus against the statistical one (positive = "
        "the step helped).</p>"
        + _figure_html(fig, "fig-accuracy", 320)
        + "<table class='acc'><thead><tr><th>level</th><th class='r'>lag</th>"
        "<th class='r'>WAPE naive</th><th class='r'>WAPE statistical</th><th class='r'>WAPE consensus</th>"
        "<th class='r'>FVA statistical</th><th class='r'>FVA consensus</th><th class='r'>bias consensus</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _lineage_section(data: PackData) -> str:
    v = data.version_row
    items = [
        ("plan month", _esc(data.plan_month), "plan_month"),
        ("plan version", _num(data.plan_version, str(data.plan_version), "plan_version"), None),
        ("run id", _esc(v.get("run_id")), "run_id"),
        ("published at (UTC)", _esc(str(v.get("published_at", ""))), "published_at"),
        (
            "input fingerprint",
            f"<code>{_esc(v.get('input_fingerprint'))}</code>",
            "input_fingerprint",
        ),
        ("code version", _esc(v.get("code_version")), "code_version"),
        (
            "checks passed / failed",
            _num(v.get("checks_passed"), str(v.get("checks_passed")), "checks_passed")
            + " / "
            + _num(v.get("checks_failed"), str(v.get("checks_failed")), "checks_failed"),
            None,
        ),
    ]
    if "is_backfill" in v and not pd.isna(v.get("is_backfill")):
        items.append(("backfill", "yes" if bool(v["is_backfill"]) else "no", None))
    rows = "".join(
        f"<dt>{_esc(label)}</dt><dd{f' data-field={chr(34)}{f}{chr(34)}' if f else ''}>{value}</dd>"
        for label, value, f in items
    )
    others = data.versions[data.versions["plan_version"] != data.plan_version]
    other = ""
    if len(others):
        other = (
            "<p class='muted'>Other versions of this month: "
            + ", ".join(
                f"v{int(r.plan_version)} ({_esc(str(r.published_at))})"
                for r in others.itertuples(index=False)
            )
            + ".</p>"
        )
    counts = ", ".join(f"{name} {len(data.table(name)):,}" for name in PACK_TABLES)
    sources = (
        f"<p class='muted'>Every figure comes from <code>published/{DB_NAME}</code>, plan month "
        f"{_esc(data.plan_month)} version {data.plan_version} (rows: {_esc(counts)})"
        + (
            "; demand history from the working database's marts.fct_demand_history"
            if data.history is not None
            else ""
        )
        + (
            "; exceptions from the pipeline's exception check"
            if data.exceptions is not None
            else ""
        )
        + ".</p>"
    )
    notes = "".join(f"<p class='muted'>{_esc(n)}</p>" for n in data.notes)
    return f"<dl class='lineage'>{rows}</dl>{other}{sources}{notes}"


CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--accent:#1e3a8a;
--green:#16a34a;--amber:#f59e0b;--red:#dc2626}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 Inter,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header.top{background:linear-gradient(90deg,#1e3a8a,#2563eb);color:#fff;padding:22px 32px 18px}
header.top h1{margin:0;font-size:26px;font-weight:650;letter-spacing:-.01em}
header.top .meta{opacity:.9;margin-top:4px}
header.top .meta b{font-weight:600}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;
display:flex;flex-wrap:wrap;gap:4px 16px;font-size:13px}
nav a{color:var(--accent);text-decoration:none}nav a:hover{text-decoration:underline}
main{max-width:1320px;margin:0 auto;padding:18px 32px 40px}
section.block{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin:16px 0;
break-inside:avoid}
section.block>h2{margin:0 0 8px;font-size:18px;color:var(--accent)}
h3{font-size:14px;margin:14px 0 6px}
.headline{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:12px;margin-top:4px}
.card{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--accent);border-radius:8px;padding:10px 14px}
.card.bad{border-left-color:var(--red)}.card.good{border-left-color:var(--green)}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.card .big{font-size:22px;font-weight:650;margin:2px 0}
.card .sub{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top;text-align:left}
thead th{background:#f1f5f9;font-weight:600;color:#374151;white-space:nowrap}
td.r,th.r{text-align:right;white-space:nowrap}
tr.total td{font-weight:650;border-top:2px solid #cbd5e1}
.def{color:var(--muted);font-size:12px;max-width:560px}
.muted{color:var(--muted)}
.light{display:inline-block;width:12px;height:12px;border-radius:50%;vertical-align:-1px;margin:0 4px 0 6px;
box-shadow:inset 0 0 0 1px rgba(0,0,0,.15)}
.light.on_track{background:var(--green)}.light.at_risk{background:var(--amber)}.light.off_track{background:var(--red)}
td.status{font-weight:600}td.status.on_track{color:var(--green)}td.status.at_risk{color:#b45309}td.status.off_track{color:var(--red)}
.matrix td.cell{text-align:center;white-space:nowrap;font-size:12px}
.matrix td.on_track{background:#dcfce7}.matrix td.at_risk{background:#fef3c7}.matrix td.off_track{background:#fee2e2}
.matrix th.rowh{white-space:nowrap;font-weight:500}
.scroll{overflow-x:auto}
.neg{color:var(--red)}.pos{color:var(--green)}
ul.opts{margin:0;padding-left:16px}ul.opts li{margin:0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(390px,1fr));gap:10px}
.tile{border:1px solid var(--line);border-radius:8px;padding:4px}
.tile .cap{font-size:12px;color:var(--muted);padding:0 8px 4px}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;margin:4px 0}
.legend i{display:inline-block;width:18px;height:10px;margin-right:5px;vertical-align:0}
.legend i.dash{height:0;border-top:2px dashed;vertical-align:3px}
.nodata{padding:14px;border:1px dashed #cbd5e1;border-radius:8px;color:var(--muted);background:#f8fafc}
.ok{padding:12px;border-radius:8px;background:#dcfce7;color:#14532d}
td.sev.high{color:var(--red);font-weight:600}td.sev.medium{color:#b45309;font-weight:600}
dl.lineage{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.lineage dt{color:var(--muted)}dl.lineage dd{margin:0;word-break:break-all}
footer{max-width:1320px;margin:0 auto;padding:0 32px 32px;color:var(--muted);font-size:12px}
@media print{nav{display:none}section.block{border:none;page-break-inside:avoid}body{background:#fff}}
"""


def build_pack(data: PackData) -> str:
    """The executive pack of one plan version as one self-contained HTML page.

    Args:
        data: the pack's data (``load_pack_data``).

    Returns:
        The HTML text: plotly.js inlined once, no network reference; the same data gives
        the same text.
    """
    demand = data.table("plan_demand")
    horizon = ""
    if len(demand):
        horizon = f" · horizon {_mkey(demand['month'].min())} – {_mkey(demand['month'].max())}"
    sections = [
        ("status", "Plan status", status_section),
        ("kpis", "KPI scorecard", _kpi_section),
        ("decisions", "Decisions needed", _decisions_section),
        ("demand", "Demand plan by family", _demand_section),
        ("supply", "Demand vs constrained supply", _supply_section),
        ("capacity", "Capacity utilization", _capacity_section),
        ("inventory", "Projected inventory vs safety stock", _inventory_section),
        ("finance", "Revenue and gross margin vs AOP", _finance_section),
        ("scenarios", "Scenario comparison", _scenario_section),
        ("waterfall", "Plan-change waterfall", _waterfall_section),
        ("exceptions", "Exceptions", _exceptions_section),
        ("accuracy", "Forecast accuracy and value added", _accuracy_section),
        ("lineage", "Data lineage", _lineage_section),
    ]
    nav = "".join(f"<a href='#{sid}'>{_esc(title)}</a>" for sid, title, _ in sections)
    body = "".join(
        f"<section class='block' id='{sid}'><h2>{_esc(title)}</h2>{fn(data)}</section>"
        for sid, title, fn in sections
    )
    published = _esc(str(data.version_row.get("published_at", "")))
    title = f"Executive S&OP pack — {data.plan_month} v{data.plan_version}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(title)}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<header class='top'><h1>Executive S&amp;OP pack</h1><div class='meta'>"
        f"Plan month <b data-field='plan_month'>{_esc(data.plan_month)}</b> · version "
        f"<b data-field='plan_version'>{data.plan_version}</b>{_esc(horizon)} · money in "
        f"{_esc(data.base_currency)} · published {published} UTC</div></header>"
        f"<nav>{nav}</nav><main>{_headline(data)}{body}</main>"
        f"<footer>Plan {_esc(data.plan_month)} v{data.plan_version} · run "
        f"{_esc(data.version_row.get('run_id'))} · fingerprint "
        f"{_esc(str(data.version_row.get('input_fingerprint', ''))[:12])} · code "
        f"{_esc(data.version_row.get('code_version'))}</footer></body></html>\n"
    )


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def pack_path(settings: Settings, month: str, version: int) -> Path:
    """``$SOP_HOME/reports/<M>/sop_pack_<M>_v<N>.html``."""
    return settings.reports_dir / month / f"sop_pack_{month}_v{int(version)}.html"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_pack(
    settings: Settings,
    month: str,
    *,
    version: int | None = None,
    history: pd.DataFrame | None = None,
    exceptions: pd.DataFrame | None = None,
    waterfall: pd.DataFrame | None = None,
) -> Path:
    """Write the pack of a published plan version under ``$SOP_HOME/reports/<M>/``.

    Writes ``sop_pack_<M>_v<N>.html`` and, when N is the month's newest pack,
    ``index.html`` (a copy of it). Both are replaced atomically.

    Args:
        settings: pipeline settings (paths, base currency).
        month: plan month ``YYYY-MM``.
        version: plan version; None for the latest published version of the month.
        history: family × month actual demand, or None to leave history out of the charts.
        exceptions: the plan's exceptions, or None.
        waterfall: the plan-change waterfall rows, or None.

    Returns:
        The path of ``sop_pack_<M>_v<N>.html``.

    Raises:
        ReportError: the month or version is not published.
    """
    data = load_pack_data(
        settings.published_dir,
        month,
        version,
        history,
        exceptions=exceptions,
        waterfall=waterfall,
        base_currency=settings.base_currency,
    )
    return _write_data(settings, data)


def _write_data(settings: Settings, data: PackData) -> Path:
    """Write a loaded pack; refresh ``index.html`` when it is the month's newest version."""
    text = build_pack(data)
    path = pack_path(settings, data.plan_month, data.plan_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, text)
    newest = max(
        (
            int(m.group(1))
            for p in path.parent.glob(f"sop_pack_{data.plan_month}_v*.html")
            if (m := re.search(r"_v(\d+)\.html$", p.name))
        ),
        default=data.plan_version,
    )
    if data.plan_version >= newest:
        _atomic_write(path.parent / "index.html", text)
    return path


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


def write_pack_from_published(settings: Settings, month: str, version: int | None = None) -> Path:
    """The pack of the latest published version of ``month`` (what ``sop report`` runs).

    Demand history (``marts.fct_demand_history``), exceptions (``plan.plan_exceptions``) and
    the waterfall (``plan.plan_waterfall``) come from the working database when it can be
    read and the published tables do not hold them; everything else from the published
    tables.

    Args:
        settings: pipeline settings.
        month: plan month ``YYYY-MM``.
        version: another published version than the latest (e.g. the one just approved).

    Returns:
        The path of the written pack.

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
    return _write_data(settings, data)


__all__ = [
    "PackData",
    "ReportError",
    "build_pack",
    "load_pack_data",
    "write_pack",
    "read_working_inputs",
    "read_postgres_history",
    "write_pack_from_published",
]
