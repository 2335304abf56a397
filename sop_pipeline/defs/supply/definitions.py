"""Supply review: the constrained supply plan, gaps and exceptions."""

import dagster as dg

from sop_pipeline.defs.supply.assets import plan_exceptions, plan_gaps, supply_plan

defs = dg.Definitions(
    assets=[supply_plan, plan_gaps, plan_exceptions],
)
