"""Finance review and gaps: money equals units × prices, versus the AOP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sop_pipeline.planning.finance import (
    PLAN_FINANCIALS_COLUMNS,
    PLAN_GAPS_COLUMNS,
    check_finance_matches_units,
    financials,
    gaps,
)

JAN, FEB = pd.Timestamp("2027-01-01"), pd.Timestamp("2027-02-01")


@pytest.fixture
def items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["A", "B", "C"],
            "family": ["F1", "F1", "F2"],
            "unit_cost": [10.0, 4.0, 100.0],
            "unit_price": [25.0, 5.0, 150.0],
        }
    )


@pytest.fixture
def plan_inventory() -> pd.DataFrame:
    rows = [
        # item, loc, month, demand, served, shortage, closing, binding
        ("A", "DC", JAN, 10, 10, 0, 5, None),
        ("A", "DC", FEB, 10, 6, 4, 0, "capacity WC1 in 2027-02 (shadow price 3.00 per hour)"),
        ("B", "DC", JAN, 20, 20, 0, 2, None),
        ("B", "DC", FEB, 20, 18, 2, 0, "purchase lead time 60 days: no new receipt before 2027-03"),
        ("C", "P1", JAN, 1, 1, 0, 3, None),
        ("C", "P1", FEB, 1, 1, 0, 2, None),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "item_id",
            "location_id",
            "month",
            "demand_qty",
            "served_qty",
            "shortage_qty",
            "closing_qty",
            "binding_constraint",
        ],
    )
    return frame.astype(
        {c: float for c in ("demand_qty", "served_qty", "shortage_qty", "closing_qty")}
    )


@pytest.fixture
def plan_demand(plan_inventory, items) -> pd.DataFrame:
    frame = plan_inventory[["item_id", "location_id", "month", "demand_qty"]].rename(
        columns={"demand_qty": "consensus_qty"}
    )
    frame["family"] = frame["item_id"].map(items.set_index("item_id")["family"])
    frame["consensus_revenue"] = frame["consensus_qty"] * frame["item_id"].map(
        items.set_index("item_id")["unit_price"]
    )
    return frame


def test_financials_are_served_units_times_prices(plan_demand, plan_inventory, items):
    aop = pd.DataFrame(
        {
            "family": ["F1", "F1"],
            "month": [JAN, FEB],
            "revenue_target": [400.0, 400.0],
            "volume_target": [30.0, 30.0],
            "inventory_value_target": [50.0, 50.0],
        }
    )
    fin = financials(plan_demand, plan_inventory, items, aop)
    assert list(fin.columns[:8]) == PLAN_FINANCIALS_COLUMNS
    f1_feb = fin[(fin["family"] == "F1") & (fin["month"] == FEB)].iloc[0]
    assert f1_feb["revenue"] == pytest.approx(6 * 25 + 18 * 5)
    assert f1_feb["cogs"] == pytest.approx(6 * 10 + 18 * 4)
    assert f1_feb["gross_margin"] == pytest.approx(240 - 132)
    assert f1_feb["gross_margin_pct"] == pytest.approx(108 / 240)
    assert f1_feb["revenue_vs_aop"] == pytest.approx(240 - 400)
    assert f1_feb["volume_vs_aop"] == pytest.approx(24 - 30)
    assert f1_feb["unconstrained_revenue"] == pytest.approx(10 * 25 + 20 * 5)
    f1_jan = fin[(fin["family"] == "F1") & (fin["month"] == JAN)].iloc[0]
    assert f1_jan["inventory_value"] == pytest.approx(5 * 10 + 2 * 4)
    assert f1_jan["inventory_vs_aop"] == pytest.approx(58 - 50)
    f2 = fin[fin["family"] == "F2"]
    assert f2["aop_revenue"].isna().all() and f2["revenue_vs_aop"].isna().all()
    assert fin["revenue"].sum() == pytest.approx(
        (plan_inventory["served_qty"] * [25, 25, 5, 5, 150, 150]).sum()
    )
    assert check_finance_matches_units(fin, plan_inventory, items) == []


def test_financials_without_aop_leave_targets_empty(plan_demand, plan_inventory, items):
    fin = financials(plan_demand, plan_inventory, items, None)
    assert fin["aop_revenue"].isna().all()
    assert len(fin) == 4


def test_finance_check_catches_money_that_does_not_match_units(plan_demand, plan_inventory, items):
    fin = financials(plan_demand, plan_inventory, items, None)
    fin.loc[0, "revenue"] += 1.0
    problems = check_finance_matches_units(fin, plan_inventory, items)
    assert len(problems) == 1
    assert "revenue of family F1 in 2027-01" in problems[0]


def test_gaps_value_the_shortage_at_price_and_name_the_constraints(
    plan_demand, plan_inventory, items
):
    gap = gaps(plan_demand, plan_inventory, items)
    assert list(gap.columns[:6]) == PLAN_GAPS_COLUMNS
    f1_feb = gap[(gap["family"] == "F1") & (gap["month"] == FEB)].iloc[0]
    assert f1_feb["demand_qty"] == 30 and f1_feb["supply_qty"] == 24 and f1_feb["gap_qty"] == 6
    assert f1_feb["gap_value"] == pytest.approx(4 * 25 + 2 * 5)
    assert f1_feb["binding_constraint"].startswith("capacity WC1 in 2027-02 (91% of gap value)")
    assert "purchase lead time 60 days" in f1_feb["binding_constraint"]
    assert gap.loc[gap["gap_qty"] == 0, "binding_constraint"].isna().all()
    assert (gap["gap_qty"] >= 0).all()
    assert np.allclose(gap["demand_qty"] - gap["supply_qty"], gap["gap_qty"])


def test_inventory_value_splits_into_safety_stock_and_the_rest(plan_demand, plan_inventory, items):
    # finding: inventory value 1.3-3.5× the AOP while shortages persist; the plan must say
    # how much of it is safety stock (closing capped at safety stock, × unit cost)
    inv = plan_inventory.assign(safety_stock_qty=[3.0, 3.0, 5.0, 5.0, 1.0, 1.0])
    fin = financials(plan_demand, inv, items, None).set_index(["family", "month"])
    # Jan F1: A closes 5 (SS 3 → 3 × 10), B closes 2 (SS 5 → 2 × 4)
    assert fin.loc[("F1", JAN), "safety_stock_value"] == pytest.approx(3 * 10 + 2 * 4)
    assert fin.loc[("F1", JAN), "above_safety_stock_value"] == pytest.approx(2 * 10)
    assert fin.loc[("F2", FEB), "safety_stock_value"] == pytest.approx(1 * 100)
    np.testing.assert_allclose(
        fin["safety_stock_value"] + fin["above_safety_stock_value"], fin["inventory_value"]
    )
