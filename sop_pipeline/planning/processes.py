"""Worker processes for the parallel planning steps, started by a fork server.

The forecast's statsforecast calls and the scenario re-plans run in worker processes when
their ``n_jobs`` asks for more than one. The workers are never forks of the calling process:
that process may run many threads (Dagster's, a Spark JVM's gateway, a database client's),
and a fork copies whatever locks those threads hold at that instant into a child that has
none of the threads to release them; the child can then wait forever (a test-suite run hung
for 30 minutes that way in statsforecast's forked ``multiprocessing.Pool``). Instead the
workers are forked by Python's *forkserver*: a fresh interpreter (a new program, exec-ed, not
forked) once per process, which imports the modules the workers need once (:data:`PRELOAD`)
and then forks a worker per request from its single Python thread, so a worker starts in
milliseconds with those imports done and inherits no thread or lock of the caller. (Its only
other threads are the idle pools that numpy's OpenBLAS and Arrow's allocator start on import;
both prepare for a fork with ``pthread_atfork`` handlers, as in any forked numpy process.)

What runs in a worker gets its inputs pickled, so it sees the same values and runs the same
code as it would in this process: the results do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

#: Imported once by the fork server; its workers start with them loaded. ``__main__`` (the
#: script that started this process, imported under another name, so its ``if __name__ ==
#: "__main__"`` block does not run) is the fork server's default, kept so that workers do not
#: each import it again on start-up. A module that cannot be imported is skipped.
PRELOAD = (
    "__main__",
    "statsforecast.core",
    "statsforecast.models",
    "sop_pipeline.planning.engines",
    "sop_pipeline.planning.scenarios.plan",
)


def worker_count(n_jobs: int) -> int:
    """The number of worker processes ``n_jobs`` asks for (``-1``: one per core).

    Args:
        n_jobs: the setting (``SOP_FORECAST_N_JOBS``, ``SOP_SCENARIO_N_JOBS`` or an argument).

    Returns:
        At least 1.
    """
    if n_jobs < 0:
        return max(1, os.cpu_count() or 1)
    return max(1, n_jobs)


def start_fork_server() -> None:
    """Start the fork server now, so that its imports (about 2 s) overlap other work.

    Otherwise it starts on the first task of this process's first pool. Starting it twice
    does nothing.
    """
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started by the fork server (see the module docstring).

    The fork server starts on the pool's first task, once per process (later pools reuse
    it; see :func:`start_fork_server`); workers start on demand, one per task until there
    are ``workers``.

    Args:
        workers: the most processes the pool runs at once.

    Returns:
        The executor; use it as a context manager, or call ``shutdown``.
    """
    return ProcessPoolExecutor(max_workers=workers, mp_context=_context())


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    # Takes effect when the fork server starts (the first pool's first task); a no-op after.
    context.set_forkserver_preload(list(PRELOAD))
    return context
