"""One pipeline run at a time per ``SOP_HOME``, and the identity of the process running a run.

- :func:`run_lock` holds an exclusive ``flock`` on ``$SOP_HOME/.run.lock`` for the whole run
  (the ``sop`` command and the resources of every Dagster run take it, so a run started from
  the UI waits for one started from the command line and the other way round). A second
  run prints who holds the lock and waits, up to ``SOP_RUN_LOCK_TIMEOUT`` seconds. The
  kernel releases the lock when its process ends, even by SIGKILL: a lock file left behind
  never blocks anything.
- :func:`process_tag` / :func:`process_alive` identify the process that runs a Dagster run
  (host, pid and the process start time, so a recycled pid is not mistaken for the run).
- :func:`sop_pipeline.defs.orphaned_runs.recover_orphaned_runs` (Dagster layer) uses them to
  mark runs whose process died (STARTED in Dagster's run history, nobody running them) as
  failed and free the ``sop_warehouse`` pool slot they held; otherwise the next run would
  wait forever for that slot.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sop_pipeline.errors import OperationalError

LOCK_NAME = ".run.lock"
#: Dagster run tag holding :func:`process_tag` of the process that executes the run.
PROCESS_TAG = "sop/process"
#: Seconds between two "still waiting" messages.
WAIT_REPORT_SECONDS = 60.0

_local = threading.local()


class RunLockTimeout(OperationalError, RuntimeError):  # noqa: N818 - the cli, approval and tests catch it by name
    """Another run held the run lock for longer than the timeout; this run did nothing."""


def _start_time(pid: int) -> str:
    """The start time of a process in clock ticks since boot (``""`` when unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def process_tag(pid: int | None = None) -> str:
    """``host:pid:start`` of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def process_alive(tag: str) -> bool | None:
    """Whether the process of a :func:`process_tag` still runs.

    Returns:
        True or False for a process of this host, None for another host (cannot tell).
    """
    host, _, rest = tag.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname():
        return None
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except ValueError:
        return None
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    # a pid is recycled: the process must also have started when the run's process did
    return not start or _start_time(pid) in ("", start)


def _owner_text(path: Path) -> str:
    try:
        owner = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        owner = {}
    if not isinstance(owner, dict) or not owner:
        return "another run"
    return (
        f"{owner.get('run', 'another run')} (pid {owner.get('pid', '?')}, plan month "
        f"{owner.get('month', '?')}, started {owner.get('since', '?')})"
    )


def try_flock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting: False while another holds it.

    The kernel releases the lock when the descriptor is closed or its process dies.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
    return True


@contextmanager
def run_lock(
    sop_home: Path,
    *,
    run: str,
    month: str,
    timeout: float,
    on_wait: Callable[[str], None] | None = None,
    poll_seconds: float = 0.2,
) -> Iterator[Path]:
    """Hold ``$SOP_HOME/.run.lock`` exclusively; wait while another run holds it.

    Re-entrant within one thread (the ``sop`` command takes the lock, then the run's
    resources take it again without waiting for themselves).

    Args:
        sop_home: ``SOP_HOME`` (the lock file is created in it).
        run: what holds the lock (a Dagster run id, or "sop run 2026-06"), shown to waiters.
        month: the plan month, shown to waiters.
        timeout: seconds to wait at most (0: do not wait).
        on_wait: called with a message when the lock is busy (and every minute after).
        poll_seconds: how often to try again.

    Yields:
        The lock file's path.

    Raises:
        RunLockTimeout: the lock stayed busy for ``timeout`` seconds.
    """
    sop_home = Path(sop_home)
    sop_home.mkdir(parents=True, exist_ok=True)
    path = sop_home / LOCK_NAME
    key = str(path.resolve())
    held: dict[str, int] = _local.__dict__.setdefault("held", {})
    if held.get(key):
        held[key] += 1
        try:
            yield path
        finally:
            held[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        started = time.monotonic()
        reported = None
        while not try_flock(fd):
            waited = time.monotonic() - started
            owner = _owner_text(path)
            if waited >= timeout:
                raise RunLockTimeout(
                    f"{owner} has held {path} for more than {timeout:.0f} s, so this run "
                    f"({run}, plan month {month}) did not start. Wait for it to finish and run "
                    "again, or raise SOP_RUN_LOCK_TIMEOUT. The lock is released when its process "
                    "ends (even if killed), so a busy lock means that process still runs: end it "
                    "if it is stuck."
                ) from None
            if on_wait and (reported is None or waited - reported >= WAIT_REPORT_SECONDS):
                reported = waited
                on_wait(
                    f"waiting for {owner} to finish (lock {path}; this run waits up to "
                    f"{timeout:.0f} s, SOP_RUN_LOCK_TIMEOUT)"
                )
            time.sleep(poll_seconds)
        owner = {
            "run": run,
            "month": month,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        held[key] = 1
        try:
            yield path
        finally:
            held.pop(key, None)
    finally:
        os.close(fd)  # closing the descriptor releases the flock
