"""The Dagster layer: one package per S&OP step, each with its assets, checks and ``definitions.py``."""
