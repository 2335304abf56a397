"""Stage 2, demand review: statistical forecast (model tournament) and the consensus demand plan."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.demand.metadata import demand_metadata, forecast_facts, forecast_metadata
from sop_pipeline.defs.metadata import plan_table_asset, qty, table_ins
from sop_pipeline.defs.resources import MartsResource, SopResource
from sop_pipeline.defs.retry import no_retry_on_validation
from sop_pipeline.storage.plan_tables import PlanTables, StageRecord
from sop_pipeline.storage.warehouse import read_plan

DEMAND_TAGS = {"sop_step": "demand_review"}
OWNERS = ["team:demand-planning"]


@plan_table_asset(
    "stat_forecast",
    group_name="demand",
    deps=[dg.AssetKey(["marts", "fct_demand_history"]), dg.AssetKey(["marts", "dim_items"])],
    description="Statistical forecast with 80/95% ranges, one row per item × location × horizon month.",
    owners=OWNERS,
    tags=DEMAND_TAGS,
    kinds={"python", "statsforecast", "duckdb"},
)
@no_retry_on_validation()
def stat_forecast(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Run the per-series model tournament and keep the forecast and its backtest.

    When history, items, settings and code are what they were at this month's last run, the
    stored forecast is reused instead of refitting (see ``sop_pipeline.storage.incremental``). The
    statsforecast calls run on ``SOP_FORECAST_ENGINE`` (local, dask or spark); a cluster
    started for the run is shut down when the forecast ends, also on failure.
    """
    from sop_pipeline.planning.statistical import (
        FORECAST_STAGE,
        HISTORY_COLUMNS,
        forecast_fingerprint,
        statistical_forecast,
    )
    from sop_pipeline.storage import incremental

    settings = sop.settings
    month = context.partition_key
    with marts.reader() as mart:
        history = mart.read_mart("fct_demand_history")[HISTORY_COLUMNS]
        items = mart.read_mart("dim_items")
    fp, code = forecast_fingerprint(history, items, settings)
    with warehouse.get_connection() as con:
        reuse = incremental.find_reusable(con, FORECAST_STAGE, month, fp)
    if reuse is not None:
        context.log.info(
            f"stat_forecast {month}: history, items, settings and code unchanged since run "
            f"{reuse.run_id[:8]} ({reuse.computed_at}); reusing its forecast (fingerprint {fp[:12]})."
        )
        return dg.MaterializeResult(
            metadata=forecast_metadata(reuse.metadata, reused_from=reuse.run_id),
            data_version=dg.DataVersion(fp),
        )
    stage = statistical_forecast(history, items, month, settings, log=context.log.info)
    facts = forecast_facts(stage)
    # the IO manager writes the forecast, its side tables and then the record of this result
    return dg.MaterializeResult(
        value=PlanTables(stage.tables(), record=StageRecord(FORECAST_STAGE, fp, code, facts)),
        metadata=forecast_metadata(facts, reused_from=None),
        data_version=dg.DataVersion(fp),
    )


@plan_table_asset(
    "plan_demand",
    group_name="demand",
    ins=table_ins(plans=("stat_forecast",), marts=("fct_crm_pipeline", "fct_demand_overrides")),
    description="Consensus demand plan, one row per item × location × horizon month (units and revenue).",
    owners=OWNERS,
    tags=DEMAND_TAGS,
)
@no_retry_on_validation()
def plan_demand(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    marts: MartsResource,
    stat_forecast: pd.DataFrame,
    fct_crm_pipeline: pd.DataFrame,
    fct_demand_overrides: pd.DataFrame,
):
    """Statistical forecast + weighted CRM pipeline + planner overrides → consensus."""
    from sop_pipeline.planning.consensus import consensus_plan

    # items and history are read, not inputs: the asset graph's edges stay as they were
    with marts.reader() as mart:
        items = mart.read_mart("dim_items")
        history = mart.read_mart("fct_demand_history")
    result = consensus_plan(
        stat_forecast, items, fct_crm_pipeline, fct_demand_overrides, history, context.partition_key
    )
    # the IO manager writes plan_demand, its override log and this plan's forecast snapshot
    return dg.Output(
        PlanTables(result.tables()),
        metadata=demand_metadata(result, history, sop.settings.base_currency),
    )


@dg.asset_check(
    asset=stat_forecast,
    blocking=True,
    description=(
        "forecast_levels (item, location, family, total) add up to the item × location "
        "forecast: points are sums, ranges are ordered and never wider than the sum of the parts."
    ),
)
def stat_forecast_levels_coherent(
    context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource, marts: MartsResource
):
    """Blocking: every reconciled level (location, item, family, total) adds up to the items."""
    from sop_pipeline.planning.hierarchy import coherence_problems

    month = context.partition_key if context.has_partition_key else None
    with warehouse.get_connection() as con, marts.reader() as mart:
        bottom = read_plan(con, "stat_forecast", month)
        levels = read_plan(con, "forecast_levels", month)
        items = mart.read_mart("dim_items")
    fam = items.drop_duplicates("item_id").set_index("item_id")["family"]
    bottom = bottom.assign(family=bottom["item_id"].map(fam).fillna("(unknown)"))
    problems = coherence_problems(bottom, levels)
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "problems": dg.MetadataValue.int(len(problems)),
            "level_rows": dg.MetadataValue.int(len(levels)),
        },
        description="; ".join(problems[:5]) if problems else None,
    )


# 1e-12 of the total: a real mistake (a lost or doubled row) is orders of magnitude larger
LEVELS_REL_TOL = 1e-12


@dg.asset_check(
    asset=plan_demand,
    blocking=True,
    description="Family and total consensus equal the sum of items.",
)
def plan_demand_levels_add_up(context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource):
    """Blocking: family and total consensus equal the sum of the items."""
    month = context.partition_key if context.has_partition_key else None
    with warehouse.get_connection() as con:
        row = con.execute(
            """
            with item_level as (
                select family, month, sum(consensus_qty) as qty, sum(consensus_revenue) as rev
                from plan.plan_demand where plan_month = ? group by all
            ), total as (select sum(consensus_qty) as qty, sum(consensus_revenue) as rev
                         from plan.plan_demand where plan_month = ?)
            select abs((select sum(qty) from item_level) - total.qty),
                   abs((select sum(rev) from item_level) - total.rev),
                   (select count(*) from plan.plan_demand where plan_month = ? and consensus_qty < 0),
                   abs(total.qty), abs(total.rev)
            from total
            """,
            [month, month, month],
        ).fetchone()
    diff_qty, diff_rev, negatives, total_qty, total_rev = row if row else (None,) * 5
    # floating-point sums in a different order differ in the last bits: relative tolerance
    # (at 50,000 series the total is ~1e8 units and the two sums differ by ~1e-6)
    passed = (
        row is not None
        and diff_qty is not None
        and diff_qty <= LEVELS_REL_TOL * max(1.0, total_qty or 0.0)
        and diff_rev <= LEVELS_REL_TOL * max(1.0, total_rev or 0.0)
        and negatives == 0
    )
    return dg.AssetCheckResult(
        passed=bool(passed),
        metadata={
            "qty_difference (units)": qty(diff_qty or 0, 6),
            "negative_rows": dg.MetadataValue.int(int(negatives or 0)),
        },
        description=None
        if passed
        else "family/total levels do not add up to items, or negative consensus",
    )
