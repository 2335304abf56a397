"""Recovery from runs whose process died: mark them failed and free their pool slots.

Works on the Dagster instance, so it lives in the Dagster layer; the process identity it
checks (:data:`~sop_pipeline.storage.runlock.PROCESS_TAG`,
:func:`~sop_pipeline.storage.runlock.process_alive`) is in :mod:`sop_pipeline.storage.runlock`.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES

from sop_pipeline.storage.runlock import PROCESS_TAG, process_alive


def recover_orphaned_runs(instance, log: Callable[[str], None] | None = None) -> list[str]:
    """Fail the runs whose process died and free the pool slots they still hold.

    A run killed with SIGKILL (or by a power cut) stays STARTED in Dagster's run history
    and keeps its ``sop_warehouse`` slot: the next run would wait for that slot forever.
    A run counts as orphaned when it carries :data:`PROCESS_TAG` and that process is no
    longer alive on this host (runs of other hosts or without the tag are left to
    Dagster's own run monitoring). Slots held by runs that already finished are freed too.

    Args:
        instance: the ``DagsterInstance`` of ``DAGSTER_HOME``.
        log: called with one line per run marked failed.

    Returns:
        The run ids marked failed.
    """
    active = [
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    failed: list[str] = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=active)):
        tag = run.tags.get(PROCESS_TAG)
        if not tag or process_alive(tag) is not False:
            continue
        pid = tag.split(":")[1]
        message = (
            f"run {run.run_id} (plan month {run.tags.get('sop/plan_month', '?')}) was left "
            f"{run.status.value} by process {pid}, which ended without finishing it (killed?); "
            "marked failed and its pool slot freed (publication is all-or-nothing: a version "
            "it did not finish publishing is not in published/)."
        )
        instance.report_run_failed(run, message=message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
        if log:
            log(message)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holders = sorted(storage.get_concurrency_run_ids())
        if holders:
            finished = dg.RunsFilter(run_ids=holders, statuses=list(FINISHED_STATUSES))
            for record in instance.get_run_records(filters=finished):
                storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
    return failed
