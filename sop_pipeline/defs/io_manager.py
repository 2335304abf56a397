"""Where asset values live: the plan tables and the marts, read and written in one place.

Every asset of the monthly job is partitioned by plan month, so one value is one month:

- an output of a ``plan/<table>`` asset replaces that month's rows of ``plan.<table>`` in the
  working database (:func:`sop_pipeline.storage.warehouse.replace_plan_rows`: one
  transaction, columns added later are kept);
- an input from ``plan/<table>`` is that month's rows (:func:`read_plan`: a fixed row order, so
  sums give the same bits on every run);
- an input from ``marts/<model>`` is the mart dbt built for the month, from DuckDB or PostgreSQL
  (:meth:`MartsResource.reader`).

Asset bodies therefore take DataFrames and return a DataFrame (``dg.Output`` with metadata);
they only open the database themselves for what is not one month of one asset (earlier months,
the stage's side tables). Outputs of ``None`` — dbt models, assets that report a
``MaterializeResult`` — are not stored here.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from sop_pipeline.defs.resources import MartsResource, WarehouseResource
from sop_pipeline.storage.warehouse import read_plan, replace_plan_rows

PLAN_PREFIX = "plan"
MARTS_PREFIX = "marts"


class PlanTablesIOManager(dg.ConfigurableIOManager):
    """Plan tables in schema ``plan`` keyed by plan month; marts read through the marts reader."""

    warehouse: WarehouseResource
    marts: MartsResource

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        prefix, table = _split(context.asset_key)
        if prefix != PLAN_PREFIX:
            raise TypeError(f"{context.asset_key.to_user_string()} is not a plan table")
        with self.warehouse.get_connection() as con:
            rows = replace_plan_rows(con, table, obj, context.asset_partition_key)
        context.add_output_metadata({"dagster/row_count": dg.MetadataValue.int(rows)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        prefix, table = _split(context.asset_key)
        if prefix == MARTS_PREFIX:
            with self.marts.reader() as mart:
                return mart.read_mart(table)
        if prefix != PLAN_PREFIX:
            raise TypeError(f"{context.asset_key.to_user_string()} cannot be loaded as a frame")
        with self.warehouse.get_connection() as con:
            return read_plan(con, table, context.asset_partition_key)


def _split(key: dg.AssetKey) -> tuple[str, str]:
    path = key.path
    return (path[0], path[-1]) if len(path) >= 2 else ("", path[-1])
