"""Small helpers that turn results into Dagster metadata (previews, plots)."""

from __future__ import annotations

import base64
import io

import dagster as dg
import pandas as pd


def preview(df: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """A Markdown preview of the first rows of a frame."""
    return dg.MetadataValue.md(df.head(rows).to_markdown(index=False) if len(df) else "_empty_")


def png(fig) -> dg.MetadataValue:
    """A matplotlib figure as an inline PNG in Markdown (shown in the Dagster UI)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{data})")


def family_forecast_png(history: pd.DataFrame, plan_demand: pd.DataFrame, families: int = 4):
    """History + consensus + 80/95% band for the largest families, as a PNG metadata value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = history.groupby(["family", "month"], as_index=False)["demand_qty"].sum()
    fut = plan_demand.groupby(["family", "month"], as_index=False)[
        [
            "stat_forecast_qty",
            "stat_lo80_qty",
            "stat_hi80_qty",
            "stat_lo95_qty",
            "stat_hi95_qty",
            "consensus_qty",
        ]
    ].sum()
    top = fut.groupby("family")["consensus_qty"].sum().nlargest(families).index.tolist()
    fig, axes = plt.subplots(len(top), 1, figsize=(9, 2.4 * max(len(top), 1)), squeeze=False)
    for ax, family in zip(axes[:, 0], top, strict=False):
        h = hist[hist["family"] == family].sort_values("month").tail(36)
        f = fut[fut["family"] == family].sort_values("month")
        ax.plot(h["month"], h["demand_qty"], color="#333", label="actual demand")
        ax.fill_between(
            f["month"],
            f["stat_lo95_qty"],
            f["stat_hi95_qty"],
            color="#9ecae1",
            alpha=0.4,
            label="95%",
        )
        ax.fill_between(
            f["month"],
            f["stat_lo80_qty"],
            f["stat_hi80_qty"],
            color="#4292c6",
            alpha=0.4,
            label="80%",
        )
        ax.plot(f["month"], f["stat_forecast_qty"], color="#08519c", ls="--", label="statistical")
        ax.plot(f["month"], f["consensus_qty"], color="#d94801", label="consensus")
        ax.set_title(f"{family} (sum of item-level ranges)", fontsize=9)
        ax.tick_params(labelsize=7)
    if top:
        axes[0, 0].legend(fontsize=7, ncol=5, loc="upper left")
    return png(fig)
