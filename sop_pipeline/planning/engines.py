"""Where the forecast's statsforecast calls run: this process, a Dask cluster or Spark.

:func:`open_engine` connects to (or starts) the engine selected by ``SOP_FORECAST_ENGINE`` and
yields a :class:`ForecastEngine`; on leaving the ``with`` block it shuts down whatever it
started (a local Dask cluster, a Spark session), also when the forecast fails.
:func:`sop_pipeline.planning.forecast.forecast_demand` hands its two statsforecast calls
(``cross_validation`` and ``forecast``) to that engine: on ``local`` they run in this process,
or with ``n_jobs`` > 1 on chunks of series in worker processes started by a fork server
(:mod:`sop_pipeline.planning.processes`; never forks of this process); on ``dask`` and
``spark`` statsforecast's fugue backend runs them on the cluster's workers, on chunks of
series. The models, their parameters and everything around the calls stay the same, and each
series is fitted on its own, so the results are the same bit for bit however the series are
split (``tests/test_forecast_engines.py``, ``tests/test_forecast.py``).

The engines need the ``cluster`` extras (fugue, dask[distributed], pyspark); without them
:func:`open_engine` raises :class:`EngineNotInstalledError` naming the install command.
Nothing here downloads anything: Spark runs from the jars bundled with pyspark, with its web
UI off; a local Dask cluster and a ``local[...]`` Spark bind to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sop_pipeline.core.settings import FORECAST_ENGINES, Settings, SettingsError
from sop_pipeline.errors import OperationalError
from sop_pipeline.planning.processes import process_pool, worker_count

INSTALL_HINT = 'pip install -e ".[cluster]"'
_LOCAL_MASTER_RE = re.compile(r"^local(\[(\*|\d+)(,\d+)?\])?$")
_SPARK_LOG_LEVEL = "ERROR"
_COLUMNS = {"id_col": "unique_id", "time_col": "ds", "target_col": "y"}


class EngineNotInstalledError(SettingsError):
    """The selected engine's packages are not installed (the ``cluster`` extras)."""


class EngineConnectionError(OperationalError, RuntimeError):
    """The cluster could not be reached or started; the message names the setting to check.

    Not a validation error: a cluster that blinks is worth the step's retry.
    """


class WorkerProcessError(OperationalError, RuntimeError):
    """A local forecast worker process died (killed, or out of memory) during a call."""


#: A local call with ``n_jobs`` > 1 uses one worker per this many series (at most ``n_jobs``),
#: and stays in this process below twice as many: a pool's start-up and the pickling of the
#: chunks cost more than a small panel saves (docs/forecasting.md, "Cost").
MIN_SERIES_PER_WORKER = 100
#: Chunks of series per worker in a local parallel call: a worker that is done takes the next
#: chunk, so one slow chunk does not leave the other workers idle at the end.
CHUNKS_PER_WORKER = 4


def _statsforecast_chunk(
    method: str, models: list[Any], freq: str, fallback_model: Any, df: pd.DataFrame, kwargs: dict
) -> pd.DataFrame:
    """``StatsForecast(...).<method>(df=df, **kwargs)`` in one process (``n_jobs=1``).

    What a local call runs on the whole panel, or a worker on one chunk of series. Warnings
    are silenced, as the tournament does around every statsforecast call (a worker process
    would otherwise print them, since it does not share the caller's warning filters).
    """
    from statsforecast import StatsForecast

    sf = StatsForecast(models=models, freq=freq, n_jobs=1, fallback_model=fallback_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(sf, method)(df=df, **kwargs)


def _series_chunks(df: pd.DataFrame, chunks: int) -> list[pd.DataFrame]:
    """``df`` split into ``chunks`` frames of whole series, in ``unique_id`` order.

    Statsforecast returns its rows sorted by ``unique_id``; the chunks hold consecutive ids, so
    their results concatenated in order are the rows of one call on the whole panel.
    """
    ids = df["unique_id"].to_numpy()
    uids = np.unique(ids)
    bounds = [part[0] for part in np.array_split(uids, chunks) if len(part)]
    chunk_of_row = np.searchsorted(np.asarray(bounds), ids, side="right") - 1
    return [df[chunk_of_row == c] for c in range(len(bounds))]


def _require(engine: str, modules: tuple[str, ...]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EngineNotInstalledError(
                f"SOP_FORECAST_ENGINE={engine} needs the cluster extras, but {module!r} cannot "
                f"be imported ({exc}); install them with `{INSTALL_HINT}` or set "
                "SOP_FORECAST_ENGINE=local."
            ) from exc


# --------------------------------------------------------------------------------------------
# statsforecast's fugue backend: float64 results, many series per call
# --------------------------------------------------------------------------------------------


def _fugue_backend(fugue_engine: Any, partitions: int) -> Any:
    """Statsforecast's ``FugueBackend`` on ``fugue_engine``, with two changes.

    - Float64 results: statsforecast 2.1.1 declares every forecast column of the distributed
      output as float32, which rounds the numbers (~1e-7 relative) and could flip a near-tie
      in the tournament. Only the declared output types change.
    - Coarse partitions: the series are hashed into ``partitions`` chunks and statsforecast
      runs once per chunk (as it does locally on the whole panel) instead of once per series;
      each series is still fitted on its own, so the numbers do not change, but the
      per-call overhead (~10 ms) is paid per chunk, not per series.

    The per-chunk work is statsforecast's own ``_cv`` / ``_forecast_noX`` (a plain
    ``_StatsForecast`` with ``n_jobs=1``), exactly what ``StatsForecast.cross_validation`` /
    ``forecast`` run on a Dask or Spark frame.
    """
    import pyarrow as pa
    from fugue import transform
    from statsforecast.distributed.fugue import FugueBackend
    from triad import Schema

    partition = {"by": "unique_id", "algo": "coarse", "num": max(1, partitions)}

    class _Backend(FugueBackend):
        def _get_output_schema(self, **kwargs: Any) -> Schema:
            schema = super()._get_output_schema(**kwargs)
            return Schema(
                [
                    (f.name, pa.float64() if pa.types.is_floating(f.type) else f.type)
                    for f in schema.fields
                ]
            )

        def cross_validation(self, *, df: Any, **params: Any) -> Any:
            schema = self._get_output_schema(
                df=df, models=params["models"], level=params["level"], mode="cv", **_COLUMNS
            )
            return transform(
                df, self._cv, params=params, schema=schema, partition=partition, engine=self._engine
            )

        def forecast(self, *, df: Any, **params: Any) -> Any:
            schema = self._get_output_schema(
                df=df, models=params["models"], level=params["level"], mode="forecast", **_COLUMNS
            )
            return transform(
                df,
                self._forecast_noX,
                params=params,
                schema=schema,
                partition=partition,
                engine=self._engine,
            )

    return _Backend(fugue_engine)


@dataclass
class ForecastEngine:
    """An open engine: runs statsforecast's ``cross_validation`` and ``forecast`` on it.

    Attributes:
        name: ``local``, ``dask`` or ``spark``.
        address: where the work runs: ``this process``, the Dask scheduler address (of the
            local cluster when one was started) or the Spark master.
        started_cluster: True when the engine was started for this run (and is shut down
            after it), False when it connected to a running cluster or Spark session.
        startup_seconds: wall seconds to connect or start.
    """

    name: str
    address: str = "this process"
    started_cluster: bool = False
    startup_seconds: float = 0.0
    client: Any = None  # distributed.Client (dask)
    spark: Any = None  # pyspark.sql.SparkSession (spark)
    partitions: int = 1  # chunks of series per statsforecast call on the cluster
    _fugue: Any = field(default=None, repr=False)
    _pool: ProcessPoolExecutor | None = field(default=None, repr=False)  # local workers
    _pool_workers: int = field(default=0, repr=False)

    @property
    def is_local(self) -> bool:
        """True for the in-process engine (no cluster)."""
        return self.name == "local"

    def describe(self) -> dict[str, Any]:
        """What ran where, for run metadata and logs.

        Returns:
            name, address, whether the cluster was started for the run, startup seconds.
        """
        return {
            "name": self.name,
            "address": self.address,
            "started_for_run": self.started_cluster,
            "startup_seconds": round(self.startup_seconds, 2),
        }

    def close(self) -> None:
        """Stop the local worker processes, if any were started (``open_engine`` calls it)."""
        pool, self._pool, self._pool_workers = self._pool, None, 0
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _local(self, method: str, sf: Any, df: pd.DataFrame, n_jobs: int, kwargs: dict) -> Any:
        """A statsforecast call on ``local``: in this process, or on chunks in worker processes.

        Workers are used when ``n_jobs`` asks for more than one and the panel has at least
        ``2 * MIN_SERIES_PER_WORKER`` series; the pool is started on the first such call and
        kept for the engine's later calls (stopped by :meth:`close`).
        """
        series = df["unique_id"].nunique()
        workers = min(worker_count(n_jobs), series // MIN_SERIES_PER_WORKER)
        args = (sf.models, sf.freq, sf.fallback_model)
        if workers <= 1:
            return _statsforecast_chunk(method, *args, df, kwargs)
        if self._pool is None or self._pool_workers != workers:
            self.close()
            self._pool, self._pool_workers = process_pool(workers), workers
        chunks = _series_chunks(df, workers * CHUNKS_PER_WORKER)
        futures = [
            self._pool.submit(_statsforecast_chunk, method, *args, chunk, kwargs)
            for chunk in chunks
        ]
        try:
            parts = [future.result() for future in futures]
        except BrokenProcessPool as exc:
            self.close()
            raise WorkerProcessError(
                f"a forecast worker process died during statsforecast's {method} on "
                f"{series:,} series ({exc}). Usually the machine ran out of memory: retry, or "
                "set SOP_FORECAST_N_JOBS=1 to forecast in one process. From a script of your "
                'own, check that its work runs under `if __name__ == "__main__":` (the '
                "workers import the script's module)."
            ) from exc
        finally:
            for future in futures:
                future.cancel()  # after a failed chunk: the chunks not started yet
        return pd.concat(parts, ignore_index=True)

    def cross_validation(
        self,
        sf: Any,
        df: pd.DataFrame,
        *,
        h: int,
        n_windows: int,
        step_size: int,
        level: list[int] | None = None,
        refit: bool = True,
        n_jobs: int = 1,
    ) -> pd.DataFrame:
        """``sf.cross_validation`` on this engine.

        Args:
            sf: a ``statsforecast.StatsForecast`` (its models, freq and fallback model are used,
                not its ``n_jobs``).
            df: long frame unique_id, ds, y (pandas; sent to the cluster here).
            h: horizon of each window.
            n_windows: backtest origins.
            step_size: months between origins.
            level: interval levels of the backtest forecasts (the models' own), or None.
            refit: False fits each model once per series (at the first origin) and applies it
                to the later origins with the model's ``forward``.
            n_jobs: ``local`` only: worker processes (``-1``: one per core), each fitting a
                chunk of the series; small panels stay in this process.

        Returns:
            statsforecast's cross-validation frame as pandas (float64 numbers, datetime64[ns]).

        Raises:
            WorkerProcessError: a local worker process died.
        """
        if self.is_local:
            kwargs = {
                "h": h,
                "n_windows": n_windows,
                "step_size": step_size,
                "level": level,
                "refit": refit,
            }
            return self._local("cross_validation", sf, df, n_jobs, kwargs)
        out = _fugue_backend(self._fugue, self.partitions).cross_validation(
            df=self._to_engine(df),
            models=sf.models,
            freq=sf.freq,
            fallback_model=sf.fallback_model,
            h=h,
            n_windows=n_windows,
            step_size=step_size,
            test_size=None,
            input_size=None,
            level=level,
            refit=refit,
            fitted=False,
            prediction_intervals=None,
            **_COLUMNS,
        )
        return self._to_pandas(out)

    def forecast(
        self, sf: Any, df: pd.DataFrame, *, h: int, level: list[int] | None, n_jobs: int = 1
    ) -> pd.DataFrame:
        """``sf.forecast`` on this engine.

        Args:
            sf: a ``statsforecast.StatsForecast`` (not its ``n_jobs``).
            df: long frame unique_id, ds, y (pandas).
            h: forecast horizon.
            level: interval levels, or None.
            n_jobs: ``local`` only: worker processes, as for :meth:`cross_validation`.

        Returns:
            statsforecast's forecast frame as pandas (float64 numbers, datetime64[ns]).

        Raises:
            WorkerProcessError: a local worker process died.
        """
        if self.is_local:
            return self._local("forecast", sf, df, n_jobs, {"h": h, "level": level})
        out = _fugue_backend(self._fugue, self.partitions).forecast(
            df=self._to_engine(df),
            models=sf.models,
            freq=sf.freq,
            fallback_model=sf.fallback_model,
            h=h,
            level=level,
            prediction_intervals=None,
            **_COLUMNS,
        )
        return self._to_pandas(out)

    def _to_engine(self, df: pd.DataFrame) -> Any:
        if self.name == "dask":
            import dask.dataframe as dd

            return dd.from_pandas(df, npartitions=max(1, min(self.partitions, len(df))))
        return self.spark.createDataFrame(df)

    def _to_pandas(self, out: Any) -> pd.DataFrame:
        pdf = self.client.compute(out, sync=True) if self.name == "dask" else out.toPandas()
        return _normalise(pd.DataFrame(pdf))


def _normalise(pdf: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy dtypes, as the local path returns (Dask hands back Arrow/nullable types)."""
    out = pdf.reset_index(drop=True)
    for col in out.columns:
        dtype = out[col].dtype
        if pd.api.types.is_integer_dtype(dtype):
            out[col] = out[col].astype("int64")
        elif pd.api.types.is_datetime64_any_dtype(dtype) or "timestamp" in str(dtype):
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
        elif pd.api.types.is_numeric_dtype(dtype):
            out[col] = out[col].astype("float64")
    return out


# --------------------------------------------------------------------------------------------
# Opening and closing
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_engine(
    name: str,
    *,
    dask_address: str = "",
    spark_master: str = "local[2]",
    connect_timeout: float = 30.0,
    local_workers: int | None = None,
) -> Iterator[ForecastEngine]:
    """Connect to or start a forecast engine; shut down what was started on exit.

    Args:
        name: ``local``, ``dask`` or ``spark`` (``SOP_FORECAST_ENGINE``).
        dask_address: Dask scheduler, e.g. ``tcp://scheduler:8786`` (``SOP_DASK_ADDRESS``);
            empty starts a ``distributed.LocalCluster`` on 127.0.0.1 for the block.
        spark_master: Spark master URL (``SOP_SPARK_MASTER``): ``local[N]`` runs Spark in this
            machine, ``spark://host:7077`` / ``yarn`` / ``k8s://…`` use a cluster.
        connect_timeout: seconds to wait for a Dask scheduler (and its first worker) or a
            standalone Spark master before giving up.
        local_workers: worker processes of a local Dask cluster (default: one per core).

    Yields:
        The open :class:`ForecastEngine`.

    Raises:
        ValueError: unknown engine name.
        EngineNotInstalledError: the engine's packages are missing (``pip install -e ".[cluster]"``).
        EngineConnectionError: the cluster could not be reached or started.
    """
    if name not in FORECAST_ENGINES:
        raise ValueError(
            f"forecast engine {name!r} is unknown; use one of {', '.join(FORECAST_ENGINES)} "
            "(SOP_FORECAST_ENGINE)."
        )
    if name == "local":
        engine = ForecastEngine("local")
        try:
            yield engine
        finally:
            engine.close()
    elif name == "dask":
        _require("dask", ("dask.dataframe", "distributed", "fugue", "fugue_dask"))
        with _dask(dask_address, connect_timeout, local_workers) as engine:
            yield engine
    else:
        _require("spark", ("pyspark", "fugue", "fugue_spark"))
        with _spark(spark_master, connect_timeout) as engine:
            yield engine


def engine_from_settings(settings: Settings) -> contextlib.AbstractContextManager[ForecastEngine]:
    """:func:`open_engine` for ``SOP_FORECAST_ENGINE`` with the cluster settings.

    Args:
        settings: the run's settings (forecast_engine, dask_address, spark_master).

    Returns:
        The context manager that yields the open engine.
    """
    return open_engine(
        settings.forecast_engine,
        dask_address=settings.dask_address,
        spark_master=settings.spark_master,
    )


@contextlib.contextmanager
def _dask(address: str, timeout: float, local_workers: int | None) -> Iterator[ForecastEngine]:
    from distributed import Client, LocalCluster
    from fugue_dask import DaskExecutionEngine

    t0 = time.perf_counter()
    cluster = None
    client = None
    try:
        if address:
            try:
                client = Client(address, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise EngineConnectionError(
                    f"cannot reach the Dask scheduler at SOP_DASK_ADDRESS={address!r} within "
                    f"{timeout:g} s ({exc}); check that the scheduler runs and the address and "
                    "port are right, or leave SOP_DASK_ADDRESS empty to start a local cluster."
                ) from exc
            _check_dask_workers(client, address, timeout)
        else:
            try:
                cluster = LocalCluster(
                    n_workers=local_workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    scheduler_port=0,
                    # no dashboard; its HTTP endpoint on a free loopback port, not :8787
                    dashboard_address=None,
                    scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.ERROR,
                )
            except Exception as exc:  # any start-up failure means the same
                raise EngineConnectionError(
                    f"could not start a local Dask cluster ({exc}); set SOP_DASK_ADDRESS to a "
                    "running scheduler or use SOP_FORECAST_ENGINE=local."
                ) from exc
            client = Client(cluster, set_as_default=False)
        nthreads = sum(client.nthreads().values()) or 1
        engine = ForecastEngine(
            name="dask",
            address=str(client.scheduler.address),
            started_cluster=cluster is not None,
            startup_seconds=time.perf_counter() - t0,
            client=client,
            partitions=2 * nthreads,
            _fugue=DaskExecutionEngine(dask_client=client),
        )
        yield engine
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _worker_statsforecast_version() -> str | None:
    try:
        return importlib.import_module("statsforecast").__version__
    except ImportError:
        return None


def _check_dask_workers(client: Any, address: str, timeout: float) -> None:
    """The scheduler has workers and they run this statsforecast version (same results)."""
    import statsforecast

    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError as exc:
        raise EngineConnectionError(
            f"the Dask scheduler at SOP_DASK_ADDRESS={address!r} has no workers after "
            f"{timeout:g} s; start workers (`dask worker {address}`) before the run."
        ) from exc
    versions = client.run(_worker_statsforecast_version)
    wrong = {w: v for w, v in versions.items() if v != statsforecast.__version__}
    if wrong:
        worker, version = next(iter(wrong.items()))
        raise EngineConnectionError(
            f"{len(wrong)} Dask worker(s) of {address!r} do not run statsforecast "
            f"{statsforecast.__version__} like this process (e.g. {worker}: {version or 'not installed'}); "
            f"install the project with `{INSTALL_HINT}` on the workers (same constraints.txt)."
        )


def _spark_master_endpoints(master: str) -> list[tuple[str, int]]:
    if not master.startswith("spark://"):
        return []
    out = []
    for part in master[len("spark://") :].split(","):
        host, _, port = part.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def _check_spark_master(master: str, timeout: float) -> None:
    """Fail fast when no standalone master answers (Spark would wait ~60 s, then hang jobs)."""
    endpoints = _spark_master_endpoints(master)
    errors = []
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=min(timeout, 10.0)):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc}")
    if endpoints:
        raise EngineConnectionError(
            f"cannot reach the Spark master at SOP_SPARK_MASTER={master!r} ({'; '.join(errors)}); "
            "check that the master runs and the host and port are right, or use "
            "SOP_SPARK_MASTER=local[2] to run Spark on this machine."
        )


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (the Spark launcher reads them) and restore."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _spark(master: str, timeout: float) -> Iterator[ForecastEngine]:
    from fugue_spark import SparkExecutionEngine
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    local = bool(_LOCAL_MASTER_RE.match(master))
    spark = None
    _check_spark_master(master, timeout)
    try:
        running = SparkContext._active_spark_context
        if running is not None:
            # One SparkContext per process, and getOrCreate returns it whatever the master:
            # use it when it is the configured one (and leave it running), else say so.
            if running.master != master:
                raise SettingsError(
                    f"Spark already runs in this process with master {running.master!r}, not "
                    f"SOP_SPARK_MASTER={master!r}; Spark allows one context per process: set "
                    f"SOP_SPARK_MASTER={running.master} to use it, or stop it first."
                )
            session = SparkSession.builder.getOrCreate()
        else:
            builder = (
                SparkSession.builder.master(master)
                .appName("sop-forecast")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            )
            env: dict[str, str] = {}
            if local:
                cores = master[6:-1].split(",")[0] if "[" in master else "1"
                partitions = (os.cpu_count() or 1) if cores == "*" else int(cores)
                builder = (
                    builder.config("spark.driver.host", "127.0.0.1")
                    .config("spark.driver.bindAddress", "127.0.0.1")
                    .config("spark.sql.shuffle.partitions", str(max(1, partitions)))
                )
                # Local Python workers must be this interpreter (this venv's packages).
                env = {"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
            try:
                with _env(env):
                    spark = builder.getOrCreate()
            except Exception as exc:  # py4j/JVM errors have many types
                raise EngineConnectionError(
                    f"could not start Spark with SOP_SPARK_MASTER={master!r} ({exc}); check "
                    "that Java 17+ is installed (`java -version`) and the master is right, "
                    "or use SOP_FORECAST_ENGINE=local."
                ) from exc
            spark.sparkContext.setLogLevel(_SPARK_LOG_LEVEL)
            session = spark
        parallelism = int(session.sparkContext.defaultParallelism or 1)
        yield ForecastEngine(
            name="spark",
            address=master,
            started_cluster=spark is not None,
            startup_seconds=time.perf_counter() - t0,
            spark=session,
            partitions=2 * parallelism,
            _fugue=SparkExecutionEngine(session),
        )
    finally:
        if spark is not None:
            spark.stop()
