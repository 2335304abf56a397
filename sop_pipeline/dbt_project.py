"""The dbt project as seen by dagster-dbt (kept in its own module: the manifest is read at import).

Prepare the manifest before importing the definitions: ``make setup`` runs ``dbt parse``; the
``sop`` command does it too when the manifest is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from sop_pipeline.settings import get_settings

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
    target=get_settings().dbt_target,
)
dbt_project.prepare_if_dev()


def dbt_resource(target: str | None = None) -> DbtCliResource:
    """The dbt CLI resource, with the dbt of this virtual environment.

    Args:
        target: the profiles.yml target (``duckdb`` or ``postgres``, from SOP_WAREHOUSE);
            default: the one the environment selects.
    """
    return DbtCliResource(
        project_dir=dbt_project,
        dbt_executable=DBT_EXECUTABLE,
        target=target or get_settings().dbt_target,
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
