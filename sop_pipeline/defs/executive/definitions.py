"""Pre-S&OP and executive S&OP: scenarios, the plan-change waterfall, the approval job."""

import dagster as dg

from sop_pipeline.defs.executive.approve import sop_approve
from sop_pipeline.defs.executive.assets import plan_waterfall, scenario_comparison

defs = dg.Definitions(
    assets=[scenario_comparison, plan_waterfall],
    jobs=[sop_approve],
)
