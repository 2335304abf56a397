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

The package, one module per stage (each imports only those above it; :mod:`.api` ties them
together, and this ``__init__`` re-exports the public names):

- :mod:`.constants`: tuning constants and output columns.
- :mod:`.candidates`: the candidate models of each series kind and the fallback model.
- :mod:`.panel`: input checks and the dense panel of every series.
- :mod:`.classify`: demand class, seasonality and the class of each series.
- :mod:`.calibration`: split-conformal interval calibration by lag; bound ordering.
- :mod:`.tournament`: backtest, combination, selection and the final refit.
- :mod:`.rules`: family profiles and levels for short, new, dormant and end-of-life series.
- :mod:`.api`: :func:`forecast_demand`, :class:`ForecastResult`, :func:`snapshot_rows`.
"""

from __future__ import annotations

from sop_pipeline.planning.forecast.api import ForecastResult, forecast_demand, snapshot_rows
from sop_pipeline.planning.forecast.calibration import error_growth, extend_factors
from sop_pipeline.planning.forecast.classify import classify_series
from sop_pipeline.planning.forecast.constants import (
    BACKTEST_COLUMNS,
    BACKTEST_POINT_COLUMNS,
    CANDIDATE_SETS,
    COMBO_ERROR_FLOOR,
    COMBO_POWER,
    CV_HORIZON,
    DEFAULT_RELATIVE_QUANTILES,
    EMPIRICAL_WINDOW,
    FALLBACK,
    FORECAST_COLUMNS,
    INTERMITTENT_ADI,
    INTERVAL_COLUMNS,
    LEVELS,
    LUMPY_CV2,
    MAX_FACTOR_GROWTH,
    MAX_FIT_MONTHS,
    METRIC,
    MIN_CONFORMAL_SCORES,
    MIN_POOLED_RESIDUALS,
    MIN_TOURNAMENT_MONTHS,
    NAIVE,
    RULE_LEVEL_MONTHS,
    S_AND_OP_LAGS,
    S_AND_OP_WEIGHT,
    SEASON,
    SWITCH_MARGIN,
    WIDTH_FLOOR,
    ZERO_RECENT_MONTHS,
)
from sop_pipeline.planning.forecast.tournament import combination_weights, lag_weights

__all__ = [
    "BACKTEST_COLUMNS",
    "BACKTEST_POINT_COLUMNS",
    "CANDIDATE_SETS",
    "COMBO_ERROR_FLOOR",
    "COMBO_POWER",
    "CV_HORIZON",
    "DEFAULT_RELATIVE_QUANTILES",
    "EMPIRICAL_WINDOW",
    "FALLBACK",
    "FORECAST_COLUMNS",
    "INTERMITTENT_ADI",
    "INTERVAL_COLUMNS",
    "LEVELS",
    "LUMPY_CV2",
    "MAX_FACTOR_GROWTH",
    "MAX_FIT_MONTHS",
    "METRIC",
    "MIN_CONFORMAL_SCORES",
    "MIN_POOLED_RESIDUALS",
    "MIN_TOURNAMENT_MONTHS",
    "NAIVE",
    "RULE_LEVEL_MONTHS",
    "SEASON",
    "SWITCH_MARGIN",
    "S_AND_OP_LAGS",
    "S_AND_OP_WEIGHT",
    "WIDTH_FLOOR",
    "ZERO_RECENT_MONTHS",
    "ForecastResult",
    "classify_series",
    "combination_weights",
    "error_growth",
    "extend_factors",
    "forecast_demand",
    "lag_weights",
    "snapshot_rows",
]
