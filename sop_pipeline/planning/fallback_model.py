"""The forecast's fallback model, in its own module so worker processes can unpickle it.

Imported lazily by :mod:`sop_pipeline.planning.forecast.candidates` (importing statsforecast
costs seconds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from statsforecast.models import HistoricAverage


class ForwardHistoricAverage(HistoricAverage):
    """``HistoricAverage`` with ``forward``.

    The historic average has no parameters, so applying it to new data is forecasting that
    data; ``cross_validation(refit=False)`` needs a fallback with ``forward``.
    """

    def forward(
        self,
        y: np.ndarray,
        h: int,
        X: np.ndarray | None = None,  # noqa: N803 - statsforecast's model API names it so
        X_future: np.ndarray | None = None,  # noqa: N803 - statsforecast's model API
        level: list[int] | None = None,
        fitted: bool = False,
    ) -> dict[str, Any]:
        """Forecast ``h`` months from ``y`` with the parameters fitted before (no refit)."""
        return self.forecast(y=y, h=h, X=X, X_future=X_future, level=level, fitted=fitted)
