"""Step 6 in Dagster: the plan gate and the publication of the plan version."""
