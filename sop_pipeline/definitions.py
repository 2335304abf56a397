"""The single ``Definitions`` of the project, built from the per-stage modules."""

import dagster as dg

from sop_pipeline.assets import demand, finance, ingest, publish, supply, transform
from sop_pipeline.logging_ import step_logger
from sop_pipeline.resources import build_resources

ALL_ASSETS = [
    ingest.raw_extracts,
    transform.sop_dbt_models,
    demand.stat_forecast,
    demand.plan_demand,
    supply.supply_plan,
    supply.plan_gaps,
    supply.plan_exceptions,
    finance.plan_financials,
    finance.forecast_accuracy,
    finance.kpi_scorecard,
    publish.candidate_plan,
    publish.published_plan,
]
ALL_CHECKS = [demand.plan_demand_levels_add_up]

sop_monthly_job = dg.define_asset_job(
    name="sop_monthly",
    selection=dg.AssetSelection.all(),
    description="Plan one month end to end: ingest → clean → demand → supply → finance → gate → publish.",
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[sop_monthly_job],
    resources=build_resources(),
    executor=dg.in_process_executor,
    loggers={"console": dg.colored_console_logger, "sop_steps": step_logger},
)
