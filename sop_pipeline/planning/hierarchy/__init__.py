"""Coherent forecast levels: item × location → item → location → family → total.

The statistical forecast is made per item × location. Every level above is the *sum* of those
rows (points add up exactly at every level). Intervals of a sum are not the sum of intervals:
errors of different items partly cancel, so the family's range is narrower than the sum of its
items' ranges. What "coherent intervals" means here (docs/forecasting.md, §Hierarchy):

- every level's interval is centred on the coherent point (the sum of the item points);
- its half-width on each side is ``c × Σ item half-widths`` with ``0 < c ≤ 1``: never wider than
  the sum of the parts (the range if all items erred together, the comonotonic bound) and
  narrower by as much as the backtest shows the errors cancel;
- c is learnt per level, lag and interval level by split-conformal calibration on the
  backtest of the aggregated series, as for the items.

:func:`level_intervals` applies it, :func:`level_factors` learns it, :func:`coherence_problems`
checks a published frame (the blocking asset check), :func:`backtest_levels` scores the
backtest by level and lag for ``forecast_accuracy``.

:mod:`.levels` holds the level intervals, checks and scores, :mod:`.reconcile` the
reconciliation of the point forecasts (hierarchicalforecast).
"""

from sop_pipeline.planning.hierarchy.levels import (
    ACCURACY_LEVELS,
    INTERVALS,
    LEVEL_COLUMNS,
    LEVELS,
    MIN_SCORES,
    QTY,
    REL_TOL,
    backtest_levels,
    coherence_problems,
    level_factors,
    level_intervals,
)
from sop_pipeline.planning.hierarchy.reconcile import (
    ITEM_ERROR_TOLERANCE,
    MAX_RECALIBRATION,
    RECONCILERS,
    Reconciliation,
    choose_reconciler,
    reconcile_forecast,
)

__all__ = [
    "ACCURACY_LEVELS",
    "INTERVALS",
    "ITEM_ERROR_TOLERANCE",
    "LEVELS",
    "LEVEL_COLUMNS",
    "MAX_RECALIBRATION",
    "MIN_SCORES",
    "QTY",
    "RECONCILERS",
    "REL_TOL",
    "Reconciliation",
    "backtest_levels",
    "choose_reconciler",
    "coherence_problems",
    "level_factors",
    "level_intervals",
    "reconcile_forecast",
]
