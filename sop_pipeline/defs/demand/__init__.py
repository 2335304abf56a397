"""Step 2 in Dagster, demand review: the statistical forecast and consensus demand assets."""
