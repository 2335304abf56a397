"""Gate and publish: the candidate plan through the gate, then write-audit-publish."""

import dagster as dg

from sop_pipeline.defs.publish.assets import candidate_plan, published_plan

defs = dg.Definitions(
    assets=[candidate_plan, published_plan],
)
