"""The charts of the executive pack (plotly) and the family forecast chart as a still image.

Every chart of the pack is built from the frames its section prepares: the plan sections'
charts here (``report/sections_plan.py``), the review sections' in ``figures_review.py``;
the templates only place the ``<div>`` that :func:`figure_div` returns. Colours are one palette for the whole pack
(charts and ``static/pack.css`` agree).

The family forecast chart (history, statistical and consensus forecast, 80/95% bands) is
drawn with plotly for the pack and the Dagster UI alike, from the one series function
:func:`family_forecast_series`. The Dagster UI shows metadata as Markdown, which cannot run
plotly.js, so the ``plan_demand`` asset shows the same series as a PNG:
:func:`family_forecast_still` draws it with matplotlib. plotly writes a PNG only through
kaleido, which needs a Chrome binary at run time (nothing may be downloaded at run time,
and the pipeline must not depend on a browser), so matplotlib stays for that one image.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup
from plotly.subplots import make_subplots

from sop_pipeline.report.formatting import mkey

# Colours: one palette for the whole pack (charts and CSS agree).
C_ACTUAL = "#111827"
C_DEMAND = "#6b7280"
C_SUPPLY = "#2563eb"
C_GAP = "#dc2626"
C_AOP = "#f59e0b"
C_MARGIN = "#059669"
C_SAFETY = "#9333ea"
PLOTLY_CONFIG = {"displaylogo": False, "displayModeBar": False, "responsive": True}

#: the forecast columns of ``plan_demand`` a family chart sums
FORECAST_COLUMNS = [
    "stat_forecast_qty",
    "stat_lo80_qty",
    "stat_hi80_qty",
    "stat_lo95_qty",
    "stat_hi95_qty",
    "consensus_qty",
]


# --------------------------------------------------------------------------------------
# The family forecast chart
# --------------------------------------------------------------------------------------


def family_forecast_series(
    history: pd.DataFrame, plan_demand: pd.DataFrame, family: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The actual demand and the forecast of one family, month by month.

    Args:
        history: item_id, month, demand_qty, and ``family`` (or items' family via plan_demand).
        plan_demand: the ``plan_demand`` frame (item_id, family, month, stat_* and consensus_qty).
        family: the family.

    Returns:
        ``(actual, forecast)``: month, demand_qty; and month with the sums of
        :data:`FORECAST_COLUMNS` over the family's items (bands are sums of item bands).

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
    fc = plan.groupby("month", as_index=False)[FORECAST_COLUMNS].sum().sort_values("month")
    return actual, fc


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
    actual, fc = family_forecast_series(history, plan_demand, family)
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


def family_forecast_still(history: pd.DataFrame, plan_demand: pd.DataFrame, families: int = 4):
    """The family forecast chart of the largest families as a matplotlib figure (for a PNG).

    Args:
        history: family, month, demand_qty (item rows are summed).
        plan_demand: the ``plan_demand`` frame.
        families: how many families, largest consensus first.

    Returns:
        A matplotlib ``Figure``, one panel per family: the last 36 months of history, the
        80/95% bands, the statistical and the consensus forecast.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = plan_demand.groupby("family")["consensus_qty"].sum()
    top = totals.nlargest(families).index.tolist()
    fig, axes = plt.subplots(len(top), 1, figsize=(9, 2.4 * max(len(top), 1)), squeeze=False)
    for ax, family in zip(axes[:, 0], top, strict=False):
        h, f = family_forecast_series(history, plan_demand, family)
        h = h.tail(36)
        ax.plot(h["month"], h["demand_qty"], color="#333", label="actual demand")
        for lo, hi, color, label in (
            ("stat_lo95_qty", "stat_hi95_qty", "#9ecae1", "95%"),
            ("stat_lo80_qty", "stat_hi80_qty", "#4292c6", "80%"),
        ):
            ax.fill_between(f["month"], f[lo], f[hi], color=color, alpha=0.4, label=label)
        ax.plot(f["month"], f["stat_forecast_qty"], color="#08519c", ls="--", label="statistical")
        ax.plot(f["month"], f["consensus_qty"], color="#d94801", label="consensus")
        ax.set_title(f"{family} (sum of item-level ranges)", fontsize=9)
        ax.tick_params(labelsize=7)
    if top:
        axes[0, 0].legend(fontsize=7, ncol=5, loc="upper left")
    return fig


_BAND_NAMES = {
    "95% interval": "95% band (sum of item bands)",
    "80% interval": "80% band (sum of item bands)",
}


def demand_tile_figure(
    history: pd.DataFrame, demand: pd.DataFrame, family: str, *, with_history: bool
) -> go.Figure:
    """The family forecast chart as a small multiple of the pack's demand section."""
    fig = family_forecast_figure(history, demand, family)
    if not with_history:
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
    return fig


# --------------------------------------------------------------------------------------
# Placing a figure
# --------------------------------------------------------------------------------------


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


def figure_div(fig: go.Figure, div_id: str, height: int) -> Markup:
    """A pack chart: its ``<div>`` and ``Plotly.newPlot`` call (plotly.js is in ``<head>``)."""
    fig.update_layout(height=height)
    return Markup(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config=PLOTLY_CONFIG,
            default_height=f"{height}px",
        )
    )


def base_layout(fig: go.Figure, **kwargs: object) -> go.Figure:
    """The pack's common layout: white template, small margins, legend on top."""
    fig.update_layout(
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        font={"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 12},
        legend={"orientation": "h", "y": 1.08, "x": 0},
        hovermode="x unified",
        **kwargs,
    )
    return fig


def dropdown(groups: list[tuple[str, int]], n_traces: int) -> list[dict]:
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
# Supply, capacity, inventory
# --------------------------------------------------------------------------------------


def supply_figure(groups: list[tuple[str, pd.DataFrame]]) -> go.Figure:
    """Supply + gap stacked against demand per month; a menu picks all families or one."""
    fig = go.Figure()
    for gi, (_label, g) in enumerate(groups):
        vis = gi == 0
        x = g["month"].map(mkey)
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
    base_layout(fig, barmode="stack", yaxis_title="units")
    fig.update_layout(updatemenus=dropdown([(label, 3) for label, _ in groups], len(fig.data)))
    return fig


def gap_heatmap(pivot: pd.DataFrame, currency: str) -> go.Figure:
    """Gap value, family × month."""
    heat = go.Figure(
        go.Heatmap(
            z=pivot.values,
            x=list(pivot.columns),
            y=list(pivot.index),
            colorscale=[[0, "#f8fafc"], [0.01, "#fee2e2"], [1, C_GAP]],
            zmin=0,
            colorbar={"title": {"text": currency}},
            hovertemplate="%{y} %{x}<br>gap value %{z:,.0f}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    base_layout(heat, title={"text": "Gap value by family × month", "font": {"size": 13}})
    heat.update_layout(yaxis={"autorange": "reversed"}, hovermode="closest")
    return heat


_UTIL_SCALE = [
    [0.0, "#f0fdf4"],
    [0.55, "#86efac"],
    [0.66, "#fde68a"],
    [0.75, "#fb923c"],
    [1.0, "#b91c1c"],
]


def capacity_figure(cap: pd.DataFrame, wcs: list[str]) -> go.Figure:
    """Heatmaps work center × month: planned ÷ available and required ÷ available hours.

    Args:
        cap: ``plan_capacity`` rows with ``m`` (month key) and ``required_util``.
        wcs: the work centers, top to bottom.
    """
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
    base_layout(fig)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    return fig


def inventory_figure(groups: list[tuple[str, pd.DataFrame]]) -> go.Figure:
    """Series below safety stock per month (count), then units summed; menu per family."""
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
        x = g["month"].map(mkey)
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
    base_layout(fig)
    # the legend above the upper chart's title, not over it
    fig.update_layout(margin={"t": 80}, legend={"yanchor": "bottom", "y": 1.07})
    fig.update_yaxes(title_text="series", row=1, col=1)
    fig.update_yaxes(title_text="units", row=2, col=1)
    fig.update_layout(updatemenus=dropdown([(label, 4) for label, _ in groups], len(fig.data)))
    return fig
