"""Run the monthly Dagster job for one plan month from the CLI, and explain failures."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from sop_pipeline.settings import Settings


@dataclass
class RunOutcome:
    """What a CLI user needs to know about one run."""

    success: bool
    run_id: str
    summary: str = ""
    errors: list[str] = field(default_factory=list)


def write_dagster_yaml(home: Path) -> None:
    """DAGSTER_HOME's config: no telemetry, and one run at a time in the warehouse pool."""
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(
            "telemetry:\n  enabled: false\n"
            "concurrency:\n  pools:\n    default_limit: 1\n  runs:\n    max_concurrent_runs: 1\n"
        )


def _error_chain_message(error) -> str:
    """The innermost user-facing message of a Dagster SerializableErrorInfo chain."""
    messages = []
    while error is not None:
        text = (error.message or "").strip()
        if text:
            messages.append(text)
        error = error.cause
    # the deepest cause is our own exception (IngestError, GateError, ...), which says how to fix it
    for text in reversed(messages):
        if "dagster._core.errors" not in text and not text.startswith(
            "Error occurred while executing"
        ):
            return text.split("\n\nStack Trace")[0]
    return messages[-1] if messages else "unknown error"


def run_plan_month(
    settings: Settings, month: str, *, is_backfill: bool = False, console: Console | None = None
) -> RunOutcome:
    """Execute the ``sop_monthly`` job for ``month`` in this process, recorded in DAGSTER_HOME.

    Args:
        settings: the run's settings (SOP_HOME and planning settings).
        month: plan month ``YYYY-MM``.
        is_backfill: tag the run (and the published version) as a backfill.
        console: where to print progress.

    Returns:
        The outcome; ``success`` is True only when every step succeeded.
    """
    import dagster as dg

    from sop_pipeline.dbt_project import ensure_manifest

    ensure_manifest()
    write_dagster_yaml(settings.dagster_home)
    from sop_pipeline.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def("sop_monthly")
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    tags = {"sop/plan_month": month, "sop/backfill": "true" if is_backfill else "false"}
    if console:
        console.print(
            f"[dim]running sop_monthly for {month} (Dagster run history in {instance.root_directory})[/]"
        )
    # The CLI prints one line per step; the full log stays in the Dagster run history and
    # what tools print (dbt) goes to a log file next to it.
    log_path = settings.dagster_home / "logs" / f"sop_run_{month}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log_file, contextlib.redirect_stdout(log_file):
        result = job.execute_in_process(
            partition_key=month,
            instance=instance,
            tags=tags,
            raise_on_error=False,
            run_config={
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}, "sop_steps": {}}
            },
        )
    errors: list[str] = []
    reused: dict[str, tuple[int, str]] = {}  # step → (assets, source run)
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            source = materialization.metadata.get("reused_from_run")
            if source is not None and source.value:
                count, _ = reused.get(event.step_key, (0, ""))
                reused[event.step_key] = (count + 1, source.value[:8])
        elif event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            message = _error_chain_message(getattr(data, "error", None))
            if "blocking asset check failed" in message:
                continue  # the failed checks themselves are listed
            errors.append(f"step {event.step_key}: {message}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed and evaluation.severity.value == "ERROR":
                key = evaluation.asset_key.to_user_string()
                desc = evaluation.description or ""
                errors.append(f"check {key}:{evaluation.check_name} failed {desc}".strip())
    success = result.success and not errors
    summary = ""
    if success:
        from sop_pipeline.summary import run_summary

        summary = run_summary(settings, month)
        if reused:
            summary += "\n  reused, inputs and code unchanged: " + ", ".join(
                f"{step} ({n} asset{'s' if n > 1 else ''} from run {run})"
                for step, (n, run) in reused.items()
            )
    return RunOutcome(success=success, run_id=result.run_id, summary=summary, errors=errors)


def status_lines(settings: Settings) -> list[str]:
    """Short status of SOP_HOME: landing months, loaded months, published plan versions."""
    from sop_pipeline.summary import status

    return status(settings)
