"""Run the monthly Dagster job for one plan month from the CLI, and explain failures."""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from sop_pipeline.core.settings import Settings
from sop_pipeline.defs.orphaned_runs import recover_orphaned_runs
from sop_pipeline.storage.runlock import PROCESS_TAG, process_tag, run_lock


@dataclass
class RunOutcome:
    """What a CLI user needs to know about one run."""

    success: bool
    run_id: str
    summary: str = ""
    errors: list[str] = field(default_factory=list)
    #: the run's full log: what the tools printed (dbt's output) and Dagster's own log lines
    log_path: Path | None = None
    #: step → seconds, in the order the steps ran
    timings: dict[str, float] = field(default_factory=dict)


#: the first line of the dagster.yaml that ``write_dagster_yaml`` writes (and may write again)
DAGSTER_YAML_MARK = "# written by sop (write_dagster_yaml); delete this line to keep your edits"
#: what earlier versions wrote (no mark): replaced by the current file
_OLD_DAGSTER_YAML = (
    "telemetry:\n  enabled: false\n"
    "concurrency:\n  pools:\n    default_limit: 1\n  runs:\n    max_concurrent_runs: 1\n"
)


def dagster_yaml_text(home: Path) -> str:
    """DAGSTER_HOME's config: no telemetry, one run at a time, the pooled event log storage.

    The event log is Dagster's SQLite storage, same files, with its connections kept open
    (:mod:`sop_pipeline.runtime.event_storage`); its folder is Dagster's default
    (``history/runs``), so the run history of earlier runs stays where it was.
    """
    runs = (home.resolve() / "history" / "runs").as_posix()
    return (
        f"{DAGSTER_YAML_MARK}\n{_OLD_DAGSTER_YAML}"
        "event_log_storage:\n"
        "  module: sop_pipeline.runtime.event_storage\n"
        "  class: PooledSqliteEventLogStorage\n"
        f"  config:\n    base_dir: '{runs}'\n"
    )


def write_dagster_yaml(home: Path) -> None:
    """Write DAGSTER_HOME/dagster.yaml (:func:`dagster_yaml_text`) unless the user owns it.

    A file this function wrote (its first line is :data:`DAGSTER_YAML_MARK`) or the one earlier
    versions wrote is brought up to date; any other file is left as it is.
    """
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    text = dagster_yaml_text(home)
    if cfg.exists():
        current = cfg.read_text(encoding="utf-8")
        ours = current.startswith(DAGSTER_YAML_MARK) or current == _OLD_DAGSTER_YAML
        if current == text or not ours:
            return
    cfg.write_text(text, encoding="utf-8")


def _error_chain_message(error) -> str:
    """The user-facing message of a Dagster SerializableErrorInfo chain.

    Our own exceptions (``sop_pipeline.…``: IngestError, PublishDiskFullError, …) say how to
    fix the problem; the deepest of them wins, even when it was raised ``from`` a lower-level
    error (an ``OSError``, a DuckDB error) whose text it already quotes. Without one, the
    deepest message that is not a Dagster wrapper.
    """
    messages = []
    while error is not None:
        text = (error.message or "").strip()
        if text:
            messages.append(text)
        error = error.cause
    ours = [text for text in messages if text.startswith("sop_pipeline.")]
    candidates = ours or [
        text
        for text in messages
        if "dagster._core.errors" not in text
        and not text.startswith("Error occurred while executing")
    ]
    if candidates:
        return _strip_class_name(candidates[-1].split("\n\nStack Trace")[0])
    return _strip_class_name(messages[-1]) if messages else "unknown error"


_CLASS_PREFIX = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Timeout|Failure)\w*: "
)


def _strip_class_name(message: str) -> str:
    """``sop_pipeline.ingest.problems.IngestError: landing/…`` → ``landing/…`` (the sentence)."""
    return _CLASS_PREFIX.sub("", message.strip(), count=1)


def collect_errors(events) -> list[str]:
    """What went wrong in a run, one line per failed step or failed blocking check.

    A step that Dagster retried says how many attempts it had (retries are bounded by
    :data:`sop_pipeline.defs.retry.TRANSIENT_RETRY`).

    Args:
        events: the run's Dagster events (``result.all_events``).

    Returns:
        The lines, in event order.
    """
    errors: list[str] = []
    retries: dict[str, int] = {}
    for event in events:
        if event.event_type_value == "STEP_UP_FOR_RETRY":
            retries[event.step_key] = retries.get(event.step_key, 0) + 1
        elif event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            message = _error_chain_message(getattr(data, "error", None))
            if "blocking asset check failed" in message:
                continue  # the failed checks themselves are listed
            attempts = retries.get(event.step_key, 0) + 1
            tried = f" (failed {attempts} times; retries exhausted)" if attempts > 1 else ""
            errors.append(f"step {event.step_key}{tried}: {message}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed and evaluation.severity.value == "ERROR":
                key = evaluation.asset_key.to_user_string()
                desc = evaluation.description or ""
                errors.append(f"check {key}:{evaluation.check_name} failed {desc}".strip())
    return errors


def run_plan_month(
    settings: Settings, month: str, *, is_backfill: bool = False, console: Console | None = None
) -> RunOutcome:
    """Execute the ``sop_monthly`` job for ``month`` in this process, recorded in DAGSTER_HOME.

    Only one run of a ``SOP_HOME`` executes at a time: this waits (up to
    ``SOP_RUN_LOCK_TIMEOUT``) while another run holds ``$SOP_HOME/.run.lock``, saying which
    run it waits for. Runs that a killed process left STARTED are marked failed first, so
    their pool slot does not block this run.

    Args:
        settings: the run's settings (SOP_HOME and planning settings).
        month: plan month ``YYYY-MM``.
        is_backfill: tag the run (and the published version) as a backfill.
        console: where to print progress.

    Returns:
        The outcome; ``success`` is True only when every step succeeded.

    Raises:
        RunLockTimeout: another run held the lock for longer than the timeout.
    """
    import dagster as dg

    from sop_pipeline.defs.clean.project import ensure_manifest

    ensure_manifest()
    write_dagster_yaml(settings.dagster_home)
    from sop_pipeline.definitions import build_definitions

    if settings.forecast_n_jobs != 1 or settings.scenario_n_jobs > 1:
        from sop_pipeline.planning.processes import start_fork_server

        # the worker processes' server imports statsforecast while ingest and dbt run
        start_fork_server()

    def say(message: str) -> None:
        if console:
            console.print(f"[yellow]{escape(message)}[/]")

    with run_lock(
        settings.sop_home,
        run=f"sop run --month {month}",
        month=month,
        timeout=settings.run_lock_timeout,
        on_wait=say,
    ):
        job = build_definitions(settings).resolve_job_def("sop_monthly")
        instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
        recover_orphaned_runs(instance, log=say)
        tags = {
            "sop/plan_month": month,
            "sop/backfill": "true" if is_backfill else "false",
            PROCESS_TAG: process_tag(),
        }
        # The CLI shows one line per step (live progress on a terminal); the full log is a
        # file: what tools print (dbt) and Dagster's own log lines.
        log_path = settings.dagster_home / "logs" / f"sop_run_{month}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        total_steps, parts = _plan_shape(job)
        if console:
            console.print(
                f"[dim]running sop_monthly for {month}: {total_steps or 'all'} steps; full log "
                f"{log_path}; Dagster run history in {instance.root_directory}[/]"
            )
        from sop_pipeline.runtime.progress import RunProgress, terminal_console

        live = RunProgress(terminal_console(), total_steps=total_steps, parts=parts)
        with (
            open(log_path, "w", encoding="utf-8") as log_file,
            contextlib.redirect_stdout(log_file),
            contextlib.redirect_stderr(log_file),
            live,
        ):
            result = job.execute_in_process(
                partition_key=month,
                instance=instance,
                tags=tags,
                raise_on_error=False,
                run_config={
                    "loggers": {"console": {"config": {"log_level": "INFO"}}, "sop_steps": {}}
                },
            )
        errors = collect_errors(result.all_events)
        reused = _reused_steps(result.all_events)
        success = result.success and not errors
        if console and live.timings:
            console.print(live.table())
            not_run = total_steps - len(live.timings)
            if not success and not_run > 0:
                console.print(
                    f"  {not_run} of {total_steps} steps did not run (an upstream step failed)"
                )
        summary = ""
        if success:
            from sop_pipeline.runtime.summary import run_summary

            summary = run_summary(settings, month)
            if reused:
                summary += "\n  reused, inputs and code unchanged: " + ", ".join(
                    f"{step} ({n} asset{'s' if n > 1 else ''} from run {run})"
                    for step, (n, run) in reused.items()
                )
    return RunOutcome(
        success=success,
        run_id=result.run_id,
        summary=summary,
        errors=errors,
        log_path=log_path,
        timings={k: t.seconds for k, t in live.timings.items()},
    )


def _plan_shape(job) -> tuple[int, dict[str, int]]:
    """Steps of the job's execution plan, and the outputs (assets) of each step.

    For "step n/N" and the dbt step's progress bar (one materialization per model). Any
    problem reading the plan only loses the numbers, never the run.
    """
    try:
        from dagster._core.execution.api import create_execution_plan

        plan = create_execution_plan(job)
        keys = list(plan.step_keys_to_execute)
        parts = {k: len(plan.get_step_by_key(k).step_outputs) for k in keys}
        return len(keys), {k: n for k, n in parts.items() if n > 1}
    except Exception as exc:  # a Dagster internal; the numbers are a nicety
        logging.getLogger(__name__).debug("no execution plan shape: %s", exc)
        return 0, {}


def _reused_steps(events) -> dict[str, tuple[int, str]]:
    """Steps that reused an earlier run's result: step → (assets, source run id prefix)."""
    reused: dict[str, tuple[int, str]] = {}
    for event in events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        source = event.event_specific_data.materialization.metadata.get("reused_from_run")
        if source is not None and source.value:
            count, _ = reused.get(event.step_key, (0, ""))
            reused[event.step_key] = (count + 1, source.value[:8])
    return reused


def status_lines(settings: Settings) -> list[str]:
    """Short status of SOP_HOME: landing months, loaded months, published plan versions."""
    from sop_pipeline.runtime.summary import status

    return status(settings)
