"""Stage 5, pre-S&OP / executive S&OP: what-if scenarios and the plan-change waterfall."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from sop_pipeline.core.months import month_key, month_start, parse_month
from sop_pipeline.defs.metadata import (
    plan_table_asset,
    preview,
    table_ins,
    text_list,
)
from sop_pipeline.defs.resources import MartsResource, SopResource
from sop_pipeline.defs.retry import no_retry_on_validation
from sop_pipeline.storage.plan_tables import read_plan_month
from sop_pipeline.storage.warehouse import read_plan, table_exists

EXEC_TAGS = {"sop_step": "executive_sop"}
OWNERS = ["team:sop-process"]


@plan_table_asset(
    "scenario_comparison",
    group_name="executive",
    deps=[dg.AssetKey(["plan", "plan_financials"]), dg.AssetKey(["plan", "plan_gaps"])],
    description="What-if scenarios vs the base plan, one row per scenario × family × month × metric.",
    owners=OWNERS,
    tags=EXEC_TAGS,
    kinds={"python", "highs", "duckdb"},
)
@no_retry_on_validation()
def scenario_comparison(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Re-plan supply and finance for each scenario of the month's scenarios file."""
    from sop_pipeline.planning.scenarios import (
        ScenarioInputs,
        read_scenarios,
        run_scenarios,
        stored_base_metrics,
    )

    settings = sop.settings
    month = context.partition_key
    with warehouse.get_connection() as con, marts.reader() as mart:
        inputs = ScenarioInputs.from_warehouse(
            con,
            month,
            marts=mart,
            strategy=settings.strategy,
            service_level=settings.service_level,
            overtime_share=settings.overtime_share,
            unmet_demand=settings.unmet_demand,
        )
        scenarios = read_scenarios(con, month) if table_exists(con, "raw", "scenarios") else []
        # the base as the supply and finance assets stored it: not planned a second time
        base = stored_base_metrics(con, month, inputs) if scenarios else None
    out = run_scenarios(
        inputs,
        scenarios,
        base=base,
        n_jobs=settings.scenario_n_jobs,
        progress=lambda done, total, name: context.log.info(f"progress {done}/{total}: {name}"),
    )
    summary = (
        out[out["metric"].isin(["revenue", "gap_qty", "inventory_value"])]
        .groupby(["scenario", "metric"], as_index=False)["delta"]
        .sum()
        .pivot(index="scenario", columns="metric", values="delta")
        .reset_index()
        if len(out)
        else pd.DataFrame()
    )
    return dg.Output(
        out,
        metadata={
            "scenarios": dg.MetadataValue.int(len(scenarios)),
            "notes": text_list([str(n) for n in out.attrs.get("notes", [])]),
            "deltas_over_horizon": preview(summary, rows=20),
        },
    )


@plan_table_asset(
    "plan_waterfall",
    group_name="executive",
    ins=table_ins(plans=("plan_demand", "plan_inventory"), marts=("dim_items",)),
    description="Why this plan differs from last month's, one row per family × component (units and revenue).",
    owners=OWNERS,
    tags=EXEC_TAGS,
)
def plan_waterfall(
    context: dg.AssetExecutionContext,
    warehouse: DuckDBResource,
    plan_demand: pd.DataFrame,
    plan_inventory: pd.DataFrame,
    dim_items: pd.DataFrame,
):
    """Bridge last month's plan to this month's: new actuals, model, CRM, overrides, capacity."""
    from sop_pipeline.planning.waterfall import check_waterfall, plan_change_waterfall

    month = context.partition_key
    previous = month_key(month_start(parse_month(month), -1))
    # last month's plan and both months' backtests (a side table of the forecast stage)
    with warehouse.get_connection() as con:
        backtest = read_plan(con, "backtest_results", month)
        prev = {}
        for t in ("plan_demand", "plan_inventory", "backtest_results"):
            frame = read_plan_month(con, t, previous)
            prev[t] = frame if frame is not None and len(frame) else None
    if prev["plan_demand"] is None:
        out = pd.DataFrame(columns=["family", "component", "qty", "revenue", "sort_order"])
        context.log.info(f"no plan of {previous} in the working database: no waterfall for {month}")
    else:
        out = plan_change_waterfall(
            prev["plan_demand"],
            prev["plan_inventory"],
            prev["backtest_results"],
            plan_demand,
            plan_inventory,
            backtest,
            dim_items,
        )
        problems = check_waterfall(out)
        if problems:
            raise ValueError("plan-change waterfall does not add up: " + "; ".join(problems[:5]))
    total = out.groupby("component", as_index=False)[["qty", "revenue"]].sum() if len(out) else out
    return dg.Output(
        out,
        metadata={
            "compared_with": dg.MetadataValue.text(
                previous if prev["plan_demand"] is not None else "none"
            ),
            "total_by_component": preview(total, rows=12),
        },
    )
