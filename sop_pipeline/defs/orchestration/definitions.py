"""Orchestration: the monthly job, its schedule and the landing sensor."""

import dagster as dg

from sop_pipeline.defs.orchestration.schedules import (
    landing_sensor,
    monthly_schedule,
    sop_monthly_job,
)

defs = dg.Definitions(
    jobs=[sop_monthly_job],
    schedules=[monthly_schedule],
    sensors=[landing_sensor],
)
