"""Dagster's SQLite event log with its connections kept open: the run history, cheaper to write.

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine, opens a new SQLite
connection and disposes of both for every write, and writes an asset event or a check result
two or three times (the run's own database and the cross-run index). A monthly run reports
about 700 events (the dbt step alone: a materialization per model and a check result per
test), and the engines, connects and per-commit syncs cost about 5 ms an event.

:class:`PooledSqliteEventLogStorage` is the same storage, same files and same schema, with one
engine per database kept for the process (a few run databases at a time) and the WAL journal
synced at checkpoints instead of on every commit (``synchronous=NORMAL``: after a power cut
the last few events of a run can be missing from the history; the database stays consistent).
``write_dagster_yaml`` configures it for ``sop run`` and ``make dev`` alike; the published plan
never depends on it.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

#: run databases whose engine stays open (the index database always does)
OPEN_RUN_DATABASES = 4


def _sync_at_checkpoints(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that reuses its engines and connections (see the module)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteEventLogStorage:
        """Build from dagster.yaml's ``config`` (``base_dir``), as the base class."""
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            event.listen(engine, "connect", _sync_at_checkpoints)
            self._engines[shard] = engine
            runs = [key for key in self._engines if key != INDEX_SHARD_NAME]
            for old in runs[:-OPEN_RUN_DATABASES]:
                self._engines.pop(old).dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextlib.contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # as the base class, under its lock: one connection in use at a time per process
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        """Close the kept engines (the instance is done with the storage)."""
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()
