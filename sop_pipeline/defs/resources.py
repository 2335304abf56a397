"""Dagster resources: the settings of a run, the working database and where the marts are.

The first two hold the run lock of ``SOP_HOME`` (:mod:`sop_pipeline.storage.runlock`) while a run
executes, so two runs of one ``SOP_HOME`` never interleave their steps, whoever started them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from sop_pipeline.core.settings import WAREHOUSES, Settings, read_secret
from sop_pipeline.defs.orphaned_runs import recover_orphaned_runs
from sop_pipeline.errors import OperationalError
from sop_pipeline.storage.plan_tables import PlanTables, write_plan_tables
from sop_pipeline.storage.runlock import run_lock
from sop_pipeline.storage.warehouse import DuckDBMarts, MartReader, read_plan

if TYPE_CHECKING:
    from sop_pipeline.storage.postgres import PostgresTarget


@contextmanager
def _run_lock_for(sop_home: str, timeout: float, context: dg.InitResourceContext) -> Iterator[None]:
    """Hold the run lock of ``sop_home`` while the run's resources are alive.

    Only for a run: a sensor tick (the landing sensor reads the settings) holds no lock, or it
    would wait for the run in progress.
    """
    run = context.dagster_run
    if not sop_home or run is None:
        yield
        return
    log = context.log

    def warn(message: str) -> None:
        if log is not None:
            log.warning(message)

    with run_lock(
        Path(sop_home),
        run=f"Dagster run {run.run_id}" if run else "a Dagster run",
        month=(run.tags.get("dagster/partition", "?") if run else "?"),
        timeout=timeout,
        on_wait=warn,
    ):
        if context.instance is not None:
            recover_orphaned_runs(context.instance, log=warn)
        yield


_DEFAULTS = Settings(sop_home=Path())


class SopResource(dg.ConfigurableResource):
    """Every setting of the run (``core.settings.Settings``) as resource config.

    Built from the settings read once (``build_resources``), so the run's config in the
    Dagster UI shows how the run was planned; values changed in the launchpad are validated
    like environment variables when a step reads :attr:`settings`. The one setting not in the
    config is the PostgreSQL password (the UI shows config): it is read from SOP_PG_PASSWORD.
    Field names and defaults are those of ``Settings`` (a test keeps the two in step).
    """

    sop_home: str
    base_currency: str = _DEFAULTS.base_currency
    horizon_months: int = _DEFAULTS.horizon_months
    partition_start: str = _DEFAULTS.partition_start
    strategy: str = _DEFAULTS.strategy
    service_level: float = _DEFAULTS.service_level
    max_reject_rate: float = _DEFAULTS.max_reject_rate
    forecast_engine: str = _DEFAULTS.forecast_engine
    forecast_n_jobs: int = _DEFAULTS.forecast_n_jobs
    dask_address: str = _DEFAULTS.dask_address
    spark_master: str = _DEFAULTS.spark_master
    backtest_windows: int = _DEFAULTS.backtest_windows
    cover_limit_days: float = _DEFAULTS.cover_limit_days
    overtime_share: float = _DEFAULTS.overtime_share
    warehouse: str = _DEFAULTS.warehouse
    pg_host: str = _DEFAULTS.pg_host
    pg_port: int = _DEFAULTS.pg_port
    pg_user: str = _DEFAULTS.pg_user
    pg_dbname: str = _DEFAULTS.pg_dbname
    # "" = DAGSTER_HOME unset ($SOP_HOME/dagster)
    dagster_home_dir: str = ""
    run_lock_timeout: float = _DEFAULTS.run_lock_timeout
    unmet_demand: str = _DEFAULTS.unmet_demand
    stockout_risk_threshold: float = _DEFAULTS.stockout_risk_threshold
    dbt_threads: int = _DEFAULTS.dbt_threads
    scenario_n_jobs: int = _DEFAULTS.scenario_n_jobs

    @property
    def settings(self) -> Settings:
        """The run's settings, validated (``SettingsError`` names a bad value's variable)."""
        return Settings.from_config(self.model_dump())

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[SopResource]:
        """Hold the run lock of SOP_HOME for the whole run."""
        with _run_lock_for(self.sop_home, self.run_lock_timeout, context):
            yield self

    @classmethod
    def from_settings(cls, settings: Settings) -> SopResource:
        """The resource carrying every setting (but the PostgreSQL password) of ``settings``."""
        return cls(**settings.config_values())


#: Attempts to open the working database while another process holds it.
OPEN_ATTEMPTS = 8


class WarehouseBusyError(OperationalError, RuntimeError):
    """The working database stayed locked by another process; retrying later can help."""


class WarehouseResource(DuckDBResource):
    """The working DuckDB file; the connection is closed even when the step fails.

    (dagster-duckdb's own ``get_connection`` leaves it open on an exception, which keeps the
    file locked for the next step or run — dbt runs in a separate process and then cannot
    open it.) Opening waits for another writer for up to ~1 minute instead of failing.
    With ``sop_home`` set, a run holds the run lock of that folder (see the module doc).
    """

    sop_home: str = ""
    run_lock_timeout: float = _DEFAULTS.run_lock_timeout

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[WarehouseResource]:
        """Hold the run lock of SOP_HOME (when set) for the whole run."""
        with _run_lock_for(self.sop_home, self.run_lock_timeout, context):
            yield self

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, closed on exit.

        Raises:
            WarehouseBusyError: another process kept the file locked through every attempt
                (``OPEN_ATTEMPTS``, 0.5 s doubling to ~1 minute in total).
        """
        delay, waited = 0.5, 0.0
        for attempt in range(OPEN_ATTEMPTS):
            try:
                conn = duckdb.connect(
                    self.database,
                    read_only=False,
                    config={"custom_user_agent": "sop-pipeline", **self.connection_config},
                )
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if attempt == OPEN_ATTEMPTS - 1:
                    raise WarehouseBusyError(
                        f"the working database {self.database} stayed locked by another process "
                        f"through {OPEN_ATTEMPTS} attempts over {waited:.0f} s "
                        f"({str(exc).splitlines()[0]}). Close the program that holds it (BI tools "
                        "read published/, never the working database) or wait for it to finish, "
                        "then run again."
                    ) from exc
                time.sleep(delay)
                waited += delay
                delay *= 2
        try:
            yield conn
        finally:
            conn.close()


class MartsResource(dg.ConfigurableResource):
    """Where dbt builds staging, intermediate and marts, and where the Python stages read the marts.

    ``warehouse`` is ``duckdb`` (the working file; the default) or ``postgres`` (the SOP_PG_*
    settings). The PostgreSQL password is not part of this resource's config (which the
    Dagster UI shows): it is read from SOP_PG_PASSWORD when connecting (``read_secret``).
    """

    # the working DuckDB file (the marts are there in DuckDB mode)
    working: WarehouseResource
    warehouse: str = "duckdb"
    pg_host: str = "localhost"
    pg_port: int = 5432
    pg_user: str = "sop"
    pg_dbname: str = "sop"

    @classmethod
    def from_settings(
        cls, settings: Settings, working: WarehouseResource | None = None
    ) -> MartsResource:
        """The marts of the warehouse ``settings`` name (DuckDB: the working file)."""
        return cls(
            working=working or WarehouseResource(database=str(settings.warehouse_path)),
            warehouse=settings.warehouse,
            pg_host=settings.pg_host,
            pg_port=settings.pg_port,
            pg_user=settings.pg_user,
            pg_dbname=settings.pg_dbname,
        )

    @property
    def is_postgres(self) -> bool:
        """True when dbt builds the marts in PostgreSQL."""
        if self.warehouse not in WAREHOUSES:
            raise ValueError(
                f"marts warehouse {self.warehouse!r} is unknown; use one of {', '.join(WAREHOUSES)}."
            )
        return self.warehouse == "postgres"

    def _postgres_target(self) -> PostgresTarget:
        from sop_pipeline.storage.postgres import PostgresTarget

        return PostgresTarget(
            host=self.pg_host,
            port=self.pg_port,
            user=self.pg_user,
            dbname=self.pg_dbname,
            password=read_secret(),
        )

    @property
    def location(self) -> str:
        """Where the marts are, for logs and metadata (never the password)."""
        if self.is_postgres:
            return f"PostgreSQL {self._postgres_target().label}"
        return f"DuckDB {self.working.database}"

    @contextmanager
    def reader(self) -> Iterator[MartReader]:
        """A :class:`~sop_pipeline.storage.warehouse.MartReader` on the marts, closed afterwards."""
        if self.is_postgres:
            from sop_pipeline.storage.postgres import PostgresMarts, connect

            target = self._postgres_target()
            con = connect(target)
            try:
                yield PostgresMarts(con, target.label)
            finally:
                con.close()
        else:
            with self.working.get_connection() as con:
                yield DuckDBMarts(con)

    def sync_raw(self, duck: duckdb.DuckDBPyConnection) -> dict[str, int]:
        """PostgreSQL only: copy the working file's changed raw extract months (the dbt sources).

        Returns:
            Rows copied per raw table ({} in DuckDB mode, where dbt reads the file itself).
        """
        if not self.is_postgres:
            return {}
        from sop_pipeline.ingest.contract import EXTRACTS
        from sop_pipeline.storage.postgres import connect, sync_raw

        con = connect(self._postgres_target())
        try:
            return sync_raw(duck, con, list(EXTRACTS))
        finally:
            con.close()

    def dbt_profile_vars(self) -> dict[str, str]:
        """The dbt vars profiles.yml reads for this warehouse, passed with ``--vars``.

        ``sop_warehouse_path`` or the ``sop_pg_*``: nothing is written to the environment.
        """
        if not self.is_postgres:
            return {"sop_warehouse_path": self.working.database}
        # the password is not a var (vars are logged): dbt reads SOP_PG_PASSWORD itself
        return {
            "sop_pg_host": self.pg_host,
            "sop_pg_port": str(self.pg_port),
            "sop_pg_user": self.pg_user,
            "sop_pg_dbname": self.pg_dbname,
        }


# --------------------------------------------------------------------------------------
# the IO manager: where asset values live
# --------------------------------------------------------------------------------------
# Where asset values live: the plan tables and the marts, read and written in one place.
#
# Every asset of the monthly job is partitioned by plan month, so one value is one month:
#
# - an output of a ``plan/<table>`` asset replaces that month's rows of ``plan.<table>`` in the
#   working database (:func:`sop_pipeline.storage.warehouse.replace_plan_rows`: one
#   transaction, columns added later are kept). A stage that writes side tables with its own
#   (the forecast's backtests, the consensus plan's override log and snapshots, the gate's
#   results) returns a :class:`~sop_pipeline.storage.plan_tables.PlanTables`: every table is
#   replaced for the month, and an incremental stage's record is kept after the last one
#   (:func:`~sop_pipeline.storage.plan_tables.write_plan_tables`);
# - an input from ``plan/<table>`` is that month's rows (:func:`read_plan`: a fixed row order, so
#   sums give the same bits on every run);
# - an input from ``marts/<model>`` is the mart dbt built for the month, from DuckDB or PostgreSQL
#   (:meth:`MartsResource.reader`).
#
# Asset bodies therefore take DataFrames and return a DataFrame or ``PlanTables`` (``dg.Output``
# or ``dg.MaterializeResult(value=...)`` with metadata); they never write a plan table
# themselves, and only read one for what is not an input of this month (an earlier month, a side
# table: :func:`~sop_pipeline.storage.plan_tables.read_plan_month`). Outputs of None and
# ``MaterializeResult`` without a value (dbt models, a reused forecast) are not stored here.

PLAN_PREFIX = "plan"
MARTS_PREFIX = "marts"


class PlanTablesIOManager(dg.ConfigurableIOManager):
    """Plan tables (side tables too) in schema ``plan`` by plan month; marts through the reader."""

    warehouse: WarehouseResource
    marts: MartsResource

    def handle_output(
        self, context: dg.OutputContext, obj: pd.DataFrame | PlanTables | None
    ) -> None:
        """Replace the month's rows of ``plan.<table>`` with ``obj`` (None: nothing to store).

        A :class:`PlanTables` replaces the month's rows of each of its tables; for a
        ``plan/<table>`` asset it must hold ``<table>``, whose rows are the asset's row count.
        Another asset (the gate) may only store ``PlanTables``.
        """
        if obj is None:
            return
        prefix, table = _split(context.asset_key)
        name = context.asset_key.to_user_string()
        if isinstance(obj, pd.DataFrame) and prefix == PLAN_PREFIX:
            obj = PlanTables({table: obj})
        elif not isinstance(obj, PlanTables):
            raise TypeError(f"{name} is not a plan table: its value must be PlanTables")
        elif prefix == PLAN_PREFIX and table not in obj.tables:
            raise TypeError(f"{name}: its PlanTables hold no plan.{table}")
        with self.warehouse.get_connection() as con:
            rows = write_plan_tables(con, obj, context.asset_partition_key, context.run_id)
        if prefix == PLAN_PREFIX:
            context.add_output_metadata({"dagster/row_count": dg.MetadataValue.int(rows[table])})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """The month's rows of ``plan.<table>``, or the mart ``marts.<model>``."""
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


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources of every asset, for ``Definitions`` and for ``dagster.materialize`` in tests.

    Args:
        settings: the settings of the runs (read once by the caller).
    """
    from sop_pipeline.defs.clean.project import dbt_resource

    settings.ensure_dirs()
    working = WarehouseResource(
        database=str(settings.warehouse_path),
        sop_home=str(settings.sop_home),
        run_lock_timeout=settings.run_lock_timeout,
    )
    marts = MartsResource.from_settings(settings, working)
    return {
        "sop": SopResource.from_settings(settings),
        "warehouse": working,
        "marts": marts,
        "dbt": dbt_resource(settings.dbt_target, settings.dbt_threads),
        # the default IO manager: plan tables by plan month, marts through the marts reader
        "io_manager": PlanTablesIOManager(warehouse=working, marts=marts),
    }
