"""Classification: the demand class of every series of the panel.

The Syntetos-Boylan class (smooth, erratic, intermittent, lumpy), the seasonality test, and
the class that decides whether a series goes to the tournament or to a rule (short, new,
future launch, dormant, end-of-life).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.forecast.constants import (
    INTERMITTENT_ADI,
    LUMPY_CV2,
    MIN_TOURNAMENT_MONTHS,
    SEASON,
    ZERO_RECENT_MONTHS,
)
from sop_pipeline.planning.forecast.panel import _Panel


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
