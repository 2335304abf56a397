"""Step 4 in Dagster, the financial plan: financials, forecast accuracy and the KPI scorecard."""
