"""The single ``Definitions`` of the project, built from the per-stage modules."""

import dagster as dg

from sop_pipeline.assets import demand, executive, finance, ingest, publish, supply, transform
from sop_pipeline.assets.approve import sop_approve
from sop_pipeline.logging_ import step_logger
from sop_pipeline.orchestration import landing_sensor, monthly_schedule, sop_monthly_job
from sop_pipeline.resources import build_resources
from sop_pipeline.settings import Settings

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
    executive.scenario_comparison,
    executive.plan_waterfall,
    publish.candidate_plan,
    publish.published_plan,
    executive.executive_pack,
]
ALL_CHECKS = [demand.plan_demand_levels_add_up, demand.stat_forecast_levels_coherent]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The project's Definitions with resources for ``settings`` (default: the environment)."""
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[sop_monthly_job, sop_approve],
        schedules=[monthly_schedule],
        sensors=[landing_sensor],
        resources=build_resources(settings),
        # one process, one step at a time: DuckDB allows a single writer on the working file
        executor=dg.in_process_executor,
        loggers={"console": dg.colored_console_logger, "sop_steps": step_logger},
    )


defs = build_definitions()
