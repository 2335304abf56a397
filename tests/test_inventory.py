"""Safety stock, the inventory projection and its invariant checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from sop_pipeline.planning.inventory import (
    check_demand_served,
    check_inventory_balance,
    check_non_negative,
    forecast_sigma,
    project_inventory,
    safety_stock,
    stockout_risk,
    unmet_demand_total,
)

MONTHS = pd.date_range("2027-01-01", periods=6, freq="MS")


def _demand(qty: list[float], hi80_spread: float = 12.816, item: str = "A") -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "item_id": item,
            "location_id": "DC",
            "month": MONTHS[: len(qty)],
            "consensus_qty": qty,
            "stat_forecast_qty": qty,
        }
    )
    frame["stat_hi80_qty"] = frame["stat_forecast_qty"] + hi80_spread
    return frame


def _items(lead_time_days: float = 60.0) -> pd.DataFrame:
    return pd.DataFrame({"item_id": ["A"], "lead_time_days": [lead_time_days]})


def test_sigma_comes_from_the_80_percent_interval():
    sigma = forecast_sigma(_demand([100, 100, 100]))
    assert sigma["sigma_qty"].iloc[0] == pytest.approx(12.816 / norm.ppf(0.9), rel=1e-4)


def test_safety_stock_is_z_sigma_sqrt_lead_time_plus_review():
    ss = safety_stock(_demand([100, 100, 100]), _items(60.0), service_level=0.95)
    expected = norm.ppf(0.95) * 10.0 * np.sqrt(60 / 30 + 1)
    assert ss["safety_stock_qty"].to_numpy() == pytest.approx([expected] * 3, rel=1e-3)


@pytest.mark.parametrize(("low", "high"), [(0.80, 0.90), (0.90, 0.95), (0.95, 0.99)])
def test_safety_stock_grows_with_service_level(low, high):
    a = safety_stock(_demand([100] * 3), _items(), service_level=low)["safety_stock_qty"]
    b = safety_stock(_demand([100] * 3), _items(), service_level=high)["safety_stock_qty"]
    assert (b > a).all()


def test_safety_stock_grows_with_sigma_and_is_zero_once_demand_ends():
    narrow = safety_stock(_demand([100, 100, 0, 0], hi80_spread=5.0), _items(), service_level=0.95)
    wide = safety_stock(_demand([100, 100, 0, 0], hi80_spread=20.0), _items(), service_level=0.95)
    assert (wide["safety_stock_qty"].iloc[:2] > narrow["safety_stock_qty"].iloc[:2]).all()
    assert wide["safety_stock_qty"].iloc[2:].tolist() == [0.0, 0.0]


def test_safety_stock_accepts_a_backtest_sigma():
    sigma = pd.DataFrame({"item_id": ["A"], "location_id": ["DC"], "sigma_qty": [7.0]})
    ss = safety_stock(_demand([50] * 2), _items(0.0), service_level=0.9, sigma=sigma)
    assert ss["safety_stock_qty"].iloc[0] == pytest.approx(norm.ppf(0.9) * 7.0 * 1.0)


def _supply(receipts: list[float], open_rx: list[float] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": "A",
            "location_id": "DC",
            "month": MONTHS[: len(receipts)],
            "planned_production_qty": receipts,
            "planned_purchase_qty": 0.0,
            "open_order_receipts_qty": open_rx or [0.0] * len(receipts),
        }
    )


def test_projection_serves_from_stock_and_reports_shortage_as_lost_sales():
    demand = _demand([30, 30, 30, 30, 30, 30])
    position = pd.DataFrame({"item_id": ["A"], "location_id": ["DC"], "on_hand_qty": [40.0]})
    inv = project_inventory(demand, _supply([0, 0, 90, 0, 0, 0], [0, 10, 0, 0, 0, 0]), position)
    assert inv["opening_qty"].tolist() == pytest.approx([40, 10, 0, 60, 30, 0])
    assert inv["served_qty"].tolist() == pytest.approx([30, 20, 30, 30, 30, 0])
    assert inv["shortage_qty"].tolist() == pytest.approx([0, 10, 0, 0, 0, 30])
    assert inv["demand_qty"].tolist() == pytest.approx([30] * 6)
    assert inv["receipts_qty"].tolist() == pytest.approx([0, 10, 90, 0, 0, 0])
    assert check_inventory_balance(inv) == []
    assert check_demand_served(inv, demand) == []
    assert check_non_negative(inv) == []


def test_backlog_carries_unserved_demand_to_the_next_receipts():
    # same plan as above under SOP_UNMET_DEMAND=backlog: the 10 short in February are
    # served from March's receipt instead of being lost
    demand = _demand([30, 30, 30, 30, 30, 30])
    position = pd.DataFrame({"item_id": ["A"], "location_id": ["DC"], "on_hand_qty": [40.0]})
    supply = _supply([0, 0, 90, 0, 0, 0], [0, 10, 0, 0, 0, 0])
    inv = project_inventory(demand, supply, position, unmet_demand="backlog")
    assert inv["served_qty"].tolist() == pytest.approx([30, 20, 40, 30, 20, 0])
    assert inv["shortage_qty"].tolist() == pytest.approx([0, 10, 0, 0, 10, 40])
    assert inv["backlog_qty"].tolist() == pytest.approx(inv["shortage_qty"].tolist())
    assert inv["closing_qty"].tolist() == pytest.approx([10, 0, 50, 20, 0, 0])
    assert check_inventory_balance(inv) == []
    assert check_demand_served(inv, demand) == []
    # one figure under both policies: demand not served by the horizon end
    lost = project_inventory(demand, supply, position, unmet_demand="lost_sales")
    assert unmet_demand_total(inv) == pytest.approx(40.0)  # backlog still open at the end
    assert unmet_demand_total(lost) == pytest.approx(lost["shortage_qty"].sum()) == 40.0
    with pytest.raises(ValueError, match=r"backlog or|backlog, lost_sales"):
        project_inventory(demand, supply, position, unmet_demand="drop")


def test_stockout_probability_at_safety_stock_is_one_minus_the_service_level():
    # safety stock and the stock-out risk read the same demand distribution, so a month
    # that closes exactly at safety stock has a stock-out probability of 1 − service level
    demand = _demand([100] * 4)
    items = _items(60.0)
    ss = safety_stock(demand, items, service_level=0.95)["safety_stock_qty"].to_numpy()
    inv = demand[["item_id", "location_id", "month"]].assign(
        demand_qty=100.0,
        closing_qty=[ss[0], 0.0, 2 * ss[2], 0.0],
        shortage_qty=[0.0, 0.0, 0.0, 25.0],
    )
    risk = stockout_risk(inv, demand, items)
    p = risk["stockout_probability"].to_numpy()
    assert p[0] == pytest.approx(0.05, abs=1e-9)
    assert p[1] == pytest.approx(0.5)  # no buffer: a coin toss
    assert p[2] == pytest.approx(norm.sf(2 * norm.ppf(0.95)))
    assert p[3] > 0.5  # the plan is short already
    # expected fill rate = 1 − σ_P L(b / σ_P) / demand with the standard normal loss function
    assert risk["sigma_qty"].iloc[0] == pytest.approx(10.0, rel=1e-4)  # safety stock's σ
    sigma_p = risk["sigma_qty"].iloc[0] * np.sqrt(60 / 30 + 1)
    k = ss[0] / sigma_p
    loss = norm.pdf(k) - k * norm.sf(k)
    fill = risk["expected_fill_rate"].to_numpy()
    assert fill[0] == pytest.approx(1 - sigma_p * loss / 100.0)
    assert fill[1] == pytest.approx(1 - sigma_p * norm.pdf(0) / 100.0)
    assert fill[0] > fill[1] and fill.min() >= 0.0 and fill.max() <= 1.0
    # 25 of 100 short on plan: the expected fill rate is at most 75% (the error adds to it)
    assert fill[3] <= 0.75 + 1e-12


def test_stockout_risk_without_an_interval_is_certain_only_where_short():
    inv = pd.DataFrame(
        {
            "item_id": "A",
            "location_id": "DC",
            "month": MONTHS[:2],
            "demand_qty": [10.0, 0.0],
            "closing_qty": [0.0, 5.0],
            "shortage_qty": [4.0, 0.0],
        }
    )
    plan = inv[["item_id", "location_id", "month"]].assign(consensus_qty=[10.0, 0.0])
    risk = stockout_risk(inv, plan, _items(0.0))
    assert risk["stockout_probability"].tolist() == [1.0, 0.0]
    assert risk["expected_fill_rate"].iloc[0] == pytest.approx(0.6)
    assert np.isnan(risk["expected_fill_rate"].iloc[1])  # no demand: no fill rate


def test_days_of_cover_uses_the_next_three_months_of_demand():
    demand = _demand([0, 31, 28, 31, 30, 31])
    position = pd.DataFrame({"item_id": ["A"], "location_id": ["DC"], "on_hand_qty": [45.0]})
    inv = project_inventory(demand, _supply([0] * 6), position)
    # Feb-Apr: 90 units over 28 + 31 + 30 = 89 days, 45 units closing in January.
    assert inv["days_of_cover"].iloc[0] == pytest.approx(45 / (90 / 89))
    assert inv["days_of_cover"].iloc[-1] == 0.0  # nothing left, no cover


def test_stock_with_no_demand_ahead_has_undefined_cover():
    demand = _demand([0, 0])
    position = pd.DataFrame({"item_id": ["A"], "location_id": ["DC"], "on_hand_qty": [10.0]})
    inv = project_inventory(demand, _supply([0, 0]), position)
    assert inv["days_of_cover"].isna().all()
    assert inv["closing_qty"].tolist() == [10.0, 10.0]


def test_checks_name_the_broken_row():
    demand = _demand([30, 30, 30])
    position = pd.DataFrame({"item_id": ["A"], "location_id": ["DC"], "on_hand_qty": [100.0]})
    inv = project_inventory(demand, _supply([0, 0, 0]), position)
    broken = inv.copy()
    broken.loc[1, "closing_qty"] += 1.0
    problems = check_inventory_balance(broken)
    assert any("item A at DC in 2027-02" in p for p in problems)
    assert any("2027-03" in p and "previous month" in p for p in problems)
    broken = inv.copy()
    broken.loc[2, "shortage_qty"] = 5.0
    assert any("2027-03" in p for p in check_demand_served(broken))
    broken = inv.copy()
    broken.loc[0, "closing_qty"] = -3.0
    assert "closing_qty is negative" in check_non_negative(broken, name="plan_inventory")[0]
    moved = demand.copy()
    moved.loc[0, "consensus_qty"] = 31.0
    assert any("consensus_qty" in p for p in check_demand_served(inv, moved))


def test_check_messages_are_capped_for_readability():
    demand = pd.concat([_demand([10, 10], item=f"I{k}") for k in range(30)])
    supply = pd.concat([_supply([0, 0]).assign(item_id=f"I{k}") for k in range(30)])
    position = pd.DataFrame({"item_id": [], "location_id": [], "on_hand_qty": []})
    inv = project_inventory(demand, supply, position)
    inv["closing_qty"] += 1.0
    problems = check_inventory_balance(inv)
    assert len(problems) == 21 and problems[-1].startswith("... and")
