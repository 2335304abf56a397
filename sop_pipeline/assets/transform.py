"""Stage 1b, cleaning: the dbt project (staging → intermediate → marts), one asset per model.

dbt tests become Dagster asset checks; error-severity ones block the planning stages.
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
from sop_pipeline.resources import SopResource


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
):
    """Build and test every dbt model for the plan month (point in time via dbt vars)."""
    settings = sop.settings
    # dbt's profile reads the path of the same working database the Python stages use
    os.environ["SOP_WAREHOUSE_PATH"] = warehouse.database
    os.environ.setdefault("SOP_BASE_CURRENCY", settings.base_currency)
    args = ["build", "--vars", dbt_vars(context.partition_key, settings.horizon_months)]
    yield from dbt.cli(args, context=context).stream().fetch_row_counts()
