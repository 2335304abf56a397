"""Ingest (data gathering): the month's extracts into ``raw``."""

import dagster as dg

from sop_pipeline.defs.ingest.assets import raw_extracts

defs = dg.Definitions(
    assets=[raw_extracts],
)
