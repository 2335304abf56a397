"""Steps 2-5, the planning core: forecast to KPIs, DataFrames in and DataFrames out (no Dagster)."""
