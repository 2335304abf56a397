"""Dagster resources: the settings of a run and the working database."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from sop_pipeline.settings import Settings, get_settings


class SopResource(dg.ConfigurableResource):
    """Where this run's files live and the planning settings that may change per run.

    Everything not listed here comes from the environment through ``Settings``.
    """

    sop_home: str
    horizon_months: int = 18
    strategy: str = "mixed"

    @property
    def settings(self) -> Settings:
        base = get_settings()
        return dataclasses.replace(
            base,
            sop_home=Path(self.sop_home),
            horizon_months=self.horizon_months,
            strategy=self.strategy,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SopResource:
        return cls(
            sop_home=str(settings.sop_home),
            horizon_months=settings.horizon_months,
            strategy=settings.strategy,
        )


class WarehouseResource(DuckDBResource):
    """The working DuckDB file; the connection is closed even when the step fails.

    (dagster-duckdb's own ``get_connection`` leaves it open on an exception, which keeps the
    file locked for the next step or run — dbt runs in a separate process and then cannot
    open it.) Opening waits for another writer for up to ~1 minute instead of failing.
    """

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        delay = 0.5
        for attempt in range(8):
            try:
                conn = duckdb.connect(
                    self.database,
                    read_only=False,
                    config={"custom_user_agent": "sop-pipeline", **self.connection_config},
                )
                break
            except duckdb.IOException:
                if attempt == 7:
                    raise
                time.sleep(delay)
                delay *= 2
        try:
            yield conn
        finally:
            conn.close()


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """The resources of every asset, for ``Definitions`` and for ``dagster.materialize`` in tests."""
    from sop_pipeline.dbt_project import dbt_resource

    settings = settings or get_settings()
    settings.ensure_dirs()
    return {
        "sop": SopResource.from_settings(settings),
        "warehouse": WarehouseResource(database=str(settings.warehouse_path)),
        "dbt": dbt_resource(),
    }
