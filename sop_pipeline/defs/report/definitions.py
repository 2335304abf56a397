"""Report: the executive pack of the published plan."""

import dagster as dg

from sop_pipeline.defs.report.assets import executive_pack

defs = dg.Definitions(
    assets=[executive_pack],
)
