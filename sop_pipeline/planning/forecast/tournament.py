"""Tournament: the backtest of the candidates, selection, and the final refit.

A rolling-origin backtest of the candidate models and their per-series error-weighted
combination, scored on lag-weighted MASE/RMSSE; per-series selection with shrinkage toward the
panel's best method; then the final refit of the winning model(s) on the full history, with
intervals calibrated by lag (:mod:`.calibration`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sop_pipeline.planning.engines import ForecastEngine
from sop_pipeline.planning.forecast.calibration import (
    _apply_calibration,
    _conformal_factors,
    _tidy_bounds,
    _width_floor,
    error_growth,
)
from sop_pipeline.planning.forecast.candidates import _NATIVE_INTERVALS, _fallback_model
from sop_pipeline.planning.forecast.constants import (
    COMBO_ERROR_FLOOR,
    COMBO_POWER,
    CV_HORIZON,
    EMPIRICAL_WINDOW,
    FALLBACK,
    LEVELS,
    MAX_FIT_MONTHS,
    S_AND_OP_LAGS,
    S_AND_OP_WEIGHT,
    SWITCH_MARGIN,
)
from sop_pipeline.planning.forecast.panel import _Panel


def _long_frame(
    y: np.ndarray, n_hist: np.ndarray, months: pd.DatetimeIndex, ids: np.ndarray
) -> pd.DataFrame:
    """Statsforecast's long format for the given rows of the panel (history capped)."""
    t = y.shape[1]
    n_fit = np.minimum(n_hist[ids], MAX_FIT_MONTHS)
    start = t - n_fit
    uid = np.repeat(ids, n_fit)
    col = np.concatenate([np.arange(s, t) for s in start]) if len(ids) else np.zeros(0, dtype=int)
    return pd.DataFrame({"unique_id": uid, "ds": months[col], "y": y[uid, col]})


def _statsforecast(models: list[Any]) -> Any:
    """The models with the monthly frequency and the fallback; the engine decides the workers."""
    from statsforecast import StatsForecast

    return StatsForecast(models=models, freq="MS", n_jobs=1, fallback_model=_fallback_model())


def _error_scale(y: np.ndarray, ids: np.ndarray, first_test_col: int, metric: str) -> np.ndarray:
    """In-sample one-step naive error on the data before the first backtest origin.

    MAE of the naive for MASE, root mean squared naive error for RMSSE. The one-step (not
    seasonal) naive keeps the scale defined for intermittent series and the shortest training
    windows; a flat series falls back to its mean level, then to 1.
    """
    train = y[ids, :first_test_col]
    diff = np.diff(train, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if metric == "rmsse":
            scale = np.sqrt(np.nanmean(diff * diff, axis=1))
        else:
            scale = np.nanmean(np.abs(diff), axis=1)
        level = np.nanmean(train, axis=1)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, level)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def lag_weights(h: int) -> np.ndarray:
    """Weights of backtest lags 1..h in the selection error (sum 1).

    Lags 1-3 (what supply commits on: production and purchase lead times, the frozen zone)
    count twice as much as each later lag.
    """
    lags = np.arange(1, h + 1)
    w = np.where(lags <= S_AND_OP_LAGS, S_AND_OP_WEIGHT, 1.0)
    return w / w.sum()


def _scaled_error(
    pred: np.ndarray, actual: np.ndarray, scale: np.ndarray, metric: str
) -> np.ndarray:
    """Lag-weighted error over the backtest, scaled per series; inf where undefined.

    ``pred``/``actual`` are (n_series, windows, lags): the error of each lag is averaged over
    the origins, then the lags are weighted by :func:`lag_weights`.
    """
    e = pred - actual
    w = lag_weights(e.shape[2])
    if metric == "rmsse":
        err = np.sqrt((np.mean(e * e, axis=1) * w).sum(axis=1)) / scale
    else:
        err = (np.mean(np.abs(e), axis=1) * w).sum(axis=1) / scale
    return np.where(np.isfinite(err), err, np.inf)


def combination_weights(err: np.ndarray) -> np.ndarray:
    """Per-series combination weights ∝ 1 / backtest error² (each row sums to 1).

    When the candidates' backtest errors are close the weights are nearly equal — the plain
    combination, which is what weak per-series evidence supports; a candidate clearly better on
    the series' own backtest gets most of the weight. A candidate that could not be scored
    (infinite error) gets none; a series where none could be scored gets equal weights.
    """
    e = np.where(np.isfinite(err), np.maximum(err, COMBO_ERROR_FLOOR), np.inf)
    w = 1.0 / e**COMBO_POWER
    total = w.sum(axis=1, keepdims=True)
    equal = np.full_like(w, 1.0 / max(w.shape[1], 1))
    return np.where(total > 0, w / np.where(total > 0, total, 1.0), equal)


def _panel_default(err: np.ndarray) -> int:
    """The method with the lowest mean error over the series every method could score."""
    ok = np.isfinite(err).all(axis=1)
    if not ok.any():
        return 0
    # argmin keeps the first minimum: on a tie the earlier (simpler) method wins.
    return int(np.argmin(err[ok].mean(axis=0)))


def _select(err: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-series choice with shrinkage toward the panel's best method.

    Every series starts from the method that is best over the whole panel (usually the
    combination). It switches to its own best method only when that method's backtest error is
    at least ``SWITCH_MARGIN`` lower: with a handful of backtest points per series, a smaller
    difference is mostly noise, and chasing it costs accuracy out of sample. The seasonal naive
    (column 0) is a candidate like the others: a series falls back to it only on that strong
    evidence, and otherwise keeps it as a part of the combination weighted by its error. (A
    per-series floor "never worse than the naive in its own backtest" sent 14-16% of the M1 and
    Tourism series to the naive on a few points of noise and cost the combination its lead.)
    """
    n = len(err)
    default = _panel_default(err)
    rows = np.arange(n)
    best = np.argmin(err, axis=1)
    chosen = np.where(err[rows, best] < (1.0 - SWITCH_MARGIN) * err[rows, default], best, default)
    return chosen, default


@dataclass
class _TournamentOutcome:
    ids: np.ndarray
    model_names: list[str]
    errors: np.ndarray  # (n_series, n_models + 1); last column is the combination
    chosen: np.ndarray  # index into model_names, or len(model_names) for the combination
    combo_parts: np.ndarray  # (k,) model indices of the combination (the same for every series)
    weights: np.ndarray  # (n_series, k) combination weights per series (sum 1)
    default: int  # the panel's best method (what series shrink toward)
    factors: np.ndarray  # (CV lags, 2) conformal factors for 80% and 95%
    floor: np.ndarray  # (n_series,) smallest interval half-width
    growth: np.ndarray  # (2,) error growth exponents beyond the backtested lags (80%, 95%)
    cv_long: pd.DataFrame
    residuals: pd.DataFrame  # unique_id, resid (chosen model, y − yhat)
    points: pd.DataFrame  # backtest of the chosen method, out-of-window calibrated intervals


def _cv_bounds(
    cv: pd.DataFrame,
    names: list[str],
    native: bool,
    panel: _Panel,
    ids: np.ndarray,
    windows: int,
    h: int,
) -> np.ndarray:
    """(n, windows, lags, models, 4) lo95, lo80, hi80, hi95 of each backtest forecast.

    Models with their own intervals give them; intermittent models get the empirical
    quantiles of the 24 months before each origin (as in the final forecast).
    """
    n, k = len(ids), len(names)
    out = np.empty((n, windows, h, k, 4))
    if native:
        for c, col in enumerate(("lo-95", "lo-80", "hi-80", "hi-95")):
            cols = [f"{name}-{col}" for name in names]
            out[..., c] = cv[cols].to_numpy(dtype=float).reshape(n, windows, h, k)
        return np.clip(out, 0.0, None)
    t = panel.y.shape[1]
    for w in range(windows):
        end = t - h - (windows - 1 - w)  # first column after this origin
        q = _empirical_quantiles(panel, ids, end)
        out[:, w] = q[:, None, None, :]
    return out


def _run_tournament(
    panel: _Panel,
    ids: np.ndarray,
    models: list[Any],
    windows: int,
    n_jobs: int,
    metric: str,
    engine: ForecastEngine,
) -> _TournamentOutcome:
    names = [repr(m) for m in models]
    native = all(name in _NATIVE_INTERVALS for name in names)
    h = CV_HORIZON
    df = _long_frame(panel.y, panel.n_hist, panel.months, ids)
    sf = _statsforecast(models)
    # Fit once per series at the first origin and move the fitted model forward to the later
    # origins (same parameters, new data): a third of the fits, the same accuracy on M1 and
    # Tourism (docs/forecasting.md, "Cost"). Models without ``forward`` (the intermittent ones,
    # which cost nothing) are refitted at every origin.
    refit = not all(hasattr(m, "forward") for m in models)
    level = list(LEVELS) if native else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cv = engine.cross_validation(
                sf, df, h=h, n_windows=windows, step_size=1, level=level, refit=refit, n_jobs=n_jobs
            )
        except Exception:  # statsforecast has no fallback around ``forward``
            if refit:
                raise
            # A model that fitted but failed to move forward: refit at every origin, where
            # each failing fit falls back to the fallback model.
            cv = engine.cross_validation(
                sf, df, h=h, n_windows=windows, step_size=1, level=level, refit=True, n_jobs=n_jobs
            )
    cv = cv.sort_values(["unique_id", "cutoff", "ds"], kind="stable").reset_index(drop=True)
    n, k = len(ids), len(names)
    yv = cv["y"].to_numpy(dtype=float).reshape(n, windows, h)
    # Scored on what a user would see: forecasts are clipped at zero.
    preds = np.clip(cv[names].to_numpy(dtype=float), 0.0, None).reshape(n, windows, h, k)
    bounds = _cv_bounds(cv, names, native, panel, ids, windows, h)
    test_size = h + windows - 1
    scale = _error_scale(panel.y, ids, panel.y.shape[1] - test_size, metric)
    err = np.column_stack([_scaled_error(preds[..., j], yv, scale, metric) for j in range(k)])

    # The combination of every candidate, weighted per series by its backtest error.
    parts = np.arange(k)
    weights = combination_weights(err)
    combo_pred = np.einsum("nwhk,nk->nwh", preds, weights)
    combo_bounds = np.einsum("nwhkc,nk->nwhc", bounds, weights)
    combo_err = _scaled_error(combo_pred, yv, scale, metric)
    all_err = np.column_stack([err, combo_err])
    chosen, default = _select(all_err)

    all_preds = np.concatenate([preds, combo_pred[..., None]], axis=3)
    all_bounds = np.concatenate([bounds, combo_bounds[:, :, :, None, :]], axis=3)
    rows = np.arange(n)
    chosen_pred = all_preds[rows, :, :, chosen]
    chosen_bounds = all_bounds[rows, :, :, chosen, :]
    floor = _width_floor(scale)
    factors = _conformal_factors(yv, chosen_pred, chosen_bounds, floor)
    growth = error_growth(yv, chosen_pred, scale)
    uid = cv["unique_id"].to_numpy()
    residuals = pd.DataFrame({"unique_id": uid, "resid": (yv - chosen_pred).ravel()})
    long = cv[["unique_id", "cutoff", "ds", "y"]].copy()
    points = _backtest_points(long, yv, chosen_pred, preds[..., 0], chosen_bounds, floor)
    flat = all_preds.reshape(n * windows * h, k + 1)
    frames = [long.assign(model=name, yhat=flat[:, j]) for j, name in enumerate(names)]
    frames.append(long.assign(model="Combo", yhat=flat[:, k]))
    cv_long = pd.concat(frames, ignore_index=True)
    return _TournamentOutcome(
        ids=ids,
        model_names=names,
        errors=all_err,
        chosen=chosen,
        combo_parts=parts,
        weights=weights,
        default=default,
        factors=factors,
        floor=floor,
        growth=growth,
        cv_long=cv_long,
        residuals=residuals,
        points=points,
    )


def _backtest_points(
    long: pd.DataFrame,
    y: np.ndarray,
    pred: np.ndarray,
    naive: np.ndarray,
    bounds: np.ndarray,
    floor: np.ndarray,
) -> pd.DataFrame:
    """One row per series × origin × lag: actual, chosen forecast, naive, calibrated intervals.

    The intervals of each origin are calibrated with the conformal factors learnt on the
    *other* origins (leave one origin out), so their coverage is an honest out-of-sample
    estimate of the published intervals' coverage, not the calibration target itself.
    """
    n, windows, h = y.shape
    cal = np.empty((n, windows, h, 5))
    for w in range(windows):
        others = [o for o in range(windows) if o != w] or [w]
        f = _conformal_factors(y[:, others], pred[:, others], bounds[:, others], floor)
        stack = np.concatenate([pred[:, w, :, None], bounds[:, w]], axis=2)
        cal[:, w] = _apply_calibration(stack, f, floor)
    cal = _tidy_bounds(cal.reshape(n * windows, h, 5)).reshape(n, windows, h, 5)
    return pd.DataFrame(
        {
            "unique_id": long["unique_id"].to_numpy(),
            "cutoff": long["cutoff"].to_numpy(),
            "month": long["ds"].to_numpy(),
            "lag": np.tile(np.arange(1, h + 1), n * windows),
            "actual_qty": y.ravel(),
            "stat_qty": pred.ravel(),
            "naive_qty": naive.ravel(),
            "stat_lo95_qty": cal[..., 1].ravel(),
            "stat_lo80_qty": cal[..., 2].ravel(),
            "stat_hi80_qty": cal[..., 3].ravel(),
            "stat_hi95_qty": cal[..., 4].ravel(),
        }
    )


def _combo_label(outcome: _TournamentOutcome) -> str:
    return "Combo(" + "+".join(sorted(outcome.model_names[p] for p in outcome.combo_parts)) + ")"


def _final_forecasts(
    panel: _Panel,
    outcome: _TournamentOutcome,
    models: list[Any],
    horizon: int,
    n_jobs: int,
    engine: ForecastEngine,
) -> tuple[np.ndarray, list[str]]:
    """Refit only the models each series needs; returns (n, horizon, 5) and model labels.

    The last axis is point, lo95, lo80, hi80, hi95; the intervals are calibrated with the
    tournament's conformal factors.
    """
    n, k = len(outcome.ids), len(models)
    need = np.zeros((n, k), dtype=bool)
    single = outcome.chosen < k
    need[np.flatnonzero(single), outcome.chosen[single]] = True
    combo_rows = np.flatnonzero(~single)
    for p in outcome.combo_parts:
        need[combo_rows, p] = True

    fc = np.full((n, k, horizon, 5), np.nan)
    fell_back = np.zeros((n, k), dtype=bool)
    empirical = _empirical_quantiles(panel, outcome.ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j, model in enumerate(models):
            rows = np.flatnonzero(need[:, j])
            if rows.size == 0:
                continue
            name = repr(model)
            df = _long_frame(panel.y, panel.n_hist, panel.months, outcome.ids[rows])
            native = name in _NATIVE_INTERVALS
            out = engine.forecast(
                _statsforecast([model]),
                df,
                h=horizon,
                level=list(LEVELS) if native else None,
                n_jobs=n_jobs,
            )
            out = out.sort_values(["unique_id", "ds"], kind="stable")
            point = out[name].to_numpy(dtype=float).reshape(rows.size, horizon)
            fc[rows, j, :, 0] = point
            if native:
                for c, col in enumerate(("lo-95", "lo-80", "hi-80", "hi-95"), start=1):
                    fc[rows, j, :, c] = (
                        out[f"{name}-{col}"].to_numpy(dtype=float).reshape(rows.size, horizon)
                    )
            else:
                fc[rows, j, :, 1:] = empirical[rows][:, None, :]
            fell_back[rows, j] = _used_fallback(df, point, horizon)
    # Clipped like the backtest forecasts the calibration was learnt on.
    fc = np.clip(fc, 0.0, None)
    result = np.full((n, horizon, 5), np.nan)
    labels: list[str] = [""] * n
    combo = _combo_label(outcome)
    for i in range(n):
        c = outcome.chosen[i]
        if c < k:
            result[i] = fc[i, c]
            labels[i] = outcome.model_names[c] if not fell_back[i, c] else f"{FALLBACK} (fallback)"
        else:
            # The weighted mean of the parts' points and of each bound, as in the backtest.
            result[i] = np.einsum("khc,k->hc", fc[i, outcome.combo_parts], outcome.weights[i])
            labels[i] = combo
    result = _apply_calibration(result, outcome.factors, outcome.floor, outcome.growth)
    return result, labels


def _used_fallback(df: pd.DataFrame, point: np.ndarray, horizon: int) -> np.ndarray:
    """True where a model's forecast is the fallback's (the history mean) over the whole horizon.

    statsforecast reports the fallback's numbers under the failed model's name; matching them
    with the history mean lets ``stat_model`` say what really produced the forecast. Constant
    series are excluded: every model forecasts their mean.
    """
    grouped = df.groupby("unique_id", sort=True)["y"]
    means = grouped.mean().to_numpy()
    varies = (grouped.max() - grouped.min()).to_numpy() > 0
    close = np.isclose(point, means[:, None], rtol=1e-9, atol=1e-9).all(axis=1)
    return close & varies


def _empirical_quantiles(panel: _Panel, ids: np.ndarray, end: int | None = None) -> np.ndarray:
    """Per-series 2.5/10/90/97.5% quantiles of 24 months of demand before column ``end``.

    Default: the last 24 months.

    Intermittent models forecast a flat demand rate; against that flat forecast the residuals of
    the last 24 months are just the demand values shifted, so this is split-conformal with an
    in-sample calibration window. Order: lo95, lo80, hi80, hi95.
    """
    stop = panel.y.shape[1] if end is None else end
    window = panel.y[ids, max(0, stop - EMPIRICAL_WINDOW) : stop]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(window, [0.025, 0.10, 0.90, 0.975], axis=1).T
    return np.nan_to_num(q, nan=0.0)
