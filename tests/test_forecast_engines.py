"""The forecast stage on a cluster engine: Dask and Spark give the local results.

One small panel (smooth, seasonal, trending and intermittent series, 36-48 months) is forecast
once locally; a local Dask cluster (2 worker processes) and a local Spark (``local[2]``), each
started once for the module, must choose the same model per series and give the same numbers.

Tolerance: relative 1e-9. The same statsforecast code fits each series on the workers, in
float64 end to end, so in practice the numbers are bit-identical; 1e-9 only leaves room for a
worker whose CPU or BLAS sums in another order. It is far below the float32 rounding (~1e-7)
that statsforecast's distributed output would otherwise add, so a regression there fails.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from sop_pipeline.core.settings import Settings, SettingsError
from sop_pipeline.planning import engines
from sop_pipeline.planning.engines import (
    INSTALL_HINT,
    EngineConnectionError,
    EngineNotInstalledError,
    WorkerProcessError,
    engine_from_settings,
    open_engine,
)
from sop_pipeline.planning.forecast import forecast_demand
from sop_pipeline.planning.processes import process_pool, start_fork_server

PLAN = "2026-06"  # a closed month (a valid partition) on any clock after mid-2026
HORIZON = 12
RTOL = 1e-9
NUMBERS = [
    "stat_forecast_qty",
    "stat_lo80_qty",
    "stat_hi80_qty",
    "stat_lo95_qty",
    "stat_hi95_qty",
    "naive_forecast_qty",
]


def _panel() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(21)
    t = np.arange(48)
    series: dict[str, np.ndarray] = {}
    for i in range(3):
        # decimals on purpose: float32 would round them
        series[f"SEAS{i}"] = np.round(
            (90 + 15 * i) * (1 + 0.35 * np.sin(2 * np.pi * (t + 2 * i) / 12))
            + rng.normal(0, 6, 48),
            2,
        )
    series["TREND"] = np.round(50 + 1.2 * t + rng.normal(0, 4, 48), 1)
    series["NOISY"] = np.round(rng.gamma(20, 3, 48))
    series["YOUNG"] = np.round(70 + rng.normal(0, 8, 36))  # 36 months of history
    for i in range(4):
        p_zero = 0.55 + 0.08 * i
        series[f"INT{i}"] = np.where(rng.random(48) < p_zero, 0.0, rng.poisson(5 + 3 * i, 48) + 1.0)
    series["SHORT"] = np.array([30.0, 34, 29, 31, 33, 35, 32, 30, 36, 31])  # rule, not models
    end = pd.Timestamp(f"{PLAN}-01")
    history = pd.concat(
        [
            pd.DataFrame(
                {
                    "item_id": item,
                    "location_id": "DC1",
                    "month": pd.date_range(end=end, periods=len(y), freq="MS"),
                    "demand_qty": y,
                }
            )
            for item, y in series.items()
        ],
        ignore_index=True,
    )
    items = pd.DataFrame(
        {
            "item_id": list(series),
            "family": ["F1" if k.startswith(("SEAS", "TREND")) else "F2" for k in series],
            "lifecycle_status": "active",
            "launch_date": pd.NaT,
            "eol_date": pd.NaT,
        }
    )
    return history, items


@pytest.fixture(scope="module")
def panel() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _panel()


@pytest.fixture(scope="module")
def local_result(panel):
    history, items = panel
    return forecast_demand(history, items, PLAN, HORIZON)


@pytest.fixture(scope="module")
def dask_engine():
    with open_engine("dask", local_workers=2) as engine:
        yield engine


@pytest.fixture(scope="module")
def spark_engine():
    from pyspark import SparkContext

    with open_engine("spark", spark_master="local[2]") as engine:
        yield engine
    # what the block started is stopped again
    assert SparkContext._active_spark_context is None


def _fits_here_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make statsforecast fail in this process: only work done on the cluster can succeed."""
    from statsforecast.core import _StatsForecast

    def here(*args, **kwargs):
        raise AssertionError("statsforecast ran in the test process, not on the cluster")

    monkeypatch.setattr(_StatsForecast, "cross_validation", here)
    monkeypatch.setattr(_StatsForecast, "forecast", here)


def _assert_same_as_local(result, local) -> None:
    assert local.engine == "local"
    bt, lbt = result.backtest, local.backtest
    # the panel really runs both tournaments and several models
    assert {"smooth", "seasonal"} & set(lbt["series_class"])
    assert {"intermittent", "lumpy"} & set(lbt["series_class"])
    assert lbt["chosen_model"].nunique() >= 3
    pd.testing.assert_series_equal(bt["chosen_model"], lbt["chosen_model"])
    pd.testing.assert_series_equal(bt["series_class"], lbt["series_class"])
    pd.testing.assert_frame_equal(bt, lbt, check_exact=False, rtol=RTOL, atol=RTOL)
    fc, lfc = result.forecast, local.forecast
    pd.testing.assert_frame_equal(
        fc.drop(columns=NUMBERS), lfc.drop(columns=NUMBERS), check_exact=True
    )
    pd.testing.assert_frame_equal(
        fc[NUMBERS], lfc[NUMBERS], check_exact=False, rtol=RTOL, atol=RTOL
    )
    # the backtest forecasts of every candidate model, not just the winners
    pd.testing.assert_frame_equal(result.cv, local.cv, check_exact=False, rtol=RTOL, atol=RTOL)


def test_dask_gives_the_local_models_and_numbers(panel, local_result, dask_engine, monkeypatch):
    history, items = panel
    _fits_here_fail(monkeypatch)
    result = forecast_demand(history, items, PLAN, HORIZON, engine=dask_engine)
    assert result.engine == "dask"
    assert dask_engine.started_cluster and dask_engine.address.startswith("tcp://127.0.0.1:")
    _assert_same_as_local(result, local_result)


def test_spark_gives_the_local_models_and_numbers(panel, local_result, spark_engine, monkeypatch):
    history, items = panel
    _fits_here_fail(monkeypatch)
    result = forecast_demand(history, items, PLAN, HORIZON, engine=spark_engine)
    assert result.engine == "spark"
    assert spark_engine.address == "local[2]"
    _assert_same_as_local(result, local_result)


def test_asset_connects_to_a_running_dask_scheduler_and_records_the_engine(
    panel, local_result, dask_engine, tmp_path, monkeypatch
):
    """SOP_DASK_ADDRESS pointing at a running scheduler: the asset uses it and leaves it running.

    It writes the local numbers and says in its metadata which engine ran.
    """
    from sop_pipeline.defs.demand.assets import stat_forecast
    from sop_pipeline.defs.resources import (
        MartsResource,
        PlanTablesIOManager,
        SopResource,
        WarehouseResource,
    )

    history, items = panel
    db = tmp_path / "sop.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema marts")
    con.register("h", history)
    con.register("i", items)
    con.execute("create table marts.fct_demand_history as select * from h")
    con.execute(
        "create table marts.dim_items as select item_id, family, lifecycle_status,"
        " cast(launch_date as date) as launch_date, cast(eol_date as date) as eol_date from i"
    )
    con.close()
    # the run's settings are the sop resource's config (what the launchpad shows)
    sop = SopResource(
        sop_home=str(tmp_path),
        horizon_months=HORIZON,
        forecast_engine="dask",
        dask_address=dask_engine.address,
    )
    working = WarehouseResource(database=str(db))
    marts = MartsResource(working=working)
    outcome = dg.materialize(
        [stat_forecast],
        partition_key=PLAN,
        resources={
            "sop": sop,
            "warehouse": working,
            "marts": marts,
            # the forecast and its side tables are stored by the IO manager
            "io_manager": PlanTablesIOManager(warehouse=working, marts=marts),
        },
    )
    assert outcome.success
    meta = outcome.asset_materializations_for_node("plan__stat_forecast")[0].metadata
    assert meta["forecast_engine"].value == "dask"
    detail = meta["forecast_engine_detail"].value
    assert detail["address"] == dask_engine.address and detail["started_for_run"] is False
    # the module's cluster is still up: the asset did not shut down what it did not start
    assert dask_engine.client.status == "running"
    con = duckdb.connect(str(db), read_only=True)
    written = con.execute(
        "select * exclude (plan_month) from plan.stat_forecast order by item_id, month"
    ).df()
    con.close()
    # the asset reconciles the local engine's forecast with its family/total forecasts
    from sop_pipeline.planning.hierarchy import reconcile_forecast

    reconciled, _ = reconcile_forecast(local_result, history, items, PLAN, HORIZON)
    expected = reconciled.forecast.sort_values(["item_id", "month"]).reset_index(drop=True)
    assert written["stat_model"].tolist() == expected["stat_model"].tolist()
    np.testing.assert_allclose(written[NUMBERS], expected[NUMBERS], rtol=RTOL, atol=RTOL)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_dask_scheduler_fails_with_the_setting_to_check() -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}"
    settings = Settings.from_env({"SOP_FORECAST_ENGINE": "dask", "SOP_DASK_ADDRESS": address})
    with (
        pytest.raises(EngineConnectionError, match="SOP_DASK_ADDRESS") as exc,
        open_engine(
            settings.forecast_engine, dask_address=settings.dask_address, connect_timeout=3
        ),
    ):
        pass
    assert address in str(exc.value)
    assert "leave SOP_DASK_ADDRESS empty" in str(exc.value)


def test_unreachable_spark_master_fails_before_starting_spark() -> None:
    master = f"spark://127.0.0.1:{_closed_port()}"
    settings = Settings.from_env({"SOP_FORECAST_ENGINE": "spark", "SOP_SPARK_MASTER": master})
    with pytest.raises(EngineConnectionError, match="SOP_SPARK_MASTER") as exc:  # noqa: SIM117
        with engine_from_settings(settings):
            pass
    assert master in str(exc.value)


def test_a_running_spark_with_another_master_is_not_silently_used(spark_engine) -> None:
    with pytest.raises(SettingsError, match=r"SOP_SPARK_MASTER=local\[2\] to use it"):  # noqa: SIM117
        with open_engine("spark", spark_master="local[1]"):
            pass
    assert spark_engine.spark.sparkContext.master == "local[2]"  # and it is left running


def test_local_dask_cluster_is_shut_down_even_when_the_forecast_fails() -> None:
    with pytest.raises(RuntimeError, match="model blew up"):  # noqa: SIM117
        with open_engine("dask", local_workers=1) as engine:
            address = engine.address
            raise RuntimeError("model blew up")
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=2):
        pass


@pytest.mark.parametrize(
    ("engine", "module"), [("dask", "fugue_dask"), ("dask", "distributed"), ("spark", "pyspark")]
)
def test_missing_cluster_extras_say_how_to_install(engine, module, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now fails as if not installed
    with pytest.raises(EngineNotInstalledError) as exc, open_engine(engine):
        pass
    assert INSTALL_HINT in str(exc.value) and 'pip install -e ".[cluster]"' in str(exc.value)
    assert f"SOP_FORECAST_ENGINE={engine}" in str(exc.value)


def test_unknown_engine_is_refused_before_any_work(panel) -> None:
    history, items = panel
    with pytest.raises(ValueError, match="local, dask, spark"):
        forecast_demand(history, items, PLAN, HORIZON, engine="ray")


# --------------------------------------------------------------------------------------------
# local worker processes (n_jobs > 1)
# --------------------------------------------------------------------------------------------


def _long(history: pd.DataFrame) -> pd.DataFrame:
    """The long frame (unique_id, ds, y) of the panel's model series, integer ids as in the tournament."""
    df = history[history["item_id"] != "SHORT"]
    codes = pd.factorize(df["item_id"], sort=True)[0]
    return pd.DataFrame({"unique_id": codes, "ds": df["month"], "y": df["demand_qty"]})


def _sf(*models):
    from statsforecast import StatsForecast
    from statsforecast.models import DynamicOptimizedTheta, SeasonalNaive

    return StatsForecast(
        models=list(models) or [SeasonalNaive(season_length=12), DynamicOptimizedTheta(12)],
        freq="MS",
        fallback_model=SeasonalNaive(season_length=12),
    )


def test_local_workers_are_started_by_the_fork_server_not_forked_from_this_process() -> None:
    start_fork_server()  # what `sop run` does first; the pools below then reuse the server
    start_fork_server()
    parents = set()
    for _ in range(2):
        with process_pool(2) as pool:
            parents |= {pool.submit(os.getppid).result() for _ in range(4)}
    # a fork of this process (and its threads: pytest's, Spark's gateway) would have us as
    # parent; every worker is a child of the one fork server, a fresh interpreter
    assert len(parents) == 1 and os.getpid() not in parents
    (server,) = parents
    cmdline = Path(f"/proc/{server}/cmdline").read_bytes().replace(b"\0", b" ")
    assert b"from multiprocessing.forkserver import main" in cmdline


def test_local_chunked_calls_return_the_one_process_frames(panel, monkeypatch) -> None:
    history, _ = panel
    df = _long(history)
    chunks = engines._series_chunks(df.sample(frac=1.0, random_state=3), 4)
    # whole series, consecutive ids, every row once
    assert [sorted(c["unique_id"].unique()) for c in chunks] == [
        [0, 1, 2],
        [3, 4, 5],
        [6, 7],
        [8, 9],
    ]
    assert sum(len(c) for c in chunks) == len(df)
    monkeypatch.setattr(engines, "MIN_SERIES_PER_WORKER", 2)  # 10 series: two workers
    others = set(multiprocessing.active_children())  # e.g. the module's Dask workers
    with open_engine("local") as engine:
        cv = dict(h=3, n_windows=3, step_size=1, level=[80, 95], refit=False)
        one_cv = engine.cross_validation(_sf(), df, **cv)
        two_cv = engine.cross_validation(_sf(), df, **cv, n_jobs=2)
        one_fc = engine.forecast(_sf(), df, h=HORIZON, level=[80, 95])
        two_fc = engine.forecast(_sf(), df, h=HORIZON, level=[80, 95], n_jobs=2)
        # the pool is kept between calls, and stopped with the engine
        assert len(set(multiprocessing.active_children()) - others) == 2
    assert set(multiprocessing.active_children()) - others == set()
    pd.testing.assert_frame_equal(two_cv, one_cv, check_exact=True)
    pd.testing.assert_frame_equal(two_fc, one_fc, check_exact=True)


def test_a_worker_that_dies_fails_the_call_clearly_and_the_engine_recovers(
    panel, monkeypatch
) -> None:
    from factories.models import DiesInAWorker

    history, _ = panel
    df = _long(history)
    monkeypatch.setattr(engines, "MIN_SERIES_PER_WORKER", 2)
    with open_engine("local") as engine:
        with pytest.raises(WorkerProcessError, match="SOP_FORECAST_N_JOBS=1"):
            engine.forecast(_sf(DiesInAWorker(season_length=12)), df, h=3, level=None, n_jobs=2)
        # a new pool for the next call, with the one-process numbers
        pd.testing.assert_frame_equal(
            engine.forecast(_sf(), df, h=3, level=None, n_jobs=2),
            engine.forecast(_sf(), df, h=3, level=None),
            check_exact=True,
        )


# --------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------


def test_engine_settings_defaults_and_accepted_values(tmp_path) -> None:
    s = Settings.from_env({"SOP_HOME": str(tmp_path)})
    assert (s.forecast_engine, s.dask_address, s.spark_master) == ("local", "", "local[2]")
    s = Settings.from_env(
        {
            "SOP_FORECAST_ENGINE": "Spark",
            "SOP_DASK_ADDRESS": "tcp://scheduler.internal:8786",
            "SOP_SPARK_MASTER": "spark://m1:7077,m2:7077",
        }
    )
    assert (s.forecast_engine, s.dask_address, s.spark_master) == (
        "spark",
        "tcp://scheduler.internal:8786",
        "spark://m1:7077,m2:7077",
    )
    for master in ("local", "local[*]", "local[4]", "yarn", "k8s://https://k8s.internal:6443"):
        assert Settings.from_env({"SOP_SPARK_MASTER": master}).spark_master == master


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SOP_FORECAST_ENGINE", "ray", "local, dask, spark"),
        ("SOP_DASK_ADDRESS", "scheduler", "tcp://host:port"),
        ("SOP_DASK_ADDRESS", "http://scheduler:8787", "tcp://host:port"),
        ("SOP_SPARK_MASTER", "local[0]", "local[N]"),
        ("SOP_SPARK_MASTER", "spark://master", "spark://host:7077"),
        ("SOP_SPARK_MASTER", "sc://connect:15002", "spark://host:7077"),
    ],
)
def test_bad_engine_settings_say_which_variable_and_how_to_fix(name, value, fragment) -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({name: value})
    assert name in str(exc.value) and value in str(exc.value)
    assert fragment in str(exc.value)
