"""A small but complete published plan for the approval and workbook tests (no pipeline run)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sop_pipeline.core.settings import Settings
from sop_pipeline.publish.writer import PublishResult, publish_plan

ITEMS = {"I1": "F1", "I2": "F1", "I3": "F2"}
LOCATIONS = ("DC1", "DC2")
SCENARIOS = ("demand_up_10", "line_down")


def plan_months(plan_month: str, horizon: int = 3) -> pd.DatetimeIndex:
    """The months a plan of ``plan_month`` covers (the month after it onwards)."""
    return pd.date_range(
        pd.Timestamp(plan_month + "-01") + pd.DateOffset(months=1), periods=horizon, freq="MS"
    )


def sample_plan(plan_month: str = "2026-01", scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """Every published plan table, a few rows each; ``scale`` multiplies the demand."""
    months = plan_months(plan_month)
    base = pd.MultiIndex.from_product(
        [list(ITEMS), LOCATIONS, months], names=["item_id", "location_id", "month"]
    ).to_frame(index=False)
    qty = (pd.Series(range(1, len(base) + 1), dtype="float64") * 10 * scale).round(6)
    demand = base.assign(
        family=base["item_id"].map(ITEMS),
        stat_forecast_qty=qty,
        stat_lo80_qty=qty * 0.8,
        stat_hi80_qty=qty * 1.2,
        stat_lo95_qty=qty * 0.7,
        stat_hi95_qty=qty * 1.3,
        stat_model="AutoETS",
        crm_adjustment_qty=0.0,
        override_qty=0.0,
        consensus_qty=qty,
        consensus_revenue=qty * 5,
        override_reason_code=None,
        override_author=None,
    )
    supply = base.assign(
        planned_production_qty=qty, planned_purchase_qty=0.0, open_order_receipts_qty=1.0
    )
    inventory = base.assign(
        opening_qty=5.0,
        receipts_qty=qty,
        demand_qty=qty,
        closing_qty=5.0,
        safety_stock_qty=2.0,
        days_of_cover=10.0,
        shortage_qty=0.0,
        stockout_probability=0.05,
        expected_fill_rate=0.99,
    )
    capacity = pd.DataFrame(
        {
            "work_center_id": "WC1",
            "month": months,
            "available_hours": 100.0,
            "required_hours": 80.0 * scale,
            "planned_hours": 80.0 * scale,
            "utilization": 0.8 * scale,
        }
    )
    fam = pd.MultiIndex.from_product([["F1", "F2"], months], names=["family", "month"]).to_frame(
        index=False
    )
    by_family = demand.groupby(["family", "month"], as_index=False)[
        ["consensus_qty", "consensus_revenue"]
    ].sum()
    fam = fam.merge(by_family, on=["family", "month"])
    gaps = fam.assign(
        demand_qty=fam["consensus_qty"], supply_qty=fam["consensus_qty"], gap_qty=0.0, gap_value=0.0
    ).drop(columns=["consensus_qty", "consensus_revenue"])
    fin = fam.assign(
        revenue=fam["consensus_revenue"],
        cogs=fam["consensus_revenue"] * 0.6,
        gross_margin=fam["consensus_revenue"] * 0.4,
        inventory_value=100.0,
        aop_revenue=fam["consensus_revenue"] * 1.1,
        revenue_vs_aop=-fam["consensus_revenue"] * 0.1,
    ).drop(columns=["consensus_qty", "consensus_revenue"])
    kpis = pd.DataFrame(
        {
            "kpi": ["forecast_accuracy", "order_fill_rate"],
            "scope": ["total", "total"],
            "month": pd.Timestamp(plan_month + "-01"),
            "value": [0.8, 0.97],
            "target": [0.75, 0.98],
            "status": ["on_track", "at_risk"],
            "unit": ["ratio", "ratio"],
        }
    )
    scen = pd.DataFrame(
        {
            "scenario": list(SCENARIOS),
            "family": "F1",
            "month": months[0],
            "metric": "revenue",
            "base_value": 50.0,
            "scenario_value": [55.0, 40.0],
            "delta": [5.0, -10.0],
        }
    )
    exceptions = pd.DataFrame(
        {
            "exception_type": ["capacity_overload"],
            "severity": ["high"],
            "scope": ["work_center"],
            "scope_id": ["WC1"],
            "month": months[:1],
            "value": [1.2],
            "threshold": [1.0],
            "reason": ["WC1 needs 120% of its hours; add a shift or move volume"],
            "binding_constraint": ["capacity"],
        }
    )
    return {
        "plan_demand": demand,
        "plan_supply": supply,
        "plan_inventory": inventory,
        "plan_capacity": capacity,
        "plan_gaps": gaps,
        "plan_financials": fin,
        "kpi_scorecard": kpis,
        "scenario_comparison": scen,
        "plan_exceptions": exceptions,
        "plan_materials": pd.DataFrame(
            {
                "component_item_id": "C1",
                "location_id": "DC1",
                "month": months,
                "dependent_demand_qty": 10.0,
                "planned_purchase_qty": 10.0,
                "supplier_capacity_qty": 12.0,
                "closing_qty": 0.0,
                "shortage_qty": 0.0,
            }
        ),
    }


def publish_sample(
    settings: Settings,
    plan_month: str = "2026-01",
    *,
    run_id: str = "run-1",
    scale: float = 1.0,
    checks_failed: int = 0,
) -> PublishResult:
    """Publish :func:`sample_plan` as the next version of ``plan_month``."""
    return publish_plan(
        settings.published_dir,
        plan_month,
        sample_plan(plan_month, scale),
        run_id=run_id,
        input_fingerprint="fp",
        code_version="test",
        checks_passed=8,
        checks_failed=checks_failed,
    )


def sample_settings(home: Path) -> Settings:
    """Settings of a throwaway SOP_HOME (a short run-lock wait for the lock tests)."""
    settings = Settings.from_env({"SOP_HOME": str(home), "SOP_RUN_LOCK_TIMEOUT": "30"})
    settings.ensure_dirs()
    return settings
