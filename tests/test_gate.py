"""The gate: a good candidate plan passes; each kind of defect fails with a usable message."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from factories.frames import demand_frame, inventory_frame, supply_frame

from sop_pipeline.quality.gate import GATED_TABLES, SUITES_DIR, run_gate
from sop_pipeline.quality.gx import load_suite

PLAN_MONTH = "2026-01"
HORIZON = 3
MONTHS = pd.date_range("2026-02-01", periods=HORIZON, freq="MS")


def good_candidate() -> dict[str, pd.DataFrame]:
    """Two items at one DC, two families, a 3-month horizon; every table consistent."""
    base = pd.MultiIndex.from_product(
        [["I1", "I2"], ["DC1"], MONTHS], names=["item_id", "location_id", "month"]
    ).to_frame(index=False)
    base["family"] = base["item_id"].map({"I1": "F1", "I2": "F2"})
    qty = pd.Series([10.0, 12.0, 14.0, 5.0, 6.0, 7.0])
    price = base["item_id"].map({"I1": 10.0, "I2": 4.0})
    demand = demand_frame(base, qty, qty * price, lo95=0.6, hi95=1.4, override_columns=False)
    shortage = pd.Series([0.0, 2.0, 0.0, 0.0, 0.0, 1.0])
    served = qty - shortage
    keys = base[["item_id", "location_id", "month"]]
    supply = supply_frame(keys, served, receipts=0.0)
    inventory = inventory_frame(
        keys,
        served,
        qty,
        opening_qty=0.0,
        closing_qty=0.0,
        safety_stock_qty=0.0,
        days_of_cover=0.0,
        shortage_qty=shortage,
        stockout_probability=(shortage > 0).astype(float),
        expected_fill_rate=served / qty,
        served_qty=served,
    )
    capacity = pd.DataFrame(
        {
            "work_center_id": "WC1",
            "month": MONTHS,
            "available_hours": 100.0,
            "required_hours": [90.0, 110.0, 80.0],
            "planned_hours": [90.0, 100.0, 80.0],
            "utilization": [0.9, 1.0, 0.8],
        }
    )
    fam = (
        base.assign(q=qty, served=served, rev=served * price)
        .groupby(["family", "month"], as_index=False)
        .agg(demand_qty=("q", "sum"), served=("served", "sum"), revenue=("rev", "sum"))
    )
    gaps = fam[["family", "month", "demand_qty"]].assign(
        supply_qty=fam["served"], gap_qty=fam["served"] - fam["demand_qty"], gap_value=-1.0
    )
    financials = fam[["family", "month", "revenue"]].assign(
        cogs=fam["revenue"] * 0.6,
        gross_margin=fam["revenue"] * 0.4,
        inventory_value=50.0,
        aop_revenue=None,
        revenue_vs_aop=None,
    )
    kpis = pd.DataFrame(
        {
            "kpi": ["order_fill_rate", "order_fill_rate", "capacity_utilization"],
            "scope": ["total", "family:F1", "total"],
            "month": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-02-01"]),
            "value": [0.97, 0.99, 0.9],
            "target": [0.98, 0.98, 0.85],
            "status": ["at_risk", "on_track", "on_track"],
        }
    )
    return {
        "plan_demand": demand,
        "plan_supply": supply,
        "plan_inventory": inventory,
        "plan_capacity": capacity,
        "plan_gaps": gaps,
        "plan_financials": financials,
        "kpi_scorecard": kpis,
    }


def _failed(result, name: str, table: str):
    hits = [c for c in result.checks if c.name == name and c.table == table]
    assert hits, f"no check {name} on {table}"
    assert not hits[0].passed, hits[0].message
    return hits[0]


def test_suites_exist_for_every_gated_table_and_are_not_empty() -> None:
    for table in GATED_TABLES:
        suite = load_suite(SUITES_DIR / f"{table}.json")
        assert suite["name"] == table
        types = {e["type"] for e in suite["expectations"]}
        assert "expect_compound_columns_to_be_unique" in types
        assert "expect_column_values_to_not_be_null" in types


def test_good_candidate_passes() -> None:
    result = run_gate(good_candidate(), PLAN_MONTH, HORIZON)
    assert result.passed, result.failure_report()
    names = {c.name for c in result.checks}
    assert {f"suite:{t}" for t in GATED_TABLES} <= names
    assert {"horizon_complete", "family_consistency", "revenue_consistency"} <= names
    assert all(c.evaluated > 0 for c in result.checks)
    assert result.checks_failed == 0 and result.checks_passed == len(result.checks)


@pytest.fixture(scope="module")
def broken():
    """One candidate with independent defects in different tables (one gate run for all)."""
    tables = good_candidate()
    # duplicate key: WC1 × 2026-03 twice (the horizon itself stays complete)
    tables["plan_capacity"] = pd.concat(
        [tables["plan_capacity"], tables["plan_capacity"].iloc[[1]]], ignore_index=True
    )
    tables["plan_supply"].loc[4, "planned_production_qty"] = -3.0  # negative quantity
    tables["plan_demand"].loc[0, "stat_lo80_qty"] = 11.0  # above the point forecast (10)
    tables["kpi_scorecard"].loc[0, "status"] = "green"
    tables["plan_financials"].loc[0, "revenue"] += 25.0
    return run_gate(tables, PLAN_MONTH, HORIZON)


def test_duplicate_key_fails_naming_the_key(broken) -> None:
    assert not broken.passed
    check = _failed(broken, "suite:plan_capacity", "plan_capacity")
    assert [f["rule"] for f in check.failures] == ["expect_compound_columns_to_be_unique"]
    assert (
        "plan_capacity" in check.message and "work_center_id=WC1, month=2026-03-01" in check.message
    )
    horizon = next(
        c for c in broken.checks if c.name == "horizon_complete" and c.table == "plan_capacity"
    )
    assert horizon.passed


def test_negative_quantity_fails_naming_column_and_row(broken) -> None:
    check = _failed(broken, "suite:plan_supply", "plan_supply")
    assert "planned_production_qty" in check.message
    assert "item_id=I2, location_id=DC1, month=2026-03-01" in check.message
    assert check.failures[0]["count"] == 1


def test_disordered_interval_fails(broken) -> None:
    check = _failed(broken, "suite:plan_demand", "plan_demand")
    rule = next(
        f for f in check.failures if f["rule"] == "expect_column_pair_values_a_to_be_greater_than_b"
    )
    assert rule["column"] == "stat_forecast_qty, stat_lo80_qty"
    assert rule["examples"] == [{"item_id": "I1", "location_id": "DC1", "month": "2026-02-01"}]
    assert "I1" in check.message


def test_bad_status_and_revenue_mismatch_fail(broken) -> None:
    assert "'green'" in _failed(broken, "suite:kpi_scorecard", "kpi_scorecard").message
    rev = _failed(broken, "revenue_consistency", "plan_financials")
    assert "family=F1, month=2026-02-01" in rev.message
    # checks on untouched tables still pass: failures are attributed to the right table
    assert all(c.passed for c in broken.checks if c.table in ("plan_inventory", "plan_gaps"))
    assert broken.checks_failed == 5


def test_missing_horizon_month_fails_naming_series_and_month() -> None:
    tables = good_candidate()
    demand = tables["plan_demand"]
    tables["plan_demand"] = demand[~((demand.item_id == "I2") & (demand.month == MONTHS[2]))]
    result = run_gate(tables, PLAN_MONTH, HORIZON)
    check = _failed(result, "horizon_complete", "plan_demand")
    assert "missing_horizon_month" in check.message
    assert "item_id=I2, location_id=DC1, month=2026-04-01" in check.message
    # the family totals no longer add up either
    assert "F2" in _failed(result, "family_consistency", "plan_gaps").message


def test_month_outside_horizon_and_lost_series_fail() -> None:
    tables = good_candidate()
    tables["plan_capacity"] = tables["plan_capacity"].assign(
        month=pd.date_range("2026-01-01", periods=3, freq="MS")
    )
    inv = tables["plan_inventory"]
    tables["plan_inventory"] = inv[inv.item_id == "I1"]
    result = run_gate(tables, PLAN_MONTH, HORIZON)
    cap = _failed(result, "horizon_complete", "plan_capacity")
    assert "month_in_horizon" in cap.message and "2026-01-01" in cap.message
    inv_check = _failed(result, "horizon_complete", "plan_inventory")
    assert (
        "series_missing_vs_plan_demand" in inv_check.message and "item_id=I2" in inv_check.message
    )


def test_empty_or_missing_table_fails() -> None:
    tables = good_candidate()
    tables["plan_gaps"] = tables["plan_gaps"].iloc[0:0]
    del tables["kpi_scorecard"]
    result = run_gate(tables, PLAN_MONTH, HORIZON)
    assert not result.passed
    assert "empty" in _failed(result, "suite:plan_gaps", "plan_gaps").message
    assert (
        "no kpi_scorecard table" in _failed(result, "suite:kpi_scorecard", "kpi_scorecard").message
    )


def test_a_suite_with_no_expectations_fails(tmp_path: Path) -> None:
    for table in GATED_TABLES:
        suite = load_suite(SUITES_DIR / f"{table}.json")
        if table == "plan_supply":
            suite["expectations"] = []
        (tmp_path / f"{table}.json").write_text(json.dumps(suite))
    result = run_gate(good_candidate(), PLAN_MONTH, HORIZON, suites_dir=tmp_path)
    check = _failed(result, "suite:plan_supply", "plan_supply")
    assert check.evaluated == 0 and "no expectations" in check.message


@pytest.mark.parametrize("bad_month", ["2026-13", "26-01"])
def test_bad_plan_month_is_refused(bad_month: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        run_gate(good_candidate(), bad_month, HORIZON)


def test_the_gated_tables_are_the_published_tables_with_a_suite() -> None:
    from sop_pipeline.publish.tables import PACK_TABLES, PLAN_TABLES

    # adding a suite file without gating its table (or the reverse) would go unnoticed
    assert sorted(GATED_TABLES) == sorted(p.stem for p in SUITES_DIR.glob("*.json"))
    assert set(GATED_TABLES) <= set(PLAN_TABLES)
    assert set(PACK_TABLES) <= set(PLAN_TABLES)
