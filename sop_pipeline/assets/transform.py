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
from sop_pipeline.warehouse import check_name


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
    # dagster-dbt's fetch_row_counts() polls a thread pool while dbt runs and competes with
    # it for the CPU; the events are kept instead and the row counts read in one query after
    # dbt has exited (it holds the file while it runs). A failed build still reports every
    # model and test result before the error.
    events, error = [], None
    try:
        events.extend(dbt.cli(args, context=context).stream())
    except Exception as exc:  # re-raised below, after the results that did come
        error = exc
    counts = _table_row_counts(warehouse)
    for event in events:
        name = (event.metadata or {}).get("unique_id") if isinstance(event, dg.Output) else None
        model = str(getattr(name, "value", name) or "").rsplit(".", 1)[-1]
        if model in counts:
            event = event.with_metadata({**event.metadata, "dagster/row_count": counts[model]})
        yield event
    if error is not None:
        raise error


def _table_row_counts(warehouse: DuckDBResource) -> dict[str, int]:
    """Rows of every table dbt builds (intermediate and marts; staging are views)."""
    with warehouse.get_connection() as con:
        tables = con.execute(
            "select table_name, table_schema from information_schema.tables "
            "where table_schema in ('intermediate', 'marts') and table_type = 'BASE TABLE'"
        ).fetchall()
        if not tables:
            return {}
        sql = " union all ".join(
            f"select '{check_name(t, 'table')}', count(*) from "
            f"{check_name(s, 'schema')}.{check_name(t, 'table')}"
            for t, s in tables
        )
        return {name: int(n) for name, n in con.execute(sql).fetchall()}
