"""Benchmark the forecast tournament against plain statsforecast on the same data.

Usage: ``.venv/bin/python benchmarks/bench_forecast.py --series 1000 --months 48 [--n-jobs 2]
[--engine local|dask|spark]``

Prints wall seconds, series per second and peak memory for ``forecast_demand`` and for the
same candidate models run as plain statsforecast (``cross_validation`` + ``forecast`` on the
same series split), and the overhead ratio pipeline ÷ plain. With ``--engine dask`` (a local
Dask cluster, one worker per core, or ``--dask-address``) or ``--engine spark``
(``--spark-master``, default ``local[2]``) the pipeline's statsforecast calls run on that
engine; the engine's start-up is timed apart, and plain statsforecast is skipped.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sop_pipeline.core.months import month_start, parse_month


def synthetic_panel(
    n_series: int, months: int, plan_month: str = "2026-10", seed: int = 7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A realistic mix: 45% seasonal, 20% trend, 20% intermittent, 10% lumpy, 5% short.

    Args:
        n_series: item × location series (one location per item, 4 families).
        months: months of history ending at ``plan_month``.
        plan_month: last month of history, ``YYYY-MM``.
        seed: random seed.

    Returns:
        (history, items) in the shapes ``forecast_demand`` reads.
    """
    rng = np.random.default_rng(seed)
    end = parse_month(plan_month)
    first = month_start(end, -(months - 1))
    calendar = pd.date_range(pd.Timestamp(first), pd.Timestamp(end), freq="MS")
    kinds = rng.choice(
        ["seasonal", "trend", "intermittent", "lumpy", "short"],
        size=n_series,
        p=[0.45, 0.2, 0.2, 0.1, 0.05],
    )
    t = np.arange(months)
    ys, item_rows = [], []
    for i, kind in enumerate(kinds):
        level = rng.lognormal(4.0, 1.0)
        phase = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(0.1, 0.5)
        if kind == "seasonal":
            y = level * (1 + amp * np.sin(2 * np.pi * t / 12 + phase)) + rng.normal(
                0, 0.12 * level, months
            )
        elif kind == "trend":
            y = (
                level
                * (1 + rng.uniform(-0.01, 0.02) * t)
                * (1 + 0.5 * amp * np.sin(2 * np.pi * t / 12 + phase))
            )
            y = y + rng.normal(0, 0.15 * level, months)
        elif kind == "intermittent":
            y = np.where(
                rng.random(months) < rng.uniform(0.2, 0.5),
                rng.poisson(max(level / 10, 1), months) + 1,
                0,
            )
        elif kind == "lumpy":
            y = np.where(
                rng.random(months) < 0.25, rng.lognormal(np.log(level / 5 + 1), 1.0, months), 0
            )
        else:
            y = level * (1 + rng.normal(0, 0.2, months))
        y = np.round(np.maximum(y, 0.0))
        start = months - int(rng.integers(6, 20)) if kind == "short" else 0
        item_id = f"I{i:06d}"
        ys.append(
            pd.DataFrame(
                {
                    "item_id": item_id,
                    "location_id": "DC1",
                    "month": calendar[start:],
                    "demand_qty": y[start:],
                }
            )
        )
        item_rows.append(
            {
                "item_id": item_id,
                "family": f"F{i % 4}",
                "lifecycle_status": "new" if kind == "short" else "active",
                "launch_date": calendar[start] if kind == "short" else pd.NaT,
                "eol_date": pd.NaT,
            }
        )
    return pd.concat(ys, ignore_index=True), pd.DataFrame(item_rows)


def plain_statsforecast(
    history: pd.DataFrame,
    items: pd.DataFrame,
    plan_month: str,
    horizon: int,
    windows: int,
    n_jobs: int,
) -> float:
    """Wall seconds of the same candidates as plain statsforecast on the same series split."""
    from statsforecast import StatsForecast

    from sop_pipeline.planning import forecast as fc
    from sop_pipeline.planning.forecast.candidates import _candidate_models, _fallback_model

    hist = history.copy()
    hist["y"] = hist["demand_qty"].clip(lower=0)
    hist["unique_id"] = hist["item_id"] + "|" + hist["location_id"]
    hist = hist.rename(columns={"month": "ds"})[["unique_id", "ds", "y"]]
    sizes = hist.groupby("unique_id")["y"].agg(["size", lambda s: classify(s.to_numpy())])
    sizes.columns = ["size", "kind"]
    start = time.perf_counter()
    for kind in ("smooth", "intermittent"):
        ids = sizes.index[(sizes["size"] >= fc.MIN_TOURNAMENT_MONTHS) & (sizes["kind"] == kind)]
        df = hist[hist["unique_id"].isin(ids)]
        if df.empty:
            continue
        models = _candidate_models(kind, "auto")
        sf = StatsForecast(
            models=models, freq="MS", n_jobs=n_jobs, fallback_model=_fallback_model()
        )
        sf.cross_validation(h=fc.CV_HORIZON, df=df, n_windows=windows, step_size=1)
        level = [80, 95] if kind == "smooth" else None
        sf.forecast(df=df, h=horizon, level=level)
    return time.perf_counter() - start


def classify(y: np.ndarray) -> str:
    """The demand class the forecast stage gives one series (smooth, intermittent, ...)."""
    from sop_pipeline.planning.forecast import classify_series

    cls, _, _ = classify_series(y)
    return "intermittent" if cls in ("intermittent", "lumpy") else "smooth"


def cpu_seconds() -> float:
    """CPU seconds of this process and its reaped workers (robust when the machine is shared)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def descendants_cpu_seconds() -> float:
    """CPU seconds of the live child processes.

    A local Dask cluster's workers, Spark's JVM and Python workers; 0 when psutil (a dependency of dask.distributed) is not installed.
    """
    try:
        import psutil
    except ImportError:
        return 0.0
    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def main() -> None:
    """Time the forecast stage (and plain statsforecast) on a generated panel; print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--horizon", type=int, default=18)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--candidates", default="auto")
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--engine", default="local", choices=["local", "dask", "spark"])
    parser.add_argument("--dask-address", default="", help="empty: a local Dask cluster")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument(
        "--out", default="", help="folder to write forecast.parquet and backtest.parquet to"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from sop_pipeline.planning.engines import open_engine
    from sop_pipeline.planning.forecast import forecast_demand

    plan_month = "2026-10"
    history, items = synthetic_panel(args.series, args.months, plan_month)
    print(
        f"panel: {args.series} series × {args.months} months ({len(history):,} rows), plan {plan_month}, horizon {args.horizon}, n_jobs {args.n_jobs}, engine {args.engine}"
    )
    start = time.perf_counter()
    with open_engine(
        args.engine, dask_address=args.dask_address, spark_master=args.spark_master
    ) as engine:
        if not engine.is_local:
            print(f"engine: {engine.describe()}, start-up {time.perf_counter() - start:.1f} s")
        cpu0 = cpu_seconds()
        workers0 = descendants_cpu_seconds()
        start = time.perf_counter()
        result = forecast_demand(
            history,
            items,
            plan_month,
            args.horizon,
            windows=args.windows,
            n_jobs=args.n_jobs,
            candidates=args.candidates,
            engine=engine,
        )
        pipeline = time.perf_counter() - start
        pipeline_cpu = cpu_seconds() - cpu0
        workers_cpu = descendants_cpu_seconds() - workers0
        if engine.is_local:
            # n_jobs > 1: the fork server and its workers, alive until the engine closes
            pipeline_cpu += workers_cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = result.summary()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result.forecast.to_parquet(out / "forecast.parquet")
        result.backtest.to_parquet(out / "backtest.parquet")
    if args.engine != "local":
        print(
            f"  engine worker processes on this machine: {workers_cpu:.1f} s CPU "
            "(the pipeline CPU and peak RSS below are this process only)"
        )
    print(
        f"pipeline: {pipeline:.1f} s wall, {pipeline_cpu:.1f} s CPU, {args.series / pipeline:.1f} series/s, peak RSS {peak_mb:.0f} MB"
    )
    print(f"  stages: {summary['seconds']}")
    print(f"  by model: {summary['by_model']}")
    print(f"  by class: {summary['by_class']}")
    print(
        f"  error (MASE smooth, RMSSE intermittent) chosen mean {summary['mean_chosen_error']} median {summary['median_chosen_error']}; "
        f"naive mean {summary['mean_naive_error']} median {summary['median_naive_error']}; "
        f"beats naive {summary['share_beating_naive']:.0%}"
    )
    if not args.skip_plain and args.engine == "local":
        cpu1 = cpu_seconds()
        plain = plain_statsforecast(
            history, items, plan_month, args.horizon, args.windows, args.n_jobs
        )
        plain_cpu = cpu_seconds() - cpu1
        print(
            f"plain statsforecast (cv + forecast, all candidates): {plain:.1f} s wall, {plain_cpu:.1f} s CPU, {args.series / plain:.1f} series/s"
        )
        print(
            f"overhead ratio pipeline / plain: {pipeline / plain:.2f} wall, {pipeline_cpu / plain_cpu:.2f} CPU"
        )


if __name__ == "__main__":
    main()
