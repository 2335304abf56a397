"""Tuning constants and output columns of the statistical forecast.

Every module of the package reads them from here; what each value does and why is in
``docs/forecasting.md``.
"""

from __future__ import annotations

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
