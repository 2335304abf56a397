"""Step 1 in Dagster, data gathering: the assets that load a month's extracts into ``raw``."""
