"""Dagster resources: the settings of a run, the working database and where the marts are.

The first two hold the run lock of ``SOP_HOME`` (:mod:`sop_pipeline.runlock`) while a run
executes, so two runs of one ``SOP_HOME`` never interleave their steps, whoever started them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from sop_pipeline.runlock import recover_orphaned_runs, run_lock
from sop_pipeline.settings import WAREHOUSES, Settings, get_settings
from sop_pipeline.warehouse import DuckDBMarts, MartReader

if TYPE_CHECKING:
    from sop_pipeline.postgres import PostgresTarget


@contextmanager
def _run_lock_for(sop_home: str, context: dg.InitResourceContext) -> Iterator[None]:
    """Hold the run lock of ``sop_home`` while the run's resources are alive."""
    if not sop_home:
        yield
        return
    run = context.dagster_run
    log = context.log

    def warn(message: str) -> None:
        if log is not None:
            log.warning(message)

    with run_lock(
        Path(sop_home),
        run=f"Dagster run {run.run_id}" if run else "a Dagster run",
        month=(run.tags.get("dagster/partition", "?") if run else "?"),
        timeout=get_settings().run_lock_timeout,
        on_wait=warn,
    ):
        if context.instance is not None:
            recover_orphaned_runs(context.instance, log=warn)
        yield


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

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[SopResource]:
        with _run_lock_for(self.sop_home, context):
            yield self

    @classmethod
    def from_settings(cls, settings: Settings) -> SopResource:
        return cls(
            sop_home=str(settings.sop_home),
            horizon_months=settings.horizon_months,
            strategy=settings.strategy,
        )


#: Attempts to open the working database while another process holds it.
OPEN_ATTEMPTS = 8


class WarehouseBusyError(RuntimeError):
    """The working database stayed locked by another process; retrying later can help."""


class WarehouseResource(DuckDBResource):
    """The working DuckDB file; the connection is closed even when the step fails.

    (dagster-duckdb's own ``get_connection`` leaves it open on an exception, which keeps the
    file locked for the next step or run — dbt runs in a separate process and then cannot
    open it.) Opening waits for another writer for up to ~1 minute instead of failing.
    With ``sop_home`` set, a run holds the run lock of that folder (see the module doc).
    """

    sop_home: str = ""

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[WarehouseResource]:
        with _run_lock_for(self.sop_home, context):
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
    Dagster UI shows): it is read from SOP_PG_PASSWORD through ``Settings`` when connecting.
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
        if self.warehouse not in WAREHOUSES:
            raise ValueError(
                f"marts warehouse {self.warehouse!r} is unknown; use one of {', '.join(WAREHOUSES)}."
            )
        return self.warehouse == "postgres"

    def _postgres_target(self) -> PostgresTarget:
        from sop_pipeline.postgres import PostgresTarget

        return PostgresTarget(
            host=self.pg_host,
            port=self.pg_port,
            user=self.pg_user,
            dbname=self.pg_dbname,
            password=get_settings().pg_password,
        )

    @property
    def location(self) -> str:
        """Where the marts are, for logs and metadata (never the password)."""
        if self.is_postgres:
            return f"PostgreSQL {self._postgres_target().label}"
        return f"DuckDB {self.working.database}"

    @contextmanager
    def reader(self) -> Iterator[MartReader]:
        """A :class:`~sop_pipeline.warehouse.MartReader` on the marts, closed afterwards."""
        if self.is_postgres:
            from sop_pipeline.postgres import PostgresMarts, connect

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
        from sop_pipeline.contract import EXTRACTS
        from sop_pipeline.postgres import connect, sync_raw

        con = connect(self._postgres_target())
        try:
            return sync_raw(duck, con, list(EXTRACTS))
        finally:
            con.close()

    def dbt_profile_vars(self) -> dict[str, str]:
        """The dbt vars profiles.yml reads for this warehouse (``sop_warehouse_path`` or the
        ``sop_pg_*``), passed with ``--vars``: nothing is written to the environment."""
        if not self.is_postgres:
            return {"sop_warehouse_path": self.working.database}
        # the password is not a var (vars are logged): dbt reads SOP_PG_PASSWORD itself
        return {
            "sop_pg_host": self.pg_host,
            "sop_pg_port": str(self.pg_port),
            "sop_pg_user": self.pg_user,
            "sop_pg_dbname": self.pg_dbname,
        }


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """The resources of every asset, for ``Definitions`` and for ``dagster.materialize`` in tests."""
    from sop_pipeline.dbt_project import dbt_resource

    settings = settings or get_settings()
    settings.ensure_dirs()
    working = WarehouseResource(
        database=str(settings.warehouse_path), sop_home=str(settings.sop_home)
    )
    return {
        "sop": SopResource.from_settings(settings),
        "warehouse": working,
        "marts": MartsResource.from_settings(settings, working),
        "dbt": dbt_resource(settings.dbt_target, settings.dbt_threads),
    }
