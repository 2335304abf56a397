"""The executive pack's HTML: section data → Jinja2 templates → one self-contained page.

``build_pack`` asks each section for its data (``sections_plan.py``, ``sections_review.py``,
``approval_section.py``), renders ``templates/base.html.j2`` (which includes one template
per section, ``templates/<section id>.html.j2``) and inlines ``static/pack.css`` and
plotly.js, so the file opens offline as one file. Autoescape is on: every text from the
data (item ids, families, exception reasons, notes) is written as text, never as markup;
only the plotly chart ``<div>`` s, the CSS and plotly.js are inserted as they are.

The templates and the CSS are package data (pyproject ``[tool.setuptools.package-data]``):
an installed package reads them with ``importlib.resources``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources

import jinja2
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from sop_pipeline.report import approval_section, sections_plan, sections_review
from sop_pipeline.report.data import PackData
from sop_pipeline.report.figures import figure_div
from sop_pipeline.report.formatting import FILTERS, exact, mkey

#: The pack's sections, top to bottom: id (anchor and template name), title, data function.
SECTIONS: tuple[tuple[str, str, Callable[[PackData], dict]], ...] = (
    ("status", "Plan status", approval_section.status),
    ("kpis", "KPI scorecard", sections_plan.kpis),
    ("decisions", "Decisions needed", sections_plan.decisions),
    ("demand", "Demand plan by family", sections_plan.demand),
    ("supply", "Demand vs constrained supply", sections_plan.supply),
    ("capacity", "Capacity utilization", sections_plan.capacity),
    ("inventory", "Projected inventory vs safety stock", sections_plan.inventory),
    ("finance", "Revenue and gross margin vs AOP", sections_review.finance),
    ("scenarios", "Scenario comparison", sections_review.scenarios),
    ("waterfall", "Plan-change waterfall", sections_review.waterfall),
    ("exceptions", "Exceptions", sections_review.exceptions),
    ("accuracy", "Forecast accuracy and value added", sections_review.accuracy),
    ("lineage", "Data lineage", sections_review.lineage),
)


def _none_as_empty(value: object) -> object:
    """A missing value (None) prints as nothing, as the pack always wrote it."""
    return "" if value is None else value


@cache
def environment() -> jinja2.Environment:
    """The pack's Jinja2 environment: package templates, autoescape, strict undefined."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sop_pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_none_as_empty,
    )
    env.filters.update(FILTERS)
    env.filters["exact"] = exact
    env.globals["plot"] = figure_div
    return env


@cache
def stylesheet() -> str:
    """``static/pack.css``, the text inlined into the pack's ``<style>``."""
    return resources.files("sop_pipeline.report").joinpath("static/pack.css").read_text("utf-8")


def render_section(template: str, **context: object) -> str:
    """One template of the pack (e.g. ``materials.html.j2``) with the given context."""
    return environment().get_template(template).render(**context)


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
        horizon = f" · horizon {mkey(demand['month'].min())} – {mkey(demand['month'].max())}"
    v = data.version_row
    return render_section(
        "base.html.j2",
        title=f"Executive S&OP pack — {data.plan_month} v{data.plan_version}",
        css=Markup(stylesheet()),
        plotly_js=Markup(get_plotlyjs()),
        plan_month=data.plan_month,
        plan_version=data.plan_version,
        horizon=horizon,
        cur=data.base_currency,
        published=str(v.get("published_at", "")),
        headline=sections_plan.headline(data),
        sections=[
            {"id": sid, "title": title, "template": f"{sid}.html.j2", "data": fn(data)}
            for sid, title, fn in SECTIONS
        ],
        run_id=v.get("run_id"),
        fingerprint=str(v.get("input_fingerprint", ""))[:12],
        code_version=v.get("code_version"),
    )


def material_constraints_html(materials) -> str:
    """The supply section's top material constraints as HTML; "" without a BOM."""
    return render_section(
        "materials.html.j2", m=sections_plan.material_constraints(materials)
    ).strip()
