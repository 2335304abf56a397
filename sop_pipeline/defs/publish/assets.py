"""Stages 5-6, gate and publish: the candidate plan passes the GX suites, then write-audit-publish."""

import hashlib
import json
import subprocess
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from sop_pipeline import __version__
from sop_pipeline.defs.metadata import (
    count_table,
    plan_table_metadata,
    published_schema,
    published_tables_md,
)
from sop_pipeline.defs.partitions import MONTHLY_RUNS, plan_month_partitions
from sop_pipeline.defs.resources import SopResource
from sop_pipeline.defs.retry import no_retry_on_validation
from sop_pipeline.errors import InvalidInputError
from sop_pipeline.publish.tables import GATED_TABLES, PLAN_TABLES
from sop_pipeline.storage.plan_tables import PlanTables, read_plan_month

GATE_KEY = dg.AssetKey(["gate", "candidate_plan"])
#: candidate plan tables in the working database, named as published (DESIGN §5 + additions)
PUBLISHED_FROM_PLAN = PLAN_TABLES
GATE_CHECKS = [f"gx_{t}" for t in GATED_TABLES] + ["plan_consistency", "consistency_suite"]


def _gate_check_description(name: str) -> str:
    """What a gate check verifies, for the UI (every gate check blocks publication: ERROR)."""
    if name.startswith("gx_"):
        table = name.removeprefix("gx_")
        return (
            f"Great Expectations suite data_quality/plan/{table}.json on the candidate {table} "
            f"(blocking, severity ERROR: a failure stops publication)."
        )
    return (
        "Checks across tables: every series covers the horizon, plan_gaps demand = Σ consensus "
        "per family × month, revenue = Σ served × price (blocking, severity ERROR)."
    )


def _gate_check_name(check_name: str) -> str:
    if check_name.startswith("suite:"):
        return "gx_" + check_name.split(":", 1)[1]
    if check_name.startswith("consistency:"):
        return "consistency_suite"
    return "plan_consistency"


def read_candidate(con, plan_month: str) -> dict[str, pd.DataFrame]:
    """Every candidate plan table of the month that exists in the working database."""
    tables = {table: read_plan_month(con, table, plan_month) for table in PUBLISHED_FROM_PLAN}
    return {table: frame for table, frame in tables.items() if frame is not None}


@dg.asset(
    key=GATE_KEY,
    group_name="gate",
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    deps=[
        dg.AssetKey(["plan", t])
        for t in (
            *GATED_TABLES,
            "plan_exceptions",
            "forecast_accuracy",
            "scenario_comparison",
            "plan_waterfall",
        )
    ],
    description=(
        "The gate on the candidate plan: Great Expectations suites (data_quality/plan) and "
        "consistency checks; its results (plan.gate_results) hold one row per check."
    ),
    owners=["team:sop-process"],
    tags={"sop_step": "gate"},
    kinds={"python", "great_expectations"},
    metadata=plan_table_metadata("gate_results"),
    check_specs=[
        dg.AssetCheckSpec(
            name=name, asset=GATE_KEY, blocking=True, description=_gate_check_description(name)
        )
        for name in GATE_CHECKS
    ],
    pool="sop_warehouse",
)
def candidate_plan(context: dg.AssetExecutionContext, sop: SopResource, warehouse: DuckDBResource):
    """Run the gate; its result is kept so publication can refuse a plan that did not pass."""
    from sop_pipeline.quality.gate import run_gate

    settings = sop.settings
    month = context.partition_key
    with warehouse.get_connection() as con:
        tables = read_candidate(con, month)
    result = run_gate(
        tables, month, settings.horizon_months, overtime_share=settings.overtime_share
    )
    records = pd.DataFrame(
        [
            {
                "check_name": c.name,
                "table_name": c.table,
                "passed": bool(c.passed),
                "blocking": bool(c.blocking),
                "evaluated": int(c.evaluated),
                "message": c.message,
                "run_id": context.run_id,
            }
            for c in result.checks
        ]
    )
    # the IO manager keeps the results in plan.gate_results (publication reads them)
    yield dg.MaterializeResult(
        value=PlanTables({"gate_results": records}),
        metadata={
            "gate_passed": dg.MetadataValue.bool(result.passed),
            "checks_passed": dg.MetadataValue.int(result.checks_passed),
            "checks_failed": dg.MetadataValue.int(result.checks_failed),
            "failures": dg.MetadataValue.md(result.failure_report() or "_none_"),
        },
    )
    grouped: dict[str, list] = {name: [] for name in GATE_CHECKS}
    for check in result.checks:
        grouped[_gate_check_name(check.name)].append(check)
    for name, checks in grouped.items():
        failed = [c for c in checks if not c.passed and c.blocking]
        warned = [c for c in checks if not c.passed and not c.blocking]
        yield dg.AssetCheckResult(
            check_name=name,
            passed=bool(checks) and not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=" | ".join(
                [c.message for c in failed] + [f"(warning) {c.message}" for c in warned]
            )[:2000]
            if failed or warned
            else None,
            metadata={
                "evaluated": dg.MetadataValue.int(sum(c.evaluated for c in checks)),
                "checks": dg.MetadataValue.int(len(checks)),
            },
        )


def input_fingerprint(con, plan_month: str, settings) -> str:
    """Hash of every extract file the month can see and the planning settings."""
    files = con.execute(
        "select extract_month, source_file, sha256 from raw._ingest_log "
        "where extract_month <= ? and status <> 'rejected' order by 1, 2, 3",
        [plan_month],
    ).fetchall()
    payload = {
        "files": files,
        "horizon": settings.horizon_months,
        "strategy": settings.strategy,
        "service_level": settings.service_level,
        "base_currency": settings.base_currency,
    }
    return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()


def release_version() -> str:
    """Package version plus the git commit of the code, when it runs from a checkout."""
    root = Path(__file__).resolve().parents[3]  # the checkout: sop_pipeline/defs/publish/assets.py
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


class GateNotPassedError(InvalidInputError, RuntimeError):
    """Publication refused: the candidate plan of the month did not pass the gate."""


@dg.asset(
    key=dg.AssetKey(["published", "sop_plan"]),
    group_name="publish",
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    deps=[GATE_KEY],
    description=(
        "The published S&OP plan: a new plan_version of every DESIGN §5 table in published/ "
        "(atomic); plan_versions gets one row per published plan."
    ),
    owners=["team:sop-process"],
    tags={"sop_step": "publish"},
    kinds={"duckdb", "parquet"},
    metadata={
        # the version register; the file's other tables: docs/published_tables.md
        "dagster/column_schema": dg.MetadataValue.table_schema(published_schema("plan_versions")),
        "published_tables": dg.MetadataValue.md(published_tables_md()),
    },
    pool="sop_warehouse",
)
@no_retry_on_validation()
def published_plan(context: dg.AssetExecutionContext, sop: SopResource, warehouse: DuckDBResource):
    """Write-audit-publish the candidate plan as the next version of the month."""
    from sop_pipeline.publish.writer import publish_plan

    settings = sop.settings
    month = context.partition_key
    with warehouse.get_connection() as con:
        gate = read_plan_month(con, "gate_results", month)
        if gate is None or gate.empty:
            raise GateNotPassedError(
                f"plan {month} has no gate result: materialize gate/candidate_plan for {month} first."
            )
        # a failed non-blocking check (a warning) does not stop publication
        blocking = gate["blocking"].astype(bool) if "blocking" in gate else True
        failed = gate[~gate["passed"].astype(bool) & blocking]
        if len(failed):
            raise GateNotPassedError(
                f"plan {month} did not pass the gate ({len(failed)} checks failed): "
                + "; ".join(failed["message"].head(5))
            )
        tables = read_candidate(con, month)
        fingerprint = input_fingerprint(con, month, settings)
    is_backfill = context.run.tags.get("sop/backfill", "false") == "true" if context.run else False
    result = publish_plan(
        settings.published_dir,
        month,
        {t: df for t, df in tables.items()},
        run_id=context.run_id,
        input_fingerprint=fingerprint,
        code_version=release_version(),
        checks_passed=int(gate["passed"].sum()),
        checks_failed=len(failed),
        is_backfill=is_backfill,
        base_currency=settings.base_currency,
    )
    return dg.MaterializeResult(
        metadata={
            "plan_version": dg.MetadataValue.int(result.plan_version),
            "path": dg.MetadataValue.path(str(result.path)),
            "row_counts": count_table(result.row_counts, "table", "rows"),
            "input_fingerprint": dg.MetadataValue.text(fingerprint),
            "is_backfill": dg.MetadataValue.bool(is_backfill),
            "seconds": dg.MetadataValue.float(float(result.seconds)),
        }
    )
