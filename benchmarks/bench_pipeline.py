"""Whole-pipeline benchmark: generate a company, plan its latest month, time every stage.

Usage:
    .venv/bin/python benchmarks/bench_pipeline.py --series 1000 [--series 10000 ...] [--months 48]

For each size it prints, per stage (ingest, dbt, forecast, supply, finance, executive, gate,
publish, report): wall seconds; for the whole run: wall and CPU seconds, peak memory; and the
plain-statsforecast time of the same models on the same series in the same process, with the
ratios (whole pipeline ÷ forecast stage; forecast stage ÷ plain statsforecast). Results are
appended to ``benchmarks/results/pipeline.csv``. Run it on a quiet machine and compare ratios
measured in one run: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import resource
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = {
    "raw_extracts": "ingest",
    "sop_dbt_models": "dbt",
    "plan__stat_forecast": "forecast",
    "plan__plan_demand": "forecast",
    "supply_plan": "supply",
    "plan__plan_gaps": "supply",
    "plan__plan_exceptions": "supply",
    "plan__plan_financials": "finance",
    "plan__forecast_accuracy": "finance",
    "plan__kpi_scorecard": "finance",
    "plan__scenario_comparison": "executive",
    "plan__plan_waterfall": "executive",
    "gate__candidate_plan": "gate",
    "published__sop_plan": "publish",
    "report__executive_pack": "report",
}


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


class TreeSampler:
    """Samples CPU seconds and resident memory of this process and its children every 0.2 s.

    Steps run one after another (in-process executor), so a stage's CPU time is the growth of
    the tree's CPU seconds over its steps' intervals and its peak memory the largest sample.
    """

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (time, cpu s, rss MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> tuple[float, float, float]:
        import psutil

        times = self._proc.cpu_times()
        cpu = times.user + times.system + times.children_user + times.children_system
        rss = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            try:
                ct = child.cpu_times()
                cpu += ct.user + ct.system
                rss += child.memory_info().rss
            except psutil.Error:
                continue
        return time.time(), cpu, rss / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self._sample())

    def window(self, start: float, end: float) -> tuple[float, float]:
        """(CPU seconds, peak MB) between two wall-clock times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        before = [s for s in self.samples if s[0] <= start]
        after = [s for s in self.samples if s[0] >= end]
        cpu0 = before[-1][1] if before else (inside[0][1] if inside else 0.0)
        cpu1 = after[0][1] if after else (inside[-1][1] if inside else cpu0)
        peak = max((s[2] for s in inside + before[-1:] + after[:1]), default=0.0)
        return cpu1 - cpu0, peak

    @property
    def peak_mb(self) -> float:
        """Largest sampled memory of the process tree, in MB."""
        return max((s[2] for s in self.samples), default=0.0)


def _stage_figures(instance, run_id: str, sampler: TreeSampler) -> dict[str, dict[str, float]]:
    """Per stage: wall seconds, CPU seconds and peak tree memory (MB)."""
    started: dict[str, float] = {}
    out: dict[str, dict[str, float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = record.timestamp
        elif event.event_type_value == "STEP_SUCCESS" and event.step_key in started:
            stage = STAGES.get(event.step_key, "checks")
            start, end = started[event.step_key], record.timestamp
            cpu, peak = sampler.window(start, end)
            fig = out.setdefault(stage, {"wall": 0.0, "cpu": 0.0, "mem": 0.0})
            fig["wall"] += end - start
            fig["cpu"] += cpu
            fig["mem"] = max(fig["mem"], peak)
    return out


def _plain_statsforecast(settings, month: str, n_jobs: int) -> float:
    spec = importlib.util.spec_from_file_location("bench_forecast", HERE / "bench_forecast.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import duckdb

    from sop_pipeline.storage.warehouse import read_mart

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        history = read_mart(con, "fct_demand_history")[
            ["item_id", "location_id", "month", "demand_qty"]
        ]
        items = read_mart(con, "dim_items")
    finally:
        con.close()
    return module.plain_statsforecast(
        history, items, month, settings.horizon_months, settings.backtest_windows, n_jobs
    )


def run_size(
    series: int,
    months: int,
    n_jobs: int,
    workdir: Path,
    *,
    rerun: bool = False,
    plain: bool = True,
) -> dict[str, object]:
    """Generate a company of ``series`` series and time the monthly run.

    With ``rerun``, plan the one already in ``workdir`` again: unchanged stages are then reused.
    """
    import dagster as dg

    from sop_pipeline.core.settings import Settings
    from sop_pipeline.generator.company import generate_company
    from sop_pipeline.runtime.runner import run_plan_month

    home = workdir / f"sop_{series}"
    settings = Settings.from_env(
        {"SOP_HOME": str(home), "SOP_FORECAST_N_JOBS": str(n_jobs), "SOP_HORIZON_MONTHS": "18"}
    )
    settings.ensure_dirs()
    # about two selling locations per item
    items = max(20, round(series / 1.93))
    t0 = time.perf_counter()
    if rerun:
        month = max(p.name for p in settings.landing_dir.iterdir() if p.name[:2] == "20")
        summary = None
    else:
        summary = generate_company(settings.landing_dir, items=items, months=months, seed=11)
        month = summary.last_month
    gen_seconds = time.perf_counter() - t0
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    with TreeSampler() as sampler:
        outcome = run_plan_month(settings, month)
    wall = time.perf_counter() - wall0
    cpu = _cpu_seconds() - cpu0
    if not outcome.success:
        raise SystemExit(f"run failed at {series} series: {outcome.errors}")
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    stages = _stage_figures(instance, outcome.run_id, sampler)
    plain = _plain_statsforecast(settings, month, n_jobs) if plain else float("nan")
    own_mb, kids_mb = _peak_mb()
    forecast = stages.get("forecast", {}).get("wall", float("nan"))
    row: dict[str, object] = {
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "series": summary.series_count if summary else series,
        "items": summary.item_count if summary else items,
        "rerun": rerun,
        "months": months,
        "generate_s": round(gen_seconds, 1),
        "pipeline_wall_s": round(wall, 1),
        "pipeline_cpu_s": round(cpu, 1),
        "peak_tree_mb": round(sampler.peak_mb, 0),
        "peak_rss_mb": round(own_mb, 0),
        "peak_child_rss_mb": round(kids_mb, 0),
        "plain_statsforecast_s": round(plain, 1),
        "pipeline_over_forecast": round(wall / forecast, 2) if forecast else None,
        # CPU seconds are what a shared machine does not distort: the rest of the pipeline
        # as a share of the forecast stage (target: under 0.25)
        "rest_over_forecast_cpu": round(
            (cpu - stages.get("forecast", {}).get("cpu", 0.0))
            / max(stages.get("forecast", {}).get("cpu", 0.0), 1e-9),
            2,
        ),
        "forecast_over_plain": round(forecast / plain, 2) if plain else None,
    }
    for stage in (
        "ingest",
        "dbt",
        "forecast",
        "supply",
        "finance",
        "executive",
        "gate",
        "publish",
        "report",
        "checks",
    ):
        fig = stages.get(stage, {})
        row[f"{stage}_s"] = round(fig.get("wall", 0.0), 1)
        row[f"{stage}_cpu_s"] = round(fig.get("cpu", 0.0), 1)
        row[f"{stage}_peak_mb"] = round(fig.get("mem", 0.0), 0)
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark sizes asked for, print the tables, append to the results CSV."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--series", type=int, action="append", help="item × location series (repeatable)"
    )
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "pipeline.csv")
    parser.add_argument(
        "--workdir", type=Path, help="keep the generated homes here (default: a temp folder)"
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="plan the company already in --workdir again (shows what incremental runs skip)",
    )
    parser.add_argument("--no-plain", action="store_true", help="skip plain statsforecast")
    args = parser.parse_args(argv)
    sizes = args.series or [1000]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sop_bench_") as tmp:
        workdir = args.workdir or Path(tmp)
        for size in sizes:
            print(f"== {size} series × {args.months} months", flush=True)
            row = run_size(
                size, args.months, args.n_jobs, workdir, rerun=args.rerun, plain=not args.no_plain
            )
            rows.append(row)
            for key, value in row.items():
                print(f"  {key:24} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.exists()
    with open(args.out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
