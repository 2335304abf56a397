"""The working database and its neighbours: DuckDB/PostgreSQL access, run locks, stage fingerprints."""
