"""Finance review: financials vs AOP, forecast accuracy, the KPI scorecard."""

import dagster as dg

from sop_pipeline.defs.finance.assets import forecast_accuracy, kpi_scorecard, plan_financials

defs = dg.Definitions(
    assets=[plan_financials, forecast_accuracy, kpi_scorecard],
)
