"""The dbt project as seen by dagster-dbt (kept in its own module: the manifest is read at import).

Prepare the manifest before importing the definitions: ``make setup`` runs ``dbt parse``; the
``sop`` command does it too when the manifest is missing.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

# No target here: the manifest (the asset graph) is parsed for the profile's default target,
# duckdb, whatever SOP_WAREHOUSE says (the models are the same for both warehouses); the run's
# target is the dbt resource's (``dbt_resource``), from the run's settings.
dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
)
dbt_project.prepare_if_dev()


class SopDbtCliResource(DbtCliResource):
    """dagster-dbt's CLI resource without two start-up costs paid on every ``dbt build``.

    - ``_cli_version`` runs ``dbt --version`` in a new process each time it is read (twice per
      build); the dbt here is the pinned dbt-core of this virtual environment, so its package
      version is the answer.
    - ``_initialize_dbt_core_adapter`` parses every dbt macro in-process to get an adapter that
      is only used by ``fetch_row_counts``/``fetch_column_metadata``, which the pipeline does
      not call (it reads row counts itself in one query, see ``assets/transform.py``).

    Together about 5-10 s of the dbt step on this machine (profiled with pyinstrument).
    """

    @property
    def _cli_version(self) -> Version:
        return Version(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return None


def dbt_resource(target: str) -> DbtCliResource:
    """The dbt CLI resource, with the dbt of this virtual environment.

    Args:
        target: the profiles.yml target (``duckdb`` or ``postgres``: settings ``dbt_target``).
    """
    return SopDbtCliResource(
        project_dir=dbt_project,
        dbt_executable=DBT_EXECUTABLE,
        target=target,
    )


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
