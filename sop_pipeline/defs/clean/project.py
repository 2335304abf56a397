"""The dbt project as seen by dagster-dbt, and the resource that runs dbt for the pipeline.

The project is kept in its own module: the manifest is read at import.

Prepare the manifest before importing the definitions: ``make setup`` runs ``dbt parse``; the
``sop`` command does it too when the manifest is missing.

dbt runs in the step's own process through dbt's programmatic runner (``dbtRunner``), not as a
``dbt`` subprocess per build: the subprocess paid dbt's imports, a full re-parse of the project
(the month's ``--vars`` defeat dbt's partial parsing) and dagster-dbt's adapter set-up on every
build, about half of the dbt step at the demo company's size. Here the project is parsed once per
process (with the project's default vars, so dbt's partial parse of ``make setup`` is reused) and
each build runs that manifest with the month's vars: every model's and test's SQL is compiled at
execution time from those vars, so it is the same SQL as a fresh ``dbt build --vars``.
"""

from __future__ import annotations

import json
import logging
import pickle
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"

# No target here: the manifest (the asset graph) is parsed for the profile's default target,
# duckdb, whatever SOP_WAREHOUSE says (the models are the same for both warehouses); the run's
# target is the dbt resource's (``dbt_resource``), from the run's settings.
dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
)
dbt_project.prepare_if_dev()

#: dbt's project files that decide the parse (and the build); their digest keys the parse cache.
DBT_FILES = ("dbt_project.yml", "profiles.yml", "models/**/*", "macros/**/*", "tests/**/*")

#: dbt's in-process state (flags, adapters, the event manager) is global: one invocation at a time.
_DBT_LOCK = threading.Lock()
_PARSED: dict[tuple[str, str], Any] = {}


@dataclass
class DbtNodeResult:
    """One node of a build: a model, a test, …, as dbt reported it."""

    unique_id: str
    resource_type: str
    name: str
    status: str
    seconds: float
    failures: int | None = None
    message: str | None = None


@dataclass
class DbtBuild:
    """What one ``dbt build`` did."""

    success: bool
    results: list[DbtNodeResult] = field(default_factory=list)
    invocation_id: str = ""
    target_path: Path | None = None
    #: dbt's own exception when it could not run at all (a compile or connection error)
    error: str | None = None

    def failed(self) -> list[DbtNodeResult]:
        """The nodes that errored or whose test failed."""
        return [r for r in self.results if r.status in ("error", "fail", "runtime error")]

    def error_message(self) -> str:
        """The sentence for the step failure: which nodes failed and why."""
        parts = [self.error] if self.error else []
        for r in self.failed():
            what = f"{r.resource_type} {r.name}"
            why = (r.message or r.status).strip().splitlines()[0] if (r.message or r.status) else ""
            parts.append(f"{what}: {why}")
        return "dbt build failed: " + ("; ".join(parts) or "see the run log for dbt's output")


class SopDbtResource(dg.ConfigurableResource):
    """dbt for the pipeline: ``dbt build`` of ``dbt_project/`` run in this process (dbtRunner).

    ``threads`` dbt nodes run at once (SOP_DBT_THREADS). They share one DuckDB database in
    this process; each model writes its own table and every DuckDB connection runs with one
    worker thread (profiles.yml), so the built tables do not depend on the order nodes ran in.
    """

    project_dir: str = str(DBT_PROJECT_DIR)
    target: str = "duckdb"
    threads: int = 2

    def _base_args(self) -> list[str]:
        return [
            "--project-dir",
            self.project_dir,
            "--profiles-dir",
            self.project_dir,
            "--target",
            self.target,
        ]

    def manifest(self, log_path: Path) -> Any:
        """The parsed project (dbt's ``Manifest``), parsed once per project state.

        Kept in this process and, pickled, in ``target/sop_parse/`` (keyed by the project
        files' digest, the target and dbt's version), so a new process (``sop run`` after an
        override) loads it in a fifth of a second instead of parsing again.
        """
        from dbt.version import __version__ as dbt_version

        from sop_pipeline.storage.incremental import files_digest

        digest = files_digest(Path(self.project_dir), DBT_FILES)
        key = (self.project_dir, self.target, digest)
        if key not in _PARSED:
            parse_dir = Path(self.project_dir) / "target" / "sop_parse"
            cached = parse_dir / f"manifest-{self.target}-{digest}-dbt{dbt_version}.pickle"
            manifest = _load_pickled(cached)
            if manifest is None:
                manifest = self._parse(parse_dir, log_path)
                _dump_pickled(manifest, cached)
            _PARSED.clear()
            _PARSED[key] = manifest
        return _PARSED[key]

    def _parse(self, parse_dir: Path, log_path: Path) -> Any:
        from dbt.cli.main import dbtRunner

        # a target folder of its own, parsed with the same arguments every time, so dbt's
        # partial parse (partial_parse.msgpack there) makes every later parse quick; the
        # project's manifest.json, which dagster-dbt read at import, stays alone
        result = dbtRunner().invoke(
            [
                "parse",
                *self._base_args(),
                "--target-path",
                str(parse_dir),
                "--log-path",
                str(log_path),
                "--log-level-file",
                "none",
                "--no-write-json",
                "--quiet",
            ]
        )
        if not result.success:
            raise RuntimeError(
                f"dbt parse failed: {result.exception}; run `make setup` to see dbt's output."
            )
        return result.result

    def build(
        self,
        variables: Mapping[str, Any],
        *,
        select: Sequence[str] = (),
        hold_duckdb: str | None = None,
        target_path: Path,
    ) -> DbtBuild:
        """``dbt build`` with ``variables`` (``--vars``), of ``select`` or of every node.

        Args:
            variables: dbt vars: the plan month's window and the sop_* vars of profiles.yml.
            select: dbt selectors (``--select``); empty: the whole project.
            hold_duckdb: the DuckDB file dbt builds in: a connection to it stays open while dbt
                runs, so dbt's per-node connections do not reopen (and checkpoint) the file.
            target_path: dbt's target folder for this build (compiled SQL, run_results.json).

        Returns:
            Every node's result; ``success`` is False when a node failed or dbt could not run.
        """
        from dbt.cli.main import dbtRunner

        target_path.mkdir(parents=True, exist_ok=True)
        args = [
            "build",
            *self._base_args(),
            "--vars",
            json.dumps(dict(variables), sort_keys=True),
            "--threads",
            str(self.threads),
            "--target-path",
            str(target_path),
            "--log-path",
            str(target_path),
            # dbt.log's rotating handler stats the file on every debug line: no log file (the
            # console output goes to the run log)
            "--log-level-file",
            "none",
            *(["--select", *select] if select else []),
        ]
        with _DBT_LOCK, _held(hold_duckdb):
            manifest = self.manifest(target_path)
            result = dbtRunner(manifest=manifest).invoke(args)
        return _build_result(result, target_path)


def _load_pickled(path: Path) -> Any | None:
    """The manifest a process pickled earlier, or None (none yet, or unreadable: parse)."""
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn or foreign file only costs a parse
        logging.getLogger(__name__).info("dbt manifest cache %s not used: %s", path, exc)
        return None


def _dump_pickled(manifest: Any, path: Path) -> None:
    """Keep the manifest for later processes (atomically; older states' files removed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as fh:
            try:
                pickle.dump(manifest, fh, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                Path(fh.name).unlink(missing_ok=True)
                raise
        Path(fh.name).replace(path)
        for old in path.parent.glob("manifest-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
    except Exception as exc:  # a read-only checkout still runs, parsing each time
        logging.getLogger(__name__).info("dbt manifest not cached in %s: %s", path, exc)


@contextmanager
def _held(path: str | None) -> Iterator[None]:
    """A connection to ``path`` (if any) for the duration of the block.

    Opened with the configuration dbt-duckdb opens the file with (none), so dbt's connections
    share its database.
    """
    if not path:
        yield
        return
    import duckdb

    con = duckdb.connect(path, read_only=False)
    try:
        yield
    finally:
        con.close()


def _build_result(result: Any, target_path: Path) -> DbtBuild:
    from dbt_common.invocation import get_invocation_id

    run = result.result
    nodes = []
    for r in getattr(run, "results", None) or []:
        node = r.node
        nodes.append(
            DbtNodeResult(
                unique_id=node.unique_id,
                resource_type=str(node.resource_type),
                name=node.name,
                status=str(r.status),
                seconds=float(r.execution_time or 0.0),
                failures=r.failures,
                message=r.message,
            )
        )
    error = None if result.exception is None else str(result.exception)
    return DbtBuild(
        success=bool(result.success),
        results=nodes,
        invocation_id=get_invocation_id(),
        target_path=target_path,
        error=error,
    )


@contextmanager
def build_folder() -> Iterator[Path]:
    """A temporary target folder for one build.

    In memory where the system has /dev/shm: dbt writes the compiled SQL of every node.
    """
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="sop_dbt_", dir=base) as tmp:
        yield Path(tmp)


def dbt_resource(target: str, threads: int) -> SopDbtResource:
    """The dbt resource of a run.

    Args:
        target: the profiles.yml target (``duckdb`` or ``postgres``: settings ``dbt_target``).
        threads: dbt nodes run at once (settings ``dbt_threads``, SOP_DBT_THREADS).
    """
    return SopDbtResource(target=target, threads=threads)


def ensure_manifest() -> Path:
    """Build ``target/manifest.json`` with ``dbt parse`` when it is missing (fresh clone)."""
    if not dbt_project.manifest_path.exists():
        from dbt.cli.main import dbtRunner

        result = dbtRunner().invoke(
            [
                "parse",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--quiet",
            ]
        )
        if not result.success:
            raise RuntimeError(
                f"dbt parse failed: {result.exception}; run `make setup` to see dbt's output."
            )
    return dbt_project.manifest_path
