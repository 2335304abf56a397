"""Stage 2, demand review: statistical forecast (model tournament) and the consensus demand plan."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.metadata import (
    count_table,
    family_forecast_png,
    money,
    plan_table_metadata,
    preview,
    qty,
    seconds_table,
    share,
)
from sop_pipeline.defs.partitions import MONTHLY_RUNS, plan_month_partitions
from sop_pipeline.defs.resources import MartsResource, SopResource
from sop_pipeline.defs.retry import no_retry_on_validation
from sop_pipeline.storage.warehouse import read_plan, replace_plan_rows

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
    stored forecast is reused instead of refitting (see ``sop_pipeline.storage.incremental``). The
    statsforecast calls run on ``SOP_FORECAST_ENGINE`` (local, dask or spark); a cluster
    started for the run is shut down when the forecast ends, also on failure.
    """
    import statsforecast

    from sop_pipeline.planning.accuracy import backtest_accuracy
    from sop_pipeline.planning.engines import engine_from_settings
    from sop_pipeline.planning.forecast import forecast_demand
    from sop_pipeline.planning.hierarchy import (
        backtest_levels,
        level_factors,
        level_intervals,
        reconcile_forecast,
    )
    from sop_pipeline.storage import incremental

    settings = sop.settings
    month = context.partition_key
    with marts.reader() as mart:
        history = mart.read_mart("fct_demand_history")
        items = mart.read_mart("dim_items")
    history = history[["item_id", "location_id", "month", "demand_qty"]]
    code = incremental.source_hash(*FORECAST_CODE)
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
        # family and total forecasts reconciled with the items (method chosen by backtest)
        result, reconciliation = reconcile_forecast(
            result,
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
    factors = level_factors(result.backtest_points, items)
    levels = level_intervals(result.forecast, factors, month, items)
    bt_accuracy = backtest_accuracy(backtest_levels(result.backtest_points, items), history, items)
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
        **_selection_facts(result.selection, bt_accuracy, factors),
        "reconciliation": reconciliation.facts(),
        "reconciliation_method": reconciliation.method,
    }
    with warehouse.get_connection() as con:
        incremental.forget(con, "stat_forecast", month)
        n_fc = replace_plan_rows(con, "stat_forecast", result.forecast, month)
        n_bt = replace_plan_rows(con, "backtest_results", result.backtest, month)
        n_lv = replace_plan_rows(con, "forecast_levels", levels, month)
        n_ba = replace_plan_rows(con, "backtest_accuracy", bt_accuracy, month)
        incremental.record(
            con,
            "stat_forecast",
            month,
            fp,
            code,
            context.run_id,
            {
                "stat_forecast": n_fc,
                "backtest_results": n_bt,
                "forecast_levels": n_lv,
                "backtest_accuracy": n_ba,
            },
            facts,
        )
    return dg.MaterializeResult(
        metadata=_forecast_metadata(facts, reused_from=None), data_version=dg.DataVersion(fp)
    )


# the modules whose code decides the statistical forecast (their source is its code version;
# a package counts with every module in it: planning/forecast/ is hashed whole)
FORECAST_CODE = (
    "sop_pipeline.planning.forecast",
    "sop_pipeline.planning.engines",
    "sop_pipeline.planning.hierarchy",
    "sop_pipeline.planning.accuracy",
    "sop_pipeline.core.months",
)


def _selection_facts(selection: dict, bt_accuracy, factors) -> dict:
    """Backtest error by method vs the chosen methods, coverage by level × lag (rounded)."""
    errors = {
        pool: {
            **{k: v for k, v in facts["mean_error_by_method"].items()},
            "chosen (after shrinkage)": facts["mean_error_chosen"],
        }
        for pool, facts in selection.items()
    }
    defaults = {pool: facts["panel_default"] for pool, facts in selection.items()}
    calibration = {
        pool: {
            "factor_80_by_lag": facts["conformal_factor_80_by_lag"],
            "factor_95_by_lag": facts["conformal_factor_95_by_lag"],
        }
        for pool, facts in selection.items()
    }
    stat = bt_accuracy[bt_accuracy["forecast_kind"] == "statistical_backtest"]
    naive = bt_accuracy[bt_accuracy["forecast_kind"] == "naive_backtest"]
    by_lag = (
        stat.groupby(["level", "lag"], sort=False)
        .agg(
            wape=("wape", "mean"),
            mase=("mase", "mean"),
            bias=("bias", "mean"),
            coverage_80=("coverage_80", "mean"),
            coverage_95=("coverage_95", "mean"),
            interval_score=("interval_score", "mean"),
        )
        .reset_index()
    )
    if len(by_lag):
        nv = naive.groupby(["level", "lag"], sort=False)["wape"].mean().rename("naive_wape")
        by_lag = by_lag.merge(nv.reset_index(), on=["level", "lag"], how="left")
    by_lag = by_lag.round(3)
    item = stat[stat["level"] == "item"]
    return {
        "backtest_error_by_method": errors,
        "panel_default_method": defaults,
        "conformal_calibration": calibration,
        "coverage_by_level_lag": by_lag.to_markdown(index=False) if len(by_lag) else "",
        "coverage_by_level_lag_rows": by_lag.to_dict(orient="records"),
        "backtest_coverage_80": round(float(item["coverage_80"].mean()), 3) if len(item) else 0.0,
        "backtest_coverage_95": round(float(item["coverage_95"].mean()), 3) if len(item) else 0.0,
        "level_interval_factors": factors.round(3).to_markdown(index=False) if len(factors) else "",
    }


def _coverage_png(rows: list[dict]) -> dg.MetadataValue:
    """Backtest coverage of the 80/95% ranges by lag, one line per level, against nominal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from sop_pipeline.defs.metadata import png

    df = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
    for ax, (col, nominal) in zip(
        axes, (("coverage_80", 0.80), ("coverage_95", 0.95)), strict=True
    ):
        for level, grp in df.groupby("level", sort=False):
            ax.plot(grp["lag"], grp[col], marker="o", label=str(level))
        ax.axhline(nominal, color="#999", linestyle="--", label=f"nominal {nominal:.0%}")
        ax.set_title(f"{nominal:.0%} range: backtest coverage by lag")
        ax.set_xlabel("lag (months ahead)")
    axes[0].legend(fontsize=7)
    return png(fig)


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
        **_accuracy_metadata(facts),
    }


def _accuracy_metadata(facts: dict) -> dict[str, dg.MetadataValue]:
    """Selection and calibration facts (absent in records made before they existed)."""
    if "backtest_error_by_method" not in facts:
        return {}
    out = {
        "backtest_error_by_method": dg.MetadataValue.json(facts["backtest_error_by_method"]),
        "panel_default_method": dg.MetadataValue.json(facts["panel_default_method"]),
        "conformal_calibration": dg.MetadataValue.json(facts["conformal_calibration"]),
        "backtest_coverage_80": dg.MetadataValue.float(facts["backtest_coverage_80"]),
        "backtest_coverage_95": dg.MetadataValue.float(facts["backtest_coverage_95"]),
        "coverage_by_level_lag": dg.MetadataValue.md(facts["coverage_by_level_lag"] or "_empty_"),
        "level_interval_factors": dg.MetadataValue.md(facts["level_interval_factors"] or "_empty_"),
        "reconciliation_method": dg.MetadataValue.text(facts["reconciliation_method"]),
        "reconciliation": dg.MetadataValue.json(facts.get("reconciliation", {})),
    }
    if facts.get("coverage_by_level_lag_rows"):
        out["coverage_by_lag_plot"] = _coverage_png(facts["coverage_by_level_lag_rows"])
    return out


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
            "overrides_applied": dg.MetadataValue.int(len(result.override_log)),
            "families": dg.MetadataValue.int(int(demand["family"].nunique())),
            "plot": family_forecast_png(history, demand),
            "preview": preview(demand, table="plan_demand"),
        }
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
