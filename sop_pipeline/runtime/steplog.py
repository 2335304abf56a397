"""A quiet Dagster logger for the CLI: one line per step started/finished, warnings and errors."""

import logging
import re
import sys
import time

import dagster as dg

from sop_pipeline.runtime import progress

_SHOWN = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED", "ASSET_MATERIALIZATION"}


#: a step's log line for its progress bar: ``progress <done>/<total>: <what>``
_PROGRESS_RE = re.compile(r"^progress (\d+)/(\d+): (.*)$")

#: the tail of Dagster's notice for each step skipped after an upstream failure
_NOT_EXECUTING = "Not executing."


class _StepFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.reused: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        event = getattr(record, "dagster_event", None)
        if record.levelno >= logging.WARNING and event is None:
            # "Dependencies for step X failed: [...]. Not executing." once per downstream step:
            # the failed step says why, the runner counts the steps that did not run
            return _NOT_EXECUTING not in str(record.msg)
        live = progress.active()
        if event is None and live is not None:
            # "progress 2/5: <what>" logged by a step (scenario re-plans): its progress bar
            meta = getattr(record, "dagster_meta", None) or {}
            match = _PROGRESS_RE.match(str(meta.get("orig_message", "")))
            if match and meta.get("step_key"):
                live.part(meta["step_key"], match.group(3), total=int(match.group(2)))
            return False
        if event is not None and live is not None:
            return self._to_progress(live, event, event.step_key or "", event.event_type_value)
        if event is None or event.event_type_value not in _SHOWN:
            return False
        step = event.step_key or ""
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            # say so when a stage reused an earlier result because nothing it reads changed
            materialization = event.event_specific_data.materialization
            reused = materialization.metadata.get("reused_from_run")
            if reused is None or not getattr(reused, "value", "") or step in self.reused:
                return False
            self.reused.add(step)  # one line per step (dbt reports dozens of models)
            record.msg = (
                f"  ↺ {step}: inputs and code unchanged, reused the result of run "
                f"{reused.value[:8]}"
            )
            record.args = ()
            return True
        if kind == "STEP_START":
            self.started[step] = time.monotonic()
            record.msg = f"  ▶ {step}"
        elif kind == "STEP_SUCCESS":
            took = time.monotonic() - self.started.get(step, time.monotonic())
            record.msg = f"  ✓ {step} ({took:.1f}s)"
        elif kind == "STEP_SKIPPED":
            record.msg = f"  – {step} skipped (an upstream step or blocking check failed)"
        else:
            record.msg = f"  ✗ {step} failed"
        record.args = ()
        return True

    def _to_progress(self, live: progress.RunProgress, event, step: str, kind: str) -> bool:
        """Hand the event to ``sop run``'s live display instead of printing a line."""
        if kind == "STEP_START":
            live.start(step)
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            reused = materialization.metadata.get("reused_from_run")
            if reused is not None and getattr(reused, "value", "") and step not in self.reused:
                self.reused.add(step)
                timing = live.timings.get(step)
                if timing is not None:
                    timing.note = f"inputs and code unchanged, reused run {reused.value[:8]}"
            live.part(step, materialization.asset_key.path[-1])
        elif kind == "ASSET_CHECK_EVALUATION":
            # a step's outputs include its checks (dbt's tests): each one is a part done
            live.part(step, event.event_specific_data.check_name)
        elif kind == "STEP_SUCCESS":
            timing = live.timings.get(step)
            live.finish(step, "done", timing.note if timing else "")
        elif kind == "STEP_SKIPPED":
            live.skipped(step)
        elif kind == "STEP_FAILURE":
            live.finish(step, "failed")
        return False


@dg.logger(description="One line per step for the sop command line.")
def step_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """The Dagster logger that prints one line per step event on the terminal."""
    log = logging.getLogger("sop.steps")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    if not log.handlers:
        # the real terminal, even while the runner sends tool output (dbt) to a log file
        handler = logging.StreamHandler(sys.__stdout__)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(_StepFilter())
        log.addHandler(handler)
    return log
