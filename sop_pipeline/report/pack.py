"""The executive S&OP pack: one self-contained HTML file per published plan version.

The entry points (``write_pack``, ``write_pack_from_published``, ``build_pack``,
``load_pack_data``) live here; the work is split by what it does:

- ``report/data.py`` reads the published tables of one plan version (and the working
  database's demand history, exceptions and waterfall) into a :class:`PackData`;
- ``report/sections_plan.py`` and ``report/sections_review.py`` turn it into the plain data
  of each section (numbers, rows, texts; no HTML), ``report/approval_section.py`` that of
  the plan status;
- ``report/figures.py`` and ``report/figures_review.py`` draw the plotly charts;
- ``report/render.py`` renders the Jinja2 templates (``report/templates/*.html.j2``, one per
  section and a base layout, autoescaped) with ``report/static/pack.css`` and plotly.js
  inlined, so the file opens offline as one file.

Layout (top to bottom): headline figures, KPI scorecard with traffic lights, decisions
needed (top gaps by value with the binding constraint and options), demand plan per family
(history + consensus + statistical 80/95% bands), demand vs constrained supply, capacity
utilization heatmaps, projected inventory vs safety stock, finance vs AOP, scenarios, the
plan-change waterfall, exceptions, forecast accuracy by lag (forecast value added), and the
data lineage of the plan version. Key figures carry ``data-key`` / ``data-value``
attributes (the exact number, before rounding for display) so tests and scrapers can check
them against the published tables. The same published version gives the same bytes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from sop_pipeline.core.settings import Settings
from sop_pipeline.report.data import (
    HISTORY_MONTHS,
    PACK_TABLES,
    PackData,
    ReportError,
    WorkingInputs,
    load_pack_data,
    load_working_pack_data,
    read_postgres_history,
    read_working_inputs,
)
from sop_pipeline.report.formatting import fmt_kpi, fmt_money, fmt_pct, fmt_qty
from sop_pipeline.report.render import build_pack, material_constraints_html
from sop_pipeline.report.sections_plan import (
    KPI_LABELS,
    TOP_GAPS,
    capacity_shortfall_text,
    decision_options,
)
from sop_pipeline.report.sections_review import (
    TOP_EXCEPTIONS,
    TOP_LOW_EXCEPTIONS,
    metric_kind,
    scenario_totals,
)


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
    return _write_data(settings, load_working_pack_data(settings, month, version))


__all__ = [
    "HISTORY_MONTHS",
    "KPI_LABELS",
    "PACK_TABLES",
    "TOP_EXCEPTIONS",
    "TOP_GAPS",
    "TOP_LOW_EXCEPTIONS",
    "PackData",
    "ReportError",
    "WorkingInputs",
    "build_pack",
    "capacity_shortfall_text",
    "decision_options",
    "fmt_kpi",
    "fmt_money",
    "fmt_pct",
    "fmt_qty",
    "load_pack_data",
    "material_constraints_html",
    "metric_kind",
    "pack_path",
    "read_postgres_history",
    "read_working_inputs",
    "scenario_totals",
    "write_pack",
    "write_pack_from_published",
]
