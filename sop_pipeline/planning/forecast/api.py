"""Public API of the statistical forecast: :func:`forecast_demand` and :func:`snapshot_rows`.

:func:`forecast_demand` checks the inputs, builds the panel, classifies the series, runs the
tournament per pool, applies the rules and the lifecycle, and assembles the output frames of
its :class:`ForecastResult`; the private helpers here are its last steps (unseen launches, the
rules loop, lifecycle zeroing, the seasonal naive and the long output frames).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.core.settings import FORECAST_ENGINES
from sop_pipeline.planning.engines import ForecastEngine, open_engine
from sop_pipeline.planning.forecast.calibration import _tidy_bounds
from sop_pipeline.planning.forecast.candidates import _candidate_models
from sop_pipeline.planning.forecast.classify import _series_classes
from sop_pipeline.planning.forecast.constants import (
    BACKTEST_COLUMNS,
    BACKTEST_POINT_COLUMNS,
    CANDIDATE_SETS,
    FORECAST_COLUMNS,
    METRIC,
    SEASON,
    ZERO_RECENT_MONTHS,
)
from sop_pipeline.planning.forecast.panel import (
    _build_panel,
    _check_inputs,
    _item_attributes,
    _Panel,
)
from sop_pipeline.planning.forecast.rules import (
    _family_profiles,
    _recent_level,
    _relative_quantiles,
    _rule_bounds,
    _typical_launch_level,
)
from sop_pipeline.planning.forecast.tournament import (
    _combo_label,
    _final_forecasts,
    _run_tournament,
    _TournamentOutcome,
)


@dataclass
class ForecastResult:
    """What :func:`forecast_demand` returns.

    Attributes:
        forecast: one row per item × location × horizon month (``FORECAST_COLUMNS``).
        backtest: one row per series (``BACKTEST_COLUMNS``).
        cv: long backtest frame: item_id, location_id, cutoff, month, model, y, yhat.
        timings: wall seconds per stage (not part of the deterministic output).
        engine: where the statsforecast calls ran (``local``, ``dask`` or ``spark``).
        backtest_points: the chosen method's backtest, one row per series × origin × lag
            (``BACKTEST_POINT_COLUMNS``: actual, forecast, seasonal naive and intervals
            calibrated on the other origins); what accuracy by level and lag is scored on.
        selection: per pool (smooth, intermittent): mean backtest error by method and of the
            chosen methods, the panel default, the conformal factors by lag.
    """

    forecast: pd.DataFrame
    backtest: pd.DataFrame
    cv: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    engine: str = "local"
    backtest_points: pd.DataFrame = field(default_factory=pd.DataFrame)
    selection: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts and errors for run metadata (Dagster) and logs.

        Returns:
            Series count, counts by chosen model and by class, mean/median errors of the
            chosen model and the naive baseline over the backtested series, the share of
            series that beat the naive, stage timings and the engine that ran the models.
        """
        bt = self.backtest
        scored = bt[bt["chosen_error"].notna()]
        return {
            "engine": self.engine,
            "series": len(bt),
            "forecast_rows": len(self.forecast),
            "error_metric": {
                str(k): int(v) for k, v in bt["error_metric"].value_counts().sort_index().items()
            },
            "by_model": {
                str(k): int(v) for k, v in bt["chosen_model"].value_counts().sort_index().items()
            },
            "by_class": {
                str(k): int(v) for k, v in bt["series_class"].value_counts().sort_index().items()
            },
            "backtested_series": len(scored),
            "mean_chosen_error": _round(scored["chosen_error"].mean()),
            "median_chosen_error": _round(scored["chosen_error"].median()),
            "mean_naive_error": _round(scored["naive_error"].mean()),
            "median_naive_error": _round(scored["naive_error"].median()),
            "share_beating_naive": _round((scored["fva"] > 0).mean()),
            "mean_fva": _round(scored["fva"].mean()),
            "seconds": {k: round(v, 2) for k, v in self.timings.items()},
        }


def _round(value: float) -> float | None:
    return None if pd.isna(value) else round(float(value), 4)


def forecast_demand(
    history: pd.DataFrame,
    items: pd.DataFrame,
    plan_month: str,
    horizon: int,
    *,
    windows: int = 3,
    n_jobs: int = 1,
    engine: str | ForecastEngine = "local",
    candidates: str = "auto",
) -> ForecastResult:
    """Statistical forecast of every item × location series for the plan horizon.

    Args:
        history: item_id, location_id, month (month start), demand_qty; one row per series
            month from the series' first month to the plan month (negative net months are
            clipped to 0 for modelling).
        items: item_id, family, lifecycle_status, launch_date, eol_date (dates or NaT).
        plan_month: ``YYYY-MM``; actuals end with this month.
        horizon: months to forecast after the plan month (1-36).
        windows: backtest origins (rolling, step 1, horizon 3 each).
        n_jobs: worker processes for the statsforecast calls (``-1`` = one per core);
            ``local`` engine only. The workers are started by a fork server, not forked from
            the caller (:mod:`sop_pipeline.planning.processes`), and fit chunks of the series:
            the results are the same bit for bit. A call on fewer than 200 series runs in
            this process (``MIN_SERIES_PER_WORKER`` in :mod:`sop_pipeline.planning.engines`).
            A script of your own that passes ``n_jobs`` > 1 needs the
            ``if __name__ == "__main__":`` guard: the workers import its main module.
        engine: where the statsforecast calls run: ``"local"`` (this process), ``"dask"``
            (a local Dask cluster started for the call) or ``"spark"`` (Spark ``local[2]``),
            or an engine opened with :func:`sop_pipeline.planning.engines.open_engine` (to
            reach a running cluster, or to reuse one for several calls). The models, the
            tournament and the results are the same on every engine.
        candidates: ``"auto"`` (default, fits 10,000 series in minutes), ``"full"`` (adds
            AutoETS, CES, AutoARIMA; an order of magnitude slower) or ``"fast"`` (no ETS).

    Returns:
        ForecastResult with ``forecast`` (one row per series × horizon month), ``backtest``
        (one row per series) and ``cv`` (the long backtest frame).

    Raises:
        ValueError: bad inputs (missing columns, rows after the plan month, unknown items)
            or an unknown engine name.
        EngineNotInstalledError: ``dask``/``spark`` without the cluster extras.
        EngineConnectionError: the engine could not be started.
    """
    if isinstance(engine, str) and engine not in FORECAST_ENGINES:
        raise ValueError(
            f"forecast engine {engine!r} is unknown; use one of {', '.join(FORECAST_ENGINES)} "
            "(SOP_FORECAST_ENGINE)."
        )
    if candidates not in CANDIDATE_SETS:
        raise ValueError(
            f"candidates={candidates!r} is unknown; use one of {', '.join(CANDIDATE_SETS)}."
        )
    if not 1 <= windows <= 12:
        raise ValueError(f"windows={windows} is out of range; use 1 to 12 backtest origins.")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plan = _check_inputs(history, items, plan_month, horizon)
    horizon_start = pd.Timestamp(month_start(plan.date(), 1))
    panel = _build_panel(history, items, plan)
    panel = _add_unseen_launches(panel, items, plan, horizon)
    classes = _series_classes(panel, plan, horizon_start)
    timings["prepare"] = time.perf_counter() - t0

    n = len(panel.keys)
    target = pd.date_range(horizon_start, periods=horizon, freq="MS")
    result = np.zeros((n, horizon, 5))
    labels = np.empty(n, dtype=object)
    chosen_error = np.full(n, np.nan)
    metric = np.full(n, None, dtype=object)
    naive_error = np.full(n, np.nan)
    residual_frames, cv_frames, point_frames = [], [], []
    selection: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if isinstance(engine, str):
            t1 = time.perf_counter()
            engine = stack.enter_context(open_engine(engine))
            timings["engine_start"] = time.perf_counter() - t1
        for kind, members in (
            ("smooth", ("smooth", "erratic", "seasonal")),
            ("intermittent", ("intermittent", "lumpy")),
        ):
            ids = np.flatnonzero(np.isin(classes, members))
            if ids.size == 0:
                continue
            t1 = time.perf_counter()
            models = _candidate_models(kind, candidates)
            # the intermittent methods take well under a millisecond a series: sending chunks
            # to workers costs more than it saves (measured up to 400 series: backtest 0.13 s
            # in process, 0.17 s on two warm workers; docs/forecasting.md, "Cost")
            jobs = n_jobs if kind == "smooth" else 1
            outcome = _run_tournament(panel, ids, models, windows, jobs, METRIC[kind], engine)
            t2 = time.perf_counter()
            fc, names = _final_forecasts(panel, outcome, models, horizon, jobs, engine)
            timings[f"backtest_{kind}"] = t2 - t1
            timings[f"forecast_{kind}"] = time.perf_counter() - t2
            result[ids] = fc
            labels[ids] = names
            best = np.min(outcome.errors, axis=1)
            chosen_error[ids] = np.where(np.isfinite(best), best, np.nan)
            naive_error[ids] = np.where(
                np.isfinite(outcome.errors[:, 0]), outcome.errors[:, 0], np.nan
            )
            metric[ids] = METRIC[kind]
            residual_frames.append(outcome.residuals)
            cv_frames.append(outcome.cv_long)
            point_frames.append(outcome.points.assign(pool=kind))
            selection[kind] = _selection_facts(outcome)

    t3 = time.perf_counter()
    _apply_rules(panel, classes, result, labels, residual_frames, target)
    _apply_lifecycle(panel, result, target)
    result = _tidy_bounds(result)
    naive = _seasonal_naive(panel, horizon)
    timings["rules"] = time.perf_counter() - t3

    forecast = pd.DataFrame(
        {
            "item_id": np.repeat(panel.keys["item_id"].to_numpy(), horizon),
            "location_id": np.repeat(panel.keys["location_id"].to_numpy(), horizon),
            "month": np.tile(target.to_numpy(), n),
            "stat_forecast_qty": result[:, :, 0].ravel(),
            "stat_lo80_qty": result[:, :, 2].ravel(),
            "stat_hi80_qty": result[:, :, 3].ravel(),
            "stat_lo95_qty": result[:, :, 1].ravel(),
            "stat_hi95_qty": result[:, :, 4].ravel(),
            "stat_model": np.repeat(labels, horizon),
            "naive_forecast_qty": naive.ravel(),
        },
        columns=FORECAST_COLUMNS,
    )
    backtest = pd.DataFrame(
        {
            "item_id": panel.keys["item_id"].to_numpy(),
            "location_id": panel.keys["location_id"].to_numpy(),
            "series_class": classes,
            "n_history": panel.n_hist.astype(int),
            "chosen_model": labels,
            "chosen_error": chosen_error,
            "naive_error": naive_error,
            "error_metric": metric,
            "fva": naive_error - chosen_error,
        },
        columns=BACKTEST_COLUMNS,
    )
    cv = _cv_output(cv_frames, panel)
    points = _points_output(point_frames, panel)
    timings["total"] = time.perf_counter() - t0
    return ForecastResult(
        forecast=forecast,
        backtest=backtest,
        cv=cv,
        timings=timings,
        engine=engine.name,
        backtest_points=points,
        selection=selection,
    )


def _selection_facts(outcome: _TournamentOutcome) -> dict[str, Any]:
    """What the tournament decided, for metadata: errors by method, default, calibration."""
    names = [*outcome.model_names, _combo_label(outcome)]
    err = outcome.errors
    ok = np.isfinite(err).all(axis=1)
    chosen_err = err[np.arange(len(err)), outcome.chosen]
    return {
        "series": len(err),
        "mean_error_by_method": {
            name: _round(err[ok, j].mean()) if ok.any() else None for j, name in enumerate(names)
        },
        "mean_error_chosen": _round(chosen_err[ok].mean()) if ok.any() else None,
        "panel_default": names[outcome.default],
        "conformal_factor_80_by_lag": [round(float(v), 3) for v in outcome.factors[:, 0]],
        "conformal_factor_95_by_lag": [round(float(v), 3) for v in outcome.factors[:, 1]],
        "error_growth_exponent_80_95": [round(float(v), 3) for v in outcome.growth],
    }


def _points_output(frames: list[pd.DataFrame], panel: _Panel) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=["item_id", "location_id", "pool", *BACKTEST_POINT_COLUMNS])
    pts = pd.concat(frames, ignore_index=True)
    uid = pts["unique_id"].to_numpy(dtype=int)
    pts.insert(0, "item_id", panel.keys["item_id"].to_numpy()[uid])
    pts.insert(1, "location_id", panel.keys["location_id"].to_numpy()[uid])
    pts = pts.drop(columns=["unique_id"])
    pts = pts[["item_id", "location_id", "pool", *BACKTEST_POINT_COLUMNS]]
    return pts.sort_values(
        ["item_id", "location_id", "cutoff", "month"], kind="stable"
    ).reset_index(drop=True)


def _add_unseen_launches(
    panel: _Panel, items: pd.DataFrame, plan: pd.Timestamp, horizon: int
) -> _Panel:
    """Add series for new items without any history.

    They go to the locations where their family sold in the last 12 months (where else would
    a launch ship from).
    """
    attrs = _item_attributes(items)
    horizon_end = pd.Timestamp(month_start(plan.date(), horizon))
    seen = set(panel.keys["item_id"])
    is_new = attrs["lifecycle_status"].astype(str).str.lower().eq("new") | (attrs["launch"] > plan)
    launching = attrs[is_new & ~attrs["item_id"].isin(seen) & ~(attrs["launch"] > horizon_end)]
    if launching.empty:
        return panel
    recent = (
        panel.keys[(panel.y[:, -ZERO_RECENT_MONTHS:] > 0).any(axis=1)]
        if len(panel.keys)
        else panel.keys
    )
    fam_locs = recent[["family", "location_id"]].drop_duplicates()
    new_keys = launching.merge(fam_locs, on="family", how="inner")
    if new_keys.empty:
        return panel
    new_keys = new_keys[panel.keys.columns].sort_values(["item_id", "location_id"])
    keys = pd.concat([panel.keys, new_keys], ignore_index=True)
    y = np.vstack([panel.y, np.full((len(new_keys), panel.y.shape[1]), np.nan)])
    n_hist = np.concatenate([panel.n_hist, np.zeros(len(new_keys), dtype=int)])
    order = keys.sort_values(["item_id", "location_id"], kind="stable").index.to_numpy()
    return _Panel(
        keys=keys.loc[order].reset_index(drop=True),
        y=y[order],
        n_hist=n_hist[order],
        months=panel.months,
    )


def _apply_rules(
    panel: _Panel,
    classes: np.ndarray,
    result: np.ndarray,
    labels: np.ndarray,
    residual_frames: list[pd.DataFrame],
    target: pd.DatetimeIndex,
) -> None:
    """Fill every series the tournament did not forecast (and any NaN it left) by rule."""
    n, horizon = result.shape[0], result.shape[1]
    profiles = _family_profiles(panel)
    t = panel.y.shape[1]
    cal = panel.months.month.to_numpy() - 1
    target_cal = target.month.to_numpy() - 1
    family = panel.keys["family"].astype(str).to_numpy()
    level = pd.Series(
        [
            float(np.mean(panel.y[i, t - min(int(panel.n_hist[i]), SEASON) :]))
            if panel.n_hist[i]
            else 0.0
            for i in range(n)
        ]
    )
    residuals = (
        pd.concat(residual_frames, ignore_index=True)
        if residual_frames
        else pd.DataFrame(columns=["unique_id", "resid"])
    )
    residuals = residuals.assign(
        family=family[residuals["unique_id"].to_numpy(dtype=int)] if len(residuals) else []
    )
    rel = _relative_quantiles(residuals, level)
    launch_level = None
    for i in range(n):
        cls = classes[i]
        done = labels[i] is not None and np.isfinite(result[i]).all()
        if done:
            continue
        fam_rel = rel.loc[family[i]] if family[i] in rel.index else rel.loc["__all__"]
        index = profiles[family[i]]
        if cls in ("eol", "zero_recent"):
            result[i] = 0.0
            labels[i] = cls
        elif cls == "future_launch" or panel.n_hist[i] == 0:
            if launch_level is None:
                launch_level = _typical_launch_level(panel, profiles)
            result[i] = _rule_bounds(launch_level[family[i]] * index[target_cal], fam_rel)
            labels[i] = "new_item_profile"
        else:
            n_i = int(panel.n_hist[i])
            y = panel.y[i, t - n_i :]
            flat = bool(np.all(index == 1.0))
            result[i] = _rule_bounds(
                _recent_level(y, cal[t - n_i :], index) * index[target_cal], fam_rel
            )
            if cls == "short":
                labels[i] = "recent_mean" if flat else "family_profile"
            else:
                # A model left NaN (fit failed without raising and no fallback applied).
                labels[i] = "fallback_recent_mean"
    assert result.shape[1] == horizon


def _apply_lifecycle(panel: _Panel, result: np.ndarray, target: pd.DatetimeIndex) -> None:
    """Zero the months after an item's EOL date and the months before its launch month."""
    eol = panel.keys["eol"].to_numpy(dtype="datetime64[ns]")
    launch = panel.keys["launch"].to_numpy(dtype="datetime64[ns]")
    tgt = target.to_numpy(dtype="datetime64[ns]")
    after_eol = ~np.isnat(eol)[:, None] & (tgt[None, :] > eol[:, None])
    before_launch = ~np.isnat(launch)[:, None] & (tgt[None, :] < launch[:, None])
    result[after_eol | before_launch] = 0.0


def _seasonal_naive(panel: _Panel, horizon: int) -> np.ndarray:
    """Same calendar month of the last year; the last month for series shorter than a year."""
    n, t = panel.y.shape
    out = np.zeros((n, horizon))
    if n == 0:
        return out
    lags = np.arange(horizon)
    cols = t - SEASON + (lags % SEASON)
    seasonal = panel.y[:, cols] if t >= SEASON else np.full((n, horizon), np.nan)
    last = panel.y[:, -1][:, None]
    out = np.where(np.isnan(seasonal), last, seasonal)
    return np.nan_to_num(out, nan=0.0)


def _cv_output(cv_frames: list[pd.DataFrame], panel: _Panel) -> pd.DataFrame:
    cols = ["item_id", "location_id", "cutoff", "month", "model", "y", "yhat"]
    if not cv_frames:
        return pd.DataFrame(columns=cols)
    cv = pd.concat(cv_frames, ignore_index=True)
    uid = cv["unique_id"].to_numpy(dtype=int)
    cv["item_id"] = panel.keys["item_id"].to_numpy()[uid]
    cv["location_id"] = panel.keys["location_id"].to_numpy()[uid]
    cv = cv.rename(columns={"ds": "month"})[cols]
    return cv.sort_values(
        ["item_id", "location_id", "model", "cutoff", "month"], kind="stable"
    ).reset_index(drop=True)


def snapshot_rows(forecast: pd.DataFrame, plan_month: str) -> pd.DataFrame:
    """The forecast with ``lag`` (months ahead of the plan month: 1 for the first month).

    Args:
        forecast: a forecast frame with a ``month`` column (month starts).
        plan_month: ``YYYY-MM`` the forecast was made in.

    Returns:
        A copy with an integer ``lag`` column, kept to measure accuracy by lag later.
    """
    plan = parse_month(plan_month)
    months = pd.to_datetime(forecast["month"])
    out = forecast.copy()
    out["lag"] = ((months.dt.year - plan.year) * 12 + months.dt.month - plan.month).astype("int64")
    if (out["lag"] < 1).any():
        raise ValueError(
            f"forecast has months on or before plan month {plan_month}; a snapshot holds future months only."
        )
    return out
