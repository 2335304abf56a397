"""Plotly figures of the demand plan (for the executive pack and Dagster metadata).

kaleido is not installed, so figures are returned as objects or HTML, never as PNG.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def family_forecast_figure(
    history: pd.DataFrame, plan_demand: pd.DataFrame, family: str
) -> go.Figure:
    """History, statistical and consensus forecast with 80/95% bands for one family.

    Args:
        history: item_id, month, demand_qty, and ``family`` (or items' family via plan_demand).
        plan_demand: the ``plan_demand`` frame (item_id, family, month, stat_* and consensus_qty).
        family: the family to draw.

    Returns:
        A plotly figure; bands are the sums of the item bands (a conservative width, since
        item errors are not perfectly correlated).

    Raises:
        ValueError: the family has no rows in ``plan_demand``.
    """
    plan = plan_demand[plan_demand["family"] == family]
    if plan.empty:
        raise ValueError(
            f"family {family!r} has no rows in plan_demand; pick one of {sorted(plan_demand['family'].unique())[:10]}."
        )
    if "family" in history.columns:
        hist = history[history["family"] == family]
    else:
        hist = history[history["item_id"].isin(plan["item_id"].unique())]
    actual = hist.groupby("month", as_index=False)["demand_qty"].sum().sort_values("month")
    cols = [
        "stat_forecast_qty",
        "stat_lo80_qty",
        "stat_hi80_qty",
        "stat_lo95_qty",
        "stat_hi95_qty",
        "consensus_qty",
    ]
    fc = plan.groupby("month", as_index=False)[cols].sum().sort_values("month")

    fig = go.Figure()
    for lo, hi, name, opacity in (
        ("stat_lo95_qty", "stat_hi95_qty", "95% interval", 0.15),
        ("stat_lo80_qty", "stat_hi80_qty", "80% interval", 0.3),
    ):
        fig.add_trace(
            go.Scatter(
                x=fc["month"],
                y=fc[hi],
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=fc["month"],
                y=fc[lo],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=f"rgba(31, 119, 180, {opacity})",
                name=name,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=actual["month"],
            y=actual["demand_qty"],
            mode="lines",
            name="actual demand",
            line={"color": "black"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=fc["month"],
            y=fc["stat_forecast_qty"],
            mode="lines",
            name="statistical forecast",
            line={"dash": "dash", "color": "#1f77b4"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=fc["month"],
            y=fc["consensus_qty"],
            mode="lines+markers",
            name="consensus",
            line={"color": "#d62728"},
        )
    )
    fig.update_layout(
        title=f"Demand plan — family {family}",
        xaxis_title="month",
        yaxis_title="units",
        hovermode="x unified",
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def figure_html(fig: go.Figure, *, inline_js: bool = False) -> str:
    """A figure as an HTML fragment.

    Args:
        fig: the figure.
        inline_js: embed plotly.js (~4 MB) in the fragment. By default it is left out: a
            page with several figures includes plotly.js once, and nothing is fetched from a CDN.

    Returns:
        An HTML ``<div>`` (not a full page) to put in a report or Dagster metadata.
    """
    return fig.to_html(full_html=False, include_plotlyjs=bool(inline_js))


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
