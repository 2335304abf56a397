"""Statistical demand forecast: series classification, model tournament, intervals and rules.

One entry point, :func:`forecast_demand`. Every item × location series is classified first
(Syntetos-Boylan demand class, lifecycle, history length). Series with enough history go to a
rolling-origin backtest (statsforecast ``cross_validation``, lags 1-6, each model fitted once per
series and moved forward to the later origins) in which a small set of candidate models and
their per-series error-weighted combination compete on lag-weighted MASE (RMSSE for
intermittent series); a series leaves the panel's best method only on strong evidence. The
ranges are calibrated by lag on the backtest (split conformal). Only the winning model(s) are
refitted on the full history for the plan horizon. Short, new, end-of-life and dormant series follow documented rules.
See ``docs/forecasting.md`` for the reasoning and the measured costs.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.core.settings import FORECAST_ENGINES
from sop_pipeline.planning.engines import ForecastEngine, open_engine

SEASON = 12
LEVELS = (80, 95)
CV_HORIZON = 6
"""Backtest horizon: each origin is scored on lags 1-6, lags 1-3 weighted double (lag_weights)."""
S_AND_OP_LAGS = 3
"""Lags supply commits on (production and purchase lead times, the frozen zone)."""
S_AND_OP_WEIGHT = 2.0
SWITCH_MARGIN = 0.5
"""A series leaves the panel's best method only for one with half its backtest error."""
WIDTH_FLOOR = 0.05
"""Smallest interval half-width in the conformal scores, as a share of the series' error scale."""
MIN_CONFORMAL_SCORES = 30
MAX_FACTOR_GROWTH = 0.5
"""Beyond the backtested lags the conformal factor grows at most like √lag (extend_factors)."""
COMBO_POWER = 2.0
"""Combination weights ∝ error^-2 (inverse mean squared scaled error, Bates-Granger style)."""
COMBO_ERROR_FLOOR = 1e-3
"""A candidate with a perfect backtest does not take an infinite weight."""
MIN_TOURNAMENT_MONTHS = 24
"""Two full seasons: fewer months cannot show a seasonal pattern to the models."""
MAX_FIT_MONTHS = 72
"""Models see at most the last six years; older demand rarely helps and costs fit time."""
ZERO_RECENT_MONTHS = 12
RULE_LEVEL_MONTHS = 6
INTERMITTENT_ADI = 1.32
LUMPY_CV2 = 0.49
EMPIRICAL_WINDOW = 24
MIN_POOLED_RESIDUALS = 20
# Relative interval half-widths used only when no series at all has a backtest to learn from.
DEFAULT_RELATIVE_QUANTILES = {"q025": -0.8, "q10": -0.5, "q90": 0.5, "q975": 1.0}
INTERVAL_COLUMNS = ("stat_lo95_qty", "stat_lo80_qty", "stat_hi80_qty", "stat_hi95_qty")
FORECAST_COLUMNS = [
    "item_id",
    "location_id",
    "month",
    "stat_forecast_qty",
    "stat_lo80_qty",
    "stat_hi80_qty",
    "stat_lo95_qty",
    "stat_hi95_qty",
    "stat_model",
    "naive_forecast_qty",
]
BACKTEST_COLUMNS = [
    "item_id",
    "location_id",
    "series_class",
    "n_history",
    "chosen_model",
    "chosen_error",
    "naive_error",
    "error_metric",
    "fva",
]
BACKTEST_POINT_COLUMNS = [
    "cutoff",
    "month",
    "lag",
    "actual_qty",
    "stat_qty",
    "naive_qty",
    "stat_lo95_qty",
    "stat_lo80_qty",
    "stat_hi80_qty",
    "stat_hi95_qty",
]
CANDIDATE_SETS = ("auto", "full", "fast")
NAIVE = "SeasonalNaive"
METRIC = {"smooth": "mase", "intermittent": "rmsse"}
"""MAE rewards forecasting zero on intermittent demand (its optimum is the median, often 0);
squared error's optimum is the mean demand rate, which is what stock has to cover (as in M5)."""
FALLBACK = "HistoricAverage"


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


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------


def _candidate_models(kind: str, candidates: str) -> list[Any]:
    """The candidate models of one series kind ("smooth" or "intermittent"), baseline first.

    The order is the tie-break order: on equal error the earlier (simpler) model wins.
    """
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        TSB,
        AutoARIMA,
        AutoCES,
        AutoETS,
        AutoTheta,
        CrostonSBA,
        DynamicOptimizedTheta,
        SeasonalNaive,
    )

    naive = SeasonalNaive(season_length=SEASON, alias=NAIVE)
    if kind == "intermittent":
        return [
            naive,
            CrostonSBA(alias="CrostonSBA"),
            ADIDA(alias="ADIDA"),
            IMAPA(alias="IMAPA"),
            TSB(alpha_d=0.1, alpha_p=0.1, alias="TSB"),
        ]
    models = [naive, DynamicOptimizedTheta(season_length=SEASON, alias="DynamicOptimizedTheta")]
    if candidates in ("auto", "full"):
        # Damped additive Holt-Winters: the M-competition workhorse at a quarter of AutoETS's cost.
        models.append(AutoETS(season_length=SEASON, model="AAA", damped=True, alias="ETS_AAdA"))
        models.append(AutoTheta(season_length=SEASON, alias="Theta"))
    if candidates == "full":
        models += [
            AutoETS(season_length=SEASON, alias="AutoETS"),
            AutoCES(season_length=SEASON, alias="CES"),
            AutoARIMA(season_length=SEASON, alias="AutoARIMA"),
        ]
    return models


_NATIVE_INTERVALS = {
    NAIVE,
    "DynamicOptimizedTheta",
    "ETS_AAdA",
    "Theta",
    "AutoETS",
    "CES",
    "AutoARIMA",
    FALLBACK,
}


def _fallback_model() -> Any:
    from sop_pipeline.planning.fallback_model import ForwardHistoricAverage

    return ForwardHistoricAverage(alias=FALLBACK)


# --------------------------------------------------------------------------------------------
# Input checks and the dense panel
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def classify_series(y: np.ndarray) -> tuple[str, float, float]:
    """Syntetos-Boylan class of one demand series (NaN-free, clipped at 0).

    Args:
        y: the series' monthly demand.

    Returns:
        (class, ADI, CV²): class is smooth / erratic / intermittent / lumpy, or ``zero``
        when the series never had demand. ADI is the average interval between demands, CV²
        the squared coefficient of variation of the non-zero demand sizes.
    """
    nz = y[y > 0]
    if nz.size == 0:
        return "zero", float("inf"), 0.0
    adi = y.size / nz.size
    cv2 = float(nz.var() / nz.mean() ** 2)
    if adi >= INTERMITTENT_ADI:
        return ("lumpy" if cv2 >= LUMPY_CV2 else "intermittent"), adi, cv2
    return ("erratic" if cv2 >= LUMPY_CV2 else "smooth"), adi, cv2


def _is_seasonal(y: np.ndarray) -> bool:
    if y.size < 2 * SEASON:
        return False
    d = y - y.mean()
    denom = float((d * d).sum())
    if denom == 0:
        return False
    acf = float((d[SEASON:] * d[:-SEASON]).sum()) / denom
    # 1.645 / sqrt(n): the one-sided 95% white-noise bound on the autocorrelation.
    return acf > max(0.3, 1.645 / np.sqrt(y.size))


def _series_classes(panel: _Panel, plan: pd.Timestamp, horizon_start: pd.Timestamp) -> np.ndarray:
    classes = np.empty(len(panel.keys), dtype=object)
    eol = panel.keys["eol"].to_numpy()
    launch = panel.keys["launch"].to_numpy()
    for i in range(len(panel.keys)):
        y = panel.y[i, -panel.n_hist[i] :] if panel.n_hist[i] else np.zeros(0)
        if pd.notna(eol[i]) and pd.Timestamp(eol[i]) < horizon_start:
            classes[i] = "eol"
        elif pd.notna(launch[i]) and pd.Timestamp(launch[i]) > plan:
            classes[i] = "future_launch"
        elif panel.n_hist[i] == 0:
            classes[i] = "new"
        elif y.size == 0 or not (y[-ZERO_RECENT_MONTHS:] > 0).any():
            classes[i] = "zero_recent"
        elif y.size < MIN_TOURNAMENT_MONTHS:
            classes[i] = "short"
        else:
            cls, _, _ = classify_series(y)
            if cls in ("smooth", "erratic") and _is_seasonal(y):
                cls = "seasonal"
            classes[i] = cls
    return classes


# --------------------------------------------------------------------------------------------
# Tournament
# --------------------------------------------------------------------------------------------


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


def _statsforecast(models: list[Any], n_jobs: int) -> Any:
    from statsforecast import StatsForecast

    return StatsForecast(models=models, freq="MS", n_jobs=n_jobs, fallback_model=_fallback_model())


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


def _conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Split-conformal quantile: the ⌈(n+1)·level⌉-th smallest score (n scores)."""
    s = np.sort(scores[np.isfinite(scores)])
    if s.size == 0:
        return 1.0
    k = int(np.ceil((s.size + 1) * level))
    return float(s[min(k, s.size) - 1])


def _width_floor(scale: np.ndarray) -> np.ndarray:
    """Smallest interval half-width used in the conformal scores (a share of the error scale)."""
    return WIDTH_FLOOR * scale


def _conformal_factors(
    y: np.ndarray, pred: np.ndarray, bounds: np.ndarray, floor: np.ndarray
) -> np.ndarray:
    """Per lag and level, the factor that stretches the model's interval to nominal coverage.

    Normalised split-conformal calibration on the backtest: the score of a backtest point is
    its error divided by the interval's half-width on the error's side (upper half-width for
    an actual above the forecast, lower for one below), so the interval
    ``point − c·(point − lo), point + c·(hi − point)`` covers exactly the points with score ≤ c.
    c is the conformal quantile of the scores pooled over the series of one lag (all lags
    together when a lag has fewer than ``MIN_CONFORMAL_SCORES``).

    Args:
        y: (n, windows, lags) backtest actuals.
        pred: (n, windows, lags) backtest forecasts of those actuals (clipped at 0).
        bounds: (n, windows, lags, 4) lo95, lo80, hi80, hi95 of those forecasts.
        floor: (n,) smallest half-width per series.

    Returns:
        (lags, 2): factors for 80% and 95%.
    """
    h = y.shape[2]
    out = np.ones((h, len(LEVELS)))
    e = y - pred
    fl = floor[:, None, None]
    for li, (lo_i, hi_i) in enumerate(((1, 2), (0, 3))):
        up = np.maximum(bounds[..., hi_i] - pred, fl)
        down = np.maximum(pred - bounds[..., lo_i], fl)
        s = np.abs(e) / np.where(e >= 0, up, down)
        pooled = s.reshape(-1)
        for lag in range(h):
            lag_s = s[:, :, lag].reshape(-1)
            use = lag_s if np.isfinite(lag_s).sum() >= MIN_CONFORMAL_SCORES else pooled
            out[lag, li] = _conformal_quantile(use, LEVELS[li] / 100)
    # Later lags are never calibrated tighter than earlier ones (the models' own widths grow).
    return np.maximum.accumulate(out, axis=0)


def extend_factors(factors: np.ndarray, horizon: int) -> np.ndarray:
    """Conformal factors for lags 1..horizon from the backtested lags 1..h (h = len(factors)).

    Beyond the backtest the factor keeps the growth it shows over the backtested lags: a
    power law ``c(L) = c(h) · (L / h)^b`` with b the least-squares slope of log c on log lag,
    0 ≤ b ≤ ``MAX_FACTOR_GROWTH`` (never shrinking; flat when the backtest shows no growth).
    The models' own ranges widen with the lag too, but on M1 they widen too slowly: reusing lag
    6's factor up to lag 18 covered 74% (80% nominal) and 90% (95%) of the actuals at lags 13-18.

    Args:
        factors: (h, 2) factors for 80% and 95% by backtested lag.
        horizon: lags wanted.

    Returns:
        (max(h, horizon), 2) factors.
    """
    h = len(factors)
    if horizon <= h:
        return factors
    out = np.empty((horizon, factors.shape[1]))
    out[:h] = factors
    later = np.arange(h + 1, horizon + 1) / h
    log_lag = np.log(np.arange(1, h + 1))
    for li in range(factors.shape[1]):
        b = 0.0
        if h >= 2:
            b = float(np.polyfit(log_lag, np.log(np.maximum(factors[:, li], 1e-6)), 1)[0])
        out[h:, li] = factors[-1, li] * later ** min(max(b, 0.0), MAX_FACTOR_GROWTH)
    return out


def error_growth(y: np.ndarray, pred: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """How fast the backtest's errors grow with the lag, per interval level.

    The 80% and 95% quantiles of |actual − forecast| ÷ the series' error scale, pooled over the
    series and origins of each lag, fitted by a power law ``q(L) ∝ L^b`` over the backtested
    lags (least squares on the logs); 0 ≤ b ≤ ``MAX_FACTOR_GROWTH``.

    Args:
        y: (n, windows, lags) backtest actuals.
        pred: (n, windows, lags) backtest forecasts of those actuals.
        scale: (n,) error scale per series.

    Returns:
        (2,) exponents b for 80% and 95%.
    """
    h = y.shape[2]
    out = np.zeros(len(LEVELS))
    if h < 2 or y.size == 0:
        return out
    e = np.abs(y - pred) / scale[:, None, None]
    log_lag = np.log(np.arange(1, h + 1))
    for li, level in enumerate(LEVELS):
        q = np.full(h, np.nan)
        for lag in range(h):
            v = e[:, :, lag][np.isfinite(e[:, :, lag])]
            if v.size:
                q[lag] = np.quantile(v, level / 100)
        if np.isfinite(q).all() and (q > 0).all():
            b = float(np.polyfit(log_lag, np.log(q), 1)[0])
            out[li] = min(max(b, 0.0), MAX_FACTOR_GROWTH)
    return out


def _apply_calibration(
    fc: np.ndarray, factors: np.ndarray, floor: np.ndarray, growth: np.ndarray | None = None
) -> np.ndarray:
    """Stretch (n, horizon, 5) point/lo95/lo80/hi80/hi95 by the per-lag conformal factors.

    Lags beyond the backtest horizon h have no backtest to calibrate on. Two estimates of their
    half-width: the model's own width times :func:`extend_factors`, and the calibrated lag-h
    half-width grown as the backtest's errors grow with the lag (``growth``, from
    :func:`error_growth`): ``w_h · (L / h)^b``. The published half-width is their geometric
    mean. Either alone missed on the benchmarks (the models' widths grow too slowly on M1's
    trending series and too fast on Tourism's stable seasonal ones; measured in
    docs/forecasting.md, "Intervals").
    """
    out = fc.copy()
    horizon = fc.shape[1]
    h = len(factors)
    factors = extend_factors(factors, horizon)
    idx = np.arange(horizon)
    point = np.clip(fc[:, :, 0], 0.0, None)
    fl = floor[:, None]
    for li, (lo_c, hi_c) in enumerate(((2, 3), (1, 4))):
        c = factors[idx, li][None, :]
        down = c * np.maximum(point - np.clip(fc[:, :, lo_c], 0.0, None), fl)
        up = c * np.maximum(fc[:, :, hi_c] - point, fl)
        if growth is not None and horizon > h:
            grow = (np.arange(h + 1, horizon + 1) / h) ** growth[li]
            down[:, h:] = np.sqrt(down[:, h:] * down[:, h - 1 : h] * grow[None, :])
            up[:, h:] = np.sqrt(up[:, h:] * up[:, h - 1 : h] * grow[None, :])
        out[:, :, lo_c] = point - down
        out[:, :, hi_c] = point + up
    return out


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
    sf = _statsforecast(models, n_jobs)
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
                sf, df, h=h, n_windows=windows, step_size=1, level=level, refit=refit
            )
        except Exception:  # statsforecast has no fallback around ``forward``
            if refit:
                raise
            # A model that fitted but failed to move forward: refit at every origin, where
            # each failing fit falls back to the fallback model.
            cv = engine.cross_validation(
                sf, df, h=h, n_windows=windows, step_size=1, level=level, refit=True
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
                _statsforecast([model], n_jobs),
                df,
                h=horizon,
                level=list(LEVELS) if native else None,
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


# --------------------------------------------------------------------------------------------
# Rules: short, new, dormant, end-of-life
# --------------------------------------------------------------------------------------------


def _family_profiles(panel: _Panel) -> dict[str, np.ndarray]:
    """Seasonal index by calendar month (Jan..Dec, mean 1) per family; flat when unknown.

    Ratio to a centred 2×12 moving average of the family's total demand, averaged by calendar
    month; needs 24 months of family history and every calendar month covered.
    """
    out: dict[str, np.ndarray] = {}
    cal = panel.months.month.to_numpy() - 1
    fam = panel.keys["family"].to_numpy()
    for family in pd.unique(fam):
        total = np.nansum(panel.y[fam == family], axis=0)
        active = np.flatnonzero(total > 0)
        index = np.ones(SEASON)
        if active.size and panel.months.size - active[0] >= 2 * SEASON:
            s = pd.Series(total[active[0] :])
            ma = s.rolling(SEASON, center=True).mean().rolling(2).mean().shift(-1)
            ratio = (s / ma).to_numpy()
            months = cal[active[0] :]
            ok = np.isfinite(ratio)
            by_month = np.array(
                [
                    ratio[ok & (months == m)].mean() if (ok & (months == m)).any() else np.nan
                    for m in range(SEASON)
                ]
            )
            if np.isfinite(by_month).all() and by_month.mean() > 0:
                index = np.clip(by_month / by_month.mean(), 0.2, 5.0)
                index = index / index.mean()
        out[str(family)] = index
    return out


def _relative_quantiles(residuals: pd.DataFrame, level: pd.Series) -> pd.DataFrame:
    """Pooled quantiles of backtest residuals relative to each series' level, per family."""
    r = residuals.merge(level.rename("level"), left_on="unique_id", right_index=True)
    r = r[r["level"] > 0]
    r["rel"] = r["resid"] / r["level"]
    qs = {"q025": 0.025, "q10": 0.10, "q90": 0.90, "q975": 0.975}
    rows = {}
    for family, grp in r.groupby("family", sort=True):
        if len(grp) >= MIN_POOLED_RESIDUALS:
            rows[family] = {k: float(np.quantile(grp["rel"], q)) for k, q in qs.items()}
    if len(r) >= MIN_POOLED_RESIDUALS:
        rows["__all__"] = {k: float(np.quantile(r["rel"], q)) for k, q in qs.items()}
    else:
        rows["__all__"] = dict(DEFAULT_RELATIVE_QUANTILES)
    return pd.DataFrame.from_dict(rows, orient="index")


def _rule_bounds(point: np.ndarray, rel: pd.Series) -> np.ndarray:
    """(horizon, 5) point/lo95/lo80/hi80/hi95 from relative quantiles of the family."""
    return np.column_stack(
        [
            point,
            point * (1 + rel["q025"]),
            point * (1 + rel["q10"]),
            point * (1 + rel["q90"]),
            point * (1 + rel["q975"]),
        ]
    )


def _recent_level(y: np.ndarray, cal: np.ndarray, index: np.ndarray) -> float:
    """Mean de-seasonalised demand of the last RULE_LEVEL_MONTHS months."""
    return float(np.mean(y[-RULE_LEVEL_MONTHS:] / index[cal[-RULE_LEVEL_MONTHS:]]))


def _typical_launch_level(panel: _Panel, profiles: dict[str, np.ndarray]) -> dict[str, float]:
    """Per family: median de-seasonalised mean of the first three months of launched series.

    Only series launched inside the history window count (older series are cut by the window,
    their start is not a launch).
    """
    out: dict[str, float] = {}
    cal = panel.months.month.to_numpy() - 1
    t = panel.y.shape[1]
    fam = panel.keys["family"].to_numpy()
    for family in pd.unique(fam):
        index = profiles[str(family)]
        launches, recent = [], []
        for i in np.flatnonzero(fam == family):
            n = int(panel.n_hist[i])
            if n == 0:
                continue
            y = panel.y[i, t - n :]
            c = cal[t - n :]
            if n < t and n >= 3:
                launches.append(float(np.mean(y[:3] / index[c[:3]])))
            recent.append(_recent_level(y, c, index))
        vals = launches or recent
        out[str(family)] = float(np.median(vals)) if vals else 0.0
    return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


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
        n_jobs: statsforecast worker processes (``-1`` = all cores); ``local`` engine only.
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
            outcome = _run_tournament(panel, ids, models, windows, n_jobs, METRIC[kind], engine)
            t2 = time.perf_counter()
            fc, names = _final_forecasts(panel, outcome, models, horizon, n_jobs, engine)
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


def _tidy_bounds(result: np.ndarray) -> np.ndarray:
    """Clip at zero and order lo95 ≤ lo80 ≤ point ≤ hi80 ≤ hi95."""
    r = np.clip(np.nan_to_num(result, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    point = r[:, :, 0]
    lo80 = np.minimum(r[:, :, 2], point)
    lo95 = np.minimum(r[:, :, 1], lo80)
    hi80 = np.maximum(r[:, :, 3], point)
    hi95 = np.maximum(r[:, :, 4], hi80)
    return np.stack([point, lo95, lo80, hi80, hi95], axis=2)


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
