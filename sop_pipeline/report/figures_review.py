"""The charts of the pack's review sections: finance, scenarios, waterfall, accuracy.

Built from the frames ``report/sections_review.py`` prepares; the palette and the common
layout are in ``report/figures.py``, which also has the plan sections' charts.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sop_pipeline.report.figures import (
    C_ACTUAL,
    C_AOP,
    C_DEMAND,
    C_GAP,
    C_MARGIN,
    C_SUPPLY,
    base_layout,
)
from sop_pipeline.report.formatting import mkey


def finance_figure(monthly: pd.DataFrame, consensus: pd.DataFrame | None, cur: str) -> go.Figure:
    """Revenue vs AOP (left) and gross margin with margin % (right), per month.

    Args:
        monthly: month, revenue, gross_margin, aop_revenue, gm_pct.
        consensus: month, consensus_revenue (None without plan_demand rows).
        cur: the currency code.
    """
    x = monthly["month"].map(mkey)
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
    if consensus is not None:
        fig.add_trace(
            go.Scatter(
                x=consensus["month"].map(mkey),
                y=consensus["consensus_revenue"],
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
    base_layout(fig)
    fig.update_layout(legend={"y": -0.15, "orientation": "h"}, margin={"t": 50})
    fig.update_yaxes(tickformat=".0%", secondary_y=True, row=1, col=2, rangemode="tozero")
    return fig


def scenario_figure(
    totals: pd.DataFrame,
    charted: list[str],
    scenarios: list[str],
    is_good: Callable[[str, float], bool | None],
) -> go.Figure:
    """Horizontal bars of each scenario's delta, one panel per charted metric.

    Args:
        totals: scenario, metric, delta (``scenario_totals``).
        charted: the metrics to draw.
        scenarios: the scenarios, top to bottom.
        is_good: whether a metric's delta helps (green bar) or not (red).
    """
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
                marker_color=[C_MARGIN if is_good(m, v) else C_GAP for v in t["delta"].fillna(0)],
                name=m,
                showlegend=False,
                hovertemplate="%{y}: Δ %{x:,.0f}<extra></extra>",
            ),
            1,
            i,
        )
    base_layout(fig)
    fig.update_layout(hovermode="closest")
    return fig


def waterfall_axis_range(values: list[float], measures: list[str]) -> list[float] | None:
    """A value-axis range that shows a waterfall's changes on their own scale.

    A waterfall from 690k units to 682k drawn from 0 makes the −7.7k change a sliver of a
    pixel. The range spans the levels the bars reach (the totals and every running level)
    with a margin of a third of the changes' span, so the largest change takes a good part
    of the chart; the totals' bars are cut at the bottom (the pack says the axis does not
    start at 0).

    Args:
        values: the bars' values (totals for ``absolute``/``total``, changes for ``relative``).
        measures: plotly waterfall measures of the bars.

    Returns:
        ``[low, high]``, or None when starting at 0 shows the changes well enough (the
        changes are at least a fifth of the largest level, or the levels cross 0).
    """
    levels: list[float] = []
    level = 0.0
    for value, measure in zip(values, measures, strict=True):
        if measure == "absolute":
            level = value
        elif measure == "relative":
            level += value
        levels.append(level)  # "total" shows the running level
    if not levels:
        return None
    lo, hi = min(levels), max(levels)
    top = max(abs(lo), abs(hi))
    if lo <= 0 <= hi or top == 0:
        return None
    span = hi - lo
    if span >= 0.2 * top:
        return None
    pad = span / 3.0 if span > 0 else 0.01 * top
    low, high = lo - pad, hi + pad
    if lo > 0:
        low = max(low, 0.0)
    else:
        high = min(high, 0.0)
    return [low, high]


def waterfall_measures(values: list[float]) -> list[str]:
    """``absolute`` for the first and last bars when they are the totals the steps join."""
    if len(values) >= 3:
        start, steps, end = values[0], values[1:-1], values[-1]
        if abs(start + sum(steps) - end) <= 1e-6 * max(1.0, abs(end)):
            return ["absolute"] + ["relative"] * len(steps) + ["total"]
    return ["relative"] * len(values)


def waterfall_figure(
    steps: pd.DataFrame, labels: list[str], cur: str
) -> tuple[go.Figure, list[str]]:
    """Units and revenue waterfalls from the last plan to this one.

    Args:
        steps: component, qty, revenue in bar order.
        labels: the bars' labels.
        cur: the currency code.

    Returns:
        The figure and the axes ("units", "revenue") that do not start at 0.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Units", f"Revenue ({cur})"))
    zoomed = []
    for col, name in ((1, "qty"), (2, "revenue")):
        values = [float(v) for v in steps[name]]
        measures = waterfall_measures(values)
        # changes on their own scale: a -7.7k change on 690k is invisible on an axis from 0
        axis = waterfall_axis_range(values, measures)
        if axis is not None:
            fig.update_yaxes(range=axis, row=1, col=col)
            zoomed.append("units" if name == "qty" else "revenue")
        fig.add_trace(
            go.Waterfall(
                x=labels,
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
    base_layout(fig)
    fig.update_layout(hovermode="closest")
    return fig, zoomed


def accuracy_figure(acc: pd.DataFrame, kinds: tuple[str, ...], level: str) -> go.Figure:
    """WAPE by lag, one bar group per lag, one bar per forecast kind (one level)."""
    fig = go.Figure()
    colors = {"naive": C_DEMAND, "statistical": "#1f77b4", "consensus": "#d62728"}
    for k in kinds:
        gk = acc[acc["forecast_kind"] == k].sort_values("lag")
        if len(gk):
            fig.add_trace(
                go.Bar(
                    x=[f"lag {int(v)}" for v in gk["lag"]],
                    y=gk["wape"],
                    name=k,
                    marker_color=colors[k],
                )
            )
    base_layout(fig, barmode="group", yaxis_tickformat=".0%", yaxis_title=f"WAPE ({level} level)")
    return fig
