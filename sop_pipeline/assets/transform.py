"""Stage 1b, cleaning: the dbt project (staging → intermediate → marts), one asset per model.

dbt tests become Dagster asset checks; error-severity ones block the planning stages. dbt
builds in the warehouse SOP_WAREHOUSE names (the ``marts`` resource): the working DuckDB file,
or PostgreSQL, whose ``raw`` schema is first brought up to date with the working file's.
"""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_duckdb import DuckDBResource

from sop_pipeline.dbt_project import dbt_project
from sop_pipeline.partitions import MONTHLY_RUNS, dbt_vars, plan_month_partitions
from sop_pipeline.resources import MartsResource, SopResource


class SopDbtTranslator(DagsterDbtTranslator):
    """dbt sources are the ``raw`` assets of the ingest stage; models form the ``clean`` group."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["sources"].get(unique_id) or manifest["nodes"].get(unique_id) or {}
        if node.get("resource_type") == "source":
            return spec.replace_attributes(key=dg.AssetKey(["raw", node["name"]]))
        return spec.replace_attributes(
            group_name="clean", owners=["team:data-engineering"]
        ).merge_attributes(tags={"sop_step": "data_gathering"})


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
    dbt: DbtCliResource,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Build and test every dbt model for the plan month (point in time via dbt vars)."""
    settings = sop.settings
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
    # dbt's profile reads where the warehouse is from the environment: the working database
    # the Python stages use (SOP_WAREHOUSE_PATH), or the SOP_PG_* of the marts resource
    os.environ.update(marts.dbt_env())
    os.environ.setdefault("SOP_BASE_CURRENCY", settings.base_currency)
    args = ["build", "--vars", dbt_vars(context.partition_key, settings.horizon_months)]
    events = dbt.cli(args, context=context).stream()
    if not marts.is_postgres:
        yield from events.fetch_row_counts()
        return
    # dagster-dbt counts rows through the manifest's relation names, which name the DuckDB
    # catalog (the manifest is parsed once, for the default target): count them in PostgreSQL
    with marts.reader() as reader:
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                if key.path[0] == "marts" and reader.has_mart(key.path[-1]):
                    rows = reader.count_rows(key.path[-1])
                    event = event.with_metadata(
                        {**event.metadata, "dagster/row_count": dg.MetadataValue.int(rows)}
                    )
            yield event
