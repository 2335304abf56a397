"""The statistical forecast: tournament choices, intervals, rules, fallback and determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sop_pipeline.planning.forecast import (
    FORECAST_COLUMNS,
    classify_series,
    forecast_demand,
    snapshot_rows,
)
from sop_pipeline.planning.hierarchy import reconcile_forecast

PLAN = "2026-10"
PLAN_TS = pd.Timestamp("2026-10-01")
INTERMITTENT_MODELS = {"CrostonSBA", "ADIDA", "IMAPA", "TSB"}
FLAT_MODELS = INTERMITTENT_MODELS | {"HistoricAverage"}


def _calendar(months: int, end: pd.Timestamp = PLAN_TS) -> pd.DatetimeIndex:
    return pd.date_range(end=end, periods=months, freq="MS")


def _history(
    series: dict[tuple[str, str], np.ndarray], end: pd.Timestamp = PLAN_TS
) -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {"item_id": item, "location_id": loc, "month": _calendar(len(y), end), "demand_qty": y}
        )
        for (item, loc), y in series.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _items(ids, family="F1", status="active", launch=pd.NaT, eol=pd.NaT) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": list(ids),
            "family": family,
            "lifecycle_status": status,
            "launch_date": launch,
            "eol_date": eol,
        }
    )


def _seasonal(
    rng: np.random.Generator, months: int, level: float = 100.0, amp: float = 0.4
) -> np.ndarray:
    t = np.arange(months)
    return np.round(
        level * (1 + amp * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 0.05 * level, months)
    )


def _intermittent(rng: np.random.Generator, months: int, p_zero: float = 0.7) -> np.ndarray:
    return np.where(rng.random(months) < p_zero, 0.0, rng.poisson(6, months) + 1.0)


@pytest.fixture(scope="module")
def mixed():
    """A small mixed panel forecast once: seasonal, intermittent, short, EOL, negative months."""
    rng = np.random.default_rng(11)
    series = {}
    for i in range(4):
        series[(f"S{i}", "DC1")] = _seasonal(rng, 48, level=80 + 20 * i)
    for i in range(6):
        series[(f"N{i}", "DC1")] = _intermittent(rng, 48)
    series[("SHORT", "DC1")] = np.array([30.0, 34, 29, 31, 33, 35, 32, 30, 36, 31])
    series[("EOL", "DC1")] = _seasonal(rng, 48, level=60)
    series[("NEG", "DC1")] = np.concatenate([_seasonal(rng, 46, level=40), [-15.0, -20.0]])
    history = _history(series)
    items = _items([k[0] for k in series])
    items.loc[items["item_id"] == "EOL", ["lifecycle_status", "eol_date"]] = [
        "eol",
        pd.Timestamp("2027-02-15"),
    ]
    items.loc[items["item_id"] == "SHORT", ["lifecycle_status", "launch_date"]] = [
        "new",
        pd.Timestamp("2026-01-01"),
    ]
    result = forecast_demand(history, items, PLAN, 12)
    return history, items, result


def test_forecast_has_one_row_per_series_month_with_ordered_non_negative_bounds(mixed):
    history, _, result = mixed
    fc = result.forecast
    n_series = history[["item_id", "location_id"]].drop_duplicates().shape[0]
    assert list(fc.columns) == FORECAST_COLUMNS
    assert len(fc) == n_series * 12
    assert fc["month"].min() == pd.Timestamp("2026-11-01") and fc["month"].max() == pd.Timestamp(
        "2027-10-01"
    )
    numeric = fc.select_dtypes("number")
    assert not numeric.isna().any().any()
    assert (numeric >= 0).all().all()
    assert (fc["stat_lo95_qty"] <= fc["stat_lo80_qty"]).all()
    assert (fc["stat_lo80_qty"] <= fc["stat_forecast_qty"]).all()
    assert (fc["stat_forecast_qty"] <= fc["stat_hi80_qty"]).all()
    assert (fc["stat_hi80_qty"] <= fc["stat_hi95_qty"]).all()
    assert fc["stat_model"].str.len().gt(0).all()


def test_seasonal_series_get_seasonal_model_that_beats_the_mean():
    rng = np.random.default_rng(3)
    full = {(f"S{i}", "DC1"): _seasonal(rng, 60, level=100 + 10 * i) for i in range(5)}
    train = {k: v[:48] for k, v in full.items()}
    history = _history(train)
    result = forecast_demand(history, _items([k[0] for k in full]), PLAN, 12)
    bt = result.backtest
    assert set(bt["series_class"]) == {"seasonal"}
    assert not bt["chosen_model"].isin(FLAT_MODELS).any()
    for (item, _), y in full.items():
        fc = result.forecast.loc[result.forecast["item_id"] == item, "stat_forecast_qty"].to_numpy()
        actual = y[48:]
        mae_model = np.abs(fc - actual).mean()
        mae_mean = np.abs(y[:48].mean() - actual).mean()
        # A seasonal forecast follows the peaks; a flat mean misses them by ~25% of level.
        assert mae_model < 0.5 * mae_mean, item
        assert fc.max() - fc.min() > 40, f"{item}: forecast is flat"


def test_intermittent_series_get_intermittent_models(mixed):
    _, _, result = mixed
    bt = result.backtest[result.backtest["item_id"].str.match(r"N\d")]
    assert set(bt["series_class"]) <= {"intermittent", "lumpy"}
    # Only intermittent candidates (and the naive baseline) competed on these series.
    cv_models = set(result.cv.loc[result.cv["item_id"].str.match(r"N\d"), "model"])
    assert cv_models == INTERMITTENT_MODELS | {"SeasonalNaive", "Combo"}
    chosen_intermittent = bt["chosen_model"].map(lambda m: any(x in m for x in INTERMITTENT_MODELS))
    assert chosen_intermittent.mean() >= 0.5
    assert set(bt["error_metric"]) == {"rmsse"}
    fc = result.forecast[result.forecast["item_id"].str.match(r"N\d")]
    # Every intermittent item keeps a positive demand rate: no zero forecast for a part that sells.
    assert fc.groupby("item_id")["stat_forecast_qty"].sum().gt(0).all()
    assert fc.groupby("item_id")["stat_hi95_qty"].max().gt(0).all()


def test_backtest_reports_mase_and_forecast_value_added(mixed):
    _, _, result = mixed
    bt = result.backtest.set_index("item_id")
    assert set(bt.loc[bt["series_class"] == "seasonal", "error_metric"]) == {"mase"}
    scored = bt[bt["chosen_error"].notna()]
    assert len(scored) >= 10
    np.testing.assert_allclose(scored["fva"], scored["naive_error"] - scored["chosen_error"])
    # No per-series floor (it chased noise): on average the chosen methods beat the naive.
    assert scored["fva"].mean() > 0
    assert bt.loc["SHORT", "series_class"] == "short"
    summary = result.summary()
    assert summary["series"] == len(bt)
    assert sum(summary["by_model"].values()) == len(bt)


def test_short_series_follow_recent_level(mixed):
    _, _, result = mixed
    fc = result.forecast[result.forecast["item_id"] == "SHORT"]
    assert fc["stat_model"].iloc[0] in {"family_profile", "recent_mean"}
    # Recent level ≈ 32; the family profile may reshape it but not invent volume.
    assert 10 < fc["stat_forecast_qty"].mean() < 60
    assert (fc["stat_hi95_qty"] > fc["stat_lo95_qty"]).any()


def test_eol_item_is_zero_after_its_eol_date(mixed):
    _, _, result = mixed
    fc = result.forecast[result.forecast["item_id"] == "EOL"].set_index("month")
    assert fc.loc[: pd.Timestamp("2027-02-01"), "stat_forecast_qty"].gt(0).all()
    after = fc.loc[pd.Timestamp("2027-03-01") :]
    assert (after[["stat_forecast_qty", "stat_hi95_qty"]] == 0).all().all()


def test_item_already_past_eol_forecasts_zero():
    rng = np.random.default_rng(5)
    history = _history({("OLD", "DC1"): _seasonal(rng, 48), ("KEEP", "DC1"): _seasonal(rng, 48)})
    items = _items(["OLD", "KEEP"])
    items.loc[0, ["lifecycle_status", "eol_date"]] = ["eol", pd.Timestamp("2026-09-30")]
    result = forecast_demand(history, items, PLAN, 6, candidates="fast")
    old = result.forecast[result.forecast["item_id"] == "OLD"]
    assert (old["stat_forecast_qty"] == 0).all() and set(old["stat_model"]) == {"eol"}
    assert (
        result.forecast.loc[result.forecast["item_id"] == "KEEP", "stat_forecast_qty"].gt(0).all()
    )


def test_future_launch_is_zero_before_launch_then_family_level():
    rng = np.random.default_rng(8)
    series = {
        (f"S{i}", loc): _seasonal(rng, 48, level=50) for i in range(3) for loc in ("DC1", "DC2")
    }
    series[("LATE", "DC1")] = _seasonal(
        rng, 8, level=40
    )  # launched inside the window: a launch curve
    history = _history(series)
    items = _items(["S0", "S1", "S2", "LATE", "NEWBIE"])
    items.loc[4, ["lifecycle_status", "launch_date"]] = ["new", pd.Timestamp("2027-01-15")]
    result = forecast_demand(history, items, PLAN, 6, candidates="fast")
    new = result.forecast[result.forecast["item_id"] == "NEWBIE"]
    assert set(new["location_id"]) == {"DC1", "DC2"}
    before = new[new["month"] < pd.Timestamp("2027-01-01")]
    after = new[new["month"] >= pd.Timestamp("2027-01-01")]
    assert len(before) == 4 and (before[["stat_forecast_qty", "stat_hi95_qty"]] == 0).all().all()
    assert after["stat_forecast_qty"].gt(0).all()
    assert set(after["stat_model"]) == {"new_item_profile"}
    bt = result.backtest.set_index(["item_id", "location_id"])
    assert bt.loc[("NEWBIE", "DC1"), "series_class"] == "future_launch"


def test_dormant_and_constant_series_get_sensible_forecasts():
    rng = np.random.default_rng(2)
    history = _history(
        {
            ("ZERO", "DC1"): np.concatenate([rng.poisson(5, 30).astype(float), np.zeros(18)]),
            ("FLAT", "DC1"): np.full(48, 50.0),
            ("S", "DC1"): _seasonal(rng, 48),
        }
    )
    result = forecast_demand(history, _items(["ZERO", "FLAT", "S"]), PLAN, 6, candidates="fast")
    fc = result.forecast.set_index("item_id")
    assert (fc.loc["ZERO", "stat_forecast_qty"] == 0).all()
    assert set(fc.loc["ZERO", "stat_model"]) == {"zero_recent"}
    np.testing.assert_allclose(fc.loc["FLAT", "stat_forecast_qty"], 50.0, rtol=1e-6)


def test_failing_models_fall_back_and_still_forecast(monkeypatch):
    from statsforecast import models as sf_models

    def boom(self, y, h, X=None, X_future=None, level=None, fitted=False):  # noqa: N803 - statsforecast's API
        raise RuntimeError("fit failed")

    for cls in (sf_models.DynamicOptimizedTheta, sf_models.AutoETS, sf_models.SeasonalNaive):
        monkeypatch.setattr(cls, "forecast", boom)
    rng = np.random.default_rng(4)
    history = _history({(f"S{i}", "DC1"): _seasonal(rng, 48) for i in range(3)})
    result = forecast_demand(history, _items(["S0", "S1", "S2"]), PLAN, 6)
    fc = result.forecast
    assert len(fc) == 18
    assert not fc.select_dtypes("number").isna().any().any()
    assert fc["stat_forecast_qty"].between(50, 150).all()
    assert fc["stat_model"].str.contains("fallback").all()
    assert (fc["stat_hi95_qty"] > fc["stat_lo95_qty"]).all()


def test_same_input_gives_bit_identical_output():
    rng = np.random.default_rng(9)
    series = {
        ("S", "DC1"): _seasonal(rng, 48),
        ("N", "DC1"): _intermittent(rng, 48),
        ("T", "DC2"): _seasonal(rng, 30),
    }
    history = _history(series)
    items = _items(["S", "N", "T"])
    first = forecast_demand(history, items, PLAN, 6)
    second = forecast_demand(history.sample(frac=1.0, random_state=1), items, PLAN, 6)
    pd.testing.assert_frame_equal(first.forecast, second.forecast, check_exact=True)
    pd.testing.assert_frame_equal(first.backtest, second.backtest, check_exact=True)


def test_two_worker_processes_give_the_one_process_forecast_bit_for_bit(monkeypatch):
    """``n_jobs=2`` fits chunks of the series in fork-server workers: the same numbers.

    The series are fitted one by one, so the split cannot change them: the forecast with its
    ranges, the backtest, every candidate's backtest forecasts and the calibrated backtest
    intervals must be identical to the bit, for the smooth and the intermittent tournament.
    """
    import sop_pipeline.planning.engines as engines

    rng = np.random.default_rng(29)
    t = np.arange(48)
    series = {}
    for i in range(10):
        series[(f"S{i:02d}", "DC1")] = _seasonal(rng, 48, level=60 + 15 * i, amp=0.2 + 0.03 * i)
    for i in range(4):
        trend = np.round(40 + (1 + i) * t + rng.normal(0, 4, 48), 1)  # decimals on purpose
        series[(f"T{i}", "DC2")] = trend
    for i in range(8):
        series[(f"N{i}", "DC1")] = _intermittent(rng, 48, p_zero=0.45 + 0.05 * i)
    series[("SHORT", "DC1")] = np.array([30.0, 34, 29, 31, 33, 35, 32, 30, 36, 31])
    history = _history(series)
    items = _items(sorted({k[0] for k in series}))
    one = forecast_demand(history, items, PLAN, 12)
    # a panel this small stays in process by default; lower the bar so the workers run
    monkeypatch.setattr(engines, "MIN_SERIES_PER_WORKER", 3)
    pools = []
    real_pool = engines.process_pool
    monkeypatch.setattr(engines, "process_pool", lambda w: pools.append(w) or real_pool(w))
    two = forecast_demand(history, items, PLAN, 12, n_jobs=2)
    assert pools == [2]  # one pool of two workers, for the backtests and the final fits
    assert {"smooth", "seasonal"} & set(one.backtest["series_class"])
    assert {"intermittent", "lumpy"} & set(one.backtest["series_class"])
    assert one.backtest["chosen_model"].nunique() >= 3
    pd.testing.assert_frame_equal(two.forecast, one.forecast, check_exact=True)
    pd.testing.assert_frame_equal(two.backtest, one.backtest, check_exact=True)
    pd.testing.assert_frame_equal(two.cv, one.cv, check_exact=True)
    pd.testing.assert_frame_equal(two.backtest_points, one.backtest_points, check_exact=True)
    assert two.selection == one.selection


def test_intervals_cover_near_nominal_on_a_known_gaussian_process():
    """200 AR(1) series around a level: empirical coverage on 6 held-out months."""
    rng = np.random.default_rng(2026)
    n, train, hold = 200, 48, 6
    series, future = {}, {}
    for i in range(n):
        e = rng.normal(0, 10, train + hold)
        x = np.zeros(train + hold)
        for t in range(1, train + hold):
            x[t] = 0.5 * x[t - 1] + e[t]
        y = 200 + x
        series[(f"G{i:03d}", "DC1")] = y[:train]
        future[f"G{i:03d}"] = y[train:]
    result = forecast_demand(_history(series), _items([k[0] for k in series]), PLAN, hold)
    fc = result.forecast.sort_values(["item_id", "month"])
    actual = np.concatenate([future[item] for item in sorted(future)])
    cov80 = np.mean((actual >= fc["stat_lo80_qty"]) & (actual <= fc["stat_hi80_qty"]))
    cov95 = np.mean((actual >= fc["stat_lo95_qty"]) & (actual <= fc["stat_hi95_qty"]))
    assert abs(cov80 - 0.80) <= 0.10, cov80
    assert abs(cov95 - 0.95) <= 0.07, cov95


def test_snapshot_rows_number_lags_from_one():
    fc = pd.DataFrame(
        {
            "month": pd.date_range("2026-11-01", periods=3, freq="MS"),
            "stat_forecast_qty": [1.0, 2, 3],
        }
    )
    snap = snapshot_rows(fc, PLAN)
    assert snap["lag"].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="on or before plan month"):
        snapshot_rows(fc, "2026-12")


def test_bad_inputs_fail_with_a_clear_message():
    history = _history({("S", "DC1"): np.ones(30)})
    with pytest.raises(ValueError, match="local, dask, spark"):
        forecast_demand(history, _items(["S"]), PLAN, 6, engine="ray")
    with pytest.raises(ValueError, match="after plan month 2026-09"):
        forecast_demand(history, _items(["S"]), "2026-09", 6)
    with pytest.raises(ValueError, match="missing from items"):
        forecast_demand(history, _items(["OTHER"]), PLAN, 6)


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        (np.array([10.0, 11, 9, 10, 12, 10]), "smooth"),
        (np.array([0.0, 0, 5, 0, 0, 6, 0, 0, 5]), "intermittent"),
        (np.array([0.0, 0, 1, 0, 0, 40, 0, 0, 2]), "lumpy"),
        (np.array([1.0, 30, 2, 50, 1, 40]), "erratic"),
        (np.zeros(6), "zero"),
    ],
)
def test_syntetos_boylan_classes(y, expected):
    assert classify_series(y)[0] == expected


def test_statistical_forecast_adds_value_over_naive_at_every_level_and_sop_lag():
    """What planners read: WAPE of the backtest at item, family and total level, lags 1-3.

    30 noisy seasonal series with trends in two families: last year's month (the seasonal
    naive) carries last year's noise and misses the trend; the statistical forecast must be
    more accurate at every level, not only per item, and its errors must not add up.
    """
    rng = np.random.default_rng(19)
    t = np.arange(48)
    series, fams = {}, {}
    for i in range(30):
        level = rng.uniform(50, 300)
        trend = rng.uniform(-0.004, 0.012)
        phase = rng.uniform(0, 2 * np.pi)
        y = level * (1 + trend * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12 + phase))
        series[(f"I{i:02d}", "DC1")] = np.round(np.maximum(y + rng.normal(0, 0.2 * level, 48), 0))
        fams[f"I{i:02d}"] = f"F{i % 2}"
    items = _items(list(fams))
    items["family"] = items["item_id"].map(fams)
    history = _history(series)
    result = forecast_demand(history, items, PLAN, 6)
    # as the stat_forecast asset publishes it: family and total reconciled with the items
    result, _ = reconcile_forecast(result, history, items, PLAN, 6)
    pts = result.backtest_points.assign(family=lambda d: d["item_id"].map(fams))
    assert set(pts["lag"]) == set(range(1, 7))
    for level, keys in (("item", ["item_id"]), ("family", ["family"]), ("total", [])):
        agg = pts.groupby([*keys, "cutoff", "lag"])[["actual_qty", "stat_qty", "naive_qty"]].sum()
        agg = agg.reset_index()
        for lag in (1, 2, 3):
            g = agg[agg["lag"] == lag]
            stat = (g["actual_qty"] - g["stat_qty"]).abs().sum() / g["actual_qty"].sum()
            naive = (g["actual_qty"] - g["naive_qty"]).abs().sum() / g["actual_qty"].sum()
            assert stat < naive, f"{level} lag {lag}: WAPE {stat:.3f} vs naive {naive:.3f}"
