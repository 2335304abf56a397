"""Step 3 in Dagster, supply review: the supply plan, its gaps and exceptions, and their checks."""
