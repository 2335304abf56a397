"""When the plan runs: schedule, landing sensor, retries and backfill ranges."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from sop_pipeline.core.settings import Settings
from sop_pipeline.defs import retry
from sop_pipeline.defs.orchestration import schedules as orchestration
from sop_pipeline.defs.orchestration.schedules import (
    backfill_months,
    complete_months,
    landing_sensor,
)
from sop_pipeline.defs.partitions import plan_month_partitions
from sop_pipeline.defs.retry import TRANSIENT_RETRY, no_retry_on_validation
from sop_pipeline.ingest.contract import COMPLETE_MARKER, REQUIRED_EXTRACTS
from sop_pipeline.ingest.problems import IngestError
from sop_pipeline.runtime.runner import _error_chain_message

OLD = time.time() - 3600  # an hour ago: settled


def _deliver(landing: Path, month: str, *, marker: bool = True, skip: str | None = None) -> Path:
    """A month folder with every required extract (one line each) and optionally the marker."""
    folder = landing / month
    folder.mkdir(parents=True, exist_ok=True)
    for name in REQUIRED_EXTRACTS:
        if name != skip:
            path = folder / f"{name}.csv"
            path.write_text(f"{name} of {month}\n")
            os.utime(path, (OLD, OLD))
    if marker:
        (folder / COMPLETE_MARKER).write_text("")
        os.utime(folder / COMPLETE_MARKER, (OLD, OLD))
    return folder


# --------------------------------------------------------------------------------------
# complete_months
# --------------------------------------------------------------------------------------


def test_complete_months_needs_the_marker_or_every_required_extract(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _deliver(landing, "2026-04", marker=False)  # all required files, settled: complete
    marked = landing / "2026-05"
    marked.mkdir(parents=True)
    (marked / COMPLETE_MARKER).write_text("")  # the source system says so
    _deliver(landing, "2026-06", marker=False, skip="inventory")  # still arriving
    (landing / "archive").mkdir()
    (landing / "dialect.yaml").write_text("delimiter: ','\n")

    months = complete_months(landing)

    assert list(months) == ["2026-04", "2026-05"]
    assert all(len(fp) == 16 for fp in months.values())
    assert complete_months(tmp_path / "nowhere") == {}


def test_a_folder_still_being_copied_is_not_complete_without_the_marker(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    folder = _deliver(landing, "2026-06", marker=False)
    now = time.time()
    os.utime(folder / "items.csv", (now, now))  # written a moment ago

    assert complete_months(landing, settle_seconds=120, now=now) == {}
    assert list(complete_months(landing, settle_seconds=120, now=now + 121)) == ["2026-06"]
    (folder / COMPLETE_MARKER).write_text("")  # the marker needs no waiting
    assert list(complete_months(landing, settle_seconds=120, now=now)) == ["2026-06"]


def test_fingerprint_changes_only_when_the_delivery_changes(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    folder = _deliver(landing, "2026-06")
    before = complete_months(landing)["2026-06"]
    assert complete_months(landing)["2026-06"] == before  # same folder, same fingerprint

    (folder / "items.csv").write_text("items of 2026-06, corrected\n")
    corrected = complete_months(landing)["2026-06"]
    assert corrected != before

    os.utime(folder / "items.csv", (OLD + 60, OLD + 60))  # same bytes, re-sent later
    assert complete_months(landing)["2026-06"] not in (before, corrected)


# --------------------------------------------------------------------------------------
# the sensor
# --------------------------------------------------------------------------------------


@pytest.fixture
def sop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path


def _tick(cursor: str | None) -> dg.SensorResult:
    from sop_pipeline.defs.resources import SopResource

    # the sensor reads SOP_HOME from its `sop` resource, built from the (patched) environment
    sop = SopResource.from_settings(Settings.from_env())
    with (
        dg.DagsterInstance.ephemeral() as instance,
        dg.build_sensor_context(
            cursor=cursor, instance=instance, resources={"sop": sop}
        ) as context,
    ):
        result = landing_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_sensor_requests_a_delivered_month_once_and_a_redelivery_again(sop_home: Path) -> None:
    landing = sop_home / "landing"
    for month in ("2026-04", "2026-05", "2026-06"):
        _deliver(landing, month)

    first = _tick(None)
    # turning the sensor on plans the latest month, not the whole history
    assert [r.partition_key for r in first.run_requests] == ["2026-06"]
    request = first.run_requests[0]
    fingerprint = complete_months(landing)["2026-06"]
    assert request.run_key == f"2026-06:{fingerprint}"
    assert request.tags["sop/trigger"] == "landing_sensor"
    assert set(json.loads(first.cursor)["requested"]) == {"2026-04", "2026-05", "2026-06"}

    again = _tick(first.cursor)
    assert again.run_requests == []
    assert "nothing new" in again.skip_reason.skip_message
    assert again.cursor == first.cursor

    # a corrected re-delivery of May and a new month July: both run, oldest first
    (landing / "2026-05" / "sales_orders.csv").write_text("sales_orders of 2026-05, corrected\n")
    _deliver(landing, "2026-07")
    third = _tick(again.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2026-05", "2026-07"]
    new_may = complete_months(landing)["2026-05"]
    assert third.run_requests[0].run_key == f"2026-05:{new_may}"
    assert json.loads(third.cursor)["requested"]["2026-05"] == new_may


def test_sensor_skips_months_that_are_not_plan_months_yet(sop_home: Path) -> None:
    landing = sop_home / "landing"
    _deliver(landing, "2026-06")
    first = _tick(None)
    _deliver(landing, "2099-01")  # delivered early: the month has not closed

    result = _tick(first.cursor)

    assert result.run_requests == []
    assert "2099-01 complete but not a plan-month partition" in result.skip_reason.skip_message


def test_sensor_says_why_it_skips(sop_home: Path) -> None:
    assert str(sop_home / "landing") in _tick(None).skip_reason.skip_message  # no landing folder

    _deliver(sop_home / "landing", "2026-06", marker=False, skip="items")
    message = _tick(None).skip_reason.skip_message
    assert "no complete month folder" in message
    assert COMPLETE_MARKER in message and "items" in message


# --------------------------------------------------------------------------------------
# the schedule and the wiring
# --------------------------------------------------------------------------------------


def test_schedule_on_the_2nd_plans_the_month_that_just_closed(tmp_path: Path) -> None:
    from sop_pipeline.definitions import ALL_ASSETS, ALL_CHECKS
    from sop_pipeline.defs.resources import build_resources

    defs = dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[orchestration.sop_monthly_job],
        schedules=[orchestration.monthly_schedule],
        resources=build_resources(Settings.from_env({"SOP_HOME": str(tmp_path)})),
    )
    schedule = defs.resolve_schedule_def(orchestration.SCHEDULE_NAME)
    assert schedule.cron_schedule == "0 2 2 * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING

    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 2, 2, tzinfo=UTC)
    )
    requests = schedule.evaluate_tick(context).run_requests

    assert [r.partition_key for r in requests] == ["2026-10"]
    assert requests[0].tags["sop/backfill"] == "false"


def test_definitions_carry_the_schedule_sensor_and_retry_policy(tmp_path: Path) -> None:
    from sop_pipeline.definitions import build_definitions

    defs = build_definitions(Settings.from_env({"SOP_HOME": str(tmp_path)}))
    assert defs.resolve_schedule_def(orchestration.SCHEDULE_NAME).job_name == "sop_monthly"
    assert defs.resolve_sensor_def(orchestration.SENSOR_NAME).job_name == "sop_monthly"
    assert defs.resolve_job_def("sop_monthly").op_retry_policy == TRANSIENT_RETRY


# --------------------------------------------------------------------------------------
# retries
# --------------------------------------------------------------------------------------

MESSAGE = "landing/2026-06: required extract(s) inventory missing; add the file."


def test_validation_error_becomes_a_failure_that_is_not_retried() -> None:
    with pytest.raises(dg.Failure) as caught, no_retry_on_validation():
        raise IngestError(MESSAGE)
    assert caught.value.description == MESSAGE
    assert caught.value.allow_retries is False
    assert isinstance(caught.value.__cause__, IngestError)

    # transient: untouched, so Dagster retries it
    with pytest.raises(OSError, match="disk"), no_retry_on_validation():
        raise OSError("disk busy")


def test_decorator_keeps_generator_and_plain_assets_working() -> None:
    @no_retry_on_validation()
    def plain(x: int) -> int:
        if x < 0:
            raise ValueError(f"x={x} is negative")
        return x * 2

    @no_retry_on_validation()
    def gen(x: int):
        yield x
        raise ValueError("second item is bad")

    assert plain(2) == 4
    with pytest.raises(dg.Failure, match="x=-1 is negative"):
        plain(-1)
    items = gen(1)
    assert next(items) == 1
    with pytest.raises(dg.Failure, match="second item is bad"):
        next(items)


def _run_failing_asset(exc: Exception) -> tuple[int, dg.ExecuteInProcessResult]:
    attempts: list[int] = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2))
    @no_retry_on_validation()
    def flaky(context):
        attempts.append(context.retry_number)
        raise exc
        yield  # a generator asset, like most of ours

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([flaky], instance=instance, raise_on_error=False)
    return len(attempts), result


def test_dagster_retries_transient_errors_but_not_validation_errors() -> None:
    tries, result = _run_failing_asset(IngestError(MESSAGE))
    assert tries == 1 and not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    # the CLI shows the same message as before the wrapper
    assert MESSAGE in _error_chain_message(failure.event_specific_data.error)

    tries, result = _run_failing_asset(OSError("database is locked"))
    assert tries == 3 and not result.success


def test_transient_retry_waits_10_then_30_seconds() -> None:
    assert TRANSIENT_RETRY.max_retries == 2
    assert [TRANSIENT_RETRY.calculate_delay(n) for n in (1, 2)] == [10, 30]  # delay × (2^n − 1)


# --------------------------------------------------------------------------------------
# backfills
# --------------------------------------------------------------------------------------


def test_backfill_months_in_order_within_the_partitions() -> None:
    months = backfill_months("2025-11", "2026-02", partition_start="2020-01")
    assert months == ["2025-11", "2025-12", "2026-01", "2026-02"]
    first = plan_month_partitions.get_first_partition_key()
    last = plan_month_partitions.get_last_partition_key()
    assert backfill_months(first, first, partition_start=first) == [first]
    assert backfill_months(last, last, partition_start="2020-01") == [last]
    # SOP_PARTITION_START is the run's limit, not the partitions' first month
    with pytest.raises(ValueError, match=re.escape("plan months start at 2024-01")):
        backfill_months("2023-12", "2024-02", partition_start="2024-01")


@pytest.mark.parametrize(
    ("first", "last", "says"),
    [
        ("2026-03", "2026-01", "did you mean --from 2026-01 --to 2026-03"),
        ("1999-01", "2020-03", "SOP_PARTITION_START"),
        ("2026-01", "2099-12", "2099-12 has not closed yet"),
        ("2026-1", "2026-03", "use YYYY-MM"),
    ],
)
def test_backfill_months_explains_a_bad_range(first: str, last: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        backfill_months(first, last, partition_start="2020-01")


def test_every_step_of_the_monthly_job_has_the_bounded_retry_policy(tmp_path: Path) -> None:
    from sop_pipeline.definitions import build_definitions

    job = build_definitions(Settings.from_env({"SOP_HOME": str(tmp_path)})).resolve_job_def(
        "sop_monthly"
    )
    from dagster._core.definitions.dependency import NodeHandle

    policies = {
        node.name: job.get_retry_policy_for_handle(NodeHandle(node.name, None))
        for node in job.graph.nodes
    }
    assert len(policies) > 10 and all(p == TRANSIENT_RETRY for p in policies.values()), policies
    assert TRANSIENT_RETRY.max_retries == 2


def test_a_transient_error_is_tried_three_times_then_the_run_fails_and_says_so() -> None:
    """Retries are bounded: the monthly job's policy, without its 10 s / 30 s waits."""
    from sop_pipeline.runtime.runner import collect_errors

    attempts: list[int] = []
    policy = dg.RetryPolicy(max_retries=TRANSIENT_RETRY.max_retries)

    @dg.asset
    @no_retry_on_validation()
    def flaky_disk(context):
        attempts.append(context.retry_number)
        raise OSError(28, "No space left on device", "/srv/sop/published")

    job = dg.define_asset_job("flaky", selection=[flaky_disk], op_retry_policy=policy)
    defs = dg.Definitions(assets=[flaky_disk], jobs=[job], executor=dg.in_process_executor)
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("flaky").execute_in_process(
            instance=instance, raise_on_error=False
        )
    assert attempts == [0, 1, 2]  # the first try and two retries, no more
    assert not result.success
    (line,) = collect_errors(result.all_events)
    assert line.startswith("step flaky_disk (failed 3 times; retries exhausted): ")
    assert "No space left on device" in line and "/srv/sop/published" in line

    # a step that fails once and then works is not reported at all
    calls: list[int] = []

    @dg.asset
    def blinks(context) -> int:
        calls.append(context.retry_number)
        if context.retry_number == 0:
            raise OSError(11, "Resource temporarily unavailable")
        return 1

    job = dg.define_asset_job("blinks", selection=[blinks], op_retry_policy=policy)
    defs = dg.Definitions(assets=[blinks], jobs=[job], executor=dg.in_process_executor)
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("blinks").execute_in_process(instance=instance)
    assert result.success and calls == [0, 1]
    assert collect_errors(result.all_events) == []


def test_opening_a_locked_working_database_gives_up_after_bounded_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys
    from types import SimpleNamespace

    from sop_pipeline.defs import resources

    db = tmp_path / "sop.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); c.execute('create table t(x int)');"
            " print('OPEN', flush=True); time.sleep(120)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    sleeps: list[float] = []
    monkeypatch.setattr(resources, "time", SimpleNamespace(sleep=sleeps.append))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "OPEN"
        warehouse = resources.WarehouseResource(database=str(db))
        with pytest.raises(resources.WarehouseBusyError) as caught, warehouse.get_connection():
            pytest.fail("opened a database another process holds")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert len(sleeps) == resources.OPEN_ATTEMPTS - 1 == 7
    assert sleeps == [0.5 * 2**i for i in range(7)]  # 0.5 s doubling: ~1 minute in all
    text = str(caught.value)
    assert str(db) in text and "8 attempts over 64 s" in text and "run again" in text
    assert retry.is_retryable(caught.value)  # the step itself is retried later


@pytest.mark.parametrize("wrapped", [False, True])
def test_the_cli_shows_our_message_not_the_os_error_it_was_raised_from(wrapped: bool) -> None:
    """A disk error is re-raised as our own error with path and fix: the CLI shows that one."""
    from sop_pipeline.publish.published_file import PublishDiskFullError
    from sop_pipeline.runtime.runner import collect_errors

    ours = "publication of plan 2026-06 failed: no space left on device writing /srv/p. Free space"

    @dg.asset
    def publish_step():
        try:
            raise OSError(28, "No space left on device", "/srv/p/sop.duckdb")
        except OSError as exc:
            error = PublishDiskFullError(ours)
            if wrapped:  # as no_retry_on_validation does for non-retryable errors
                raise retry.as_failure(error) from error
            raise error from exc

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([publish_step], instance=instance, raise_on_error=False)
    (line,) = collect_errors(result.all_events)
    assert ours in line
    assert "[Errno 28]" not in line
