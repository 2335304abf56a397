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
    DBT_STAGE,
    _build_events,
    _dbt_fingerprint,
    _keep_run_results,
    _manifest_json,
    _partial_build,
    _reused_results,
    _subset_selection,
)
from sop_pipeline.defs.clean.metadata import _column_metadata, _table_row_counts
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
    from sop_pipeline.storage import incremental

    settings = sop.settings
    month = context.partition_key
    if (dbt.target or "duckdb") != marts.warehouse:
        raise ValueError(
            f"the dbt resource's target {dbt.target!r} is not the marts warehouse "
            f"{marts.warehouse!r}: build both resources from the same settings (build_resources)."
        )
    if marts.is_postgres:
        # the dbt sources: PostgreSQL's copy of the working file's raw extract tables
        with warehouse.get_connection() as con:
            copied = marts.sync_raw(con)
        context.log.info(
            f"raw extracts copied to {marts.location}: {sum(copied.values()):,} rows "
            f"({', '.join(f'{t} {n:,}' for t, n in copied.items() if n) or 'none changed'})"
        )
    variables = dbt_vars(month, settings.horizon_months)
    # what dbt's profile and project read (profiles.yml): where the warehouse is, the base
    # currency; the pipeline holds the DuckDB file open itself while dbt runs
    dbt_variables = {
        **json.loads(variables),
        "base_currency": settings.base_currency,
        "sop_dbt_keep_open": "false",
        **marts.dbt_profile_vars(),
    }
    manifest = _manifest_json()
    # reuse is for the DuckDB warehouse, whose tables the record can count
    incremental_ok = not context.is_subset and not marts.is_postgres
    select: list[str] = []
    with warehouse.get_connection() as con:
        fp, code, base, extracts = _dbt_fingerprint(con, variables, settings)
        reuse = incremental.find_reusable(con, *DBT_STAGE, fp) if incremental_ok else None
        partial = None
        if reuse is None and incremental_ok:
            partial = _partial_build(con, base, extracts, manifest)
        if reuse is None:
            # a build killed half way must not leave a record that vouches for its tables
            incremental.forget(con, *DBT_STAGE)
    if reuse is not None:
        context.log.info(
            f"dbt {month}: raw loads, dbt project, vars and versions unchanged since run "
            f"{reuse.run_id[:8]} ({reuse.computed_at}); its {len(reuse.tables)} "
            f"tables and {reuse.metadata['tests']} passed tests stand (fingerprint {fp[:12]})."
        )
        yield from _reused_results(context, reuse, fp)
        return
    reused_tests = 0
    if partial is not None:
        earlier, changed, select, rebuilt, retested = partial
        context.log.info(
            f"dbt {month}: only {', '.join(sorted(changed))} changed since run "
            f"{earlier.run_id[:8]}; building {len(rebuilt)} downstream models "
            f"({', '.join(sorted(rebuilt)) or 'none'}), reusing the others."
        )
        for event in _reused_results(context, earlier, fp, skip=rebuilt, skip_checks=retested):
            reused_tests += isinstance(event, dg.AssetCheckResult)
            yield event
        if not select:  # the changed extracts are not dbt sources: nothing to build
            with warehouse.get_connection() as con:
                incremental.record(
                    con,
                    *DBT_STAGE,
                    fp,
                    code,
                    earlier.run_id,
                    earlier.tables,
                    {**earlier.metadata, "extracts": extracts},
                )
            return
    elif context.is_subset:
        select = _subset_selection(context, manifest)
    # Row counts and column schemas are read in one query each after dbt has returned, not
    # polled while it runs (dagster-dbt's fetch_row_counts competes with dbt for the CPU).
    # A failed build still reports every model and test result before the error.
    with build_folder() as target:
        build = dbt.build(
            dbt_variables,
            select=select,
            hold_duckdb=None if marts.is_postgres else marts.working.database,
            target_path=target,
        )
        _keep_run_results(target, settings, month)
        built = {r.name for r in build.results if r.resource_type == "model"}
        counts = _table_row_counts(warehouse) if not marts.is_postgres else {}
        columns = (
            {}
            if marts.is_postgres
            else _column_metadata(warehouse, context, target, only=built if select else None)
        )
    by_model = {k.rsplit(".", 1)[-1]: v for k, v in counts.items()}
    if marts.is_postgres:
        # the manifest names the DuckDB catalog: count the marts in PostgreSQL instead
        with marts.reader() as reader:
            by_model = {
                key.path[-1]: reader.count_rows(key.path[-1])
                for key in context.assets_def.keys
                if key.path[0] == "marts" and reader.has_mart(key.path[-1])
            }
    tests = 0
    for event in _build_events(context, build, manifest):
        if isinstance(event, dg.Output):
            model = str(event.metadata["unique_id"].value).rsplit(".", 1)[-1]
            extra = dict(columns.get(model, {}))
            if by_model.get(model) is not None:
                extra["dagster/row_count"] = dg.MetadataValue.int(int(by_model[model]))
            if extra:
                event = event.with_metadata({**event.metadata, **extra})
        elif isinstance(event, dg.AssetCheckResult) and event.passed:
            tests += 1
        yield event
    if not build.success:
        raise dg.Failure(description=build.error_message())
    if incremental_ok:
        tests += reused_tests
        with warehouse.get_connection() as con:
            incremental.record(
                con,
                *DBT_STAGE,
                fp,
                code,
                context.run_id,
                counts,
                {"tests": tests, "base": base, "extracts": extracts},
            )
