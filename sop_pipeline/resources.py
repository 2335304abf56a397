"""Dagster resources: the settings of a run and the working database."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
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


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """The resources of every asset, for ``Definitions`` and for ``dagster.materialize`` in tests."""
    from sop_pipeline.dbt_project import dbt_resource

    settings = settings or get_settings()
    settings.ensure_dirs()
    return {
        "sop": SopResource.from_settings(settings),
        "warehouse": DuckDBResource(database=str(settings.warehouse_path)),
        "dbt": dbt_resource(),
    }
