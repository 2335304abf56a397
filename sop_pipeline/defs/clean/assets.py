"""Stage 1b, cleaning: the dbt project (staging → intermediate → marts), one asset per model.

dbt tests become Dagster asset checks; error-severity ones block the planning stages. dbt
builds in the warehouse SOP_WAREHOUSE names (the ``marts`` resource): the working DuckDB file,
or PostgreSQL, whose ``raw`` schema is first brought up to date with the working file's.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.clean.project import dbt_project
from sop_pipeline.defs.partitions import MONTHLY_RUNS, dbt_vars, plan_month_partitions
from sop_pipeline.defs.resources import MartsResource, SopResource
from sop_pipeline.storage.warehouse import check_name


class SopDbtTranslator(DagsterDbtTranslator):
    """dbt sources are the ``raw`` assets of the ingest stage; models form the ``clean`` group."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        """The dbt node's asset spec with the project's keys, group, owners and docs link."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["sources"].get(unique_id) or manifest["nodes"].get(unique_id) or {}
        if node.get("resource_type") == "source":
            return spec.replace_attributes(key=dg.AssetKey(["raw", node["name"]]))
        return spec.replace_attributes(
            group_name="clean", owners=["team:data-engineering"]
        ).merge_attributes(
            tags={"sop_step": "data_gathering"},
            kinds={"dbt", "duckdb"},
            metadata=dbt_docs_metadata(unique_id),
        )


#: Where ``make dbt-docs`` serves ``dbt docs generate``'s site (dbt_project/target/).
DBT_DOCS_URL = "http://127.0.0.1:8580"


def dbt_docs_metadata(unique_id: str) -> dict[str, dg.MetadataValue]:
    """Links to the model's page in the dbt docs site and to the generated files."""
    return {
        "dbt_docs": dg.MetadataValue.url(f"{DBT_DOCS_URL}/#!/model/{unique_id}"),
        "dbt_docs_files": dg.MetadataValue.path(
            str(dbt_project.project_dir / "target" / "index.html")
        ),
    }


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
    """Build and test every dbt model for the plan month (point in time via dbt vars).

    When the raw loads, the dbt project files, the vars and the tool versions are what they
    were at the last full build, and that build's tables are still there, dbt is not run again:
    the models and their tests are reported as reused from that run.
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
    # dbt's profile reads where the warehouse is from the environment: the working database
    # the Python stages use (SOP_WAREHOUSE_PATH), or the SOP_PG_* of the marts resource
    os.environ.update(marts.dbt_env())
    os.environ.setdefault("SOP_BASE_CURRENCY", settings.base_currency)
    variables = dbt_vars(month, settings.horizon_months)
    # reuse is for the DuckDB warehouse, whose tables the record can count
    incremental_ok = not context.is_subset and not marts.is_postgres
    with warehouse.get_connection() as con:
        fp, code = _dbt_fingerprint(con, variables, settings)
        reuse = incremental.find_reusable(con, *DBT_STAGE, fp) if incremental_ok else None
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
    # dagster-dbt's fetch_row_counts() polls a thread pool while dbt runs and competes with
    # it for the CPU; the events are kept instead and the row counts read in one query after
    # dbt has exited (it holds the file while it runs). A failed build still reports every
    # model and test result before the error.
    events, error, invocation = [], None, None
    try:
        invocation = dbt.cli(["build", "--vars", variables], context=context)
        events.extend(invocation.stream())
    except Exception as exc:  # re-raised below, after the results that did come
        error = exc
    counts = _table_row_counts(warehouse) if not marts.is_postgres else {}
    target = getattr(invocation, "target_path", None)
    columns = {} if marts.is_postgres else _column_metadata(warehouse, context, target)
    by_model = {k.rsplit(".", 1)[-1]: v for k, v in counts.items()}
    if marts.is_postgres:
        # the manifest names the DuckDB catalog: count the marts in PostgreSQL instead
        with marts.reader() as reader:
            by_model = {
                key.path[-1]: reader.count_rows(key.path[-1])
                for key in context.assets_def.keys
                if key.path[0] == "marts" and reader.has_mart(key.path[-1])
            }
    for event in events:
        name = (event.metadata or {}).get("unique_id") if isinstance(event, dg.Output) else None
        model = str(getattr(name, "value", name) or "").rsplit(".", 1)[-1]
        rows = by_model.get(model)
        extra = dict(columns.get(model, {}))
        if rows is not None:
            extra["dagster/row_count"] = dg.MetadataValue.int(int(rows))
        if extra:
            event = event.with_metadata({**event.metadata, **extra})
        yield event
    if error is not None:
        raise error
    tests = sum(isinstance(e, dg.AssetCheckResult) and e.passed for e in events)
    if incremental_ok:
        with warehouse.get_connection() as con:
            incremental.record(con, *DBT_STAGE, fp, code, context.run_id, counts, {"tests": tests})


# the marts hold one plan month at a time: one record for whatever was built last
DBT_STAGE = ("dbt_build", "current")
DBT_FILES = ("dbt_project.yml", "profiles.yml", "models/**/*", "macros/**/*", "tests/**/*")


def _dbt_fingerprint(con, variables: str, settings) -> tuple[str, str]:
    """(fingerprint, source hash) of a dbt build.

    Made of the raw loads (the ingest log), the dbt project files, vars, target and tool versions.
    """
    import importlib.metadata

    import pandas as pd

    from sop_pipeline.storage import incremental
    from sop_pipeline.storage.warehouse import table_exists

    log = (
        con.execute(
            "select extract_month, extract, sha256, status, row_count, rejected_rows "
            "from raw._ingest_log order by all"
        ).df()
        if table_exists(con, "raw", "_ingest_log")
        else pd.DataFrame()
    )
    versions = {
        pkg: importlib.metadata.version(pkg) for pkg in ("dbt-core", "dbt-duckdb", "duckdb")
    }
    code = incremental.files_digest(dbt_project.project_dir, DBT_FILES)
    fp = incremental.fingerprint(
        {"ingest_log": log},
        {"vars": variables, "target": settings.dbt_target, "versions": versions},
        code,
    )
    return fp, code


def _reused_results(context: dg.AssetExecutionContext, reuse, fp: str):
    """The outputs and check results of a build that stands for this one, upstream first.

    Dagster wants a multi-asset's outputs in dependency order.
    """
    from graphlib import TopologicalSorter

    meta = {"reused_from_run": reuse.run_id, "data_version": fp[:12]}
    counts = {k.rsplit(".", 1)[-1]: v for k, v in reuse.tables.items()}
    assets_def = context.assets_def
    output_of = {
        key: name
        for name, key in assets_def.keys_by_output_name.items()
        if name in context.selected_output_names  # the rest are dagster-dbt's test outputs
    }
    deps = assets_def.asset_deps
    order = TopologicalSorter(
        {key: [d for d in deps.get(key, ()) if d in output_of] for key in output_of}
    ).static_order()
    checks: dict[dg.AssetKey, list] = {}
    for check in context.selected_asset_check_keys:
        checks.setdefault(check.asset_key, []).append(check)
    for key in order:
        rows = counts.get(key.path[-1])
        extra = {"dagster/row_count": rows} if rows is not None else {}
        yield dg.Output(None, output_name=output_of[key], metadata={**meta, **extra})
        for check in sorted(checks.get(key, []), key=lambda c: c.name):
            yield dg.AssetCheckResult(
                asset_key=check.asset_key,
                check_name=check.name,
                passed=True,
                metadata={"reused_from_run": reuse.run_id},
                description="passed at the build this one reuses (same inputs and dbt code)",
            )


def _table_row_counts(warehouse: DuckDBResource) -> dict[str, int]:
    """Rows of every table dbt builds, ``schema.table`` → rows (staging models are views)."""
    with warehouse.get_connection() as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('intermediate', 'marts') and table_type = 'BASE TABLE'"
        ).fetchall()
        if not tables:
            return {}
        sql = " union all ".join(
            f"select '{check_name(s, 'schema')}.{check_name(t, 'table')}', count(*) from {s}.{t}"
            for s, t in tables
        )
        return {name: int(n) for name, n in con.execute(sql).fetchall()}


def _column_metadata(
    warehouse: DuckDBResource, context, target_path=None
) -> dict[str, dict[str, Any]]:
    """Column schema and lineage of every dbt model, read once dbt has exited.

    See :func:`column_metadata`; a failure only logs a warning, it never fails the build.
    """
    import json

    try:
        manifest = json.loads(dbt_project.manifest_path.read_text())
        with warehouse.get_connection() as con:
            return column_metadata(
                con, manifest, target_path or dbt_project.project_dir / "target", context.log
            )
    except Exception as exc:  # metadata only
        context.log.warning(f"dbt column metadata not read: {exc}")
        return {}


def column_metadata(con, manifest: Mapping[str, Any], target_path, log=None) -> dict[str, dict]:
    """Column schema and column lineage of every dbt model built in ``con``, model → metadata.

    dagster-dbt's ``fetch_column_metadata()`` asks the warehouse while dbt still runs; with
    the DuckDB file the dbt process then holds the lock, so the same information is read
    here in one ``information_schema`` query after dbt has exited, and the lineage is parsed
    from the compiled SQL (``target_path/compiled``) by dagster-dbt's own sqlglot builder.
    A model whose lineage cannot be parsed keeps its schema.

    Returns:
        dbt model name → ``{"dagster/column_schema": ..., "dagster/column_lineage": ...}``.
    """
    from dagster_dbt.core.dbt_cli_event import EventHistoryMetadata, _build_column_lineage_metadata

    from sop_pipeline.publish.dictionary import COLUMNS

    rows = con.execute(
        "select table_schema, table_name, column_name, data_type from "
        "information_schema.columns where table_schema in "
        "('raw', 'staging', 'intermediate', 'marts') order by table_schema, table_name, "
        "ordinal_position"
    ).fetchall()
    by_relation: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for schema, table, column, data_type in rows:
        by_relation.setdefault((schema, table), {})[column] = {"data_type": data_type}
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}

    def relation(node: Mapping[str, Any]) -> tuple[str, str]:
        return (node.get("schema"), node.get("alias") or node.get("identifier") or node["name"])

    out: dict[str, dict[str, Any]] = {}
    for unique_id, node in manifest.get("nodes", {}).items():
        if node.get("resource_type") != "model":
            continue
        cols = by_relation.get(relation(node))
        if not cols:
            continue
        documented = node.get("columns", {})
        schema = dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=name,
                    type=meta["data_type"].lower(),
                    description=(documented.get(name) or {}).get("description")
                    or COLUMNS.get(name),
                )
                for name, meta in cols.items()
            ]
        )
        meta: dict[str, Any] = {"dagster/column_schema": dg.MetadataValue.table_schema(schema)}
        parents = {}
        for parent_id in manifest.get("parent_map", {}).get(unique_id, []):
            parent = nodes.get(parent_id)
            if parent and parent.get("relation_name") and by_relation.get(relation(parent)):
                parents[parent["relation_name"]] = by_relation[relation(parent)]
        try:
            meta.update(
                _build_column_lineage_metadata(
                    event_history_metadata=EventHistoryMetadata(columns=cols, parents=parents),
                    dbt_resource_props=dict(node),
                    manifest=manifest,
                    dagster_dbt_translator=SopDbtTranslator(),
                    target_path=Path(target_path),
                    project=None,
                )
            )
        except Exception as exc:  # lineage is a nice-to-have; the schema stands
            if log is not None:
                log.debug(f"no column lineage for {unique_id}: {exc}")
        out[node["name"]] = meta
    return out
