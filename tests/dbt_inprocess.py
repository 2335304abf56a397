"""``dbt`` invoked in-process against one DuckDB file, for tests that read the file after it.

One place for what every such invocation needs: the project and profiles folder, the plan
month's vars, the warehouse path through the environment, and ``SOP_DBT_KEEP_OPEN=false`` so
dbt releases the file when it returns (the pipeline passes the same as dbt vars instead).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner, dbtRunnerResult

from sop_pipeline.defs.partitions import plan_month_window

DBT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"


def invoke_dbt(
    db: Path,
    work: Path,
    plan_month: str,
    horizon_months: int,
    *args: str,
    base_currency: str = "USD",
) -> dbtRunnerResult:
    """``dbt <args>`` for ``plan_month`` against ``db``; target and logs under ``work``.

    Every call with the same ``db``, ``work`` and vars lets dbt re-use its parse.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOP_WAREHOUSE_PATH", str(db))
        mp.setenv("SOP_BASE_CURRENCY", base_currency)
        mp.setenv("SOP_DBT_KEEP_OPEN", "false")
        return dbtRunner().invoke(
            [
                *args,
                "--project-dir",
                str(DBT_DIR),
                "--profiles-dir",
                str(DBT_DIR),
                "--target-path",
                str(work / "target"),
                "--log-path",
                str(work / "logs"),
                "--vars",
                json.dumps(plan_month_window(plan_month, horizon_months)),
                "--quiet",
            ]
        )
