"""Stage 4, finance review and follow-up: financials vs AOP, forecast accuracy, KPI scorecard."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.metadata import count_table, money, plan_table_metadata, preview
from sop_pipeline.defs.partitions import MONTHLY_RUNS, plan_month_partitions
from sop_pipeline.defs.resources import MartsResource, SopResource
from sop_pipeline.publish.approval import earlier_plan_snapshots
from sop_pipeline.storage.warehouse import read_plan, replace_plan_rows

FINANCE_TAGS = {"sop_step": "finance_review"}
OWNERS = ["team:finance"]


@dg.asset(
    key=dg.AssetKey(["plan", "plan_financials"]),
    group_name="finance",
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    deps=[
        dg.AssetKey(["plan", "plan_inventory"]),
        dg.AssetKey(["plan", "plan_demand"]),
        dg.AssetKey(["marts", "fct_aop_targets"]),
    ],
    description="Revenue, COGS, gross margin and inventory value vs AOP, one row per family × month.",
    owners=OWNERS,
    tags=FINANCE_TAGS,
    kinds={"python", "duckdb"},
    metadata=plan_table_metadata("plan_financials"),
    check_specs=[
        dg.AssetCheckSpec(
            name="finance_matches_units",
            asset=dg.AssetKey(["plan", "plan_financials"]),
            blocking=True,
            description="Revenue, COGS and inventory value equal the unit plan × prices/costs.",
        )
    ],
    pool="sop_warehouse",
)
def plan_financials(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Value the constrained plan (served units × price/cost) and compare with the AOP."""
    from sop_pipeline.planning.finance import check_finance_matches_units, financials

    month = context.partition_key
    with warehouse.get_connection() as con, marts.reader() as mart:
        demand = read_plan(con, "plan_demand", month)
        inv = read_plan(con, "plan_inventory", month)
        items = mart.read_mart("dim_items")
        aop = mart.read_mart("fct_aop_targets")
    out = financials(demand, inv, items, aop)
    with warehouse.get_connection() as con:
        replace_plan_rows(con, "plan_financials", out, month)
    problems = check_finance_matches_units(out, inv, items)
    cur = sop.settings.base_currency
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(out)),
            "revenue": money(out["revenue"].sum(), cur),
            "gross_margin": money(out["gross_margin"].sum(), cur),
            "aop_revenue": money(out["aop_revenue"].sum(skipna=True), cur),
            "revenue_vs_aop (difference)": money(out["revenue_vs_aop"].sum(skipna=True), cur),
            "preview": preview(out, table="plan_financials"),
        }
    )
    yield dg.AssetCheckResult(
        check_name="finance_matches_units",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems[:5]) if problems else None,
    )


@dg.asset(
    key=dg.AssetKey(["plan", "forecast_accuracy"]),
    group_name="finance",
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    deps=[dg.AssetKey(["plan", "plan_demand"]), dg.AssetKey(["marts", "fct_demand_history"])],
    description=(
        "Accuracy of earlier plans' naive, statistical and consensus forecasts against actuals, "
        "one row per forecast kind × level × lag × month."
    ),
    owners=["team:demand-planning"],
    tags={"sop_step": "follow_up"},
    kinds={"python", "duckdb"},
    metadata=plan_table_metadata("forecast_accuracy"),
    pool="sop_warehouse",
)
def forecast_accuracy(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Score every earlier plan's forecast snapshot against the actuals known at this close."""
    import pandas as pd

    from sop_pipeline.planning.accuracy import forecast_accuracy as score
    from sop_pipeline.storage.warehouse import table_exists

    month = context.partition_key
    with warehouse.get_connection() as con, marts.reader() as mart:
        # earlier plans as approved, where a month has an approved plan (docs/kpis.md)
        snapshots = earlier_plan_snapshots(con, sop.settings.sop_home, month)
        history = mart.read_mart("fct_demand_history")
        items = mart.read_mart("dim_items")
    out = score(snapshots, history[["item_id", "location_id", "month", "demand_qty"]], items)
    with warehouse.get_connection() as con:
        # the forecast stage's own rolling-origin backtest (forecast_kind *_backtest): more
        # origins and lags than the earlier published plans, with interval coverage
        if table_exists(con, "plan", "backtest_accuracy"):
            backtest = read_plan(con, "backtest_accuracy", month)
            if len(backtest):
                out = pd.concat([out, backtest[out.columns]], ignore_index=True)
        replace_plan_rows(con, "forecast_accuracy", out, month)
    latest = out[out["month"] == out["month"].max()] if len(out) else out
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(out)),
            "earlier_plans_scored": dg.MetadataValue.int(
                int(snapshots["plan_month"].nunique()) if len(snapshots) else 0
            ),
            "latest_month": preview(latest, rows=27, table="forecast_accuracy"),
        }
    )


@dg.asset(
    key=dg.AssetKey(["plan", "kpi_scorecard"]),
    group_name="finance",
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    deps=[
        dg.AssetKey(["plan", "plan_financials"]),
        dg.AssetKey(["plan", "plan_capacity"]),
        dg.AssetKey(["plan", "forecast_accuracy"]),
        dg.AssetKey(["marts", "fct_order_lines"]),
        dg.AssetKey(["marts", "fct_production_orders"]),
        dg.AssetKey(["marts", "fct_inventory_history"]),
        dg.AssetKey(["plan", "plan_inventory"]),
    ],
    description="S&OP KPI scorecard with targets and status, one row per KPI × scope × month.",
    owners=["team:sop-process"],
    tags={"sop_step": "follow_up"},
    kinds={"python", "duckdb"},
    metadata=plan_table_metadata("kpi_scorecard"),
    pool="sop_warehouse",
)
def kpi_scorecard(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Past KPIs from actuals and earlier plans, forward KPIs from the new plan."""
    from sop_pipeline.planning.kpi_formulas import KpiInputs
    from sop_pipeline.planning.kpis import kpi_scorecard as scorecard

    month = context.partition_key
    with warehouse.get_connection() as con, marts.reader() as mart:
        inputs = KpiInputs(
            order_lines=mart.read_mart("fct_order_lines"),
            production_orders=mart.read_mart("fct_production_orders"),
            inventory_history=mart.read_mart("fct_inventory_history"),
            inventory_position=mart.read_mart("fct_inventory_position"),
            demand_history=mart.read_mart("fct_demand_history"),
            plan_demand=read_plan(con, "plan_demand", month),
            plan_capacity=read_plan(con, "plan_capacity", month),
            plan_financials=read_plan(con, "plan_financials", month),
            aop=mart.read_mart("fct_aop_targets"),
            accuracy=read_plan(con, "forecast_accuracy", month),
            items=mart.read_mart("dim_items"),
            snapshots=earlier_plan_snapshots(con, sop.settings.sop_home, month),
            plan_inventory=read_plan(con, "plan_inventory", month),
            routings=mart.read_mart("fct_routings"),
        )
    # the projected service level is scored against the service level safety stock targets
    out = scorecard(
        inputs, month, {"projected_service_level": {"target": sop.settings.service_level}}
    )
    with warehouse.get_connection() as con:
        replace_plan_rows(con, "kpi_scorecard", out, month)
    missing = out.attrs.get("missing", {})
    total = out[out["scope"] == "total"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(out)),
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
        }
    )
