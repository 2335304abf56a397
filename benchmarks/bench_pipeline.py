"""Whole-pipeline benchmark: generate a company, plan its latest month, time every stage.

Usage:
    .venv/bin/python benchmarks/bench_pipeline.py --series 1000 [--series 10000 ...] [--months 48]

For each size it prints, per stage (ingest, dbt, forecast, supply, finance, executive, gate,
publish, report): wall seconds, CPU seconds and peak memory; for the whole run: wall and CPU
seconds, peak memory; the ten slowest dbt nodes; and the plain-statsforecast time of the same
models on the same series in the same process, with the ratios (whole pipeline ÷ forecast
stage; everything but the forecast ÷ forecast stage, wall and CPU; forecast stage ÷ plain
statsforecast). Results are appended to ``benchmarks/results/pipeline.csv``. Run it on a quiet
machine and compare ratios measured in one run: the machine is shared and noisy.

``--override-rerun`` then changes one demand override of the planned month and plans it again
(what a planner does after review): only what depends on the overrides should run, and the
row gets ``rerun_over_full`` (target ≤ 0.30). ``--demo-month`` measures the demo company of
``make demo`` (300 items, 60 months): the month before the latest is planned first (the first
load of every landing folder), then the latest month, a new month, is timed (target ≤ 45 s).
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
        # (time, cpu s, rss MB, pss MB)
        self.samples: list[tuple[float, float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> tuple[float, float, float, float]:
        """Tree CPU seconds, and its memory as RSS and as PSS.

        RSS counts a page once per process that maps it, so workers forked from one process
        (the fork server's, or a forked parent's) count its pages again; PSS (proportional set
        size) splits a shared page among the processes sharing it, so the tree's PSS is the
        memory it holds. CPU counts the reaped children of every process of the tree: the
        worker processes are children of the fork server, which reaps them, not of this one.
        """
        import psutil

        times = self._proc.cpu_times()
        cpu = times.user + times.system + times.children_user + times.children_system
        own = self._proc.memory_full_info()
        rss, pss = own.rss, own.pss
        for child in self._proc.children(recursive=True):
            try:
                ct = child.cpu_times()
                cpu += ct.user + ct.system + ct.children_user + ct.children_system
                mem = child.memory_full_info()
                rss += mem.rss
                pss += mem.pss
            except psutil.Error:
                continue
        return time.time(), cpu, rss / 2**20, pss / 2**20

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

    def window(self, start: float, end: float) -> tuple[float, float, float]:
        """(CPU seconds, peak RSS MB, peak PSS MB) between two wall-clock times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        before = [s for s in self.samples if s[0] <= start]
        after = [s for s in self.samples if s[0] >= end]
        cpu0 = before[-1][1] if before else (inside[0][1] if inside else 0.0)
        cpu1 = after[0][1] if after else (inside[-1][1] if inside else cpu0)
        near = inside + before[-1:] + after[:1]
        peak = max((s[2] for s in near), default=0.0)
        return cpu1 - cpu0, peak, max((s[3] for s in near), default=0.0)

    @property
    def peak_mb(self) -> float:
        """Largest sampled memory (RSS) of the process tree, in MB."""
        return max((s[2] for s in self.samples), default=0.0)

    @property
    def peak_pss_mb(self) -> float:
        """Largest sampled proportional set size of the process tree, in MB."""
        return max((s[3] for s in self.samples), default=0.0)


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
            cpu, peak, pss = sampler.window(start, end)
            fig = out.setdefault(stage, {"wall": 0.0, "cpu": 0.0, "mem": 0.0, "pss": 0.0})
            fig["wall"] += end - start
            fig["cpu"] += cpu
            fig["mem"] = max(fig["mem"], peak)
            fig["pss"] = max(fig["pss"], pss)
    return out


def _header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh), [])


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
    demo: bool = False,
    override_rerun: bool = False,
) -> list[dict[str, object]]:
    """Generate a company of ``series`` series and time the monthly run.

    With ``rerun``, plan the one already in ``workdir`` again: unchanged stages are then
    reused. With ``demo``, the demo company instead, its month before the latest planned first
    (untimed). With ``override_rerun``, a second row: the same month planned again after one
    demand override changed.
    """
    from sop_pipeline.core.settings import Settings
    from sop_pipeline.generator.company import generate_company
    from sop_pipeline.runtime.runner import run_plan_month

    home = workdir / ("sop_demo" if demo else f"sop_{series}")
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
    elif demo:
        summary = generate_company(settings.landing_dir, items=300, months=60, seed=42)
        month = summary.last_month
        earlier = max(
            p.name for p in settings.landing_dir.iterdir() if p.name[:2] == "20" and p.name < month
        )
        print(f"  warm-up: planning {earlier} (first load of the landing folders)", flush=True)
        t1 = time.perf_counter()
        if not run_plan_month(settings, earlier).success:
            raise SystemExit(f"warm-up month {earlier} failed")
        print(f"  warm-up took {time.perf_counter() - t1:.1f} s", flush=True)
    else:
        summary = generate_company(settings.landing_dir, items=items, months=months, seed=11)
        month = summary.last_month
    gen_seconds = time.perf_counter() - t0
    row = _timed_run(settings, month, series, items, months, n_jobs, summary, gen_seconds, plain)
    row["kind"] = "demo_month" if demo else ("rerun" if rerun else "full")
    rows = [row]
    if override_rerun:
        change_one_override(settings.landing_dir / month)
        again = _timed_run(settings, month, series, items, months, n_jobs, summary, 0.0, False)
        again["kind"] = "override_rerun"
        again["rerun_over_full"] = round(again["pipeline_wall_s"] / row["pipeline_wall_s"], 2)
        again["rerun_over_full_cpu"] = round(again["pipeline_cpu_s"] / row["pipeline_cpu_s"], 2)
        rows.append(again)
    return rows


def change_one_override(folder: Path) -> None:
    """Add 1 to the adjustment of the first demand override of ``folder``.

    As a planner would after the demand review; the rest of the extracts stay as they are.
    """
    import csv as _csv

    path = folder / "demand_overrides.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(_csv.DictReader(fh))
    if not rows:
        raise SystemExit(f"{path} has no override to change")
    value = rows[0]["adjustment"].strip()
    if value.endswith("%"):
        rows[0]["adjustment"] = f"{float(value[:-1]) + 1:g}%"
    else:
        rows[0]["adjustment"] = f"{float(value) + 1:g}"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = _csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _dbt_top_nodes(settings, month: str, top: int = 10) -> list[tuple[str, float]]:
    """The slowest nodes of the month's last dbt build (its run_results.json), slowest first."""
    import json

    path = settings.dagster_home / "logs" / f"dbt_run_results_{month}.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text()).get("results", [])
    ranked = sorted(results, key=lambda r: -float(r.get("execution_time") or 0.0))
    return [(r["unique_id"], round(float(r["execution_time"]), 2)) for r in ranked[:top]]


def _timed_run(settings, month, series, items, months, n_jobs, summary, gen_seconds, plain):
    import dagster as dg

    from sop_pipeline.runtime.runner import run_plan_month

    results = settings.dagster_home / "logs" / f"dbt_run_results_{month}.json"
    results.unlink(missing_ok=True)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    with TreeSampler() as sampler:
        outcome = run_plan_month(settings, month)
    wall = time.perf_counter() - wall0
    # the tree's (the fork server's workers are not this process's children), at least rusage's
    cpu = max(_cpu_seconds() - cpu0, sampler.samples[-1][1] - sampler.samples[0][1])
    if not outcome.success:
        raise SystemExit(f"run failed at {series} series: {outcome.errors}")
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    stages = _stage_figures(instance, outcome.run_id, sampler)
    plain = _plain_statsforecast(settings, month, n_jobs) if plain else float("nan")
    own_mb, kids_mb = _peak_mb()
    forecast = stages.get("forecast", {}).get("wall", float("nan"))
    forecast_cpu = stages.get("forecast", {}).get("cpu", 0.0)
    step_wall = sum(fig["wall"] for fig in stages.values())
    row: dict[str, object] = {
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "series": summary.series_count if summary else series,
        "items": summary.item_count if summary else items,
        "months": months,
        "generate_s": round(gen_seconds, 1),
        "pipeline_wall_s": round(wall, 1),
        "pipeline_cpu_s": round(cpu, 1),
        "peak_tree_mb": round(sampler.peak_mb, 0),
        # the memory target (<= 4 GB) is about this one: forked workers share their
        # parent's pages, which RSS counts once per process
        "peak_tree_pss_mb": round(sampler.peak_pss_mb, 0),
        "peak_rss_mb": round(own_mb, 0),
        "peak_child_rss_mb": round(kids_mb, 0),
        "plain_statsforecast_s": round(plain, 1),
        "pipeline_over_forecast": round(wall / forecast, 2) if forecast else None,
        # CPU seconds are what a shared machine does not distort: the rest of the pipeline
        # as a share of the forecast stage (target: under 0.25)
        "rest_over_forecast_cpu": round((cpu - forecast_cpu) / max(forecast_cpu, 1e-9), 2),
        # the same in wall seconds of the steps (start-up of the run itself not counted)
        "rest_over_forecast_wall": round((step_wall - forecast) / forecast, 2)
        if forecast
        else None,
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
        row[f"{stage}_peak_pss_mb"] = round(fig.get("pss", 0.0), 0)
    top = _dbt_top_nodes(settings, month)
    row["dbt_nodes_built"] = _dbt_node_count(settings, month)
    row["dbt_top10"] = "; ".join(f"{uid.split('.', 2)[-1]} {sec}" for uid, sec in top)
    return row


def _dbt_node_count(settings, month: str) -> int:
    import json

    path = settings.dagster_home / "logs" / f"dbt_run_results_{month}.json"
    return len(json.loads(path.read_text()).get("results", [])) if path.exists() else 0


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
    parser.add_argument(
        "--override-rerun",
        action="store_true",
        help="then change one demand override and plan the month again (target ≤ 30%% of full)",
    )
    parser.add_argument(
        "--demo-month",
        action="store_true",
        help="instead of --series: the make-demo company's latest month after its previous one",
    )
    args = parser.parse_args(argv)
    sizes = args.series or [1000]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sop_bench_") as tmp:
        workdir = args.workdir or Path(tmp)
        for size in [0] if args.demo_month else sizes:
            what = "the demo company's latest month" if args.demo_month else f"{size} series"
            print(f"== {what} × {args.months} months", flush=True)
            for row in run_size(
                size,
                args.months,
                args.n_jobs,
                workdir,
                rerun=args.rerun,
                plain=not args.no_plain,
                demo=args.demo_month,
                override_rerun=args.override_rerun,
            ):
                rows.append(row)
                print(f"  -- {row['kind']}")
                for key, value in row.items():
                    print(f"  {key:24} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    # the columns changed: a new file next to the old ones (_v2, _v3, ...) rather than a
    # mixed table
    stem, version = args.out.stem, 1
    while args.out.exists() and _header(args.out) != fields:
        version += 1
        args.out = args.out.with_name(f"{stem}_v{version}{args.out.suffix}")
    new = not args.out.exists()
    with open(args.out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
