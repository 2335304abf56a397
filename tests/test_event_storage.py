"""The run history's event log: Dagster's SQLite files, written through kept-open connections."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from sop_pipeline.runtime.event_storage import OPEN_RUN_DATABASES, PooledSqliteEventLogStorage
from sop_pipeline.runtime.runner import (
    _OLD_DAGSTER_YAML,
    DAGSTER_YAML_MARK,
    dagster_yaml_text,
    write_dagster_yaml,
)

CHECKS = 30


@dg.asset(check_specs=[dg.AssetCheckSpec(f"rule_{i}", asset="orders") for i in range(CHECKS)])
def orders():
    yield dg.Output(1)
    for i in range(CHECKS):
        yield dg.AssetCheckResult(check_name=f"rule_{i}", passed=i != 7)


JOB = dg.Definitions(assets=[orders], jobs=[dg.define_asset_job("j", [orders])]).resolve_job_def(
    "j"
)


def test_runs_recorded_through_the_pooled_storage_read_back_with_dagsters_own(
    tmp_path: Path,
) -> None:
    home = tmp_path / "dagster"
    write_dagster_yaml(home)
    instance = dg.DagsterInstance.from_config(str(home))
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    run_ids = [
        JOB.execute_in_process(instance=instance).run_id for _ in range(OPEN_RUN_DATABASES + 2)
    ]
    # engines of older runs are closed, not kept for ever
    assert len(instance.event_log_storage._engines) <= OPEN_RUN_DATABASES + 1
    instance.dispose()

    # the same files, read by Dagster's stock SQLite storage (what an older `dagster dev` reads)
    stock = SqliteEventLogStorage(str(home / "history" / "runs"))
    for run_id in run_ids:
        events = stock.get_logs_for_run(run_id)
        kinds = [e.dagster_event.event_type_value for e in events if e.is_dagster_event]
        assert kinds.count("ASSET_CHECK_EVALUATION") == CHECKS
        assert dg.DagsterEventType.RUN_SUCCESS.value in kinds
    latest = stock.get_latest_materialization_events([dg.AssetKey("orders")])
    assert latest[dg.AssetKey("orders")].run_id == run_ids[-1]
    failed = dg.AssetCheckKey(dg.AssetKey("orders"), "rule_7")
    (record,) = stock.get_asset_check_execution_history(failed, limit=1)
    assert record.run_id == run_ids[-1]
    assert record.event.dagster_event.event_specific_data.passed is False


def test_dagster_yaml_is_brought_up_to_date_unless_the_user_owns_it(tmp_path: Path) -> None:
    old, ours, theirs = (tmp_path / name for name in ("old", "ours", "theirs"))
    for home in (old, ours, theirs):
        home.mkdir()
    (old / "dagster.yaml").write_text(_OLD_DAGSTER_YAML)  # what earlier versions wrote
    (ours / "dagster.yaml").write_text(DAGSTER_YAML_MARK + "\ntelemetry:\n  enabled: true\n")
    mine = "telemetry:\n  enabled: true\n# my own storage settings\n"
    (theirs / "dagster.yaml").write_text(mine)
    for home in (old, ours, theirs):
        write_dagster_yaml(home)
    assert (old / "dagster.yaml").read_text() == dagster_yaml_text(old)
    assert (ours / "dagster.yaml").read_text() == dagster_yaml_text(ours)
    assert (theirs / "dagster.yaml").read_text() == mine
    assert str((old / "history" / "runs").resolve()) in dagster_yaml_text(old)
