"""Rules for the series the tournament does not forecast (short, new, dormant, end-of-life).

Family seasonal profiles, recent and launch levels, and ranges from the family's pooled
backtest residuals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.forecast.constants import (
    DEFAULT_RELATIVE_QUANTILES,
    MIN_POOLED_RESIDUALS,
    RULE_LEVEL_MONTHS,
    SEASON,
)
from sop_pipeline.planning.forecast.panel import _Panel


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
