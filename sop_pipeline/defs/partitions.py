"""The plan-month partition: defined once, used by every partitioned asset and passed to dbt."""

from __future__ import annotations

import json

import dagster as dg

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.core.settings import EARLIEST_PLAN_MONTH

# The partitions start at a fixed month, not at SOP_PARTITION_START: the asset decorators need
# the definition when their modules are imported, and a partition set that followed an
# environment variable would be read at import time and could differ between the processes
# that load this code (webserver, daemon, run worker), which would then disagree about which
# partitions exist. SOP_PARTITION_START is a setting of the run instead: the CLI refuses an
# earlier month before a run starts (cli/preflight.py), the sensor and backfills skip them,
# and a run of an earlier month from the UI stops at its first step (the ingest asset) with
# a message naming the setting.
plan_month_partitions = dg.MonthlyPartitionsDefinition(
    start_date=EARLIEST_PLAN_MONTH,
    fmt="%Y-%m",
    end_offset=0,
)


def plan_month_window(plan_month: str, horizon_months: int) -> dict[str, str]:
    """The dates a plan month needs, as dbt ``--vars``.

    Args:
        plan_month: partition key ``YYYY-MM``.
        horizon_months: months planned after the plan month.

    Returns:
        ``plan_month``, ``actuals_end`` (first day after the month's close),
        ``horizon_start`` and ``horizon_end`` (first day of the last planned month).
    """
    start = parse_month(plan_month)
    return {
        "plan_month": plan_month,
        "actuals_end": month_start(start, 1).isoformat(),
        "horizon_start": month_start(start, 1).isoformat(),
        "horizon_end": month_start(start, horizon_months).isoformat(),
    }


def dbt_vars(plan_month: str, horizon_months: int) -> str:
    """The ``--vars`` JSON string for a dbt invocation of one plan month."""
    return json.dumps(plan_month_window(plan_month, horizon_months))


#: Every partitioned asset runs one plan month per run: months are planned point in time and in
#: order (a month's accuracy scores the earlier months' forecast snapshots).
MONTHLY_RUNS = dg.BackfillPolicy.multi_run(1)
