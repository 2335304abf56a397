"""What the ``sop`` command prints: consoles that do not wrap when piped, one-line errors.

Shared by every verb (``cli.py`` and the modules that register more verbs):

- :func:`make_console`: the terminal's width on a terminal; no wrapping at all when the
  output is a pipe, a file or CI, so paths and sentences stay on one line;
- :func:`print_error`: one red line, nothing else;
- :func:`report_unexpected`: an exception nobody anticipated becomes one line that says
  where the traceback was written (``SOP_DEBUG=1`` prints it instead).
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

#: a width no line reaches: rich then never wraps a line that is not a terminal's
NO_WRAP_WIDTH = 100_000

#: the file an unexpected error's traceback is appended to (under DAGSTER_HOME/logs)
ERROR_LOG = "sop_errors.log"


def make_console(*, stderr: bool = False) -> Console:
    """A rich console for stdout (or stderr) that wraps only on a terminal.

    On a terminal rich measures it (and follows resizes); piped or in CI, where rich would
    assume 80 columns, lines are written whole.
    """
    stream = sys.stderr if stderr else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=NO_WRAP_WIDTH, soft_wrap=True)


def print_error(console: Console, message: str, *, label: str = "Error") -> None:
    """One line: ``Error: <message>`` (markup in the message is printed as text)."""
    console.print(f"[bold red]{escape(label)}:[/] {escape(one_line(message))}")


def one_line(message: str) -> str:
    """A message on one line: inner line breaks become ``; `` and spaces are collapsed."""
    parts = [p.strip() for p in str(message).strip().splitlines() if p.strip()]
    return "; ".join(parts) if parts else "no message"


def exception_message(exc: BaseException) -> str:
    """What an exception says, without its Python class name or a traceback.

    The text of the exception and of the exceptions it was raised from (``from``/context),
    deepest last, is what a person can act on; an exception without text is described.
    """
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 5:
        text = str(current).strip()
        if isinstance(current, KeyError) and text.startswith("'"):
            text = f"no entry {text}"
        if text and text not in seen:
            seen.append(text)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return one_line(seen[0] if seen else "an error without a message")


def error_log_path(log_dir: Path | None) -> Path:
    """``<log_dir>/sop_errors.log`` if the folder can be written, else the temporary folder."""
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            probe = log_dir / ERROR_LOG
            with open(probe, "a", encoding="utf-8"):
                pass
            return probe
        except OSError:
            pass
    return Path(tempfile.gettempdir()) / ERROR_LOG


def report_unexpected(
    console: Console, exc: BaseException, *, command: str, log_dir: Path | None, debug: bool
) -> Path | None:
    """An unexpected exception → one line and the traceback in a log file.

    Args:
        console: where the line goes (stderr).
        exc: the exception.
        command: the verb, for the message (``sop report``).
        log_dir: where to append the traceback (``$DAGSTER_HOME/logs``), or None.
        debug: print the traceback too (``SOP_DEBUG=1``).

    Returns:
        The log file written, or None when it could not be written.
    """
    text = "".join(traceback.format_exception(exc))
    path: Path | None = error_log_path(log_dir)
    try:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')} {command}\n{text}\n")
    except OSError:
        path = None
    if debug:
        console.print(escape(text), end="")
    where = f"traceback in {path}" if path else "the traceback could not be written"
    console.print(
        f"[bold red]{escape(command)} failed:[/] {escape(exception_message(exc))} "
        f"({escape(where)}; set SOP_DEBUG=1 to print it)"
    )
    return path
