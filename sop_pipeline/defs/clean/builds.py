"""Reusing and narrowing dbt builds: the build fingerprint, partial builds, reused results.

A month whose dbt inputs and code are unchanged reuses the last build's results; a build
of some extracts only runs their models and everything downstream. :func:`plan_build` decides
which of the three a run does (a :class:`BuildPlan`), which then reports what it reused and
keeps the record of the build.
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslatorSettings

from sop_pipeline.defs.clean.project import (
    DBT_FILES,
    DbtBuild,
    dbt_project,
)
from sop_pipeline.defs.clean.translator import SopDbtTranslator

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


@dataclass
class BuildPlan:
    """What this month's dbt build does: reuse the last build whole, build part of it, or build.

    Attributes:
        fingerprint: the build's fingerprint (:func:`_dbt_fingerprint`).
        code: the dbt project's code version.
        base: the fingerprint without the raw loads.
        extracts: a digest of each extract's loads.
        records: whether the build is recorded for reuse (not a UI subset, not PostgreSQL).
        reuse: the record of a build that stands for this one (None: dbt has work to do).
        partial: (earlier record, changed extracts, selectors, models to build, tests to run)
            when only some extracts changed (:func:`_partial_build`), else None.
        select: the dbt selectors of the build ([]: every model and test).
        reused_tests: tests reported as passed at the build a partial build reuses.
    """

    fingerprint: str
    code: str
    base: str
    extracts: dict[str, str]
    records: bool
    reuse: Any = None
    partial: tuple | None = None
    select: list[str] = field(default_factory=list)
    reused_tests: int = 0

    @property
    def runs_dbt(self) -> bool:
        """False when the whole build is reused, or the changed extracts are no dbt source."""
        return self.reuse is None and (self.partial is None or bool(self.select))

    def reused_events(self, context: dg.AssetExecutionContext) -> Iterator[Any]:
        """The outputs and check results this run reuses from an earlier build (logged)."""
        month, fp = context.partition_key, self.fingerprint
        if self.reuse is not None:
            reuse = self.reuse
            context.log.info(
                f"dbt {month}: raw loads, dbt project, vars and versions unchanged since run "
                f"{reuse.run_id[:8]} ({reuse.computed_at}); its {len(reuse.tables)} "
                f"tables and {reuse.metadata['tests']} passed tests stand (fingerprint {fp[:12]})."
            )
            yield from _reused_results(context, reuse, fp)
        elif self.partial is not None:
            earlier, changed, _select, rebuilt, retested = self.partial
            context.log.info(
                f"dbt {month}: only {', '.join(sorted(changed))} changed since run "
                f"{earlier.run_id[:8]}; building {len(rebuilt)} downstream models "
                f"({', '.join(sorted(rebuilt)) or 'none'}), reusing the others."
            )
            for event in _reused_results(context, earlier, fp, skip=rebuilt, skip_checks=retested):
                self.reused_tests += isinstance(event, dg.AssetCheckResult)
                yield event

    def record_without_build(self, warehouse) -> None:
        """A partial build with nothing to build: the earlier build stands for these extracts."""
        from sop_pipeline.storage import incremental

        if self.partial is None:
            return
        earlier = self.partial[0]
        with warehouse.get_connection() as con:
            incremental.record(
                con,
                *DBT_STAGE,
                self.fingerprint,
                self.code,
                earlier.run_id,
                earlier.tables,
                {**earlier.metadata, "extracts": self.extracts},
            )

    def record_build(self, warehouse, run_id: str, counts: Mapping[str, int], tests: int) -> None:
        """Keep the record of a build that succeeded (tables' rows, tests passed or reused)."""
        from sop_pipeline.storage import incremental

        if not self.records:
            return
        with warehouse.get_connection() as con:
            incremental.record(
                con,
                *DBT_STAGE,
                self.fingerprint,
                self.code,
                run_id,
                counts,
                {
                    "tests": tests + self.reused_tests,
                    "base": self.base,
                    "extracts": self.extracts,
                },
            )


def plan_build(
    context: dg.AssetExecutionContext, warehouse, variables: str, settings, is_postgres: bool
) -> BuildPlan:
    """Reuse, partial or full build (or the UI's subset) for the month's ``variables``.

    Reuse is for the DuckDB warehouse, whose tables the record can count, and never for a
    subset. A run that builds forgets the earlier record first: a build killed half way must
    not leave a record that vouches for its tables.
    """
    from sop_pipeline.storage import incremental

    manifest = _manifest_json()
    records = not context.is_subset and not is_postgres
    with warehouse.get_connection() as con:
        fp, code, base, extracts = _dbt_fingerprint(con, variables, settings)
        reuse = incremental.find_reusable(con, *DBT_STAGE, fp) if records else None
        partial = None
        if reuse is None and records:
            partial = _partial_build(con, base, extracts, manifest)
        if reuse is None:
            incremental.forget(con, *DBT_STAGE)
    if partial is not None:
        select = partial[2]
    else:
        select = _subset_selection(context, manifest) if context.is_subset else []
    return BuildPlan(fp, code, base, extracts, records, reuse, partial, select)


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
