"""The statistical forecast of the demand review, in one call: what the ``stat_forecast`` asset runs.

:func:`statistical_forecast` runs the per-series model tournament (``forecast.forecast_demand``)
on the engine the settings name, reconciles family and total forecasts with the items
(``hierarchy.reconcile_forecast``), gives every level its coherent ranges
(``hierarchy.level_factors`` / ``level_intervals``) and scores the backtest by level and lag
(``accuracy.backtest_accuracy``). :meth:`StatisticalForecast.tables` names the plan tables the
stage writes. :func:`forecast_fingerprint` is what decides that result, for reusing an unchanged
forecast (``storage/incremental.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sop_pipeline.core.settings import Settings

#: the stage's name in ``plan._stage_versions``
FORECAST_STAGE = "stat_forecast"
#: what the forecast reads of ``marts.fct_demand_history``
HISTORY_COLUMNS = ["item_id", "location_id", "month", "demand_qty"]
#: the modules whose code decides the statistical forecast (their source is its code version;
#: a package counts with every module in it: planning/forecast/ is hashed whole)
FORECAST_CODE = (
    "sop_pipeline.planning.statistical",
    "sop_pipeline.planning.forecast",
    "sop_pipeline.planning.engines",
    "sop_pipeline.planning.hierarchy",
    "sop_pipeline.planning.accuracy",
    "sop_pipeline.core.months",
)


@dataclass
class StatisticalForecast:
    """What :func:`statistical_forecast` returns.

    Attributes:
        result: the tournament's ``ForecastResult`` after reconciliation (reconciled
            ``forecast`` and ``backtest_points``; ``backtest``, ``selection``, ``summary()``).
        reconciliation: what the reconciliation decided (``hierarchy.Reconciliation``).
        levels: every level's forecast and ranges (``hierarchy.LEVEL_COLUMNS``).
        factors: the level interval factors by level, lag and interval.
        backtest_accuracy: the backtest scored by level and lag (forecast_kind ``*_backtest``).
        engine: where the statsforecast calls ran (``ForecastEngine.describe()``).
    """

    result: Any
    reconciliation: Any
    levels: pd.DataFrame
    factors: pd.DataFrame
    backtest_accuracy: pd.DataFrame
    engine: dict[str, Any]

    def tables(self) -> dict[str, pd.DataFrame]:
        """The plan tables of the stage: its own ``stat_forecast`` first, then its side tables."""
        return {
            "stat_forecast": self.result.forecast,
            "backtest_results": self.result.backtest,
            "forecast_levels": self.levels,
            "backtest_accuracy": self.backtest_accuracy,
        }


def statistical_forecast(
    history: pd.DataFrame,
    items: pd.DataFrame,
    plan_month: str,
    settings: Settings,
    log: Callable[[str], None] | None = None,
) -> StatisticalForecast:
    """Forecast, reconcile and score the month's demand on ``SOP_FORECAST_ENGINE``.

    A cluster started for the forecast is shut down when it ends, also on failure.

    Args:
        history: ``fct_demand_history`` (``HISTORY_COLUMNS``).
        items: ``dim_items``.
        plan_month: ``YYYY-MM``.
        settings: the run's settings (horizon, backtest windows, n_jobs, the engine's).
        log: where to say which engine runs the forecast (None: nowhere).

    Returns:
        The reconciled forecast, its levels and the backtest's accuracy.
    """
    from sop_pipeline.planning.accuracy import backtest_accuracy
    from sop_pipeline.planning.engines import engine_from_settings
    from sop_pipeline.planning.forecast import forecast_demand
    from sop_pipeline.planning.hierarchy import (
        backtest_levels,
        level_factors,
        level_intervals,
        reconcile_forecast,
    )

    common = {
        "windows": settings.backtest_windows,
        "n_jobs": settings.forecast_n_jobs,
    }
    with engine_from_settings(settings) as engine:
        if log is not None:
            log(f"forecast engine: {engine.describe()}")
        result = forecast_demand(
            history, items, plan_month, settings.horizon_months, engine=engine, **common
        )
        # family and total forecasts reconciled with the items (method chosen by backtest)
        result, reconciliation = reconcile_forecast(
            result, history, items, plan_month, settings.horizon_months, engine=engine, **common
        )
        engine_info = engine.describe()
    factors = level_factors(result.backtest_points, items)
    return StatisticalForecast(
        result=result,
        reconciliation=reconciliation,
        levels=level_intervals(result.forecast, factors, plan_month, items),
        factors=factors,
        backtest_accuracy=backtest_accuracy(
            backtest_levels(result.backtest_points, items), history, items
        ),
        engine=engine_info,
    )


def forecast_fingerprint(
    history: pd.DataFrame, items: pd.DataFrame, settings: Settings
) -> tuple[str, str]:
    """(fingerprint, code version) of the month's forecast: what decides its result.

    History and items as hashed rows, horizon, backtest windows, candidate set, the
    statsforecast version and the source of ``FORECAST_CODE``. The engine and n_jobs are not
    part of it: they run the same models on the same data.
    """
    import statsforecast

    from sop_pipeline.storage import incremental

    code = incremental.source_hash(*FORECAST_CODE)
    fp = incremental.fingerprint(
        {"history": history, "items": items},
        {
            "horizon": settings.horizon_months,
            "windows": settings.backtest_windows,
            "candidates": "auto",
            "statsforecast": statsforecast.__version__,
        },
        code,
    )
    return fp, code
