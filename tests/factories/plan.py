"""Small but complete plans (no pipeline run).

:func:`sample_plan` for the approval and workbook tests (three items at two DCs, published
with :func:`publish_sample`), and :func:`sample_tables` for the publication tests (two items
at one DC, with ``forecast_accuracy``; published with :func:`publish_candidate`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from factories.frames import demand_frame, inventory_frame, supply_frame
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
    demand = demand_frame(base.assign(family=base["item_id"].map(ITEMS)), qty, qty * 5)
    supply = supply_frame(base, qty)
    inventory = inventory_frame(base, qty, qty)
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


PUBLISH_MONTHS = pd.to_datetime(["2026-02-01", "2026-03-01", "2026-04-01"])


def sample_tables(scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """A tiny but complete candidate plan (every published table, a few rows each)."""
    keys = pd.MultiIndex.from_product(
        [["I1", "I2"], ["DC1"], PUBLISH_MONTHS], names=["item_id", "location_id", "month"]
    )
    base = keys.to_frame(index=False)
    n = len(base)
    qty = pd.Series(range(1, n + 1), dtype="float64") * 10 * scale
    demand = demand_frame(
        base.assign(family=base["item_id"].map({"I1": "F1", "I2": "F2"})), qty, qty * 5
    )
    supply = supply_frame(base, qty)
    inventory = inventory_frame(base, qty, qty)
    capacity = pd.DataFrame(
        {
            "work_center_id": ["WC1"] * 3,
            "month": PUBLISH_MONTHS,
            "available_hours": 100.0,
            "required_hours": 80.0 * scale,
            "planned_hours": 80.0 * scale,
            "utilization": 0.8 * scale,
        }
    )
    fam = pd.MultiIndex.from_product(
        [["F1", "F2"], PUBLISH_MONTHS], names=["family", "month"]
    ).to_frame(index=False)
    gaps = fam.assign(demand_qty=10.0 * scale, supply_qty=10.0 * scale, gap_qty=0.0, gap_value=0.0)
    fin = fam.assign(
        revenue=50.0 * scale,
        cogs=30.0,
        gross_margin=20.0,
        inventory_value=100.0,
        aop_revenue=55.0,
        revenue_vs_aop=-5.0,
    )
    kpis = pd.DataFrame(
        {
            "kpi": ["forecast_accuracy", "order_fill_rate"],
            "scope": ["total", "total"],
            "month": pd.to_datetime(["2026-01-01", "2026-01-01"]),
            "value": [0.8 * scale, 0.97],
            "target": [0.75, 0.98],
            "status": ["on_track", "at_risk"],
            "unit": ["ratio", "ratio"],
        }
    )
    acc = pd.DataFrame(
        {
            "forecast_kind": ["naive", "statistical"],
            "level": ["total", "total"],
            "lag": [1, 1],
            "month": pd.to_datetime(["2026-01-01"] * 2),
            "mape": [0.2, 0.1],
            "wape": [0.2, 0.1],
            "bias": [0.0, 0.05],
            "mase": [1.0, 0.7],
            "coverage_80": [None, 0.81],
            "coverage_95": [None, 0.94],
            "interval_score": [None, 3.2],
        }
    )
    scen = pd.DataFrame(
        {
            "scenario": ["promo"],
            "family": ["F1"],
            "month": PUBLISH_MONTHS[:1],
            "metric": ["revenue"],
            "base_value": [50.0],
            "scenario_value": [60.0],
            "delta": [10.0],
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
        "forecast_accuracy": acc,
        "scenario_comparison": scen,
    }


def publish_candidate(
    pub: Path, month: str = "2026-01", run_id: str = "run-1", **kw
) -> PublishResult:
    tables = kw.pop("tables", None) or sample_tables()
    return publish_plan(
        pub,
        month,
        tables,
        run_id=run_id,
        input_fingerprint="fp-123",
        code_version="0.1.0",
        checks_passed=12,
        checks_failed=0,
        **kw,
    )
