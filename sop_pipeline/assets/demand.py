"""Stage 2, demand review: statistical forecast (model tournament) and the consensus demand plan."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from sop_pipeline.assets._meta import (
    count_table,
    family_forecast_png,
    money,
    plan_table_metadata,
    preview,
    qty,
    seconds_table,
    share,
)
from sop_pipeline.orchestration import no_retry_on_validation
from sop_pipeline.partitions import MONTHLY_RUNS, plan_month_partitions
from sop_pipeline.resources import MartsResource, SopResource
from sop_pipeline.warehouse import read_plan, replace_plan_rows

DEMAND_TAGS = {"sop_step": "demand_review"}
OWNERS = ["team:demand-planning"]


@dg.asset(
    key=dg.AssetKey(["plan", "stat_forecast"]),
    group_name="demand",
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    deps=[dg.AssetKey(["marts", "fct_demand_history"]), dg.AssetKey(["marts", "dim_items"])],
    description="Statistical forecast with 80/95% ranges, one row per item × location × horizon month.",
    owners=OWNERS,
    tags=DEMAND_TAGS,
    kinds={"python", "statsforecast", "duckdb"},
    metadata=plan_table_metadata("stat_forecast"),
    pool="sop_warehouse",
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
    stored forecast is reused instead of refitting (see ``sop_pipeline.incremental``). The
    statsforecast calls run on ``SOP_FORECAST_ENGINE`` (local, dask or spark); a cluster
    started for the run is shut down when the forecast ends, also on failure.
    """
    import statsforecast

    from sop_pipeline import incremental
    from sop_pipeline.planning.engines import engine_from_settings
    from sop_pipeline.planning.forecast import forecast_demand

    settings = sop.settings
    month = context.partition_key
    with marts.reader() as mart:
        history = mart.read_mart("fct_demand_history")
        items = mart.read_mart("dim_items")
    history = history[["item_id", "location_id", "month", "demand_qty"]]
    code = incremental.code_version(*FORECAST_CODE)
    fp = incremental.fingerprint(
        {"history": history, "items": items},
        {
            "horizon": settings.horizon_months,
            "windows": settings.backtest_windows,
            "candidates": "auto",
            "statsforecast": statsforecast.__version__,
        },
        code,
    )
    with warehouse.get_connection() as con:
        reuse = incremental.find_reusable(con, "stat_forecast", month, fp)
    if reuse is not None:
        context.log.info(
            f"stat_forecast {month}: history, items, settings and code unchanged since run "
            f"{reuse.run_id[:8]} ({reuse.computed_at}); reusing its forecast (fingerprint {fp[:12]})."
        )
        return dg.MaterializeResult(
            metadata=_forecast_metadata(reuse.metadata, reused_from=reuse.run_id),
            data_version=dg.DataVersion(fp),
        )
    with engine_from_settings(settings) as engine:
        context.log.info(f"forecast engine: {engine.describe()}")
        result = forecast_demand(
            history,
            items,
            month,
            settings.horizon_months,
            windows=settings.backtest_windows,
            n_jobs=settings.forecast_n_jobs,
            engine=engine,
        )
        engine_info = engine.describe()
    summary = result.summary()
    facts = {
        "rows": len(result.forecast),
        "series": summary["series"],
        "series_by_model": summary.get("by_model", {}),
        "series_by_class": summary.get("by_class", {}),
        "error_metric": str(summary.get("error_metric")),
        "median_chosen_error": float(summary.get("median_chosen_error") or 0.0),
        "median_naive_error": float(summary.get("median_naive_error") or 0.0),
        "share_beating_naive": float(summary.get("share_beating_naive") or 0.0),
        "seconds_by_stage": summary.get("seconds", {}),
        "backtest_preview": result.backtest.head(10).to_markdown(index=False),
        "forecast_engine": engine_info,
    }
    with warehouse.get_connection() as con:
        incremental.forget(con, "stat_forecast", month)
        n_fc = replace_plan_rows(con, "stat_forecast", result.forecast, month)
        n_bt = replace_plan_rows(con, "backtest_results", result.backtest, month)
        incremental.record(
            con,
            "stat_forecast",
            month,
            fp,
            code,
            context.run_id,
            {"stat_forecast": n_fc, "backtest_results": n_bt},
            facts,
        )
    return dg.MaterializeResult(
        metadata=_forecast_metadata(facts, reused_from=None), data_version=dg.DataVersion(fp)
    )


# the modules whose code decides the statistical forecast (their source is its code version)
FORECAST_CODE = (
    "sop_pipeline.planning.forecast",
    "sop_pipeline.planning.engines",
    "sop_pipeline.months",
)


def _forecast_metadata(facts: dict, reused_from: str | None) -> dict[str, dg.MetadataValue]:
    return {
        "dagster/row_count": dg.MetadataValue.int(int(facts["rows"])),
        "series": dg.MetadataValue.int(int(facts["series"])),
        "series_by_model": count_table(facts["series_by_model"], "model", "series"),
        "series_by_class": count_table(facts["series_by_class"], "series_class", "series"),
        "error_metric": dg.MetadataValue.text(facts["error_metric"]),
        "median_chosen_error": share(facts["median_chosen_error"]),
        "median_naive_error": share(facts["median_naive_error"]),
        "share_beating_naive": share(facts["share_beating_naive"]),
        "seconds_by_stage": seconds_table(facts["seconds_by_stage"]),
        "backtest_preview": dg.MetadataValue.md(facts["backtest_preview"] or "_empty_"),
        "forecast_engine": dg.MetadataValue.text(
            str(facts.get("forecast_engine", {}).get("name", ""))
        ),
        "forecast_engine_detail": dg.MetadataValue.json(facts.get("forecast_engine", {})),
        "reused": dg.MetadataValue.bool(reused_from is not None),
        "reused_from_run": dg.MetadataValue.text(reused_from or ""),
    }


@dg.asset(
    key=dg.AssetKey(["plan", "plan_demand"]),
    group_name="demand",
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    deps=[
        stat_forecast,
        dg.AssetKey(["marts", "fct_crm_pipeline"]),
        dg.AssetKey(["marts", "fct_demand_overrides"]),
    ],
    description="Consensus demand plan, one row per item × location × horizon month (units and revenue).",
    owners=OWNERS,
    tags=DEMAND_TAGS,
    kinds={"python", "duckdb"},
    metadata=plan_table_metadata("plan_demand"),
    pool="sop_warehouse",
)
@no_retry_on_validation()
def plan_demand(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Statistical forecast + weighted CRM pipeline + planner overrides → consensus."""
    from sop_pipeline.planning.consensus import build_consensus
    from sop_pipeline.planning.forecast import snapshot_rows

    month = context.partition_key
    with warehouse.get_connection() as con, marts.reader() as mart:
        stat = read_plan(con, "stat_forecast", month)
        items = mart.read_mart("dim_items")
        pipeline = mart.read_mart("fct_crm_pipeline")
        overrides = mart.read_mart("fct_demand_overrides")
        history = mart.read_mart("fct_demand_history")
    result = build_consensus(stat, items, pipeline, overrides, history, month)
    demand = result.plan_demand
    # Keep what this plan month expected, by lag, so later months can score it
    snap = demand.merge(
        stat[["item_id", "location_id", "month", "naive_forecast_qty"]],
        on=["item_id", "location_id", "month"],
        how="left",
    ).rename(
        columns={
            "naive_forecast_qty": "naive_qty",
            "stat_forecast_qty": "stat_qty",
        }
    )
    snap = snapshot_rows(
        snap[
            ["item_id", "location_id", "family", "month", "naive_qty", "stat_qty", "consensus_qty"]
        ],
        month,
    )
    snap["unit_price"] = snap["item_id"].map(items.set_index("item_id")["unit_price"])
    with warehouse.get_connection() as con:
        replace_plan_rows(con, "plan_demand", demand, month)
        replace_plan_rows(con, "override_log", result.override_log, month)
        replace_plan_rows(con, "forecast_snapshots", snap, month)
    totals = demand[
        [
            "stat_forecast_qty",
            "crm_adjustment_qty",
            "override_qty",
            "consensus_qty",
            "consensus_revenue",
        ]
    ].sum()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(demand)),
            "stat_forecast_qty (units)": qty(totals["stat_forecast_qty"]),
            "crm_adjustment_qty (units)": qty(totals["crm_adjustment_qty"]),
            "override_qty (units)": qty(totals["override_qty"]),
            "consensus_qty (units)": qty(totals["consensus_qty"]),
            "consensus_revenue": money(totals["consensus_revenue"], sop.settings.base_currency),
            "overrides_applied": dg.MetadataValue.int(int(len(result.override_log))),
            "families": dg.MetadataValue.int(int(demand["family"].nunique())),
            "plot": family_forecast_png(history, demand),
            "preview": preview(demand, table="plan_demand"),
        }
    )


# 1e-12 of the total: a real mistake (a lost or doubled row) is orders of magnitude larger
LEVELS_REL_TOL = 1e-12


@dg.asset_check(
    asset=plan_demand,
    blocking=True,
    description="Family and total consensus equal the sum of items.",
)
def plan_demand_levels_add_up(context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource):
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
