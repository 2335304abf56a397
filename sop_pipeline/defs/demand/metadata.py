"""Metadata of the demand review's assets: the forecast's facts and the consensus plan's totals.

The forecast's *facts* (:func:`forecast_facts`: plain numbers, tables as Markdown) are kept with
the stage record, so a reused forecast reports what the run that computed it reported
(:func:`forecast_metadata` renders them either way).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from sop_pipeline.defs.metadata import (
    count_table,
    family_forecast_png,
    money,
    png,
    preview,
    qty,
    seconds_table,
    share,
)
from sop_pipeline.planning.consensus import ConsensusResult
from sop_pipeline.planning.statistical import StatisticalForecast


def forecast_facts(stage: StatisticalForecast) -> dict:
    """What the forecast reports: counts, errors, timings, selection and calibration facts."""
    result = stage.result
    summary = result.summary()
    return {
        "rows": len(result.forecast),
        "series": summary["series"],
        "series_by_model": summary.get("by_model", {}),
        "series_by_class": summary.get("by_class", {}),
        "error_metric": str(summary.get("error_metric")),
        "median_chosen_error": float(summary.get("median_chosen_error") or 0.0),
        "median_naive_error": float(summary.get("median_naive_error") or 0.0),
        "share_beating_naive": float(summary.get("share_beating_naive") or 0.0),
        "seconds_by_stage": summary.get("seconds", {}),
        "backtest_preview": result.backtest.head(10).to_markdown(index=False),
        "forecast_engine": stage.engine,
        **_selection_facts(result.selection, stage.backtest_accuracy, stage.factors),
        "reconciliation": stage.reconciliation.facts(),
        "reconciliation_method": stage.reconciliation.method,
    }


def _selection_facts(selection: dict, bt_accuracy, factors) -> dict:
    """Backtest error by method vs the chosen methods, coverage by level × lag (rounded)."""
    errors = {
        pool: {
            **{k: v for k, v in facts["mean_error_by_method"].items()},
            "chosen (after shrinkage)": facts["mean_error_chosen"],
        }
        for pool, facts in selection.items()
    }
    defaults = {pool: facts["panel_default"] for pool, facts in selection.items()}
    calibration = {
        pool: {
            "factor_80_by_lag": facts["conformal_factor_80_by_lag"],
            "factor_95_by_lag": facts["conformal_factor_95_by_lag"],
        }
        for pool, facts in selection.items()
    }
    stat = bt_accuracy[bt_accuracy["forecast_kind"] == "statistical_backtest"]
    naive = bt_accuracy[bt_accuracy["forecast_kind"] == "naive_backtest"]
    by_lag = (
        stat.groupby(["level", "lag"], sort=False)
        .agg(
            wape=("wape", "mean"),
            mase=("mase", "mean"),
            bias=("bias", "mean"),
            coverage_80=("coverage_80", "mean"),
            coverage_95=("coverage_95", "mean"),
            interval_score=("interval_score", "mean"),
        )
        .reset_index()
    )
    if len(by_lag):
        nv = naive.groupby(["level", "lag"], sort=False)["wape"].mean().rename("naive_wape")
        by_lag = by_lag.merge(nv.reset_index(), on=["level", "lag"], how="left")
    by_lag = by_lag.round(3)
    item = stat[stat["level"] == "item"]
    return {
        "backtest_error_by_method": errors,
        "panel_default_method": defaults,
        "conformal_calibration": calibration,
        "coverage_by_level_lag": by_lag.to_markdown(index=False) if len(by_lag) else "",
        "coverage_by_level_lag_rows": by_lag.to_dict(orient="records"),
        "backtest_coverage_80": round(float(item["coverage_80"].mean()), 3) if len(item) else 0.0,
        "backtest_coverage_95": round(float(item["coverage_95"].mean()), 3) if len(item) else 0.0,
        "level_interval_factors": factors.round(3).to_markdown(index=False) if len(factors) else "",
    }


def _coverage_png(rows: list[dict]) -> dg.MetadataValue:
    """Backtest coverage of the 80/95% ranges by lag, one line per level, against nominal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
    for ax, (col, nominal) in zip(
        axes, (("coverage_80", 0.80), ("coverage_95", 0.95)), strict=True
    ):
        for level, grp in df.groupby("level", sort=False):
            ax.plot(grp["lag"], grp[col], marker="o", label=str(level))
        ax.axhline(nominal, color="#999", linestyle="--", label=f"nominal {nominal:.0%}")
        ax.set_title(f"{nominal:.0%} range: backtest coverage by lag")
        ax.set_xlabel("lag (months ahead)")
    axes[0].legend(fontsize=7)
    return png(fig)


def forecast_metadata(facts: dict, reused_from: str | None) -> dict[str, dg.MetadataValue]:
    """The ``stat_forecast`` materialization's metadata, from its facts (computed or reused)."""
    return {
        "dagster/row_count": dg.MetadataValue.int(int(facts["rows"])),
        "series": dg.MetadataValue.int(int(facts["series"])),
        "series_by_model": count_table(facts["series_by_model"], "model", "series"),
        "series_by_class": count_table(facts["series_by_class"], "series_class", "series"),
        "error_metric": dg.MetadataValue.text(facts["error_metric"]),
        "median_chosen_error": share(facts["median_chosen_error"]),
        "median_naive_error": share(facts["median_naive_error"]),
        "share_beating_naive": share(facts["share_beating_naive"]),
        "seconds_by_stage": seconds_table(facts["seconds_by_stage"]),
        "backtest_preview": dg.MetadataValue.md(facts["backtest_preview"] or "_empty_"),
        "forecast_engine": dg.MetadataValue.text(
            str(facts.get("forecast_engine", {}).get("name", ""))
        ),
        "forecast_engine_detail": dg.MetadataValue.json(facts.get("forecast_engine", {})),
        "reused": dg.MetadataValue.bool(reused_from is not None),
        "reused_from_run": dg.MetadataValue.text(reused_from or ""),
        **_accuracy_metadata(facts),
    }


def _accuracy_metadata(facts: dict) -> dict[str, dg.MetadataValue]:
    """Selection and calibration facts (absent in records made before they existed)."""
    if "backtest_error_by_method" not in facts:
        return {}
    out = {
        "backtest_error_by_method": dg.MetadataValue.json(facts["backtest_error_by_method"]),
        "panel_default_method": dg.MetadataValue.json(facts["panel_default_method"]),
        "conformal_calibration": dg.MetadataValue.json(facts["conformal_calibration"]),
        "backtest_coverage_80": dg.MetadataValue.float(facts["backtest_coverage_80"]),
        "backtest_coverage_95": dg.MetadataValue.float(facts["backtest_coverage_95"]),
        "coverage_by_level_lag": dg.MetadataValue.md(facts["coverage_by_level_lag"] or "_empty_"),
        "level_interval_factors": dg.MetadataValue.md(facts["level_interval_factors"] or "_empty_"),
        "reconciliation_method": dg.MetadataValue.text(facts["reconciliation_method"]),
        "reconciliation": dg.MetadataValue.json(facts.get("reconciliation", {})),
    }
    if facts.get("coverage_by_level_lag_rows"):
        out["coverage_by_lag_plot"] = _coverage_png(facts["coverage_by_level_lag_rows"])
    return out


def demand_metadata(
    result: ConsensusResult, history: pd.DataFrame, currency: str
) -> dict[str, dg.MetadataValue]:
    """The ``plan_demand`` materialization's metadata: totals by component, a plot, a preview."""
    demand = result.plan_demand
    totals = demand[
        [
            "stat_forecast_qty",
            "crm_adjustment_qty",
            "override_qty",
            "consensus_qty",
            "consensus_revenue",
        ]
    ].sum()
    return {
        "dagster/row_count": dg.MetadataValue.int(len(demand)),
        "stat_forecast_qty (units)": qty(totals["stat_forecast_qty"]),
        "crm_adjustment_qty (units)": qty(totals["crm_adjustment_qty"]),
        "override_qty (units)": qty(totals["override_qty"]),
        "consensus_qty (units)": qty(totals["consensus_qty"]),
        "consensus_revenue": money(totals["consensus_revenue"], currency),
        "overrides_applied": dg.MetadataValue.int(len(result.override_log)),
        "families": dg.MetadataValue.int(int(demand["family"].nunique())),
        "plot": family_forecast_png(history, demand),
        "preview": preview(demand, table="plan_demand"),
    }
