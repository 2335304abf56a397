"""KPI scorecard: each KPI checked against a hand-computed value on a small company."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from sop_pipeline.planning.kpi_formulas import KPIS, KpiInputs
from sop_pipeline.planning.kpis import DEFAULT_TARGETS, STATUSES, KpiTarget, kpi_scorecard, status

JAN = pd.Timestamp("2026-01-01")
FEB = pd.Timestamp("2026-02-01")


def _d(s: str | None) -> pd.Timestamp:
    return pd.Timestamp(s) if s else pd.NaT


@pytest.fixture
def inputs() -> KpiInputs:
    items = pd.DataFrame(
        {
            "item_id": ["I1", "I2"],
            "family": ["F1", "F2"],
            "unit_cost": [6.0, 3.0],
            "unit_price": [10.0, 5.0],
        }
    )
    lines = pd.DataFrame(
        [
            # line, item, requested, shipped, ordered, shipped qty, status
            ("L1", "I1", "2026-01-10", "2026-01-09", 10, 10, "shipped"),  # on time, in full
            ("L2", "I1", "2026-01-15", "2026-01-20", 10, 10, "shipped"),  # late
            ("L3", "I2", "2026-01-20", None, 10, 0, "open"),  # not shipped
            ("L4", "I2", "2026-01-25", "2026-01-25", 10, 5, "shipped"),  # short
            ("L5", "I1", "2026-01-05", None, 10, 0, "cancelled"),  # ignored
            ("L6", "I2", "2025-12-28", "2026-01-03", 4, 4, "shipped"),  # shipped in Jan, late
        ],
        columns=[
            "line_no",
            "item_id",
            "requested_date",
            "ship_date",
            "qty_ordered",
            "qty_shipped",
            "status",
        ],
    )
    lines["requested_date"] = lines["requested_date"].map(_d)
    lines["ship_date"] = lines["ship_date"].map(_d)
    production = pd.DataFrame(
        [
            ("P1", "I1", 100, 100, "2026-01-20", "2026-01-18", "completed"),
            ("P2", "I1", 100, 100, "2026-01-20", "2026-01-25", "completed"),  # late
            ("P3", "I2", 100, 0, "2026-01-20", None, "cancelled"),  # ignored
            ("P4", "I2", 100, 90, "2026-01-31", "2026-01-30", "completed"),  # short
            ("P5", "I2", 100, 0, "2026-02-10", None, "released"),  # due next month
        ],
        columns=[
            "order_id",
            "item_id",
            "qty_planned",
            "qty_completed",
            "due_date",
            "completed_date",
            "status",
        ],
    )
    production["due_date"] = production["due_date"].map(_d)
    production["completed_date"] = production["completed_date"].map(_d)
    months = pd.date_range("2025-01-01", "2026-01-01", freq="MS")
    demand_history = pd.DataFrame(
        [
            ("I1", "L", m, 100.0 if m == months[0] else 10.0, 120.0 if m == JAN else 0.0)
            for m in months
        ]
        + [("I2", "L", m, 0.0, 80.0 if m == JAN else 0.0) for m in months],
        columns=["item_id", "location_id", "month", "shipped_qty", "demand_revenue"],
    )
    inventory_history = pd.DataFrame(
        {
            "item_id": ["I1", "I1", "I2", "I2"],
            "location_id": "L",
            "month": [pd.Timestamp("2025-12-01"), JAN] * 2,
            "inventory_value": [100.0, 140.0, 60.0, 60.0],
        }
    )
    position = pd.DataFrame(
        {
            "item_id": ["I1", "I2"],
            "location_id": "L",
            "inventory_value": [140.0, 60.0],
            "avg_age_days": [200.0, 30.0],
        }
    )
    capacity = pd.DataFrame(
        {
            "work_center_id": "WC1",
            "month": pd.to_datetime(["2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01"]),
            "available_hours": 100.0,
            "required_hours": [85.0, 120.0, 50.0, 999.0],
            "planned_hours": [85.0, 110.0, 50.0, 999.0],
        }
    )
    fin_months = pd.to_datetime(["2026-02-01", "2026-03-01", "2027-02-01"])
    financials = pd.DataFrame(
        [(f, m, 100.0, 30.0, 110.0) for f in ("F1", "F2") for m in fin_months],
        columns=["family", "month", "revenue", "gross_margin", "aop_revenue"],
    )
    financials.loc[financials["month"] == fin_months[2], ["revenue", "gross_margin"]] = [
        1000.0,
        0.0,
    ]
    aop = pd.DataFrame(
        {"family": ["F1", "F2"], "month": JAN, "inventory_value_target": [100.0, 100.0]}
    )
    accuracy = pd.DataFrame(
        {
            "forecast_kind": ["consensus", "consensus", "statistical"],
            "level": ["item", "total", "item"],
            "lag": [1, 1, 1],
            "month": JAN,
            "wape": [0.2, 0.1, 0.5],
            "bias": [0.05, 0.05, 0.3],
            "actual_qty": [200.0, 200.0, 200.0],
            "forecast_qty": [210.0, 210.0, 260.0],
        }
    )
    snapshots = pd.DataFrame(
        {
            "plan_month": "2025-12",
            "item_id": ["I1", "I2"],
            "location_id": "L",
            "month": JAN,
            "lag": 1,
            "consensus_qty": [10.0, 20.0],
        }
    )
    plan_inventory = pd.DataFrame(
        {
            "item_id": ["I1", "I1", "I2", "I2"],
            "location_id": "L",
            "month": pd.to_datetime(["2026-02-01", "2026-03-01"] * 2),
            "demand_qty": [100.0, 100.0, 50.0, 50.0],
            "served_qty": [100.0, 80.0, 50.0, 50.0],
            "stockout_probability": [0.05, 1.0, 0.1, 0.1],
        }
    )
    return KpiInputs(
        order_lines=lines,
        production_orders=production,
        inventory_history=inventory_history,
        inventory_position=position,
        demand_history=demand_history,
        plan_capacity=capacity,
        plan_financials=financials,
        aop=aop,
        accuracy=accuracy,
        items=items,
        snapshots=snapshots,
        plan_inventory=plan_inventory,
    )


def _value(
    card: pd.DataFrame, kpi: str, scope: str = "total", month: pd.Timestamp = JAN
) -> pd.Series:
    row = card[(card.kpi == kpi) & (card.scope == scope) & (card.month == month)]
    assert len(row) == 1, (kpi, scope, month)
    return row.iloc[0]


EXPECTED = [
    # kpi, scope, month, value, status
    ("forecast_accuracy", "total", JAN, 0.8, "on_track"),
    ("forecast_bias", "total", JAN, 0.05, "on_track"),
    # 1 − (|100 − 120| + |100 − 80|) / (max(100, 120) + max(100, 80))
    ("revenue_forecast_accuracy", "total", JAN, 1 - 40 / 220, "on_track"),
    ("total_sales_vs_forecast", "total", JAN, 1.0, "on_track"),
    ("total_sales_vs_forecast", "family:F1", JAN, 1.2, "off_track"),
    ("total_sales_vs_forecast", "family:F2", JAN, 0.8, "off_track"),
    ("inventory_turns", "total", JAN, 4.0, "off_track"),  # 720 COGS / 180 average value
    ("inventory_turns", "family:F1", JAN, 6.0, "on_track"),
    ("inventory_aging", "total", JAN, 0.7, "off_track"),
    # planned hours of Feb-Apr pooled: (85 + 110 + 50) / 300, one row for the window
    ("capacity_utilization", "total", FEB, 245 / 300, "on_track"),
    # due in Jan and made in Jan: P1 100 + P2 100 (5 days late, same month) + P4 90 of 300
    ("production_schedule_attainment", "total", JAN, 290 / 300, "on_track"),
    ("production_schedule_attainment", "family:F2", JAN, 0.9, "on_track"),
    ("on_time_delivery", "total", JAN, 0.5, "off_track"),
    ("order_fill_rate", "total", JAN, 25 / 40, "off_track"),
    ("order_fill_rate", "family:F1", JAN, 1.0, "on_track"),
    ("backorder_rate", "total", JAN, 0.75, "off_track"),
    ("gross_margin_pct", "total", FEB, 0.30, "off_track"),
    ("revenue_to_aop_ratio", "total", FEB, 100 / 110, "off_track"),
    ("working_capital_vs_plan", "total", JAN, 1.0, "on_track"),
    ("working_capital_vs_plan", "family:F1", JAN, 1.4, "off_track"),
    # demand-weighted 1 − P(stock-out) over the horizon: (95 + 0 + 45 + 45) / 300
    ("projected_service_level", "total", FEB, 185 / 300, "off_track"),
    ("projected_service_level", "family:F2", FEB, 0.9, "off_track"),
    ("unmet_demand_rate", "total", FEB, 20 / 300, "off_track"),
    ("unmet_demand_rate", "family:F1", FEB, 0.1, "off_track"),
]


@pytest.mark.parametrize(("kpi", "scope", "month", "value", "expected_status"), EXPECTED)
def test_kpi_values_and_status(inputs, kpi, scope, month, value, expected_status) -> None:
    row = _value(kpi_scorecard(inputs, "2026-01"), kpi, scope, month)
    assert row.value == pytest.approx(value)
    assert row.status == expected_status
    assert row.target == DEFAULT_TARGETS[kpi].target
    assert row.definition and row.unit and row.direction in ("higher", "lower", "closer")


def test_scorecard_shape(inputs) -> None:
    card = kpi_scorecard(inputs, "2026-01")
    assert list(card.columns[:6]) == ["kpi", "scope", "month", "value", "target", "status"]
    assert set(card.kpi) == set(KPIS) and 10 <= len(KPIS) <= 16
    assert set(card.status) <= set(STATUSES)
    assert not card.duplicated(["kpi", "scope", "month"]).any()
    assert card.attrs["missing"] == {}
    # one row per scope for the 3-month window (May is outside it: 999 h would show)
    assert card.loc[card.kpi == "capacity_utilization", "month"].tolist() == [FEB]
    assert card.loc[card.kpi == "forecast_accuracy", "scope"].tolist() == ["total"]
    assert card[card.kpi == "order_fill_rate"]["scope"].tolist() == [
        "total",
        "family:F1",
        "family:F2",
    ]


def test_first_plan_month_without_snapshots_lists_missing_kpis(inputs) -> None:
    first = replace(inputs, accuracy=None, snapshots=None, aop=None)
    card = kpi_scorecard(first, "2026-01")
    missing = card.attrs["missing"]
    assert set(missing) == {
        "forecast_accuracy",
        "forecast_bias",
        "revenue_forecast_accuracy",
        "total_sales_vs_forecast",
        "working_capital_vs_plan",
    }
    assert (
        "snapshot" in missing["revenue_forecast_accuracy"]
        and "AOP" in missing["working_capital_vs_plan"]
    )
    assert "forecast_accuracy" not in set(card.kpi) and "order_fill_rate" in set(card.kpi)
    assert card["value"].notna().all()


def test_forecast_bias_pools_the_plan_month_and_the_two_before_it(inputs) -> None:
    """A month's sign flips are noise: +5% in January after −10% and +2% is about −1% bias."""
    jan = inputs.accuracy
    earlier = pd.concat(
        [
            jan.assign(month=pd.Timestamp("2025-11-01"), forecast_qty=[180.0, 180.0, 0.0]),
            jan.assign(month=pd.Timestamp("2025-12-01"), forecast_qty=[204.0, 204.0, 0.0]),
            # four months back: outside the window
            jan.assign(month=pd.Timestamp("2025-09-01"), forecast_qty=[400.0, 400.0, 0.0]),
        ]
    )
    card = kpi_scorecard(replace(inputs, accuracy=pd.concat([jan, earlier])), "2026-01")
    row = _value(card, "forecast_bias")
    assert row["value"] == pytest.approx((210 + 180 + 204 - 600) / 600)  # the item level
    assert row["status"] == "on_track"
    # the plan month itself must have a lag-1 forecast
    card = kpi_scorecard(replace(inputs, accuracy=earlier), "2026-01")
    assert "forecast_bias" in card.attrs["missing"]


def test_accuracy_without_a_lag1_row_for_the_month_is_missing(inputs) -> None:
    old = inputs.accuracy.assign(month=pd.Timestamp("2025-12-01"))
    card = kpi_scorecard(replace(inputs, accuracy=old), "2026-01")
    assert "no earlier plan snapshot" in card.attrs["missing"]["forecast_accuracy"]


def test_target_overrides_change_status_and_are_validated(inputs) -> None:
    card = kpi_scorecard(
        inputs, "2026-01", {"inventory_turns": {"target": 4.0}, "backorder_rate": 0.8}
    )
    assert _value(card, "inventory_turns").status == "on_track"
    assert _value(card, "inventory_turns").target == 4.0
    assert _value(card, "backorder_rate").status == "on_track"
    with pytest.raises(ValueError, match=r"forecast_acuracy.* is unknown"):
        kpi_scorecard(inputs, "2026-01", {"forecast_acuracy": 0.5})
    with pytest.raises(ValueError, match="unknown key"):
        kpi_scorecard(inputs, "2026-01", {"inventory_turns": {"goal": 4.0}})


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [
        (0.95, KpiTarget(0.90, 0.05, "higher", "ratio"), "on_track"),
        (0.86, KpiTarget(0.90, 0.05, "higher", "ratio"), "at_risk"),
        (0.80, KpiTarget(0.90, 0.05, "higher", "ratio"), "off_track"),
        (0.04, KpiTarget(0.05, 0.03, "lower", "ratio"), "on_track"),
        (0.07, KpiTarget(0.05, 0.03, "lower", "ratio"), "at_risk"),
        (0.10, KpiTarget(0.05, 0.03, "lower", "ratio"), "off_track"),
        (-0.04, KpiTarget(0.0, 0.05, "closer", "ratio"), "on_track"),
        (0.08, KpiTarget(0.0, 0.05, "closer", "ratio"), "at_risk"),
        (-0.2, KpiTarget(0.0, 0.05, "closer", "ratio"), "off_track"),
    ],
)
def test_status_bands(value, target, expected) -> None:
    assert status(value, target) == expected


def test_revenue_forecast_accuracy_stays_in_range_for_intermittent_demand(inputs) -> None:
    # finding: spare parts scored −38.8% (1 − WAPE) when forecasts landed in months
    # without demand; the accuracy must stay in [0, 1] and still rank the forecasts
    from sop_pipeline.planning.kpis import KPI_RANGES

    items = pd.concat(
        [
            inputs.items,
            pd.DataFrame(
                {"item_id": ["S1", "S2"], "family": "spare", "unit_cost": 1.0, "unit_price": 2.0}
            ),
        ]
    )
    snaps = pd.concat(
        [
            inputs.snapshots,
            pd.DataFrame(
                {
                    "plan_month": "2025-12",
                    "item_id": ["S1", "S2"],
                    "location_id": "L",
                    "month": JAN,
                    "lag": 1,
                    "consensus_qty": [30.0, 10.0],  # S1 forecast, no demand came
                }
            ),
        ]
    )
    hist = pd.concat(
        [
            inputs.demand_history,
            pd.DataFrame(
                {
                    "item_id": ["S1", "S2"],
                    "location_id": "L",
                    "month": JAN,
                    "shipped_qty": 0.0,
                    "demand_revenue": [0.0, 20.0],
                }
            ),
        ]
    )
    card = kpi_scorecard(
        replace(inputs, items=items, snapshots=snaps, demand_history=hist), "2026-01"
    )
    spare = _value(card, "revenue_forecast_accuracy", "family:spare")
    # old definition: 1 − (60 + 0) / 20 = −2.0; now 1 − 60 / (60 + 20)
    assert spare.value == pytest.approx(1 - 60 / 80)
    lo, hi = KPI_RANGES["revenue_forecast_accuracy"]
    values = card.loc[card.kpi == "revenue_forecast_accuracy", "value"]
    assert values.between(lo, hi).all()
