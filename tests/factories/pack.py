"""A plan with every published table filled, for the executive pack tests.

``MONTH`` with a six-month horizon, four items in three families, gaps in two families, an
overloaded work center; :func:`build_full_pack` publishes it and writes the pack with every
section.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from factories.frames import demand_frame, inventory_frame, supply_frame
from sop_pipeline.publish.writer import publish_plan
from sop_pipeline.report.pack import build_pack, load_pack_data

MONTH = "2026-03"

HORIZON = pd.date_range("2026-04-01", periods=6, freq="MS")

ITEMS = {"P-1": "pumps", "P-2": "pumps", "V-1": "valves", "S-1": "sensors"}

PRICE = {"P-1": 120.0, "P-2": 80.0, "V-1": 45.5, "S-1": 9.75}


def plan_tables(scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """A small plan with every published table filled, gaps in two families."""
    keys = pd.MultiIndex.from_product(
        [list(ITEMS), ["DC1"], HORIZON], names=["item_id", "location_id", "month"]
    ).to_frame(index=False)
    step = keys.groupby("item_id").cumcount()
    qty = (
        100.0 + 10 * step + keys["item_id"].map({"P-1": 0, "P-2": 7, "V-1": 30, "S-1": 300})
    ) * scale
    demand = demand_frame(
        keys.assign(family=keys["item_id"].map(ITEMS)),
        qty,
        qty * keys["item_id"].map(PRICE),
        lo95=0.65,
        hi95=1.35,
    )
    supply = supply_frame(keys, qty * 0.9, receipts=5.0)
    inventory = inventory_frame(
        keys,
        qty * 0.9,
        qty,
        opening_qty=50.0,
        closing_qty=40.0 - step * 8.0,
        safety_stock_qty=25.0,
        days_of_cover=12.0,
        shortage_qty=(step >= 4) * 3.0,
    )
    capacity = pd.MultiIndex.from_product(
        [["WC-A", "WC-B"], HORIZON], names=["work_center_id", "month"]
    ).to_frame(index=False)
    capacity = capacity.assign(
        available_hours=400.0,
        required_hours=[300.0, 380.0, 450.0, 500.0, 350.0, 200.0] * 2,
        planned_hours=[300.0, 380.0, 440.0, 440.0, 350.0, 200.0] * 2,
    )
    capacity["utilization"] = capacity["planned_hours"] / capacity["available_hours"]
    fam = demand.groupby(["family", "month"], as_index=False).agg(
        demand_qty=("consensus_qty", "sum"), revenue=("consensus_revenue", "sum")
    )
    gap_qty = pd.Series(0.0, index=fam.index)
    gap_qty[(fam["family"] == "pumps") & (fam["month"] == HORIZON[2])] = 40.0
    gap_qty[(fam["family"] == "valves") & (fam["month"] == HORIZON[3])] = 12.5
    gaps = fam[["family", "month", "demand_qty"]].assign(
        supply_qty=fam["demand_qty"] - gap_qty,
        gap_qty=gap_qty,
        gap_value=gap_qty * fam["family"].map({"pumps": 100.0, "valves": 45.5, "sensors": 9.75}),
        binding_constraint=[
            "capacity WC-A in 2026-06 (100% of gap value)"
            if g and f == "pumps"
            else "purchase lead time 44 days: no new receipt before 2026-07"
            if g
            else None
            for f, g in zip(fam["family"], gap_qty, strict=True)
        ],
    )
    financials = fam[["family", "month"]].assign(
        revenue=fam["revenue"] - gaps["gap_value"],
        cogs=fam["revenue"] * 0.6,
        aop_revenue=fam["revenue"] * 1.03,
    )
    financials.loc[financials["month"] == HORIZON[-1], "aop_revenue"] = None  # AOP ends early
    financials["gross_margin"] = financials["revenue"] - financials["cogs"]
    financials["inventory_value"] = 1000.0 + financials.index * 10.0
    financials["revenue_vs_aop"] = financials["revenue"] - financials["aop_revenue"]
    kpis = pd.DataFrame(
        [
            ("forecast_accuracy", "total", MONTH, 0.712, 0.70, "on_track", "ratio", "higher"),
            ("forecast_bias", "total", MONTH, 0.081, 0.0, "at_risk", "ratio", "closer"),
            ("inventory_turns", "total", MONTH, 4.25, 6.0, "off_track", "turns per year", "higher"),
            ("order_fill_rate", "total", MONTH, 0.962, 0.98, "at_risk", "ratio", "higher"),
            ("order_fill_rate", "family:pumps", MONTH, 0.99, 0.98, "on_track", "ratio", "higher"),
            ("order_fill_rate", "family:valves", MONTH, 0.91, 0.98, "off_track", "ratio", "higher"),
            ("capacity_utilization", "total", "2026-04", 0.75, 0.85, "on_track", "ratio", "closer"),
            ("capacity_utilization", "total", "2026-05", 1.1, 0.85, "off_track", "ratio", "closer"),
        ],
        columns=["kpi", "scope", "month", "value", "target", "status", "unit", "direction"],
    )
    kpis["month"] = pd.to_datetime(kpis["month"])
    kpis["definition"] = "a definition"
    accuracy = pd.DataFrame(
        [
            (kind, level, lag, pd.Timestamp("2026-03-01"), 0.3, wape, bias, 0.9)
            for kind, wape, bias in (
                ("naive", 0.42, 0.05),
                ("statistical", 0.31, 0.03),
                ("consensus", 0.28, -0.02),
            )
            for level in ("item", "family")
            for lag in (1, 3)
        ],
        columns=["forecast_kind", "level", "lag", "month", "mape", "wape", "bias", "mase"],
    )
    scenarios = pd.DataFrame(
        [
            (s, f, m, metric, 1000.0, 1000.0 + d, d)
            for s, d0 in (("demand_plus_10", 100.0), ("wc_a_overhaul", -250.0))
            for f in ("pumps", "valves")
            for m in HORIZON[:2]
            for metric, d in (
                ("revenue", d0),
                ("gap_value", -d0 / 4),
                ("inventory_value", d0 / 10),
                ("capacity_utilization", d0 / 2000),
            )
        ],
        columns=[
            "scenario",
            "family",
            "month",
            "metric",
            "base_value",
            "scenario_value",
            "delta",
        ],
    )
    return {
        "plan_demand": demand,
        "plan_supply": supply,
        "plan_inventory": inventory,
        "plan_capacity": capacity,
        "plan_gaps": gaps,
        "plan_financials": financials,
        "kpi_scorecard": kpis,
        "forecast_accuracy": accuracy,
        "scenario_comparison": scenarios,
    }


def publish(published: Path, tables: dict[str, pd.DataFrame], run_id: str = "run-1") -> int:
    result = publish_plan(
        published,
        MONTH,
        tables,
        run_id=run_id,
        input_fingerprint="fp-abc123",
        code_version="0.1.0+test",
        checks_passed=14,
        checks_failed=1,
    )
    return result.plan_version


def history() -> pd.DataFrame:
    months = pd.date_range("2024-01-01", "2026-03-01", freq="MS")
    rows = [(f, m, 90.0 + i) for f in ("pumps", "valves", "sensors") for i, m in enumerate(months)]
    rows.append(("pumps", pd.Timestamp("2026-09-01"), 1e9))  # after the plan month: left out
    return pd.DataFrame(rows, columns=["family", "month", "demand_qty"])


def exceptions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "exception_type": ["capacity_overload", "stock_out", "excess_inventory"],
            "severity": ["high", "high", "low"],
            "scope": ["work center", "item/location", "item/location"],
            "scope_id": ["WC-A", "P-1@DC1", "S-1@DC1"],
            "month": pd.to_datetime(["2026-06-01", "2026-06-01", "2026-08-01"]),
            "value": [1.25, 40.0, 200.0],
            "threshold": [1.0, 0.0, 120.0],
            "reason": [
                "WC-A needs 500 h against 400 h",
                "P-1 is short 40 units",
                "S-1 has 200 days",
            ],
        }
    )


def waterfall() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "family": ["(all)"] * 4,
            "component": ["start", "new_actuals", "override_change", "end"],
            "qty": [1000.0, 150.0, -50.0, 1100.0],
            "revenue": [50000.0, 7000.0, -2500.0, 54500.0],
            "sort_order": [0, 1, 2, 3],
        }
    )


def build_full_pack(tmp_path: Path) -> Path:
    """A pack with every section filled (also used by the browser test)."""
    published = tmp_path / "published"
    publish(published, plan_tables())
    data = load_pack_data(
        published, MONTH, None, history(), exceptions=exceptions(), waterfall=waterfall()
    )
    path = tmp_path / "pack.html"
    path.write_text(build_pack(data), encoding="utf-8")
    return path
