"""Stage 1b, cleaning: the dbt project (staging → intermediate → marts), one asset per model.

dbt tests become Dagster asset checks; error-severity ones block the planning stages. dbt
builds in the warehouse SOP_WAREHOUSE names (the ``marts`` resource): the working DuckDB file,
or PostgreSQL, whose ``raw`` schema is first brought up to date with the working file's.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.clean.project import (
    DBT_FILES,
    DbtBuild,
    SopDbtResource,
    build_folder,
    dbt_project,
)
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


# the marts hold one plan month at a time: one record for whatever was built last
DBT_STAGE = ("dbt_build", "current")


def _manifest_json() -> dict[str, Any]:
    """The manifest the dbt assets were defined from (read once per process)."""
    global _MANIFEST
    if _MANIFEST is None:
        _MANIFEST = json.loads(dbt_project.manifest_path.read_text())
    return _MANIFEST


_MANIFEST: dict[str, Any] | None = None

#: column lineage parsed from earlier builds (see :func:`column_metadata`); a cache only
LINEAGE_CACHE = dbt_project.project_dir / "target" / "sop_column_lineage.json"


def _dbt_fingerprint(con, variables: str, settings) -> tuple[str, str, str, dict[str, str]]:
    """(fingerprint, code version, base, per-extract digests).

    The fingerprint covers the raw loads (the ingest log), dbt project files, vars, target and
    tool versions; ``base`` all of it but the loads, and the digests each extract's loads, so
    a later run can tell which extracts changed under the same dbt code and vars.
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
        else pd.DataFrame(columns=["extract"])
    )
    versions = {
        pkg: importlib.metadata.version(pkg) for pkg in ("dbt-core", "dbt-duckdb", "duckdb")
    }
    code = incremental.files_digest(dbt_project.project_dir, DBT_FILES)
    setting_values = {"vars": variables, "target": settings.dbt_target, "versions": versions}
    fp = incremental.fingerprint({"ingest_log": log}, setting_values, code)
    base = incremental.fingerprint({}, setting_values, code)
    extracts = {
        str(name): incremental.frame_digest(rows.reset_index(drop=True))[:16]
        for name, rows in log.groupby("extract", sort=True)
    }
    return fp, code, base, extracts


def _partial_build(con, base: str, extracts: dict[str, str], manifest: Mapping[str, Any]):
    """What a partial build needs, or None when a full build is needed.

    Applies when the last build had the same dbt code, vars and versions and its tables are
    intact, but some extracts were loaded again since: (record, changed extracts, dbt
    selectors, models to build, tests to run).
    """
    from sop_pipeline.storage import incremental

    earlier = incremental.find_record(con, *DBT_STAGE)
    if earlier is None or earlier.metadata.get("base") != base:
        return None
    before = earlier.metadata.get("extracts") or {}
    changed = {e for e in set(before) | set(extracts) if before.get(e) != extracts.get(e)}
    if not changed:
        return None
    sources = {
        (node.get("identifier") or node["name"]): (node["source_name"], node["name"])
        for node in manifest["sources"].values()
    }
    select = [f"source:{sources[e][0]}.{sources[e][1]}+" for e in sorted(changed) if e in sources]
    source_ids = {
        uid
        for uid, node in manifest["sources"].items()
        if (node.get("identifier") or node["name"]) in changed
    }
    downstream = _downstream(manifest, source_ids)
    nodes = manifest["nodes"]
    rebuilt = {nodes[u]["name"] for u in downstream if nodes[u]["resource_type"] == "model"}
    retested = {nodes[u]["name"] for u in downstream if nodes[u]["resource_type"] == "test"}
    return earlier, changed, select, rebuilt, retested


def _downstream(manifest: Mapping[str, Any], roots: set[str]) -> set[str]:
    """Unique ids of the nodes downstream of ``roots``.

    Models and the tests on any of them: what ``dbt build --select <root>+`` runs.
    """
    children = manifest.get("child_map", {})
    seen, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return {uid for uid in seen if uid in manifest["nodes"]}


def _subset_selection(context: dg.AssetExecutionContext, manifest: Mapping[str, Any]) -> list[str]:
    """Dbt selectors for the assets and checks selected in the UI."""
    names = {key.path[-1] for key in context.selected_asset_keys}
    models = [
        node["name"]
        for node in manifest["nodes"].values()
        if node.get("resource_type") in ("model", "seed", "snapshot") and node["name"] in names
    ]
    checked = {
        c.name for c in context.selected_asset_check_keys if c.asset_key.path[-1] not in names
    }
    tests = [
        node["name"]
        for node in manifest["nodes"].values()
        if node.get("resource_type") == "test" and node["name"] in checked
    ]
    return sorted(models) + sorted(tests)


def _build_events(context: dg.AssetExecutionContext, build: DbtBuild, manifest):
    """The Dagster events of a build, in the order dbt finished them (parents first).

    An Output per model built, an AssetCheckResult per test that is one of the asset's checks.
    """
    spec_of = SopDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
    checks: dict[str, list] = {}
    for check in context.selected_asset_check_keys:
        checks.setdefault(check.name, []).append(check)
    # dbt model names are unique in a project: the last part of the asset key
    output_of = {
        key.path[-1]: name
        for name, key in context.assets_def.keys_by_output_name.items()
        if name in context.selected_output_names
    }
    for r in build.results:
        node = manifest["nodes"].get(r.unique_id)
        if node is None or r.status == "skipped":
            continue
        meta = {
            "unique_id": r.unique_id,
            "invocation_id": build.invocation_id,
            "status": r.status,
            "Execution Duration": r.seconds,
        }
        if r.resource_type == "model":
            if r.status != "success":
                continue
            name = output_of.get(node["name"])
            if name is not None:
                yield dg.Output(None, output_name=name, metadata=meta)
        elif r.resource_type == "test":
            check = _check_key(checks, spec_of, manifest, node)
            if check is None:
                continue
            if r.failures is not None:
                meta["dagster_dbt/failed_row_count"] = r.failures
            yield dg.AssetCheckResult(
                asset_key=check.asset_key,
                check_name=check.name,
                passed=r.status == "pass",
                severity=dg.AssetCheckSeverity.WARN
                if r.status == "warn"
                else dg.AssetCheckSeverity.ERROR,
                metadata=meta,
                description=None if r.status == "pass" else (r.message or r.status),
            )


def _check_key(checks: Mapping[str, list], translator, manifest, test) -> dg.AssetCheckKey | None:
    """The asset check of a dbt test among ``checks`` (check name → keys).

    dagster-dbt names a test's check after the test; when two assets have a check of that
    name, the one on the test's attached node.
    """
    candidates = checks.get(test["name"], [])
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    attached = test.get("attached_node")
    key = translator.get_asset_spec(manifest, attached, dbt_project).key if attached else None
    return next((c for c in candidates if c.asset_key == key), None)


def _keep_run_results(target: Path, settings, month: str) -> None:
    """Dbt's run_results.json of the build, next to the run log (per-node timings)."""
    import shutil

    src = target / "run_results.json"
    if src.exists():
        dest = settings.dagster_home / "logs" / f"dbt_run_results_{month}.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def _reused_results(
    context: dg.AssetExecutionContext,
    reuse,
    fp: str,
    skip: set[str] = frozenset(),
    skip_checks: set[str] = frozenset(),
):
    """The outputs and check results of a build that stands for this one, upstream first.

    Dagster wants a multi-asset's outputs in dependency order. Not those of the models in
    ``skip`` and the checks in ``skip_checks`` (built again by this run).
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
        if key.path[-1] in skip:
            continue
        rows = counts.get(key.path[-1])
        extra = {"dagster/row_count": rows} if rows is not None else {}
        yield dg.Output(None, output_name=output_of[key], metadata={**meta, **extra})
        for check in sorted(checks.get(key, []), key=lambda c: c.name):
            if check.name in skip_checks:
                continue
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
