"""Clean: the dbt project (staging → intermediate → marts) as assets, its tests as checks."""
