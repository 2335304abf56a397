"""The Dagster asset of the executive pack, written from the published file."""
