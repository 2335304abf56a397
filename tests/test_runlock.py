"""One run at a time per SOP_HOME, and recovery from runs whose process was killed.

The end-to-end versions (two `sop run` processes, a `sop run` killed at each stage) are in
``tests/test_run_faults.py`` (slow); these tests check the pieces quickly with real
processes, real flocks and a real Dagster instance.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from sop_pipeline.defs.orphaned_runs import recover_orphaned_runs
from sop_pipeline.defs.resources import SopResource
from sop_pipeline.storage.runlock import (
    LOCK_NAME,
    PROCESS_TAG,
    RunLockTimeout,
    process_alive,
    process_tag,
    run_lock,
)

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sop_pipeline.storage.runlock import run_lock
    home, seconds = Path(sys.argv[1]), float(sys.argv[2])
    with run_lock(home, run="holder-run", month="2026-06", timeout=5):
        print("LOCKED", flush=True)
        time.sleep(seconds)
    print("RELEASED", flush=True)
    """
)


def _hold(home: Path, seconds: float) -> subprocess.Popen[str]:
    """A separate process holding the run lock of ``home`` for ``seconds``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(home), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "LOCKED"
    return proc


def test_a_second_run_waits_names_the_holder_and_then_runs(tmp_path: Path) -> None:
    holder = _hold(tmp_path, 2.0)
    messages: list[str] = []
    started = time.monotonic()
    try:
        with run_lock(tmp_path, run="second", month="2026-06", timeout=60, on_wait=messages.append):
            waited = time.monotonic() - started
            owner = (tmp_path / LOCK_NAME).read_text()
    finally:
        holder.wait(timeout=30)
    assert waited > 1.0, "the second run did not wait for the first"
    assert len(messages) == 1
    assert "waiting for holder-run (pid " in messages[0]
    assert f"pid {holder.pid}" in messages[0]
    assert "plan month 2026-06" in messages[0]
    assert "SOP_RUN_LOCK_TIMEOUT" in messages[0]
    # while it runs, the lock file names the second run for the next waiter
    assert '"run": "second"' in owner and f'"pid": {os.getpid()}' in owner


def test_waiting_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    holder = _hold(tmp_path, 30.0)
    try:
        started = time.monotonic()
        with (
            pytest.raises(RunLockTimeout) as caught,
            run_lock(tmp_path, run="second", month="2026-06", timeout=1.0),
        ):
            pytest.fail("the lock was taken while another process held it")
        assert 1.0 <= time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait(timeout=30)
    text = str(caught.value)
    assert "holder-run" in text and str(tmp_path / LOCK_NAME) in text
    assert "did not start" in text and "SOP_RUN_LOCK_TIMEOUT" in text


def test_the_lock_of_a_killed_process_does_not_block(tmp_path: Path) -> None:
    holder = _hold(tmp_path, 300.0)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert (tmp_path / LOCK_NAME).exists()  # the file stays; the kernel dropped the flock
    started = time.monotonic()
    with run_lock(tmp_path, run="next", month="2026-06", timeout=0):
        pass
    assert time.monotonic() - started < 1.0


def test_the_lock_is_reentrant_in_a_thread_but_not_across_threads(tmp_path: Path) -> None:
    outcome: list[str] = []

    def other_thread() -> None:
        try:
            with run_lock(tmp_path, run="thread", month="2026-06", timeout=0.5):
                outcome.append("taken")
        except RunLockTimeout:
            outcome.append("waited")

    with run_lock(tmp_path, run="outer", month="2026-06", timeout=0):
        with run_lock(tmp_path, run="inner", month="2026-06", timeout=0):
            pass  # the runner takes the lock, then the run's resources take it again
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert outcome == ["waited"]
    with run_lock(tmp_path, run="after", month="2026-06", timeout=0):
        pass  # released by the outer exit, not by the inner one


def test_process_alive_tells_a_live_process_from_a_dead_or_recycled_one() -> None:
    assert process_alive(process_tag()) is True
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    tag = process_tag(proc.pid)
    proc.wait(timeout=30)
    assert process_alive(tag) is False
    host, pid, _start = process_tag().split(":")
    assert process_alive(f"{host}:{pid}:1") is False  # same pid, other start time: recycled
    assert process_alive(f"other-host-{host}:{pid}:") is None


# --------------------------------------------------------------------------------------
# Dagster run history: a killed run must not block the next one
# --------------------------------------------------------------------------------------

_POOL_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import dagster as dg
    from sop_pipeline.storage.runlock import PROCESS_TAG, process_tag

    home, marker = sys.argv[1], Path(sys.argv[2])

    @dg.asset(pool="sop_warehouse")
    def slow_step():
        marker.write_text("started")
        time.sleep(300)

    job = dg.define_asset_job("pool_job", selection=[slow_step])
    defs = dg.Definitions(assets=[slow_step], jobs=[job], executor=dg.in_process_executor)
    instance = dg.DagsterInstance.from_config(home)
    defs.resolve_job_def("pool_job").execute_in_process(
        instance=instance, tags={PROCESS_TAG: process_tag()}
    )
    """
)


@dg.asset(pool="sop_warehouse")
def quick_step() -> int:
    return 1


@pytest.mark.timeout(180)
def test_a_killed_run_is_marked_failed_and_frees_its_pool_slot(tmp_path: Path) -> None:
    from sop_pipeline.runtime.runner import write_dagster_yaml

    home = tmp_path / "dagster"
    write_dagster_yaml(home)
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", _POOL_RUN, str(home), str(marker)], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the run ended before its step started"
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    instance = dg.DagsterInstance.from_config(str(home))
    (zombie,) = instance.get_runs()
    assert zombie.status == dg.DagsterRunStatus.STARTED  # what the killed process left
    slots = instance.event_log_storage.get_concurrency_info("sop_warehouse")
    assert [s.run_id for s in slots.claimed_slots] == [zombie.run_id]

    # a live run is not touched
    alive = instance.create_run_for_job(
        dg.Definitions(assets=[quick_step]).resolve_implicit_global_asset_job_def(),
        tags={PROCESS_TAG: process_tag()},
    )
    instance.handle_run_event(
        alive.run_id,
        dg.DagsterEvent(
            event_type_value="PIPELINE_START", job_name=alive.job_name, message="started"
        ),
    )
    lines: list[str] = []
    assert recover_orphaned_runs(instance, log=lines.append) == [zombie.run_id]
    assert instance.get_run_by_id(zombie.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.event_log_storage.get_concurrency_info("sop_warehouse").claimed_slots == []
    assert len(lines) == 1 and zombie.run_id in lines[0] and f"process {proc.pid}" in lines[0]
    assert "marked failed" in lines[0]

    # the next run of the pool gets the slot (without the clean-up it would wait forever)
    job = dg.Definitions(
        assets=[quick_step], executor=dg.in_process_executor
    ).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance)
    assert result.success


def test_a_run_started_elsewhere_waits_in_its_resources(tmp_path: Path) -> None:
    """A run launched from the Dagster UI takes the same lock through its resources."""

    @dg.asset
    def uses_settings(sop: SopResource) -> str:
        return sop.sop_home

    holder = _hold(tmp_path, 2.0)
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            started = time.monotonic()
            result = dg.materialize(
                [uses_settings],
                resources={"sop": SopResource(sop_home=str(tmp_path))},
                instance=instance,
            )
            waited = time.monotonic() - started
            logs = " ".join(e.user_message for e in instance.all_logs(result.run_id))
    finally:
        holder.wait(timeout=30)
    assert result.success
    assert waited > 1.0
    assert "waiting for holder-run (pid " in logs
