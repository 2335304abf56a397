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
