"""Coherent levels above item × location: interval factors, level intervals, checks, scores.

:func:`level_intervals` applies the factors :func:`level_factors` learns,
:func:`coherence_problems` checks a published frame (the blocking asset check) and
:func:`backtest_levels` scores the backtest by level and lag for ``forecast_accuracy``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.forecast.calibration import conformal_quantile

LEVELS = ("item", "location", "family", "total")
"""Aggregate levels published in ``forecast_levels`` (item × location is ``plan_demand``)."""
ACCURACY_LEVELS = ("item", "family", "total")
"""Levels of ``forecast_accuracy`` (item there means the item × location series)."""
INTERVALS = (("stat_lo80_qty", "stat_hi80_qty", 0.80), ("stat_lo95_qty", "stat_hi95_qty", 0.95))
QTY = ["stat_forecast_qty", "stat_lo80_qty", "stat_hi80_qty", "stat_lo95_qty", "stat_hi95_qty"]
LEVEL_COLUMNS = ["level", "scope_id", "month", *QTY, "n_series"]
MIN_SCORES = 30
REL_TOL = 1e-9


def _unit(frame: pd.DataFrame, level: str) -> pd.Series:
    if level == "item":
        return frame["item_id"].astype(str)
    if level == "location":
        return frame["location_id"].astype(str)
    if level == "family":
        return frame["family"].astype(str)
    return pd.Series("total", index=frame.index)


def _aggregate_backtest(points: pd.DataFrame, level: str) -> pd.DataFrame:
    """Backtest points summed per unit × origin × lag (item half-widths summed per side)."""
    p = points.assign(
        unit=_unit(points, level),
        **{f"dn{int(q * 100)}": points["stat_qty"] - points[lo] for lo, _, q in INTERVALS},
        **{f"up{int(q * 100)}": points[hi] - points["stat_qty"] for _, hi, q in INTERVALS},
    )
    cols = ["actual_qty", "stat_qty", "naive_qty", "dn80", "up80", "dn95", "up95"]
    return p.groupby(["unit", "cutoff", "lag"], as_index=False, sort=True)[cols].sum()


def _factors_from(agg: pd.DataFrame, lags: list[int]) -> dict[tuple[int, float], float]:
    """C per (lag, level) from aggregated backtest rows; capped at 1 (the comonotonic bound)."""
    e = (agg["actual_qty"] - agg["stat_qty"]).to_numpy()
    out: dict[tuple[int, float], float] = {}
    for _, _, q in INTERVALS:
        tag = int(q * 100)
        width = np.where(e >= 0, agg[f"up{tag}"].to_numpy(), agg[f"dn{tag}"].to_numpy())
        s = np.where(np.abs(e) <= 1e-12, 0.0, np.abs(e) / np.maximum(width, 1e-12))
        lag_arr = agg["lag"].to_numpy()
        prev = 0.0
        for lag in lags:
            sel = s[lag_arr == lag]
            use = sel if np.isfinite(sel).sum() >= MIN_SCORES else s
            c = min(1.0, max(prev, conformal_quantile(use, q)))
            out[(lag, q)] = c
            prev = c
    return out


def level_factors(points: pd.DataFrame, items: pd.DataFrame | None = None) -> pd.DataFrame:
    """Conformal shrink factors per aggregate level × lag × interval level.

    Args:
        points: ``ForecastResult.backtest_points`` (item_id, location_id, cutoff, lag,
            actual_qty, stat_qty, naive_qty and the calibrated item intervals), with a
            ``family`` column or ``items`` to map one.
        items: item_id → family.

    Returns:
        level, lag, factor_80, factor_95 (1.0 = as wide as the sum of the items' ranges).
    """
    pts = _with_family(points, items)
    lags = sorted(int(v) for v in pts["lag"].unique()) if len(pts) else []
    rows = []
    for level in LEVELS:
        f = _factors_from(_aggregate_backtest(pts, level), lags) if len(pts) else {}
        for lag in lags:
            rows.append(
                {
                    "level": level,
                    "lag": lag,
                    "factor_80": f.get((lag, 0.80), 1.0),
                    "factor_95": f.get((lag, 0.95), 1.0),
                }
            )
    return pd.DataFrame(rows, columns=["level", "lag", "factor_80", "factor_95"])


def _with_family(frame: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    if "family" in frame.columns or items is None:
        return frame
    fam = items.drop_duplicates("item_id").set_index("item_id")["family"]
    return frame.assign(family=frame["item_id"].map(fam).fillna("(unknown)"))


def level_intervals(
    forecast: pd.DataFrame,
    factors: pd.DataFrame,
    plan_month: str,
    items: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every aggregate level of an item × location forecast, coherent by construction.

    Args:
        forecast: item_id, location_id, month and the ``QTY`` columns (``plan_demand`` or
            ``stat_forecast``), with ``family`` or ``items`` to map it.
        factors: :func:`level_factors` output; a lag beyond its last lag uses the last one,
            a level without factors uses 1 (the sum of the item ranges).
        plan_month: ``YYYY-MM`` (months are numbered from it for the lag).
        items: item_id → family.

    Returns:
        ``LEVEL_COLUMNS``: level, scope_id, month, the point (sum of the item points), the
        80/95% bounds, and the number of item × location series in the scope.
    """
    fc = _with_family(forecast, items)
    plan = pd.Timestamp(plan_month + "-01")
    months = pd.to_datetime(fc["month"])
    lag = (months.dt.year - plan.year) * 12 + months.dt.month - plan.month
    base = fc.assign(
        lag=lag.to_numpy(),
        month=months,
        dn80=fc["stat_forecast_qty"] - fc["stat_lo80_qty"],
        up80=fc["stat_hi80_qty"] - fc["stat_forecast_qty"],
        dn95=fc["stat_forecast_qty"] - fc["stat_lo95_qty"],
        up95=fc["stat_hi95_qty"] - fc["stat_forecast_qty"],
    )
    frames = []
    for level in LEVELS:
        agg = (
            base.assign(scope_id=_unit(base, level))
            .groupby(["scope_id", "month", "lag"], as_index=False, sort=True)
            .agg(
                stat_forecast_qty=("stat_forecast_qty", "sum"),
                dn80=("dn80", "sum"),
                up80=("up80", "sum"),
                dn95=("dn95", "sum"),
                up95=("up95", "sum"),
                n_series=("item_id", "size"),
            )
        )
        f = factors[factors["level"] == level].set_index("lag")
        if len(f):
            last = int(f.index.max())
            lag_key = np.minimum(agg["lag"].to_numpy(), last)
            c80 = f["factor_80"].reindex(lag_key).fillna(1.0).to_numpy()
            c95 = f["factor_95"].reindex(lag_key).fillna(1.0).to_numpy()
        else:
            c80 = c95 = np.ones(len(agg))
        p = agg["stat_forecast_qty"].to_numpy()
        lo80 = np.clip(p - c80 * agg["dn80"].to_numpy(), 0.0, None)
        lo95 = np.minimum(np.clip(p - c95 * agg["dn95"].to_numpy(), 0.0, None), lo80)
        hi80 = p + c80 * agg["up80"].to_numpy()
        hi95 = np.maximum(p + c95 * agg["up95"].to_numpy(), hi80)
        frames.append(
            pd.DataFrame(
                {
                    "level": level,
                    "scope_id": agg["scope_id"],
                    "month": agg["month"],
                    "stat_forecast_qty": p,
                    "stat_lo80_qty": lo80,
                    "stat_hi80_qty": hi80,
                    "stat_lo95_qty": lo95,
                    "stat_hi95_qty": hi95,
                    "n_series": agg["n_series"].astype("int64"),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)[LEVEL_COLUMNS]
    order = {k: i for i, k in enumerate(LEVELS)}
    return out.sort_values(
        ["level", "scope_id", "month"], key=lambda s: s.map(order) if s.name == "level" else s
    ).reset_index(drop=True)


def coherence_problems(
    bottom: pd.DataFrame, levels: pd.DataFrame, *, rel_tol: float = REL_TOL
) -> list[str]:
    """What makes published levels incoherent with the item × location rows (empty = fine).

    Checks, per level × scope × month: the point equals the sum of the item points (relative
    tolerance of the level's total, for float summation order); the bounds are ordered
    lo95 ≤ lo80 ≤ point ≤ hi80 ≤ hi95 and non-negative; each half-width is no wider than the
    sum of the items' half-widths (the comonotonic bound); every level and scope is present.

    Args:
        bottom: item_id, location_id, family, month and the ``QTY`` columns.
        levels: :func:`level_intervals` output (as published in ``forecast_levels``).
        rel_tol: tolerance relative to max(1, |level total|).
    """
    problems: list[str] = []
    if bottom.empty and levels.empty:
        return problems
    b = bottom.assign(month=pd.to_datetime(bottom["month"]))
    lv = levels.assign(month=pd.to_datetime(levels["month"]))
    for level in LEVELS:
        want = (
            b.assign(scope_id=_unit(b, level))
            .assign(
                dn80=b["stat_forecast_qty"] - b["stat_lo80_qty"],
                up80=b["stat_hi80_qty"] - b["stat_forecast_qty"],
                dn95=b["stat_forecast_qty"] - b["stat_lo95_qty"],
                up95=b["stat_hi95_qty"] - b["stat_forecast_qty"],
            )
            .groupby(["scope_id", "month"], as_index=False)[
                ["stat_forecast_qty", "dn80", "up80", "dn95", "up95"]
            ]
            .sum()
        )
        got = lv[lv["level"] == level]
        j = want.merge(
            got, on=["scope_id", "month"], how="outer", suffixes=("_sum", ""), indicator=True
        )
        missing = j[j["_merge"] != "both"]
        if len(missing):
            r = missing.iloc[0]
            side = "missing from forecast_levels" if r["_merge"] == "left_only" else "has no items"
            problems.append(
                f"{level} {r['scope_id']} {r['month']:%Y-%m}: {side} ({len(missing)} row(s))"
            )
            j = j[j["_merge"] == "both"]
        if j.empty:
            continue
        tol = rel_tol * max(1.0, float(j["stat_forecast_qty_sum"].abs().sum()))
        diff = (j["stat_forecast_qty"] - j["stat_forecast_qty_sum"]).abs()
        if (diff > tol).any():
            r = j.loc[diff.idxmax()]
            problems.append(
                f"{level} {r['scope_id']} {r['month']:%Y-%m}: forecast {r['stat_forecast_qty']:.6g} "
                f"≠ sum of items {r['stat_forecast_qty_sum']:.6g}"
            )
        q = j[
            [
                "stat_lo95_qty",
                "stat_lo80_qty",
                "stat_forecast_qty",
                "stat_hi80_qty",
                "stat_hi95_qty",
            ]
        ]
        unordered = (q.diff(axis=1).iloc[:, 1:] < -tol).any(axis=1) | (q["stat_lo95_qty"] < -tol)
        if unordered.any():
            r = j[unordered].iloc[0]
            problems.append(
                f"{level} {r['scope_id']} {r['month']:%Y-%m}: bounds not ordered "
                "0 ≤ lo95 ≤ lo80 ≤ forecast ≤ hi80 ≤ hi95"
            )
        wide = (
            (j["stat_forecast_qty"] - j["stat_lo80_qty"] > j["dn80"] + tol)
            | (j["stat_hi80_qty"] - j["stat_forecast_qty"] > j["up80"] + tol)
            | (j["stat_forecast_qty"] - j["stat_lo95_qty"] > j["dn95"] + tol)
            | (j["stat_hi95_qty"] - j["stat_forecast_qty"] > j["up95"] + tol)
        )
        if wide.any():
            r = j[wide].iloc[0]
            problems.append(
                f"{level} {r['scope_id']} {r['month']:%Y-%m}: range wider than the sum of its "
                "items' ranges"
            )
    return problems


def backtest_levels(
    points: pd.DataFrame, items: pd.DataFrame | None = None, scales: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Backtest accuracy by level (item × location, family, total) and lag.

    Intervals at family and total level are built as the published ones (:func:`level_intervals`
    factors), learnt on the other origins than the one scored (leave one origin out), so the
    coverage is out of sample.

    Args:
        points: ``ForecastResult.backtest_points``.
        items: item_id → family.
        scales: optional per-unit MASE scales (columns level, unit, scale); otherwise the
            mean absolute seasonal-naive error of the backtest's own naive forecasts is used.

    Returns:
        One row per forecast_kind (statistical, naive) × level × lag × month: units of
        actual A, forecast F, and for the statistical kind the 80/95% bounds, with columns
        level, lag, month, kind, unit, a, f, lo80, hi80, lo95, hi95.
    """
    pts = _with_family(points, items)
    if pts.empty:
        return pd.DataFrame()
    cutoffs = sorted(pts["cutoff"].unique())
    lags = sorted(int(v) for v in pts["lag"].unique())
    frames = []
    for level in ACCURACY_LEVELS:
        if level == "item":
            agg = pts.assign(unit=pts["item_id"].astype(str) + "@" + pts["location_id"].astype(str))
            agg = agg.rename(columns={})
            lo = {q: agg[lo_c].to_numpy() for lo_c, _, q in INTERVALS}
            hi = {q: agg[hi_c].to_numpy() for _, hi_c, q in INTERVALS}
            frame = agg[["unit", "cutoff", "lag", "month", "actual_qty", "stat_qty", "naive_qty"]]
        else:
            key = "family" if level == "family" else None
            agg = _aggregate_backtest(pts, level if key else "total")
            months = pts.groupby(["cutoff", "lag"])["month"].first().rename("month")
            agg = agg.merge(months.reset_index(), on=["cutoff", "lag"])
            lo = {0.80: np.zeros(len(agg)), 0.95: np.zeros(len(agg))}
            hi = {0.80: np.zeros(len(agg)), 0.95: np.zeros(len(agg))}
            for c in cutoffs:
                train = agg[agg["cutoff"] != c] if len(cutoffs) > 1 else agg
                f = _factors_from(train, lags)
                sel = (agg["cutoff"] == c).to_numpy()
                lag_sel = agg.loc[sel, "lag"].to_numpy()
                for _, _, q in INTERVALS:
                    tag = int(q * 100)
                    cq = np.array([f.get((int(g), q), 1.0) for g in lag_sel])
                    p = agg.loc[sel, "stat_qty"].to_numpy()
                    lo[q][sel] = np.clip(p - cq * agg.loc[sel, f"dn{tag}"].to_numpy(), 0.0, None)
                    hi[q][sel] = p + cq * agg.loc[sel, f"up{tag}"].to_numpy()
            frame = agg[["unit", "cutoff", "lag", "month", "actual_qty", "stat_qty", "naive_qty"]]
        frames.append(
            frame.assign(
                level=level,
                lo80=lo[0.80],
                hi80=hi[0.80],
                lo95=lo[0.95],
                hi95=hi[0.95],
            )
        )
    return pd.concat(frames, ignore_index=True)
