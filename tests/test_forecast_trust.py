"""Forecast you can trust: selection at the horizon, calibrated ranges, coherent levels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sop_pipeline.planning import forecast as fcm
from sop_pipeline.planning.accuracy import OUTPUT_COLUMNS, backtest_accuracy
from sop_pipeline.planning.forecast import forecast_demand, lag_weights
from sop_pipeline.planning.forecast.calibration import _apply_calibration, _conformal_factors
from sop_pipeline.planning.forecast.tournament import _scaled_error, _select
from sop_pipeline.planning.hierarchy import (
    ITEM_ERROR_TOLERANCE,
    backtest_levels,
    choose_reconciler,
    coherence_problems,
    level_factors,
    level_intervals,
    reconcile_forecast,
)

PLAN = "2026-10"
PLAN_TS = pd.Timestamp("2026-10-01")


def _history(series: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "item_id": item,
                    "location_id": loc,
                    "month": pd.date_range(end=PLAN_TS, periods=len(y), freq="MS"),
                    "demand_qty": y,
                }
            )
            for (item, loc), y in series.items()
        ],
        ignore_index=True,
    )


def _items(families: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": list(families),
            "family": list(families.values()),
            "lifecycle_status": "active",
            "launch_date": pd.NaT,
            "eol_date": pd.NaT,
        }
    )


# --- selection ------------------------------------------------------------------------------


def test_lag_weights_count_the_s_and_op_lags_double_and_sum_to_one():
    w = lag_weights(6)
    assert w.sum() == pytest.approx(1.0)
    assert w[0] == pytest.approx(2 * w[5])
    assert np.all(w[:3] == w[0]) and np.all(w[3:] == w[5])


def test_selection_error_is_judged_over_the_horizon_not_lag_one():
    """A model perfect at lag 1 but far off at lags 2-6 loses to one steadily close."""
    actual = np.full((1, 4, 6), 100.0)
    sharp_then_bad = actual.copy()
    sharp_then_bad[:, :, 1:] = 140.0
    steady = actual + 8.0
    scale = np.array([10.0])
    e_sharp = _scaled_error(sharp_then_bad, actual, scale, "mase")
    e_steady = _scaled_error(steady, actual, scale, "mase")
    assert e_steady[0] < e_sharp[0]
    # ...while on lag 1 alone the sharp model would have won.
    assert _scaled_error(sharp_then_bad[:, :, :1], actual[:, :, :1], scale, "mase")[0] == 0


def test_selection_shrinks_to_the_panel_best_unless_a_series_has_strong_evidence():
    # columns: naive, model A, model B, combination; the combination is best on the panel
    err = np.array(
        [
            [1.00, 0.70, 0.72, 0.60],  # combination best: keeps it
            [1.00, 0.45, 0.80, 0.60],  # A 25% better than the combination: noise, keeps it
            [1.00, 0.25, 0.80, 0.60],  # A 58% better: strong evidence, switches to A
            [0.50, 0.70, 0.80, 0.65],  # naive 23% better: weak evidence, keeps the combination
            [0.25, 0.70, 0.80, 0.65],  # naive 62% better: strong evidence, the naive
            [1.00, 0.80, 0.75, 0.62],
            [1.00, 0.80, 0.75, 0.62],
        ]
    )
    chosen, default = _select(err)
    assert default == 3
    assert chosen.tolist() == [3, 3, 1, 3, 0, 3, 3]


def test_tournament_picks_the_model_that_wins_at_the_horizon():
    """Trending series: the seasonal naive lags a year of trend; a trend model wins."""
    rng = np.random.default_rng(5)
    n, train, hold = 12, 48, 6
    full = {}
    for i in range(n):
        t = np.arange(train + hold)
        full[(f"T{i:02d}", "DC1")] = 50 + (2 + 0.2 * i) * t + rng.normal(0, 3, t.size)
    history = _history({k: v[:train] for k, v in full.items()})
    result = forecast_demand(history, _items({k[0]: "F" for k in full}), PLAN, hold, windows=4)
    bt = result.backtest
    assert not bt["chosen_model"].eq("SeasonalNaive").any()
    assert (bt["chosen_error"] < 0.5 * bt["naive_error"]).all()
    fc = result.forecast.sort_values(["item_id", "month"])
    actual = np.concatenate([full[(item, "DC1")][train:] for item in sorted(bt["item_id"])])
    naive = fc["naive_forecast_qty"].to_numpy()
    assert np.abs(fc["stat_forecast_qty"] - actual).mean() < 0.3 * np.abs(naive - actual).mean()


# --- calibration ----------------------------------------------------------------------------


def test_conformal_factors_stretch_too_narrow_ranges_to_nominal():
    """Native ranges of ±1 on N(0, 2²) errors: the factor is the normal quantile × 2."""
    rng = np.random.default_rng(0)
    n, w, h = 400, 4, 3
    y = rng.normal(0, 2, (n, w, h)) + 100
    pred = np.full((n, w, h), 100.0)
    bounds = np.stack([pred - 1, pred - 1, pred + 1, pred + 1], axis=-1)
    f = _conformal_factors(y, pred, bounds, np.full(n, 1e-9))
    assert f[:, 0] == pytest.approx(2 * 1.2816, rel=0.08)
    assert f[:, 1] == pytest.approx(2 * 1.96, rel=0.08)
    fresh = rng.normal(0, 2, 20000) + 100
    stack = np.stack([np.full(3, 100.0), *(np.array([99.0, 99, 101, 101])[:, None] * np.ones(3))])
    cal = _apply_calibration(stack.T[None], f, np.array([1e-9]))[0]
    lo80, hi80 = cal[0, 2], cal[0, 3]
    assert np.mean((fresh >= lo80) & (fresh <= hi80)) == pytest.approx(0.80, abs=0.03)


@pytest.fixture(scope="module")
def noise_panel():
    """120 series of known Gaussian noise around a seasonal level, 6 months held out."""
    rng = np.random.default_rng(2027)
    n, train, hold = 120, 48, 6
    series, future = {}, {}
    t = np.arange(train + hold)
    for i in range(n):
        level = 100 + 5 * (i % 10)
        y = level * (1 + 0.2 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 0.1 * level, t.size)
        series[(f"G{i:03d}", "DC1")] = y[:train]
        future[f"G{i:03d}"] = y[train:]
    items = _items({f"G{i:03d}": f"F{i % 3}" for i in range(n)})
    result = forecast_demand(_history(series), items, PLAN, hold, windows=4)
    return series, future, items, result


def test_calibrated_ranges_reach_nominal_coverage_on_known_noise(noise_panel):
    _, future, _, result = noise_panel
    fc = result.forecast.sort_values(["item_id", "month"])
    actual = np.concatenate([future[item] for item in sorted(future)])
    cov80 = np.mean((actual >= fc["stat_lo80_qty"]) & (actual <= fc["stat_hi80_qty"]))
    cov95 = np.mean((actual >= fc["stat_lo95_qty"]) & (actual <= fc["stat_hi95_qty"]))
    assert abs(cov80 - 0.80) <= 0.05, cov80
    assert abs(cov95 - 0.95) <= 0.04, cov95
    facts = result.selection["smooth"]
    assert len(facts["conformal_factor_80_by_lag"]) == fcm.CV_HORIZON


def test_backtest_accuracy_reports_coverage_per_level_and_lag(noise_panel):
    series, _, items, result = noise_panel
    levels = backtest_levels(result.backtest_points, items)
    acc = backtest_accuracy(levels, _history(series), items)
    assert list(acc.columns) == OUTPUT_COLUMNS
    stat = acc[acc["forecast_kind"] == "statistical_backtest"]
    assert set(stat["level"]) == {"item", "family", "total"}
    assert set(stat["lag"]) == set(range(1, fcm.CV_HORIZON + 1))
    item = stat[stat["level"] == "item"]
    # out-of-sample (leave one origin out) coverage of the item ranges is near nominal
    assert item["coverage_80"].mean() == pytest.approx(0.80, abs=0.06)
    assert item["coverage_95"].mean() == pytest.approx(0.95, abs=0.04)
    assert stat["interval_score"].notna().all()
    naive = acc[acc["forecast_kind"] == "naive_backtest"]
    assert naive["coverage_80"].isna().all() and naive["wape"].notna().all()


# --- coherence ------------------------------------------------------------------------------


def test_published_levels_add_up_at_every_level(noise_panel):
    _, _, items, result = noise_panel
    factors = level_factors(result.backtest_points, items)
    levels = level_intervals(result.forecast, factors, PLAN, items)
    bottom = result.forecast.merge(items[["item_id", "family"]], on="item_id")
    assert coherence_problems(bottom, levels) == []
    total = levels[levels["level"] == "total"].set_index("month")
    fams = levels[levels["level"] == "family"].groupby("month")["stat_forecast_qty"].sum()
    np.testing.assert_allclose(total["stat_forecast_qty"], fams.loc[total.index], rtol=1e-12)
    sums = bottom.groupby("month")[["stat_forecast_qty", "stat_hi95_qty"]].sum()
    np.testing.assert_allclose(total["stat_forecast_qty"], sums["stat_forecast_qty"], rtol=1e-12)
    # errors of 120 independent series cancel: the total's range is far narrower than the sum
    width = total["stat_hi95_qty"] - total["stat_forecast_qty"]
    assert (width < 0.5 * (sums["stat_hi95_qty"] - sums["stat_forecast_qty"])).all()
    assert set(levels["level"]) == {"item", "location", "family", "total"}


def test_coherence_check_fails_on_an_incoherent_frame(noise_panel):
    _, _, items, result = noise_panel
    factors = level_factors(result.backtest_points, items)
    levels = level_intervals(result.forecast, factors, PLAN, items)
    bottom = result.forecast.merge(items[["item_id", "family"]], on="item_id")
    fam_row = levels.index[levels["level"] == "family"][0]
    off = levels.copy()
    off.loc[fam_row, ["stat_forecast_qty", "stat_hi80_qty", "stat_hi95_qty"]] += 5.0
    problems = coherence_problems(bottom, off)
    assert problems and "family" in problems[0] and "sum of items" in problems[0]
    wide = levels.copy()
    total_row = levels.index[levels["level"] == "total"][0]
    wide.loc[total_row, "stat_hi95_qty"] = bottom["stat_hi95_qty"].sum() * 10
    assert any("wider than the sum" in p for p in coherence_problems(bottom, wide))
    missing = levels.drop(index=fam_row)
    assert any("missing from forecast_levels" in p for p in coherence_problems(bottom, missing))


@pytest.mark.parametrize(
    ("errors", "item_errors", "chosen"),
    [
        # the demo company, plan 2026-08: TopDown halves the family/total error and leaves the
        # items 0.15% worse (noise); MinTrace (ols) is as good at family/total but costs the
        # items 7.6%
        (
            {
                "BottomUp": 0.678,
                "MinTrace_ols": 0.358,
                "MinTrace_wls_struct": 0.470,
                "TopDown_forecast_proportions": 0.358,
            },
            {
                "BottomUp": 0.1357,
                "MinTrace_ols": 0.1460,
                "MinTrace_wls_struct": 0.1543,
                "TopDown_forecast_proportions": 0.1359,
            },
            "TopDown_forecast_proportions",
        ),
        # M1 monthly: TopDown is 5% better at family/total but 4.2% worse at item level
        (
            {
                "BottomUp": 1.6064,
                "MinTrace_ols": 8.2658,
                "MinTrace_wls_struct": 4.9552,
                "TopDown_forecast_proportions": 1.5316,
            },
            {
                "BottomUp": 0.2037,
                "MinTrace_ols": 2.1538,
                "MinTrace_wls_struct": 1.6246,
                "TopDown_forecast_proportions": 0.2123,
            },
            "BottomUp",
        ),
        # a tie at family/total goes to the plain sum
        (
            {
                "BottomUp": 0.5,
                "MinTrace_ols": 0.5,
                "MinTrace_wls_struct": 0.6,
                "TopDown_forecast_proportions": 0.7,
            },
            {
                "BottomUp": 0.2,
                "MinTrace_ols": 0.2,
                "MinTrace_wls_struct": 0.2,
                "TopDown_forecast_proportions": 0.2,
            },
            "BottomUp",
        ),
    ],
)
def test_the_reconciler_may_not_cost_the_items_more_than_the_noise_of_their_backtest(
    errors, item_errors, chosen
):
    assert choose_reconciler(errors, item_errors) == chosen


def test_reconciliation_is_chosen_by_backtest_and_stays_coherent(noise_panel):
    series, _, items, result = noise_panel
    rec_result, decided = reconcile_forecast(result, _history(series), items, PLAN, 6, windows=4)
    assert decided.method in decided.errors
    # best family/total backtest among the methods that leave the items at most
    # ITEM_ERROR_TOLERANCE worse than their own forecasts (BottomUp)
    limit = decided.item_errors["BottomUp"] * (1 + ITEM_ERROR_TOLERANCE) + 1e-12
    items_ok = {m: e for m, e in decided.errors.items() if decided.item_errors[m] <= limit}
    assert "BottomUp" in items_ok
    assert decided.errors[decided.method] == min(items_ok.values())
    assert decided.item_errors[decided.method] <= limit
    assert set(decided.errors) == {
        "BottomUp",
        "MinTrace_ols",
        "MinTrace_wls_struct",
        "TopDown_forecast_proportions",
    }
    fc = rec_result.forecast
    assert (fc["stat_forecast_qty"] >= 0).all()
    assert (fc["stat_lo95_qty"] <= fc["stat_lo80_qty"]).all()
    assert (fc["stat_lo80_qty"] <= fc["stat_forecast_qty"]).all()
    assert (fc["stat_hi80_qty"] <= fc["stat_hi95_qty"]).all()
    factors = level_factors(rec_result.backtest_points, items)
    levels = level_intervals(fc, factors, PLAN, items)
    bottom = fc.merge(items[["item_id", "family"]], on="item_id")
    assert coherence_problems(bottom, levels) == []
