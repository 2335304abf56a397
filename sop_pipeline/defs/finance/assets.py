"""Stage 4, finance review and follow-up: financials vs AOP, forecast accuracy, KPI scorecard."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.metadata import (
    count_table,
    money,
    plan_table_asset,
    preview,
    table_ins,
)
from sop_pipeline.defs.resources import SopResource
from sop_pipeline.publish.approval import earlier_plan_snapshots
from sop_pipeline.storage.plan_tables import read_plan_month
from sop_pipeline.storage.warehouse import read_plan_history

FINANCE_TAGS = {"sop_step": "finance_review"}
OWNERS = ["team:finance"]
#: what the KPI scorecard reads of this month's plan, and of the marts
KPI_PLAN_INPUTS = (
    "plan_demand",
    "plan_capacity",
    "plan_financials",
    "forecast_accuracy",
    "plan_inventory",
)
KPI_MART_INPUTS = (
    "fct_order_lines",
    "fct_production_orders",
    "fct_inventory_history",
    "fct_inventory_position",
    "fct_demand_history",
    "fct_aop_targets",
    "dim_items",
    "fct_routings",
)


@plan_table_asset(
    "plan_financials",
    group_name="finance",
    ins=table_ins(plans=("plan_demand", "plan_inventory"), marts=("dim_items", "fct_aop_targets")),
    description="Revenue, COGS, gross margin and inventory value vs AOP, one row per family × month.",
    owners=OWNERS,
    tags=FINANCE_TAGS,
    check_specs=[
        dg.AssetCheckSpec(
            name="finance_matches_units",
            asset=dg.AssetKey(["plan", "plan_financials"]),
            blocking=True,
            description="Revenue, COGS and inventory value equal the unit plan × prices/costs.",
        )
    ],
)
def plan_financials(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    plan_demand: pd.DataFrame,
    plan_inventory: pd.DataFrame,
    dim_items: pd.DataFrame,
    fct_aop_targets: pd.DataFrame,
):
    """Value the constrained plan (served units × price/cost) and compare with the AOP."""
    from sop_pipeline.planning.finance import check_finance_matches_units, financials

    out = financials(plan_demand, plan_inventory, dim_items, fct_aop_targets)
    problems = check_finance_matches_units(out, plan_inventory, dim_items)
    cur = sop.settings.base_currency
    yield dg.Output(
        out,
        metadata={
            "revenue": money(out["revenue"].sum(), cur),
            "gross_margin": money(out["gross_margin"].sum(), cur),
            "aop_revenue": money(out["aop_revenue"].sum(skipna=True), cur),
            "revenue_vs_aop (difference)": money(out["revenue_vs_aop"].sum(skipna=True), cur),
            "preview": preview(out, table="plan_financials"),
        },
    )
    yield dg.AssetCheckResult(
        check_name="finance_matches_units",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems[:5]) if problems else None,
    )


@plan_table_asset(
    "forecast_accuracy",
    group_name="finance",
    deps=[dg.AssetKey(["plan", "plan_demand"])],
    ins=table_ins(marts=("fct_demand_history", "dim_items")),
    description=(
        "Accuracy of earlier plans' naive, statistical and consensus forecasts against actuals, "
        "one row per forecast kind × level × lag × month."
    ),
    owners=["team:demand-planning"],
    tags={"sop_step": "follow_up"},
)
def forecast_accuracy(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    fct_demand_history: pd.DataFrame,
    dim_items: pd.DataFrame,
):
    """Score every earlier plan's forecast snapshot against the actuals known at this close."""
    from sop_pipeline.planning.accuracy import forecast_accuracy as score
    from sop_pipeline.planning.accuracy import plan_ranges

    month = context.partition_key
    with warehouse.get_connection() as con:
        # earlier plans as approved, where a month has an approved plan (docs/kpis.md)
        snapshots = earlier_plan_snapshots(con, sop.settings.sop_home, month)
        # their statistical ranges, so the published plans' coverage is scored too
        ranges = plan_ranges(
            read_plan_history(con, "stat_forecast", month),
            read_plan_history(con, "forecast_levels", month),
        )
        # the forecast stage's own rolling-origin backtest (forecast_kind *_backtest): more
        # origins and lags than the earlier published plans, with interval coverage
        backtest = read_plan_month(con, "backtest_accuracy", month)
    history = fct_demand_history[["item_id", "location_id", "month", "demand_qty"]]
    out = score(snapshots, history, dim_items, ranges=ranges)
    if backtest is not None and len(backtest):
        out = pd.concat([out, backtest[out.columns]], ignore_index=True)
    latest = out[out["month"] == out["month"].max()] if len(out) else out
    return dg.Output(
        out,
        metadata={
            "earlier_plans_scored": dg.MetadataValue.int(
                int(snapshots["plan_month"].nunique()) if len(snapshots) else 0
            ),
            "latest_month": preview(latest, rows=27, table="forecast_accuracy"),
        },
    )


@plan_table_asset(
    "kpi_scorecard",
    group_name="finance",
    ins=table_ins(plans=KPI_PLAN_INPUTS, marts=KPI_MART_INPUTS),
    description="S&OP KPI scorecard with targets and status, one row per KPI × scope × month.",
    owners=["team:sop-process"],
    tags={"sop_step": "follow_up"},
)
def kpi_scorecard(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    **frames: pd.DataFrame,
):
    """Past KPIs from actuals and earlier plans, forward KPIs from the new plan."""
    from sop_pipeline.planning.kpi_formulas import KpiInputs
    from sop_pipeline.planning.kpis import kpi_scorecard as scorecard

    month = context.partition_key
    with warehouse.get_connection() as con:
        snapshots = earlier_plan_snapshots(con, sop.settings.sop_home, month)
    inputs = KpiInputs(
        order_lines=frames["fct_order_lines"],
        production_orders=frames["fct_production_orders"],
        inventory_history=frames["fct_inventory_history"],
        inventory_position=frames["fct_inventory_position"],
        demand_history=frames["fct_demand_history"],
        plan_demand=frames["plan_demand"],
        plan_capacity=frames["plan_capacity"],
        plan_financials=frames["plan_financials"],
        aop=frames["fct_aop_targets"],
        accuracy=frames["forecast_accuracy"],
        items=frames["dim_items"],
        snapshots=snapshots,
        plan_inventory=frames["plan_inventory"],
        routings=frames["fct_routings"],
    )
    # the projected service level is scored against the service level safety stock targets
    out = scorecard(
        inputs, month, {"projected_service_level": {"target": sop.settings.service_level}}
    )
    missing = out.attrs.get("missing", {})
    total = out[out["scope"] == "total"]
    return dg.Output(
        out,
        metadata={
            "off_track": dg.MetadataValue.int(int((out["status"] == "off_track").sum())),
            "at_risk": dg.MetadataValue.int(int((out["status"] == "at_risk").sum())),
            "missing_kpis": dg.MetadataValue.md(
                "\n".join(
                    f"- `{k}`: {v}"
                    for k, v in (
                        dict(missing).items()
                        if isinstance(missing, dict)
                        else ((m, "missing") for m in missing)
                    )
                )
                or "_none_"
            ),
            "status_counts": count_table(out["status"].value_counts().to_dict(), "status", "rows"),
            "total_scope": preview(
                total[["kpi", "month", "value", "target", "status"]], rows=20, table="kpi_scorecard"
            ),
        },
    )
