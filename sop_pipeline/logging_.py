"""A quiet Dagster logger for the CLI: one line per step started/finished, warnings and errors."""

import logging
import sys
import time

import dagster as dg

_SHOWN = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED", "ASSET_MATERIALIZATION"}


class _StepFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.reused: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        event = getattr(record, "dagster_event", None)
        if record.levelno >= logging.WARNING and event is None:
            return True
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


@dg.logger(description="One line per step for the sop command line.")
def step_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
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
