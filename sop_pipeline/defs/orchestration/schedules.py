"""When the plan runs: the monthly job, its schedule, the landing sensor and backfills.

- :data:`sop_monthly_job` plans one month end to end (every asset, one partition).
- :data:`monthly_schedule` runs it at 02:00 UTC on the 2nd of each month for the month that
  just closed (the run of 2026-11-02 plans ``2026-10``).
- :data:`landing_sensor` runs it when a month folder of the landing area is complete
  (``_COMPLETE`` marker, or every required extract present and settled), once per delivery:
  a corrected re-delivery of the same month runs again.
- every step runs under :data:`sop_pipeline.defs.retry.TRANSIENT_RETRY` (validation errors are
  never retried).
- :func:`backfill_months` checks a month range against the plan-month partitions.

This module must not import ``sop_pipeline.definitions`` (which imports it).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from sop_pipeline.core.months import month_range, parse_month
from sop_pipeline.defs.partitions import plan_month_partitions
from sop_pipeline.defs.resources import SopResource
from sop_pipeline.defs.retry import TRANSIENT_RETRY
from sop_pipeline.ingest.contract import COMPLETE_MARKER, REQUIRED_EXTRACTS

JOB_NAME = "sop_monthly"
SCHEDULE_NAME = "sop_monthly_schedule"
SENSOR_NAME = "sop_landing_sensor"
#: Seconds between two evaluations of the landing sensor.
SENSOR_INTERVAL_SECONDS = 60
#: A folder without the ``_COMPLETE`` marker counts as complete only when no file in it has
#: changed for this long (a copy still in progress must not start a run).
SETTLE_SECONDS = 120.0
#: Extract file types the loader reads (``sop_pipeline.ingest.loader``).
EXTRACT_SUFFIXES = (".csv", ".parquet")

_MONTH_DIR_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

# --------------------------------------------------------------------------------------
# the job and the schedule
# --------------------------------------------------------------------------------------

sop_monthly_job = dg.define_asset_job(
    name=JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="Plan one month end to end: ingest → clean → demand → supply → finance → gate → publish.",
    op_retry_policy=TRANSIENT_RETRY,
)

#: 02:00 UTC on the 2nd: the month that just closed (the run of 2026-11-02 plans 2026-10).
monthly_schedule = dg.build_schedule_from_partitioned_job(
    sop_monthly_job,
    name=SCHEDULE_NAME,
    description=(
        "Plans the month that just closed, at 02:00 UTC on the 2nd of the next month "
        "(the run of 2026-11-02 plans 2026-10)."
    ),
    minute_of_hour=0,
    hour_of_day=2,
    day_of_month=2,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags={"sop/trigger": "schedule", "sop/backfill": "false"},
)

# --------------------------------------------------------------------------------------
# the landing sensor
# --------------------------------------------------------------------------------------


def _month_folder_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def folder_fingerprint(files: list[Path]) -> str:
    """16 hex digits of a hash of the files' names, sizes and modification times."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def is_month_complete(
    folder: Path, *, settle_seconds: float = 0.0, now: float | None = None
) -> bool:
    """Whether a month folder is fully delivered.

    Args:
        folder: ``landing/YYYY-MM``.
        settle_seconds: without the marker, every file must be at least this old.
        now: the time to compare modification times with (default: now).

    Returns:
        True when the ``_COMPLETE`` marker exists, or when every required extract is there
        (``.csv`` or ``.parquet``) and no file changed in the last ``settle_seconds``.
    """
    files = _month_folder_files(folder)
    if any(p.name == COMPLETE_MARKER for p in files):
        return True
    stems = {p.stem for p in files if p.suffix.lower() in EXTRACT_SUFFIXES}
    if not set(REQUIRED_EXTRACTS) <= stems:
        return False
    if settle_seconds > 0:
        newest = max(p.stat().st_mtime for p in files)
        if (time.time() if now is None else now) - newest < settle_seconds:
            return False
    return True


def complete_months(
    landing_dir: Path, *, settle_seconds: float = 0.0, now: float | None = None
) -> dict[str, str]:
    """The complete month folders of a landing area and the fingerprint of each.

    Args:
        landing_dir: ``$SOP_HOME/landing``.
        settle_seconds: see :func:`is_month_complete`.
        now: see :func:`is_month_complete`.

    Returns:
        ``{"YYYY-MM": fingerprint}`` in month order; the fingerprint changes whenever a file of
        the folder is added, removed, resized or rewritten. Empty when the folder is missing.
    """
    if not landing_dir.is_dir():
        return {}
    out: dict[str, str] = {}
    for folder in sorted(landing_dir.iterdir()):
        if not folder.is_dir() or not _MONTH_DIR_RE.match(folder.name):
            continue
        if is_month_complete(folder, settle_seconds=settle_seconds, now=now):
            out[folder.name] = folder_fingerprint(_month_folder_files(folder))
    return out


def _read_cursor(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        return {}
    requested = data.get("requested") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in requested.items()} if isinstance(requested, dict) else {}


def _write_cursor(requested: dict[str, str]) -> str:
    return json.dumps({"requested": dict(sorted(requested.items()))}, sort_keys=True)


def landing_run_requests(
    complete: dict[str, str], cursor: str | None, in_range: Callable[[str], bool]
) -> tuple[list[dg.RunRequest], str, str | None]:
    """What the landing sensor does for the complete months it sees.

    Args:
        complete: :func:`complete_months` of the landing area.
        cursor: the sensor's cursor (None on the first evaluation).
        in_range: whether a month is a plan-month partition (a closed month).

    Returns:
        The run requests (one per new or changed month, oldest first), the new cursor, and
        a skip reason when nothing is requested. On the first evaluation (no cursor) only the
        latest complete month is requested; the older ones are remembered without a run
        (history is planned with a backfill, not by turning a sensor on).
    """
    seen = _read_cursor(cursor)
    first_time = not seen
    outside = [m for m in complete if not in_range(m)]
    candidates = {m: fp for m, fp in complete.items() if in_range(m)}
    changed = [m for m, fp in candidates.items() if seen.get(m) != fp]
    if first_time and changed:
        changed = changed[-1:]
    requests = [
        dg.RunRequest(
            run_key=f"{month}:{candidates[month]}",
            partition_key=month,
            tags={
                "sop/plan_month": month,
                "sop/backfill": "false",
                "sop/trigger": "landing_sensor",
                "sop/landing_fingerprint": candidates[month],
            },
        )
        for month in sorted(changed)
    ]
    new_cursor = _write_cursor({**seen, **candidates})
    if requests:
        return requests, new_cursor, None
    if not complete:
        reason = "no complete month folder"
    elif not candidates:
        reason = "no complete month folder is a closed plan month"
    else:
        latest = max(candidates)
        reason = (
            f"nothing new: {len(candidates)} complete month folder(s) already requested "
            f"with the same files (latest {latest})"
        )
    if outside:
        reason += (
            f"; {', '.join(outside)} complete but not a plan-month partition "
            "(SOP_PARTITION_START .. last closed month): "
            "it runs once the month has closed"
        )
    return [], new_cursor, reason


@dg.sensor(
    name=SENSOR_NAME,
    job=sop_monthly_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Plans a month as soon as landing/YYYY-MM is complete (_COMPLETE marker, or every "
        "required extract present and unchanged for 2 minutes); a re-delivery runs again."
    ),
)
def landing_sensor(context: dg.SensorEvaluationContext, sop: SopResource) -> dg.SensorResult:
    """Request ``sop_monthly`` for each month folder delivered or re-delivered since last time."""
    settings = sop.settings
    landing = settings.landing_dir
    if not landing.is_dir():
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"{landing} does not exist; set SOP_HOME to the folder holding landing/ "
                "or run `sop generate`."
            ),
            cursor=context.cursor,
        )
    complete = complete_months(landing, settle_seconds=SETTLE_SECONDS)
    requests, cursor, reason = landing_run_requests(
        complete,
        context.cursor,
        lambda m: plan_month_partitions.has_partition_key(m) and m >= settings.partition_start,
    )
    if requests:
        context.log.info(
            "requesting " + ", ".join(r.partition_key or "" for r in requests) + f" from {landing}"
        )
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    detail = (
        f"{reason} in {landing} (a month is complete with a {COMPLETE_MARKER} file, or with "
        f"all of {', '.join(REQUIRED_EXTRACTS)} as .csv/.parquet unchanged for "
        f"{SETTLE_SECONDS:.0f}s)"
        if reason and reason.startswith("no complete month folder")
        else f"{reason} in {landing}"
    )
    return dg.SensorResult(skip_reason=dg.SkipReason(detail), cursor=cursor)


# --------------------------------------------------------------------------------------
# backfills
# --------------------------------------------------------------------------------------


def backfill_months(first: str, last: str, *, partition_start: str) -> list[str]:
    """The plan months from ``first`` to ``last`` (inclusive, in order) for a backfill.

    Args:
        first: first plan month ``YYYY-MM``.
        last: last plan month ``YYYY-MM``.
        partition_start: settings ``partition_start`` (SOP_PARTITION_START).

    Returns:
        The months, oldest first (each plan can then score the previous plan's forecast).

    Raises:
        ValueError: a month is malformed, ``first`` is after ``last``, or a month is not a
            plan-month partition (before SOP_PARTITION_START, or not closed yet).
    """
    parse_month(first)
    parse_month(last)
    if first > last:
        raise ValueError(
            f"backfill from {first} to {last}: the first month is after the last; "
            f"did you mean --from {last} --to {first}?"
        )
    start = partition_start
    end = plan_month_partitions.get_last_partition_key()
    if first < start:
        raise ValueError(
            f"backfill from {first}: plan months start at {start} (SOP_PARTITION_START); "
            f"start the backfill at {start} or later, or lower SOP_PARTITION_START."
        )
    if end is None or last > end:
        raise ValueError(
            f"backfill to {last}: {last} has not closed yet; the latest plan month is {end}."
        )
    return month_range(first, last)
