"""Plan-change waterfall on hand-built plans where every component is known in advance.

Last plan covers 2027-01 … 2027-03, this plan 2027-02 … 2027-04: the bridge uses Feb and
Mar only (values per month below, so each expected number is × 2).

pumps
  A  same model (ETS): stat 100 → 110, crm 5 → 0, override 0 → 20, 15 short this time;
     price 8 → 10
  B  model Theta → ETS: stat 50 → 40
valves
  C  only in last plan (dropped): 30
  D  only in this plan (new): 25
  E  override −60 → −40 on stat 50: the floor at 0 clips 10 last time, so the consensus
     rises by 10, not 20
"""

from __future__ import annotations

import pandas as pd
import pytest

from sop_pipeline.planning.waterfall import (
    COMPONENTS,
    WATERFALL_COLUMNS,
    check_waterfall,
    plan_change_waterfall,
)

PREV_MONTHS = pd.date_range("2027-01-01", periods=3, freq="MS")
CUR_MONTHS = pd.date_range("2027-02-01", periods=3, freq="MS")
FAMILY = {"A": "pumps", "B": "pumps", "C": "valves", "D": "valves", "E": "valves"}
PRICE = {"A": 10.0, "B": 10.0, "C": 5.0, "D": 5.0, "E": 5.0}
PREV_PRICE = {**PRICE, "A": 8.0}


def demand_rows(series: dict[str, tuple[float, float, float, str]], months, prices) -> pd.DataFrame:
    """series: item → (stat, crm, override, model); consensus = max(0, sum)."""
    rows = []
    for item, (stat, crm, override, model) in series.items():
        for i, month in enumerate(months):
            # months outside the overlap carry nonsense that must not leak into the bridge
            bump = 0.0 if month in PREV_MONTHS.intersection(CUR_MONTHS) else 999.0 + i
            raw = stat + bump + crm + override
            consensus = max(0.0, raw)
            rows.append(
                {
                    "item_id": item,
                    "location_id": "L1",
                    "family": FAMILY[item],
                    "month": month,
                    "stat_forecast_qty": stat + bump,
                    "stat_model": model,
                    "crm_adjustment_qty": crm,
                    "override_qty": override,
                    "consensus_qty": consensus,
                    "consensus_revenue": consensus * prices[item],
                    "clipped_qty": consensus - raw,
                }
            )
    return pd.DataFrame(rows)


PREV = demand_rows(
    {
        "A": (100.0, 5.0, 0.0, "ETS"),
        "B": (50.0, 0.0, 0.0, "Theta"),
        "C": (30.0, 0.0, 0.0, "ETS"),
        "E": (50.0, 0.0, -60.0, "ETS"),
    },
    PREV_MONTHS,
    PREV_PRICE,
)
CUR = demand_rows(
    {
        "A": (110.0, 0.0, 20.0, "ETS"),
        "B": (40.0, 0.0, 0.0, "ETS"),
        "D": (25.0, 0.0, 0.0, "family_profile"),
        "E": (50.0, 0.0, -40.0, "ETS"),
    },
    CUR_MONTHS,
    PRICE,
)
ITEMS = pd.DataFrame(
    {
        "item_id": list(PRICE),
        "family": [FAMILY[i] for i in PRICE],
        "unit_price": list(PRICE.values()),
    }
)


def inventory(demand: pd.DataFrame, short: dict[str, float], with_served: bool) -> pd.DataFrame:
    inv = demand[["item_id", "location_id", "month"]].copy()
    inv["demand_qty"] = demand["consensus_qty"]
    inv["shortage_qty"] = demand["item_id"].map(short).fillna(0.0)
    if with_served:
        inv["served_qty"] = inv["demand_qty"] - inv["shortage_qty"]
    return inv


def backtest(models: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"item_id": list(models), "location_id": "L1", "chosen_model": list(models.values())}
    )


EXPECTED = {
    # component: (pumps qty, valves qty)
    "start": (2 * (105 + 50), 2 * (30 + 0)),
    "new_actuals": (2 * 10, 2 * (-30 + 25)),
    "model_change": (2 * -10, 0),
    "crm_change": (2 * -5, 0),
    "override_change": (2 * 20, 2 * 10),
    "capacity_change": (2 * -15, 0),
    "price_change": (0, 0),
    "end": (2 * (115 + 40), 2 * (25 + 10)),
}


@pytest.fixture(scope="module")
def waterfall() -> pd.DataFrame:
    return plan_change_waterfall(
        PREV,
        inventory(PREV, {}, with_served=True),
        backtest({"A": "ETS", "B": "Theta", "C": "ETS", "E": "ETS"}),
        CUR,
        inventory(CUR, {"A": 15.0}, with_served=False),
        backtest({"A": "ETS", "B": "ETS", "D": "family_profile", "E": "ETS"}),
        ITEMS,
    )


def qty(frame: pd.DataFrame, family: str) -> dict[str, float]:
    return frame[frame["family"] == family].set_index("component")["qty"].to_dict()


def test_each_component_is_what_changed(waterfall):
    assert list(waterfall.columns) == WATERFALL_COLUMNS
    pumps, valves = qty(waterfall, "pumps"), qty(waterfall, "valves")
    for component, (p, v) in EXPECTED.items():
        assert pumps[component] == pytest.approx(p), f"pumps {component}"
        assert valves[component] == pytest.approx(v), f"valves {component}"
    assert (
        waterfall.groupby("family")["sort_order"].apply(list).tolist()
        == [list(range(len(COMPONENTS)))] * 2
    )
    assert list(waterfall[waterfall["family"] == "pumps"]["component"]) == list(COMPONENTS)


@pytest.mark.parametrize("measure", ["qty", "revenue"])
def test_start_plus_components_equals_end_per_family(waterfall, measure):
    for family, rows in waterfall.groupby("family"):
        by = rows.set_index("component")[measure]
        assert by.drop("end").sum() == pytest.approx(by["end"], rel=1e-12), family
    assert check_waterfall(waterfall) == []


def test_revenue_starts_at_last_plans_prices_and_bridges_the_price_rise(waterfall):
    pumps = waterfall[waterfall["family"] == "pumps"].set_index("component")["revenue"]
    # A at last plan's 8, B at 10
    assert pumps["start"] == pytest.approx(2 * (105 * 8 + 50 * 10))
    # A's 210 starting units re-priced from 8 to 10
    assert pumps["price_change"] == pytest.approx(210 * 2)
    assert pumps["end"] == pytest.approx(2 * (115 + 40) * 10)
    assert pumps["capacity_change"] == pytest.approx(-30 * 10)


def test_without_backtests_the_plans_model_labels_decide_and_without_inventory_consensus(
    waterfall,
):
    bare = plan_change_waterfall(PREV, None, None, CUR, None, None, ITEMS)
    pumps = qty(bare, "pumps")
    assert pumps["model_change"] == pytest.approx(-20)  # stat_model Theta → ETS
    assert pumps["capacity_change"] == 0  # no inventory plan: served = consensus
    assert pumps["end"] == pytest.approx(2 * (130 + 40))
    assert check_waterfall(bare) == []


def test_a_model_change_moves_the_stat_delta_out_of_new_actuals():
    # the backtests say A switched models and B kept its own (they win over stat_model)
    bt_prev = backtest({"A": "ETS", "B": "Theta", "C": "ETS", "E": "ETS"})
    bt_cur = backtest({"A": "Theta", "B": "Theta", "D": "family_profile", "E": "ETS"})
    out = plan_change_waterfall(PREV, None, bt_prev, CUR, None, bt_cur, ITEMS)
    pumps = qty(out, "pumps")
    assert pumps["model_change"] == pytest.approx(2 * 10)  # A's re-forecast
    assert pumps["new_actuals"] == pytest.approx(2 * -10)  # B's re-fit, same model


def test_plans_without_a_common_month_give_an_empty_bridge():
    later = CUR.assign(month=CUR["month"] + pd.DateOffset(years=5))
    out = plan_change_waterfall(PREV, None, None, later, None, None, ITEMS)
    assert out.empty and list(out.columns) == WATERFALL_COLUMNS


def test_check_waterfall_reports_a_bridge_that_does_not_close(waterfall):
    broken = waterfall.copy()
    broken.loc[(broken["family"] == "valves") & (broken["component"] == "crm_change"), "qty"] = 3.0
    problems = check_waterfall(broken)
    assert len(problems) == 1 and "family valves" in problems[0] and "qty" in problems[0]
