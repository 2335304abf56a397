"""Demand review: statistical forecast, consensus demand and their level checks."""

import dagster as dg

from sop_pipeline.defs.demand.assets import (
    plan_demand,
    plan_demand_levels_add_up,
    stat_forecast,
    stat_forecast_levels_coherent,
)

defs = dg.Definitions(
    assets=[stat_forecast, plan_demand],
    asset_checks=[plan_demand_levels_add_up, stat_forecast_levels_coherent],
)
