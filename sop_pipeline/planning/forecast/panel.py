"""Input checks and the dense panel the forecast works on.

The history and items are validated, then turned into one right-aligned matrix of every
item × location series up to the plan month, with the items' family and lifecycle dates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sop_pipeline.core.months import parse_month


def _check_inputs(
    history: pd.DataFrame, items: pd.DataFrame, plan_month: str, horizon: int
) -> pd.Timestamp:
    missing = {"item_id", "location_id", "month", "demand_qty"} - set(history.columns)
    if missing:
        raise ValueError(
            f"history is missing column(s) {sorted(missing)}; pass fct_demand_history."
        )
    missing = {"item_id", "family", "lifecycle_status", "launch_date", "eol_date"} - set(
        items.columns
    )
    if missing:
        raise ValueError(f"items is missing column(s) {sorted(missing)}; pass dim_items.")
    if not 1 <= horizon <= 36:
        raise ValueError(f"horizon={horizon} is out of range; plan 1 to 36 months ahead.")
    plan = pd.Timestamp(parse_month(plan_month))
    months = pd.to_datetime(history["month"])
    late = history.loc[months > plan]
    if len(late):
        first = late.iloc[0]
        raise ValueError(
            f"history has {len(late)} row(s) after plan month {plan_month} (first: item "
            f"{first['item_id']!r}, location {first['location_id']!r}, month {first['month']}); "
            "a plan may only use actuals up to its month. Filter the history to month <= plan month."
        )
    if history["demand_qty"].isna().any():
        bad = history.loc[history["demand_qty"].isna()].iloc[0]
        raise ValueError(
            f"history has a missing demand_qty (item {bad['item_id']!r}, location {bad['location_id']!r}, "
            f"month {bad['month']}); zero-fill months without demand."
        )
    unknown = sorted(set(history["item_id"]) - set(items["item_id"]))
    if unknown:
        raise ValueError(
            f"history has item(s) missing from items: {unknown[:5]}{' …' if len(unknown) > 5 else ''}; "
            "every forecast item needs its family and lifecycle in dim_items."
        )
    dupes = history.duplicated(["item_id", "location_id", "month"])
    if dupes.any():
        bad = history.loc[dupes].iloc[0]
        raise ValueError(
            f"history has duplicate rows for item {bad['item_id']!r}, location {bad['location_id']!r}, "
            f"month {bad['month']}; expected one row per item × location × month."
        )
    return plan


@dataclass
class _Panel:
    """Right-aligned dense matrix: every series ends at the plan month, NaN before its start."""

    keys: pd.DataFrame  # item_id, location_id, family, lifecycle_status, launch, eol
    y: np.ndarray  # (n_series, n_months) clipped demand, NaN before the series' first month
    n_hist: np.ndarray  # months of history per series
    months: pd.DatetimeIndex  # calendar of the matrix columns


def _build_panel(history: pd.DataFrame, items: pd.DataFrame, plan: pd.Timestamp) -> _Panel:
    hist = history[["item_id", "location_id", "month", "demand_qty"]].copy()
    hist["month"] = pd.to_datetime(hist["month"]).dt.to_period("M").dt.to_timestamp()
    first = hist["month"].min() if len(hist) else plan
    months = pd.date_range(first, plan, freq="MS")
    keys = (
        hist[["item_id", "location_id"]].drop_duplicates().sort_values(["item_id", "location_id"])
    )
    keys = keys.reset_index(drop=True)
    n, t = len(keys), len(months)
    y = np.full((n, t), np.nan)
    if n:
        code = pd.MultiIndex.from_frame(keys).get_indexer(
            pd.MultiIndex.from_frame(hist[["item_id", "location_id"]])
        )
        col = (
            (hist["month"].dt.year - first.year) * 12 + hist["month"].dt.month - first.month
        ).to_numpy()
        # Net demand can be negative (returns exceed orders); the models forecast gross need.
        y[code, col] = np.clip(hist["demand_qty"].to_numpy(dtype=float), 0.0, None)
        # Zero-fill gaps from each series' first month so a missing month never reads as NaN.
        started = np.maximum.accumulate(~np.isnan(y), axis=1)
        y = np.where(started & np.isnan(y), 0.0, y)
    n_hist = (~np.isnan(y)).sum(axis=1) if n else np.zeros(0, dtype=int)
    keys = keys.merge(_item_attributes(items), on="item_id", how="left", validate="many_to_one")
    return _Panel(keys=keys, y=y, n_hist=n_hist, months=months)


def _item_attributes(items: pd.DataFrame) -> pd.DataFrame:
    out = items[
        ["item_id", "family", "lifecycle_status", "launch_date", "eol_date"]
    ].drop_duplicates("item_id")
    out = out.copy()
    out["launch"] = pd.to_datetime(out["launch_date"]).dt.to_period("M").dt.to_timestamp()
    # A month after the EOL date has no demand; the month that contains the date still may.
    out["eol"] = pd.to_datetime(out["eol_date"])
    return out.drop(columns=["launch_date", "eol_date"])
