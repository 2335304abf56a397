"""Stage 1b, cleaning: the dbt project (staging → intermediate → marts), one asset per model.

dbt tests become Dagster asset checks; error-severity ones block the planning stages. dbt
builds in the warehouse SOP_WAREHOUSE names (the ``marts`` resource): the working DuckDB file,
or PostgreSQL, whose ``raw`` schema is first brought up to date with the working file's.
"""

import json

import dagster as dg
from dagster_dbt import DagsterDbtTranslatorSettings, dbt_assets
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.clean.builds import (
    _build_events,
    _keep_run_results,
    _manifest_json,
    plan_build,
)
from sop_pipeline.defs.clean.metadata import read_built_models, with_model_metadata
from sop_pipeline.defs.clean.project import (
    SopDbtResource,
    build_folder,
    dbt_project,
)
from sop_pipeline.defs.clean.translator import SopDbtTranslator
from sop_pipeline.defs.partitions import MONTHLY_RUNS, dbt_vars, plan_month_partitions
from sop_pipeline.defs.resources import MartsResource, SopResource


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    partitions_def=plan_month_partitions,
    dagster_dbt_translator=SopDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
    pool="sop_warehouse",
    # one run per plan month: every month is planned point in time, in order
    backfill_policy=MONTHLY_RUNS,
)
def sop_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: SopDbtResource,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Build and test every dbt model for the plan month (point in time via dbt vars).

    When the raw loads, the dbt project files, the vars and the tool versions are what they
    were at the last full build, and that build's tables are still there, dbt is not run again:
    the models and their tests are reported as reused from that run. When only some extracts
    changed (a planner edited demand_overrides), only the models downstream of those extracts
    are built and tested again; the others are reused.
    """
    settings = sop.settings
    month = context.partition_key
    _check_same_warehouse(dbt, marts)
    if marts.is_postgres:
        _copy_raw_to_postgres(context, warehouse, marts)
    variables = dbt_vars(month, settings.horizon_months)
    plan = plan_build(context, warehouse, variables, settings, marts.is_postgres)
    yield from plan.reused_events(context)
    if not plan.runs_dbt:
        plan.record_without_build(warehouse)
        return
    # A failed build still reports every model and test result before the error.
    with build_folder() as target:
        build = dbt.build(
            _dbt_run_vars(variables, settings, marts),
            select=plan.select,
            hold_duckdb=None if marts.is_postgres else marts.working.database,
            target_path=target,
        )
        _keep_run_results(target, settings, month)
        models = read_built_models(context, warehouse, marts, build, target, bool(plan.select))
    tests = yield from with_model_metadata(_build_events(context, build, _manifest_json()), models)
    if not build.success:
        raise dg.Failure(description=build.error_message())
    plan.record_build(warehouse, context.run_id, models.counts, tests)


def _check_same_warehouse(dbt: SopDbtResource, marts: MartsResource) -> None:
    """Refuse a dbt resource that builds elsewhere than where the stages read the marts."""
    if (dbt.target or "duckdb") != marts.warehouse:
        raise ValueError(
            f"the dbt resource's target {dbt.target!r} is not the marts warehouse "
            f"{marts.warehouse!r}: build both resources from the same settings (build_resources)."
        )


def _copy_raw_to_postgres(
    context: dg.AssetExecutionContext, warehouse: DuckDBResource, marts: MartsResource
) -> None:
    """The dbt sources in PostgreSQL: its copy of the working file's raw extract tables."""
    with warehouse.get_connection() as con:
        copied = marts.sync_raw(con)
    context.log.info(
        f"raw extracts copied to {marts.location}: {sum(copied.values()):,} rows "
        f"({', '.join(f'{t} {n:,}' for t, n in copied.items() if n) or 'none changed'})"
    )


def _dbt_run_vars(variables: str, settings, marts: MartsResource) -> dict[str, str]:
    """What dbt's profile and project read (profiles.yml), with the month's vars.

    Where the warehouse is and the base currency; the pipeline holds the DuckDB file open
    itself while dbt runs.
    """
    return {
        **json.loads(variables),
        "base_currency": settings.base_currency,
        "sop_dbt_keep_open": "false",
        **marts.dbt_profile_vars(),
    }
