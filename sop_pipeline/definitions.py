"""The single ``Definitions`` of the project, built from the per-stage modules."""

from __future__ import annotations

import dagster as dg

from sop_pipeline.assets import ingest, transform
from sop_pipeline.resources import build_resources

ALL_ASSETS = [ingest.raw_extracts, transform.sop_dbt_models]

sop_monthly_job = dg.define_asset_job(
    name="sop_monthly",
    selection=dg.AssetSelection.all(),
    description="Plan one month end to end: ingest → clean → demand → supply → finance → gate → publish.",
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[sop_monthly_job],
    resources=build_resources(),
    executor=dg.in_process_executor,
)
