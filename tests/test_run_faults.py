"""Faults in the run, end to end through the `sop` command (slow: `make test-slow`).

Each test runs `sop run` as a separate process on a small generated company whose previous
month (2026-05) is already published, then breaks something:

- the process group is killed with SIGKILL during each stage (ingest, dbt, forecast, supply,
  gate, publication);
- a second `sop run` for the same month starts while the first runs;
- `published/` is on a full disk, then read-only.

What a planner must see every time: the previous publication byte-identical and readable,
nothing left that blocks the next run, and the next plain `sop run` publishing the month.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from sop_pipeline.generator.company import generate_company
from sop_pipeline.publish.published_file import bi_connect

pytestmark = pytest.mark.slow

PREVIOUS = "2026-05"
MONTH = "2026-06"
SOP = str(Path(sys.executable).parent / "sop")
#: A fake secret in the environment of every run: it must not show up anywhere.
SECRET = "s3cr3t-Pa55-do-not-log-7f3a9c"  # pragma: allowlist secret
RUN_TIMEOUT = 900.0


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOP_") and k != "DAGSTER_HOME"}
    env.update(
        SOP_HOME=str(home),
        SOP_HORIZON_MONTHS="12",
        SOP_WAREHOUSE_PATH=str(home / "warehouse" / "sop.duckdb"),
        PYTHONUNBUFFERED="1",
        COLUMNS="10000",  # no wrapped lines: the test matches text
        SOP_PG_PASSWORD=SECRET,
        SOP_API_TOKEN=SECRET,
    )
    return env


class SopRun:
    """`sop run --month M` in its own process group, its output collected line by line."""

    def __init__(self, home: Path, month: str) -> None:
        self.home = home
        self.proc = subprocess.Popen(
            [SOP, "run", "--month", month],
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: dbt and helpers die with it
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def started_at(self, step: str) -> float | None:
        # "step 3/16 ▶ raw_extracts" (the counter is left out when the plan is unknown)
        return next(
            (
                t
                for t, line in self.lines
                if re.fullmatch(rf"(step \d+/\d+ )?▶ {re.escape(step)}", line.strip())
            ),
            None,
        )

    def finished(self, step: str) -> bool:
        return any(line.strip().startswith(f"✓ {step} (") for _, line in self.lines)

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                self._reader.join(timeout=10)
                pytest.fail(
                    f"sop run ended (exit {self.proc.returncode}) before {what}:\n{self.text}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:.0f} s:\n{self.text}")
            time.sleep(0.02)

    def kill_group(self) -> None:
        """SIGKILL the whole process group and wait until none of it is left."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        deadline = time.monotonic() + 30
        while _live_members(self.proc.pid):
            assert time.monotonic() < deadline, f"still alive: {_live_members(self.proc.pid)}"
            time.sleep(0.1)

    def finish(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            pytest.fail(f"sop run did not finish in {timeout:.0f} s:\n{self.text}")
        self._reader.join(timeout=10)
        assert SECRET not in self.text
        return self.proc.returncode


def _live_members(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies do not count)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(entry.name))
    return alive


def _hash_published(home: Path) -> dict[str, str]:
    """Every file of the publication (staging folders of a killed run are not part of it)."""
    root = home / "published"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.name != ".publish.lock"
        and not str(p.relative_to(root)).startswith(".staging-")
    }


def _versions(home: Path) -> list[tuple[str, int]]:
    """plan_versions through a locked-down BI connection (and its Parquet copy agrees)."""
    con = bi_connect(home / "published" / "sop.duckdb")
    try:
        rows = con.execute(
            "SELECT plan_month, plan_version FROM plan_versions ORDER BY 1, 2"
        ).fetchall()
        demand = con.execute("SELECT count(*) FROM plan_demand").fetchone()[0]
    finally:
        con.close()
    parquet = duckdb.sql(
        "SELECT count(*) FROM read_parquet("
        f"'{home}/published/parquet/plan_demand/*/*/part-0.parquet', hive_partitioning = true)"
    ).fetchone()[0]
    assert parquet == demand, "the Parquet copy does not hold the published rows"
    return [(m, int(v)) for m, v in rows]


def _no_secret_in_files(home: Path) -> None:
    """The planted secret is in no log, run history or summary file (DuckDB files aside)."""
    for path in home.rglob("*"):
        if path.is_file() and path.suffix not in (".duckdb", ".parquet", ".csv"):
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A company with 2026-05 published (v1); the seconds each step took in that run."""
    home = tmp_path_factory.mktemp("baseline")
    generate_company(home / "landing", items=40, months=36, seed=7, end=MONTH)
    run = SopRun(home, PREVIOUS)
    assert run.finish() == 0, run.text
    assert f"Published plan {PREVIOUS} version 1" in run.text
    _no_secret_in_files(home)
    seconds = {
        m.group(1): float(m.group(2))
        for _, line in run.lines
        if (m := re.match(r"\s*✓ (\S+) \(([\d.]+)s\)", line))
    }
    return home, seconds


def _copy(baseline: tuple[Path, dict[str, float]], tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(baseline[0], home, symlinks=True)
    return home


# --------------------------------------------------------------------------------------
# SIGKILL at each stage
# --------------------------------------------------------------------------------------


def _kill_point(stage: str, home: Path, run: SopRun, seconds: dict[str, float]):
    """(step key, condition that holds while the step is doing its real work)."""
    step = {
        "ingest": "raw_extracts",
        "dbt": "sop_dbt_models",
        "forecast": "plan__stat_forecast",
        "supply": "supply_plan",
        "gate": "gate__candidate_plan",
        "publication": "published__sop_plan",
    }[stage]

    def after_share(share: float) -> Callable[[], bool]:
        def check() -> bool:
            started = run.started_at(step)
            return started is not None and time.monotonic() - started >= share * seconds[step]

        return check

    log = home / "dagster" / "logs" / f"sop_run_{MONTH}.log"
    conditions = {
        # the loader is writing 2026-06 into the working database (its WAL exists)
        "ingest": lambda: (home / "warehouse" / "sop.duckdb.wal").exists(),
        # dbt has built some models and is building the rest
        "dbt": lambda: log.exists() and log.read_text(errors="replace").count(" OK created ") >= 15,
        "forecast": after_share(0.4),
        "supply": after_share(0.4),
        "gate": after_share(0.4),
        # the new sop.duckdb is being built beside the old one
        "publication": lambda: any((home / "published").glob(".staging-*/sop.duckdb")),
    }
    return step, conditions[stage]


@pytest.mark.parametrize("stage", ["ingest", "dbt", "forecast", "supply", "gate", "publication"])
def test_sigkill_during_a_stage_keeps_the_publication_and_the_next_run_recovers(
    stage: str, baseline: tuple[Path, dict[str, float]], tmp_path: Path
) -> None:
    home = _copy(baseline, tmp_path)
    before = _hash_published(home)
    assert _versions(home) == [(PREVIOUS, 1)]

    run = SopRun(home, MONTH)
    step, condition = _kill_point(stage, home, run, baseline[1])
    run.wait_until(lambda: run.started_at(step) is not None, f"start of {step}", RUN_TIMEOUT)
    run.wait_until(lambda: condition() or run.finished(step), f"the {stage} kill point", 600)
    assert not run.finished(step), f"{step} finished before the kill point was seen"
    run.kill_group()
    assert run.proc.returncode == -signal.SIGKILL
    assert not run.finished(step), f"{step} finished before the kill"

    # the previous publication: byte-identical and readable, through DuckDB and Parquet
    assert _hash_published(home) == before
    assert _versions(home) == [(PREVIOUS, 1)]

    # the next plain `sop run` recovers on its own and publishes the month
    again = SopRun(home, MONTH)
    assert again.finish() == 0, again.text
    assert f"Published plan {MONTH} version 1" in again.text
    assert "marked failed" in again.text  # the killed run, left STARTED, no longer blocks
    assert _versions(home) == [(PREVIOUS, 1), (MONTH, 1)]
    after = _hash_published(home)
    previous_files = {k: v for k, v in before.items() if k != "sop.duckdb"}
    assert {k: after[k] for k in previous_files} == previous_files  # earlier Parquet untouched
    assert not list((home / "published").glob(".staging-*"))
    assert not (home / "warehouse" / "sop.duckdb.wal").exists()
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    statuses = [r.status for r in instance.get_runs()]
    assert statuses.count(dg.DagsterRunStatus.FAILURE) == 1  # the killed run
    assert dg.DagsterRunStatus.STARTED not in statuses
    assert instance.event_log_storage.get_concurrency_info("sop_warehouse").claimed_slots == []
    _no_secret_in_files(home)


# --------------------------------------------------------------------------------------
# two runs at once
# --------------------------------------------------------------------------------------


def test_a_second_run_of_the_same_month_waits_and_both_publish(
    baseline: tuple[Path, dict[str, float]], tmp_path: Path
) -> None:
    home = _copy(baseline, tmp_path)
    first = SopRun(home, MONTH)
    first.wait_until(lambda: first.started_at("raw_extracts") is not None, "ingest", RUN_TIMEOUT)
    second = SopRun(home, MONTH)
    second.wait_until(lambda: "waiting for" in second.text, "the waiting message", 120)
    assert f"pid {first.proc.pid}" in second.text
    assert first.proc.poll() is None
    assert second.started_at("raw_extracts") is None  # it waits before doing anything

    assert first.finish() == 0, first.text
    assert second.finish() == 0, second.text
    assert f"Published plan {MONTH} version 1" in first.text
    assert f"Published plan {MONTH} version 2" in second.text
    assert _versions(home) == [(PREVIOUS, 1), (MONTH, 1), (MONTH, 2)]
    con = bi_connect(home / "published" / "sop.duckdb")
    try:
        for table in ("plan_demand", "plan_supply", "plan_inventory", "plan_financials"):
            v1, v2 = (
                con.execute(
                    f"SELECT * EXCLUDE (plan_version) FROM {table} "
                    "WHERE plan_month = ? AND plan_version = ? ORDER BY ALL",
                    [MONTH, v],
                ).fetchall()
                for v in (1, 2)
            )
            assert v1 and v1 == v2, table  # both complete; same inputs, same rows
    finally:
        con.close()


# --------------------------------------------------------------------------------------
# full disk, read-only published folder
# --------------------------------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def test_full_disk_then_read_only_published_folder_fail_cleanly(
    baseline: tuple[Path, dict[str, float]], tmp_path: Path
) -> None:
    home = _copy(baseline, tmp_path)
    published = home / "published"
    saved = tmp_path / "published-before"
    shutil.copytree(published, saved)
    used = sum(p.stat().st_size for p in saved.rglob("*") if p.is_file())
    try:
        _mount("-t", "tmpfs", "-o", f"size={used + 256 * 1024}", "tmpfs", str(published))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); tests/test_publish.py simulates it")
    try:
        shutil.copytree(saved, published, dirs_exist_ok=True)
        before = _hash_published(home)

        # 1. the disk holding published/ is full
        run = SopRun(home, MONTH)
        assert run.finish() == 1, run.text
        assert "no space left on device" in run.text, run.text
        assert str(published) in run.text and "Free space" in run.text, run.text
        assert "failed 3 times" in run.text, run.text  # retried twice, then gave up
        assert _hash_published(home) == before
        assert not list(published.glob(".staging-*"))
        assert _versions(home) == [(PREVIOUS, 1)]

        # 2. room again, but the folder is read-only
        _mount("-o", "remount,size=256m,ro", str(published))
        run = SopRun(home, MONTH)
        assert run.finish() == 1, run.text
        assert "read-only file system" in run.text and "writable" in run.text, run.text
        assert "failed 3 times" not in run.text, run.text  # retrying cannot make it writable
        assert _hash_published(home) == before

        # 3. fixed: the next run publishes
        _mount("-o", "remount,rw", str(published))
        run = SopRun(home, MONTH)
        assert run.finish() == 0, run.text
        assert _versions(home) == [(PREVIOUS, 1), (MONTH, 1)]
    finally:
        subprocess.run(["umount", str(published)], check=False)
