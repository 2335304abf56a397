"""Live progress of a ``sop run``: "step n/N", progress within a step, a timing table at the end.

The quiet step logger (``logging_.step_logger``) hands each step event to the active
:class:`RunProgress` (one per ``sop run``); without one (under ``dagster dev``) it prints its
one line per step as before. On a terminal the current step shows a rich progress bar: the
models and tests of the dbt step (one event each), the scenarios re-planned (the step logs
``progress 2/5: <name>``), a spinner with the elapsed time for steps that report no parts
(the forecast tournament). Piped or in CI there is no live display, only the lines.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

_ACTIVE: RunProgress | None = None


def active() -> RunProgress | None:
    """The progress display of the ``sop run`` in this process, if any."""
    return _ACTIVE


@dataclass
class StepTiming:
    """What the run shows of one step: its time, status, parts done and note."""

    step: str
    seconds: float = 0.0
    status: str = "running"
    parts: int = 0
    note: str = ""


@dataclass
class RunProgress:
    """Progress of one run: what the step logger reports, drawn with rich.

    Args:
        console: where the lines go (the real terminal, not the captured stdout).
        total_steps: steps in the run's plan (0 = unknown).
        parts: expected parts (asset materializations) per step key, e.g. dbt's models.
    """

    console: Console
    total_steps: int = 0
    parts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, StepTiming] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)
    _tasks: dict[str, int] = field(default_factory=dict)
    _progress: Progress | None = None

    def __enter__(self) -> RunProgress:
        global _ACTIVE
        if self.console.is_terminal:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        _ACTIVE = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _ACTIVE
        _ACTIVE = None
        if self._progress is not None:
            self._progress.stop()

    def _print(self, text: str) -> None:
        (self._progress.console if self._progress else self.console).print(text, highlight=False)

    def _label(self, n: int) -> str:
        return f"step {n}/{self.total_steps}" if self.total_steps else f"step {n}"

    def start(self, step: str) -> None:
        """A step started: print it and add its progress bar."""
        n = len(self.timings) + 1
        self._started[step] = time.monotonic()
        self.timings[step] = StepTiming(step)
        self._print(f"  [dim]{self._label(n)}[/] ▶ {escape(step)}")
        if self._progress is not None:
            total = self.parts.get(step) or None
            self._tasks[step] = self._progress.add_task(f"{step}", total=total)

    def part(self, step: str, what: str = "", *, total: int | None = None) -> None:
        """One part of ``step`` is done (a dbt model or test, a scenario re-planned).

        Args:
            step: the step key.
            what: the part's name, shown next to the bar.
            total: the step's number of parts, when the step says it (else the plan's).
        """
        timing = self.timings.get(step)
        if timing is None:
            return
        timing.parts += 1
        if self._progress is not None and step in self._tasks:
            desc = f"{step}: {what}" if what else step
            task = self._tasks[step]
            if total is not None:
                self._progress.update(task, total=total)
            self._progress.update(task, advance=1, description=desc[:70])

    def finish(self, step: str, status: str, note: str = "") -> None:
        """A step ended with ``status``: record its time and print its line."""
        timing = self.timings.setdefault(step, StepTiming(step))
        timing.seconds = time.monotonic() - self._started.get(step, time.monotonic())
        timing.status = status
        timing.note = note
        if self._progress is not None and step in self._tasks:
            self._progress.remove_task(self._tasks.pop(step))
        mark = {"done": "✓", "failed": "✗", "skipped": "–"}.get(status, "·")
        extra = f" [dim]{escape(note)}[/]" if note else ""
        took = f" ({timing.seconds:.1f}s)" if status != "skipped" else ""
        self._print(f"  {mark} {escape(step)}{took}{extra}")

    def skipped(self, step: str) -> None:
        """A step was skipped because an upstream step or blocking check failed."""
        self.timings.setdefault(step, StepTiming(step))
        self.finish(step, "skipped", "an upstream step or blocking check failed")

    def note(self, text: str) -> None:
        """Print a line of the run that belongs to no step."""
        self._print(f"  {text}")

    def table(self, *, top: int = 12) -> Table:
        """The run's steps, slowest first (``top`` of them), with the total."""
        table = Table(title=None, show_edge=False, pad_edge=False, box=None)
        table.add_column("step")
        table.add_column("seconds", justify="right")
        table.add_column("share", justify="right")
        table.add_column("status")
        rows = sorted(self.timings.values(), key=lambda t: -t.seconds)
        total = sum(t.seconds for t in rows) or 1.0
        for t in rows[:top]:
            table.add_row(t.step, f"{t.seconds:.1f}", f"{t.seconds / total:.0%}", t.status)
        if len(rows) > top:
            rest = sum(t.seconds for t in rows[top:])
            table.add_row(
                f"{len(rows) - top} other steps", f"{rest:.1f}", f"{rest / total:.0%}", ""
            )
        table.add_row("[bold]all steps[/]", f"[bold]{total:.1f}[/]", "", "")
        return table


def terminal_console() -> Console:
    """A console on the real stdout (the runner sends tools' own output to the log file)."""
    from sop_pipeline.runtime.output import NO_WRAP_WIDTH

    stream = sys.__stdout__
    tty = bool(stream and stream.isatty())
    if tty:
        return Console(file=stream, highlight=False)
    return Console(file=stream, highlight=False, width=NO_WRAP_WIDTH, soft_wrap=True)
