"""Metadata of the dbt models built: row counts, column schema and column lineage."""

import json
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.clean.builds import LINEAGE_CACHE, _manifest_json
from sop_pipeline.defs.clean.project import (
    DBT_FILES,
    dbt_project,
)
from sop_pipeline.defs.clean.translator import SopDbtTranslator
from sop_pipeline.storage.warehouse import check_name


@dataclass(frozen=True)
class BuiltModels:
    """What a build left in the warehouse, read once dbt has returned.

    Attributes:
        counts: ``schema.table`` → rows of the working file's dbt tables (the build's record;
            empty with PostgreSQL).
        rows: dbt model name → rows (the ``dagster/row_count`` of its output).
        columns: dbt model name → column schema and lineage metadata (DuckDB only).
    """

    counts: dict[str, int]
    rows: dict[str, int]
    columns: dict[str, dict[str, Any]]


def read_built_models(
    context, warehouse: DuckDBResource, marts, build, target_path, only_built: bool
) -> BuiltModels:
    """Row counts and column metadata of the models ``build`` built (``only_built``: only those).

    Read in one query each after dbt has returned, not polled while it runs (dagster-dbt's
    fetch_row_counts competes with dbt for the CPU). With PostgreSQL the manifest names the
    DuckDB catalog: the marts are counted in PostgreSQL instead.
    """
    if marts.is_postgres:
        with marts.reader() as reader:
            rows = {
                key.path[-1]: reader.count_rows(key.path[-1])
                for key in context.assets_def.keys
                if key.path[0] == "marts" and reader.has_mart(key.path[-1])
            }
        return BuiltModels(counts={}, rows=rows, columns={})
    built = {r.name for r in build.results if r.resource_type == "model"}
    counts = _table_row_counts(warehouse)
    columns = _column_metadata(warehouse, context, target_path, only=built if only_built else None)
    rows = {k.rsplit(".", 1)[-1]: v for k, v in counts.items()}
    return BuiltModels(counts=counts, rows=rows, columns=columns)


def with_model_metadata(events: Iterable[Any], models: BuiltModels) -> Generator[Any, None, int]:
    """The build's events, each model's output with its row count and column metadata.

    Returns:
        The number of tests that passed.
    """
    tests = 0
    for event in events:
        if isinstance(event, dg.Output):
            model = str(event.metadata["unique_id"].value).rsplit(".", 1)[-1]
            extra = dict(models.columns.get(model, {}))
            if models.rows.get(model) is not None:
                extra["dagster/row_count"] = dg.MetadataValue.int(int(models.rows[model]))
            if extra:
                event = event.with_metadata({**event.metadata, **extra})
        elif isinstance(event, dg.AssetCheckResult) and event.passed:
            tests += 1
        yield event
    return tests


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
    warehouse: DuckDBResource, context, target_path, only: set[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Column schema and lineage of the dbt models built (``only`` those, if given).

    Read once dbt has returned (see :func:`column_metadata`); a failure only logs a warning,
    it never fails the build.
    """
    try:
        with warehouse.get_connection() as con:
            return column_metadata(
                con, _manifest_json(), target_path, context.log, only=only, cache=LINEAGE_CACHE
            )
    except Exception as exc:  # metadata only
        context.log.warning(f"dbt column metadata not read: {exc}")
        return {}


def column_metadata(
    con,
    manifest: Mapping[str, Any],
    target_path,
    log=None,
    only: set[str] | None = None,
    cache: Path | None = None,
) -> dict[str, dict]:
    """Column schema and column lineage of every dbt model built in ``con``, model → metadata.

    dagster-dbt's ``fetch_column_metadata()`` asks the warehouse while dbt still runs; with
    the DuckDB file the dbt process then holds the lock, so the same information is read
    here in one ``information_schema`` query after dbt has exited, and the lineage is parsed
    from the compiled SQL (``target_path/compiled``) by dagster-dbt's own sqlglot builder.
    A model whose lineage cannot be parsed keeps its schema.

    Parsing is most of the cost (about a second per model), and the lineage only depends on
    the project's code and the columns of the model and its parents (the month's vars are
    literals in the SQL): with ``cache`` (a JSON file) lineage parsed once is kept under that
    key and read back by later builds.

    Returns:
        dbt model name → ``{"dagster/column_schema": ..., "dagster/column_lineage": ...}``.
    """
    import hashlib

    from dagster import deserialize_value, serialize_value
    from dagster_dbt.core.dbt_cli_event import EventHistoryMetadata, _build_column_lineage_metadata

    from sop_pipeline.publish.dictionary import COLUMNS
    from sop_pipeline.storage import incremental

    code = incremental.files_digest(dbt_project.project_dir, DBT_FILES)
    try:
        cached = json.loads(cache.read_text()) if cache and cache.exists() else {}
    except (OSError, ValueError):
        cached = {}
    kept: dict[str, str] = {}

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
        if node.get("resource_type") != "model" or (only is not None and node["name"] not in only):
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
        key = hashlib.sha256(
            json.dumps([code, unique_id, cols, parents], sort_keys=True).encode()
        ).hexdigest()
        if key in cached:
            kept[key] = cached[key]
            if cached[key]:
                meta["dagster/column_lineage"] = deserialize_value(cached[key])
            out[node["name"]] = meta
            continue
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
        lineage = meta.get("dagster/column_lineage")
        kept[key] = serialize_value(lineage) if lineage is not None else ""
        out[node["name"]] = meta
    if cache is not None and kept != cached:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps({**cached, **kept} if only else kept, sort_keys=True))
            tmp.replace(cache)
        except OSError as exc:  # a cache only
            if log is not None:
                log.debug(f"column lineage cache not written: {exc}")
    return out
