"""Forecast accuracy: WAPE, bias, MAPE, MASE by kind, level, lag and month, hand-checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sop_pipeline.planning.accuracy import OUTPUT_COLUMNS, forecast_accuracy

FEB = pd.Timestamp("2026-02-01")


def _actuals(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "location_id", "month", "demand_qty"]).assign(
        month=lambda d: pd.to_datetime(d["month"])
    )


@pytest.fixture
def case() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Three series, three months of history, one lag-1 snapshot for February 2026."""
    history = {"I1": [90, 100, 110], "I2": [50, 50, 60], "I3": [0, 0, 0]}
    rows = [
        (item, "L1", month, qty)
        for item, qtys in history.items()
        for month, qty in zip(["2025-11-01", "2025-12-01", "2026-01-01"], qtys, strict=True)
    ]
    rows += [
        ("I1", "L1", "2026-02-01", 100),
        ("I2", "L1", "2026-02-01", 50),
        ("I3", "L1", "2026-02-01", 0),
    ]
    actuals = _actuals(rows)
    snapshots = pd.DataFrame(
        {
            "plan_month": "2026-01",
            "item_id": ["I1", "I2", "I3"],
            "location_id": "L1",
            "family": ["F1", "F1", "F2"],
            "month": FEB,
            "lag": 1,
            "naive_qty": [110.0, 60.0, 0.0],
            "stat_qty": [100.0, 50.0, 0.0],
            "consensus_qty": [110.0, 40.0, 10.0],
        }
    )
    items = pd.DataFrame({"item_id": ["I1", "I2", "I3"], "family": ["F1", "F1", "F2"]})
    return snapshots, actuals, items


def _row(out: pd.DataFrame, kind: str, level: str, lag: int = 1, month=FEB) -> pd.Series:
    sel = out[
        (out.forecast_kind == kind) & (out.level == level) & (out.lag == lag) & (out.month == month)
    ]
    assert len(sel) == 1, (kind, level, lag, month)
    return sel.iloc[0]


def test_columns_and_grain(case) -> None:
    out = forecast_accuracy(*case)
    assert list(out.columns) == OUTPUT_COLUMNS
    assert len(out) == 3 * 3  # kinds × levels for one lag and month
    assert not out.duplicated(["forecast_kind", "level", "lag", "month"]).any()


def test_item_level_metrics_match_hand_computation(case) -> None:
    r = _row(forecast_accuracy(*case), "consensus", "item")
    assert r.wape == pytest.approx(30 / 150)  # |10| + |−10| + |10| over 150 units of demand
    assert r.bias == pytest.approx(10 / 150)
    assert r.mape == pytest.approx((10 / 100 + 10 / 50) / 2)  # I3 (actual 0) is left out of MAPE
    # scales: I1 mean |Δ| = 10, I2 = 5, I3 = 0 (excluded) → mean(10/10, 10/5)
    assert r.mase == pytest.approx(1.5)
    assert (r.n_series, r.actual_qty, r.forecast_qty) == (3, 150.0, 160.0)


def test_family_and_total_aggregate_before_measuring(case) -> None:
    out = forecast_accuracy(*case)
    fam = _row(out, "consensus", "family")
    assert fam.wape == pytest.approx(10 / 150)  # F1 nets to 150 vs 150, F2 is 10 vs 0
    assert fam.mape == pytest.approx(0.0)
    assert fam.n_series == 2
    total = _row(out, "consensus", "total")
    assert total.wape == pytest.approx(10 / 150) and total.bias == pytest.approx(10 / 150)
    assert _row(out, "statistical", "item").wape == pytest.approx(0.0)


def test_mase_uses_seasonal_naive_scale_with_long_history() -> None:
    months = pd.date_range("2024-02-01", "2026-01-01", freq="MS")  # 24 months, linear trend
    rows = [("I1", "L1", m.strftime("%Y-%m-%d"), float(i)) for i, m in enumerate(months)]
    rows.append(("I1", "L1", "2026-02-01", 1000.0))  # after the plan month: not history
    snap = pd.DataFrame(
        {
            "plan_month": ["2026-01"],
            "item_id": "I1",
            "location_id": "L1",
            "family": "F",
            "month": FEB,
            "lag": 1,
            "naive_qty": [988.0],
            "stat_qty": [np.nan],
            "consensus_qty": [np.nan],
        }
    )
    out = forecast_accuracy(snap, _actuals(rows))
    # seasonal naive error of a linear series is 12 per month; |988 − 1000| / 12 = 1
    assert _row(out, "naive", "item").mase == pytest.approx(1.0)
    assert set(out.forecast_kind) == {"naive"}  # all-null kinds are skipped


def test_unforecast_demand_counts_against_the_plan_and_lags_are_separate(case) -> None:
    snapshots, actuals, items = case
    actuals = pd.concat([actuals, _actuals([("I4", "L1", "2026-02-01", 50.0)])], ignore_index=True)
    items = pd.concat(
        [items, pd.DataFrame({"item_id": ["I4"], "family": ["F2"]})], ignore_index=True
    )
    lag3 = snapshots.assign(plan_month="2025-11", lag=3, consensus_qty=[100.0, 50.0, 0.0])
    out = forecast_accuracy(pd.concat([snapshots, lag3]), actuals, items)
    assert _row(out, "consensus", "total", lag=1).actual_qty == 200.0
    assert _row(out, "consensus", "item", lag=1).n_series == 4
    assert _row(out, "consensus", "item", lag=3).wape == pytest.approx(50 / 200)  # only I4 missed
    assert sorted(out.lag.unique()) == [1, 3]


def test_months_without_actuals_are_not_scored(case) -> None:
    snapshots, actuals, items = case
    future = snapshots.assign(month=pd.Timestamp("2026-03-01"), lag=2)
    out = forecast_accuracy(pd.concat([snapshots, future]), actuals, items)
    assert set(out.month) == {FEB}


def test_no_snapshots_gives_an_empty_frame_with_the_columns(case) -> None:
    _, actuals, items = case
    out = forecast_accuracy(
        pd.DataFrame(columns=["plan_month", "item_id", "location_id", "month", "lag"]),
        actuals,
        items,
    )
    assert out.empty and list(out.columns) == OUTPUT_COLUMNS


def test_duplicate_snapshot_rows_are_refused(case) -> None:
    snapshots, actuals, items = case
    with pytest.raises(ValueError, match="duplicate rows"):
        forecast_accuracy(pd.concat([snapshots, snapshots.iloc[:1]]), actuals, items)


def test_published_plans_ranges_are_scored_where_the_plan_gave_one(case) -> None:
    """Coverage and interval score of an earlier plan's statistical ranges, hand-checked."""
    from sop_pipeline.planning.accuracy import plan_ranges

    snapshots, actuals, items = case
    stat = pd.DataFrame(
        {
            "plan_month": "2026-01",
            "item_id": ["I1", "I2", "I3"],
            "location_id": "L1",
            "month": FEB,
            "stat_forecast_qty": [100.0, 50.0, 0.0],
            "stat_lo80_qty": [90.0, 55.0, 0.0],  # I2's 80% range misses its actual (50)
            "stat_hi80_qty": [110.0, 70.0, 0.0],
            "stat_lo95_qty": [80.0, 45.0, 0.0],
            "stat_hi95_qty": [120.0, 75.0, 0.0],
        }
    )
    levels = pd.DataFrame(
        {
            "plan_month": "2026-01",
            "level": ["family", "family", "total", "item"],
            "scope_id": ["F1", "F2", "total", "I1"],
            "month": FEB,
            # F2's point is not the forecast scored (0): another version's range, not scored
            "stat_forecast_qty": [150.0, 3.0, 150.0, 100.0],
            "stat_lo80_qty": [140.0, 1.0, 152.0, 0.0],  # the total's 80% range misses 150
            "stat_hi80_qty": [160.0, 5.0, 160.0, 0.0],
            "stat_lo95_qty": [130.0, 1.0, 140.0, 0.0],  # F2's ranges miss its actual (0)
            "stat_hi95_qty": [170.0, 9.0, 170.0, 0.0],
        }
    )
    out = forecast_accuracy(snapshots, actuals, items, ranges=plan_ranges(stat, levels))
    item = _row(out, "statistical", "item")
    assert item["coverage_80"] == pytest.approx(2 / 3)
    assert item["coverage_95"] == pytest.approx(1.0)
    # Winkler 95 ÷ MASE scale (one-step naive, 3 months): I1 40 / 10, I2 30 / 5; I3 has no scale
    assert item["interval_score"] == pytest.approx((40 / 10 + 30 / 5) / 2)
    family = _row(out, "statistical", "family")
    assert (family["coverage_80"], family["coverage_95"]) == (1.0, 1.0)  # F1 only, not F2
    total = _row(out, "statistical", "total")
    assert (total["coverage_80"], total["coverage_95"]) == (0.0, 1.0)
    # kinds without ranges, and a call without them, stay without coverage
    assert np.isnan(_row(out, "naive", "item")["coverage_80"])
    assert np.isnan(_row(out, "consensus", "family")["coverage_95"])
    plain = forecast_accuracy(snapshots, actuals, items)
    assert np.isnan(_row(plain, "statistical", "item")["coverage_80"])
    cols = ["wape", "bias", "mase"]
    pd.testing.assert_frame_equal(out[cols], plain[cols])
