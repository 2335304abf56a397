"""Forecast accuracy of earlier plans against actuals (the ``forecast_accuracy`` table).

Definitions (docs/kpis.md repeats them): for one forecast kind, level, lag and month, with
units u (item × location series, families, or the single total) of actual A_u and
forecast F_u:

- ``wape = Σ|F−A| / ΣA``
- ``bias = Σ(F−A) / ΣA`` (positive = over-forecast)
- ``mape = mean over units with A > 0 of |F−A| / A``
- ``mase = mean over units with a positive scale of |F−A| / scale_u``, where ``scale_u`` is
  the in-sample mean absolute seasonal-naive error (``|A_t − A_{t−12}|``) of the unit's
  history up to the snapshot's plan month (point in time); a unit with 12 months of
  history or less uses the one-step naive error ``|A_t − A_{t−1}|`` instead.

A snapshot row with no actual row (a series that had not started) counts as A = 0; an
actual with no snapshot row (a series the plan did not forecast) counts as F = 0, so the
total level is measured against all demand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS: dict[str, str] = {
    "naive": "naive_qty",
    "statistical": "stat_qty",
    "consensus": "consensus_qty",
}
LEVELS: tuple[str, ...] = ("item", "family", "total")
DEFAULT_LAGS: tuple[int, ...] = (1, 3, 6)
OUTPUT_COLUMNS: list[str] = [
    "forecast_kind",
    "level",
    "lag",
    "month",
    "mape",
    "wape",
    "bias",
    "mase",
    "n_series",
    "actual_qty",
    "forecast_qty",
    "coverage_80",
    "coverage_95",
    "interval_score",
]
BACKTEST_KINDS: dict[str, str] = {"naive": "naive_backtest", "statistical": "statistical_backtest"}
"""forecast_kind of the rows scored on the forecast stage's own rolling-origin backtest."""
SERIES = ["item_id", "location_id"]
RANGE_COLUMNS = ("lo80", "hi80", "lo95", "hi95")
"""A unit's 80% and 95% bounds, as the interval metrics read them."""


def _month(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series).dt.to_period("M").dt.to_timestamp()


def _plan_month_start(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series.astype(str) + "-01")


def _unit_columns(level: str) -> list[str]:
    return {"item": SERIES, "family": ["family"], "total": []}[level]


def _scales(history: pd.DataFrame, unit_cols: list[str], season_length: int) -> pd.DataFrame:
    """Mean absolute seasonal-naive error per unit over its history (``scale`` column).

    Months before a unit's first month are not history (the series had not started);
    missing months after it are zero demand, as in ``fct_demand_history``.
    """
    if history.empty:
        return pd.DataFrame(columns=[*unit_cols, "scale"])
    keys = unit_cols or ["_all"]
    h = history.assign(_all="total") if not unit_cols else history
    wide = h.pivot_table(index=keys, columns="month", values="demand_qty", aggfunc="sum")
    wide = wide.reindex(columns=pd.date_range(wide.columns.min(), wide.columns.max(), freq="MS"))
    values = wide.to_numpy(dtype="float64")
    started = np.cumsum(~np.isnan(values), axis=1) > 0
    values = np.where(started, np.nan_to_num(values, nan=0.0), np.nan)
    n_obs = started.sum(axis=1)
    seasonal_mean = _mean_abs_diff(values, season_length)
    step_mean = _mean_abs_diff(values, 1)
    scale = np.where(n_obs > season_length, seasonal_mean, step_mean)
    out = pd.DataFrame({"scale": scale}, index=wide.index).reset_index()
    return out.drop(columns=["_all"]) if not unit_cols else out


def _mean_abs_diff(values: np.ndarray, lag: int) -> np.ndarray:
    """Row-wise mean of ``|x_t − x_{t−lag}|`` over the pairs where both are known."""
    if values.shape[1] <= lag:
        return np.full(len(values), np.nan)
    diff = np.abs(values[:, lag:] - values[:, :-lag])
    known = ~np.isnan(diff)
    count = known.sum(axis=1)
    total = np.where(known, diff, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(len(values), np.nan), where=count > 0)


def _metrics(units: pd.DataFrame) -> dict[str, float]:
    """Error metrics over units with columns ``a`` (actual), ``f`` (forecast), ``scale``."""
    a, f = units["a"].to_numpy(float), units["f"].to_numpy(float)
    err = np.abs(f - a)
    total_a = a.sum()
    positive = a > 0
    scaled = units["scale"].to_numpy(float)
    ok_scale = np.isfinite(scaled) & (scaled > 0)
    return {
        "mape": float(np.mean(err[positive] / a[positive])) if positive.any() else np.nan,
        "wape": float(err.sum() / total_a) if total_a > 0 else np.nan,
        "bias": float((f - a).sum() / total_a) if total_a > 0 else np.nan,
        "mase": float(np.mean(err[ok_scale] / scaled[ok_scale])) if ok_scale.any() else np.nan,
        "n_series": len(units),
        "actual_qty": float(total_a),
        "forecast_qty": float(f.sum()),
        **_interval_metrics(units, scaled, ok_scale),
    }


def _interval_metrics(units: pd.DataFrame, scaled: np.ndarray, ok_scale: np.ndarray) -> dict:
    """Coverage of the 80/95% ranges and the scaled 95% interval score (NaN without ranges).

    ``interval_score`` is the mean over units of the Winkler score of the 95% range —
    width + (2 / 0.05) × the distance by which the actual falls outside it — divided by the
    unit's MASE scale (M4's MSIS): lower is better; it punishes both wide and missed ranges.
    """
    if not set(RANGE_COLUMNS) <= set(units.columns) or units["lo80"].isna().all():
        return {"coverage_80": np.nan, "coverage_95": np.nan, "interval_score": np.nan}
    known = units[list(RANGE_COLUMNS)].notna().all(axis=1).to_numpy()
    if not known.all():  # units without a range (not forecast by that plan) are not scored
        units, scaled, ok_scale = units[known], scaled[known], ok_scale[known]
    a = units["a"].to_numpy(float)
    lo80, hi80, lo95, hi95 = (units[c].to_numpy(float) for c in RANGE_COLUMNS)
    winkler = (hi95 - lo95) + 2 / 0.05 * ((lo95 - a) * (a < lo95) + (a - hi95) * (a > hi95))
    return {
        "coverage_80": float(np.mean((a >= lo80) & (a <= hi80))),
        "coverage_95": float(np.mean((a >= lo95) & (a <= hi95))),
        "interval_score": float(np.mean(winkler[ok_scale] / scaled[ok_scale]))
        if ok_scale.any()
        else np.nan,
    }


_STAT_RANGES = {
    "stat_lo80_qty": "lo80",
    "stat_hi80_qty": "hi80",
    "stat_lo95_qty": "lo95",
    "stat_hi95_qty": "hi95",
}


def plan_ranges(stat_forecast: pd.DataFrame, levels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Earlier plans' 80/95% statistical ranges by level, as :func:`forecast_accuracy` scores them.

    Args:
        stat_forecast: ``plan.stat_forecast`` rows of earlier plan months (plan_month, item_id,
            location_id, month, stat_forecast_qty and the four ``stat_*_qty`` bounds).
        levels: ``plan.forecast_levels`` rows of the same plan months (plan_month, level,
            scope_id, month, the point and bounds); its family and total ranges are the
            coherent ones the plan published (not sums of item ranges).

    Returns:
        plan_month, level (item / family / total), item_id, location_id, family, month,
        point, lo80, hi80, lo95, hi95; item rows carry item_id/location_id, family rows family.
    """
    cols = [
        "plan_month",
        "level",
        "item_id",
        "location_id",
        "family",
        "month",
        "point",
        *RANGE_COLUMNS,
    ]
    frames = []
    if stat_forecast is not None and len(stat_forecast):
        frames.append(
            stat_forecast.rename(columns={"stat_forecast_qty": "point", **_STAT_RANGES}).assign(
                level="item", family=None
            )
        )
    if levels is not None and len(levels):
        lv = levels[levels["level"].isin(["family", "total"])]
        frames.append(
            lv.rename(columns={"stat_forecast_qty": "point", **_STAT_RANGES}).assign(
                item_id=None,
                location_id=None,
                family=lv["scope_id"].where(lv["level"] == "family"),
            )
        )
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat([f[cols] for f in frames], ignore_index=True)
    out["plan_month"] = out["plan_month"].astype(str)
    out["month"] = _month(out["month"])
    return out


def _with_ranges(units: pd.DataFrame, ranges: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """``units`` with the plan's range of each unit, where the range belongs to the point scored.

    A range is kept only where its plan's point equals the forecast scored (relative 1e-6,
    float summation order of a family or total): an approved version whose statistical
    forecast differs from the working plan's is not scored against another forecast's range.
    """
    if ranges.empty:
        return units
    if cols:
        out = units.merge(ranges[[*cols, "point", *RANGE_COLUMNS]], on=cols, how="left")
    else:
        r = ranges.iloc[0]
        out = units.assign(point=r["point"], **{c: r[c] for c in RANGE_COLUMNS})
    same = np.isclose(out["point"].to_numpy(float), out["f"].to_numpy(float), rtol=1e-6, atol=1e-9)
    out.loc[~same, list(RANGE_COLUMNS)] = np.nan
    return out.drop(columns=["point"])


def forecast_accuracy(
    snapshots: pd.DataFrame,
    actuals: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    season_length: int = 12,
    ranges: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Accuracy of earlier plans' forecasts for every month that now has actuals.

    Args:
        snapshots: earlier plans' forecasts: plan_month (``YYYY-MM``), item_id,
            location_id, family, month, lag (months after plan_month), naive_qty,
            stat_qty, consensus_qty. A kind whose column is missing or entirely null is
            skipped.
        actuals: demand history, one row per item × location × month: item_id,
            location_id, month, demand_qty (``fct_demand_history``). It is also the
            in-sample history for the MASE scale (only months ≤ each snapshot's plan
            month are used).
        items: item_id → family (``dim_items``) for actuals of items no snapshot names;
            optional when ``actuals`` has a ``family`` column or every item is forecast.
        season_length: months in a season for the MASE scale.
        ranges: the earlier plans' statistical 80/95% ranges (:func:`plan_ranges`); with
            them the ``statistical`` rows carry coverage_80, coverage_95 and interval_score
            (over the units the plan gave a range), as the backtest rows do.

    Returns:
        One row per forecast_kind × level × lag × month with columns ``OUTPUT_COLUMNS``
        (forecast_kind, level, lag, month, mape, wape, bias, mase, n_series, actual_qty,
        forecast_qty, coverage_80, coverage_95, interval_score), sorted by them. Empty (with those columns) when no snapshot month
        has actuals yet.

    Raises:
        ValueError: a snapshot has two rows for one plan month × series × month, or
            required columns are missing.
    """
    need_snap = {"plan_month", "item_id", "location_id", "month", "lag"}
    need_act = {"item_id", "location_id", "month", "demand_qty"}
    for name, frame, need in (("snapshots", snapshots, need_snap), ("actuals", actuals, need_act)):
        missing = sorted(need - set(frame.columns))
        if missing:
            raise ValueError(f"forecast_accuracy: {name} lacks column(s) {', '.join(missing)}.")
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in OUTPUT_COLUMNS})
    empty = empty.astype(
        {
            "forecast_kind": "object",
            "level": "object",
            "lag": "int64",
            "month": "datetime64[ns]",
            "n_series": "int64",
        }
    )
    if snapshots.empty or actuals.empty:
        return empty

    snap = snapshots.copy()
    snap["month"] = _month(snap["month"])
    snap["lag"] = snap["lag"].astype(int)
    snap["plan_month"] = snap["plan_month"].astype(str)
    dup = snap.duplicated(["plan_month", *SERIES, "month"])
    if dup.any():
        example = snap.loc[dup, ["plan_month", *SERIES, "month"]].iloc[0].to_dict()
        raise ValueError(
            f"forecast_accuracy: snapshots hold duplicate rows, e.g. {example}; keep one version per plan month."
        )
    act = actuals.copy()
    act["month"] = _month(act["month"])
    act["demand_qty"] = act["demand_qty"].astype(float)

    family = pd.concat(
        [
            snap[["item_id", "family"]] if "family" in snap else None,
            act[["item_id", "family"]] if "family" in act else None,
            items[["item_id", "family"]] if items is not None else None,
        ]
    ).drop_duplicates("item_id")
    act = act.drop(columns=["family"], errors="ignore").merge(family, on="item_id", how="left")
    act["family"] = act["family"].fillna("(unknown)")
    snap = snap.drop(columns=["family"], errors="ignore").merge(family, on="item_id", how="left")
    snap["family"] = snap["family"].fillna("(unknown)")

    kinds = {k: c for k, c in KINDS.items() if c in snap.columns and snap[c].notna().any()}
    actual_months = set(act["month"].unique())
    snap = snap[snap["month"].isin(actual_months)]
    rows: list[dict] = []
    plan_range = (
        {pm: g for pm, g in ranges.groupby("plan_month")}
        if ranges is not None and len(ranges)
        else {}
    )
    for plan_month, group in snap.groupby("plan_month", sort=True):
        origin = _plan_month_start(pd.Series([plan_month])).iloc[0]
        pm_ranges = plan_range.get(plan_month)
        history = act[act["month"] <= origin]
        scales = {level: _scales(history, _unit_columns(level), season_length) for level in LEVELS}
        for (month, lag), fc in group.groupby(["month", "lag"], sort=True):
            actual_m = act.loc[act["month"] == month, [*SERIES, "family", "demand_qty"]]
            joined = fc[[*SERIES, "family", *kinds.values()]].merge(
                actual_m, on=[*SERIES], how="outer", suffixes=("", "_act")
            )
            joined["family"] = joined["family"].fillna(joined.get("family_act"))
            joined["demand_qty"] = joined["demand_qty"].fillna(0.0)
            for kind, col in kinds.items():
                base = joined[[*SERIES, "family", "demand_qty", col]].rename(
                    columns={"demand_qty": "a", col: "f"}
                )
                base["f"] = base["f"].fillna(0.0)
                for level in LEVELS:
                    cols = _unit_columns(level)
                    units = (
                        base.groupby(cols, as_index=False)[["a", "f"]].sum()
                        if cols
                        else pd.DataFrame({"a": [base["a"].sum()], "f": [base["f"].sum()]})
                    )
                    sc = scales[level]
                    units = (
                        units.merge(sc, on=cols, how="left")
                        if cols
                        else units.assign(scale=sc["scale"].iloc[0] if len(sc) else np.nan)
                    )
                    if kind == "statistical" and pm_ranges is not None:
                        here = pm_ranges[
                            (pm_ranges["level"] == level) & (pm_ranges["month"] == month)
                        ]
                        units = _with_ranges(units, here, cols)
                    rows.append(
                        {
                            "forecast_kind": kind,
                            "level": level,
                            "lag": int(lag),
                            "month": month,
                            **_metrics(units),
                        }
                    )
    if not rows:
        return empty
    out = pd.DataFrame(rows)[OUTPUT_COLUMNS]
    order = {k: i for i, k in enumerate(KINDS)}
    level_order = {k: i for i, k in enumerate(LEVELS)}
    out = out.sort_values(
        ["forecast_kind", "level", "lag", "month"],
        key=lambda s: (
            s.map(order)
            if s.name == "forecast_kind"
            else (s.map(level_order) if s.name == "level" else s)
        ),
    )
    return out.reset_index(drop=True)


def backtest_accuracy(
    levels: pd.DataFrame,
    history: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    season_length: int = 12,
) -> pd.DataFrame:
    """Accuracy of the forecast stage's own rolling-origin backtest, by level and lag.

    Args:
        levels: :func:`sop_pipeline.planning.hierarchy.backtest_levels` output (one row per
            level × unit × origin × lag with actual, statistical and naive forecasts and the
            out-of-sample 80/95% bounds of the statistical forecast).
        history: ``fct_demand_history`` (item_id, location_id, month, demand_qty) for the
            MASE scales, point in time (months up to each origin).
        items: item_id → family.
        season_length: months in a season for the MASE scale.

    Returns:
        ``OUTPUT_COLUMNS`` rows with forecast_kind ``statistical_backtest`` and
        ``naive_backtest`` (the seasonal naive) per level × lag × target month; several origins
        can score the same target month at different lags, never at the same lag.
    """
    if levels is None or levels.empty:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    act = history[["item_id", "location_id", "month", "demand_qty"]].copy()
    act["month"] = _month(act["month"])
    if items is not None:
        fam = items.drop_duplicates("item_id").set_index("item_id")["family"]
        act["family"] = act["item_id"].map(fam).fillna("(unknown)")
    elif "family" not in act.columns:
        act["family"] = "(unknown)"
    act["unit_item"] = act["item_id"].astype(str) + "@" + act["location_id"].astype(str)
    rows: list[dict] = []
    for cutoff, grp in levels.groupby("cutoff", sort=True):
        hist = act[act["month"] <= pd.Timestamp(cutoff)]
        for level, lgrp in grp.groupby("level", sort=False):
            cols = {"item": ["unit_item"], "family": ["family"], "total": []}[level]
            sc = _scales(hist, cols, season_length)
            if cols:
                sc = sc.rename(columns={cols[0]: "unit"})
                units_all = lgrp.merge(sc, on="unit", how="left")
            else:
                units_all = lgrp.assign(scale=sc["scale"].iloc[0] if len(sc) else np.nan)
            for (lag, month), units in units_all.groupby(["lag", "month"], sort=True):
                for kind, col in (("naive", "naive_qty"), ("statistical", "stat_qty")):
                    u = units.rename(columns={"actual_qty": "a", col: "f"})
                    if kind == "naive":
                        u = u.drop(columns=["lo80", "hi80", "lo95", "hi95"])
                    rows.append(
                        {
                            "forecast_kind": BACKTEST_KINDS[kind],
                            "level": level,
                            "lag": int(lag),
                            "month": pd.Timestamp(month),
                            **_metrics(u[[c for c in u.columns if c != "unit"]]),
                        }
                    )
    out = pd.DataFrame(rows)[OUTPUT_COLUMNS]
    level_order = {k: i for i, k in enumerate(LEVELS)}
    out = out.sort_values(
        ["forecast_kind", "level", "lag", "month"],
        key=lambda s: s.map(level_order) if s.name == "level" else s,
    )
    return out.reset_index(drop=True)
