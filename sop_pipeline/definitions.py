"""The single ``Definitions`` of the project, built from the per-stage modules."""

from __future__ import annotations

import dagster as dg

from sop_pipeline.assets import demand, ingest, transform
from sop_pipeline.logging_ import step_logger
from sop_pipeline.resources import build_resources

ALL_ASSETS = [
    ingest.raw_extracts,
    transform.sop_dbt_models,
    demand.stat_forecast,
    demand.plan_demand,
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
