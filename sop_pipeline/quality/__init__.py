"""The plan gate: GX suites on DataFrames, the plan's consistency checks and the extract suites."""
