"""The data of the pack's review sections.

The sections: finance, scenarios, waterfall, exceptions, forecast accuracy and lineage.

As in ``sections_plan.py``: each function returns the plain dict its template shows
(numbers, texts, rows, plotly figures); no HTML; ``{"no_data": "..."}`` when the section
has nothing to show.
"""

from __future__ import annotations

import pandas as pd

from sop_pipeline.publish.writer import DB_NAME
from sop_pipeline.report import figures_review
from sop_pipeline.report.data import PACK_TABLES, PackData, family_order
from sop_pipeline.report.formatting import fmt_money, fmt_qty, is_date, isnum, mkey

#: Rows in the exceptions "needs action" table and its low-priority table.
TOP_EXCEPTIONS = 12
TOP_LOW_EXCEPTIONS = 5
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
EXCEPTION_ORDER = {"capacity_overload": 0, "stock_out": 1}
#: ``family`` values a waterfall may use for its all-families rows.
TOTAL_FAMILIES = ("total", "all", "(all)", "all families", "*")
KIND_ORDER = ("naive", "statistical", "consensus")
#: Waterfall components (sop_pipeline/planning/waterfall.py) as executives read them.
COMPONENT_LABELS = {
    "start": "last plan",
    "new_actuals": "new actuals",
    "model_change": "model change",
    "crm_change": "CRM pipeline",
    "override_change": "overrides",
    "capacity_change": "capacity",
    "price_change": "price",
    "end": "this plan",
}


# --------------------------------------------------------------------------------------
# Finance
# --------------------------------------------------------------------------------------


def finance(data: PackData) -> dict:
    """Revenue and margin vs AOP per month (chart) and per family (table)."""
    fin = data.table("plan_financials")
    if fin.empty:
        return {"no_data": "plan_financials holds no rows for this plan version."}
    cur = data.base_currency
    demand = data.table("plan_demand")
    monthly = fin.groupby("month", as_index=False).agg(
        revenue=("revenue", "sum"),
        gross_margin=("gross_margin", "sum"),
        aop_revenue=("aop_revenue", lambda s: s.sum(min_count=1)),
    )
    monthly["gm_pct"] = monthly["gross_margin"] / monthly["revenue"].where(monthly["revenue"] != 0)
    cons = None
    if len(demand):
        cons = demand.groupby("month", as_index=False)["consensus_revenue"].sum()
    rows = []
    for f in [f for f in family_order(data) if f in set(fin["family"])] + ["Total"]:
        g = fin if f == "Total" else fin[fin["family"] == f]
        rev, gm = float(g["revenue"].sum()), float(g["gross_margin"].sum())
        with_aop = g[g["aop_revenue"].notna()]
        aop = float(with_aop["aop_revenue"].sum()) if len(with_aop) else float("nan")
        delta = float(with_aop["revenue"].sum()) - aop if len(with_aop) else float("nan")
        last_month = g["month"].max()
        ratio = (float(with_aop["revenue"].sum()) / aop) if isnum(aop) and aop else float("nan")
        rows.append(
            {
                "family": f,
                "key": "total" if f == "Total" else f,
                "total": f == "Total",
                "revenue": rev,
                "aop": aop,
                "delta": delta,
                "delta_cls": "neg" if isnum(delta) and delta < 0 else "pos",
                "vs_aop": ratio - 1 if isnum(ratio) else ratio,
                "gross_margin": gm,
                "gm_pct": gm / rev if rev else float("nan"),
                "inventory_end": float(g.loc[g["month"] == last_month, "inventory_value"].sum()),
            }
        )
    return {"fig": figures_review.finance_figure(monthly, cons, cur), "rows": rows, "cur": cur}


# --------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------


def _metric_rank(metric: str) -> tuple[int, str]:
    """Revenue, gap and inventory first (what executives ask for), then the rest."""
    m = metric.lower()
    words = ("revenue", "gap_qty", "inventory", "gap", "margin", "demand", "supply")
    for i, word in enumerate(words):
        if word in m:
            return i, m
    return 9, m


def metric_kind(metric: str) -> str:
    """``flow`` (summed over months), ``stock`` (a level) or ``ratio`` (a rate)."""
    m = metric.lower()
    if any(w in m for w in ("utilization", "pct", "ratio", "rate")):
        return "ratio"
    if "inventory" in m or "stock" in m:
        return "stock"
    return "flow"


def is_good(metric: str, delta: float) -> bool | None:
    """Whether a delta helps: more revenue or margin is good, more gap or shortage is bad."""
    if not isnum(delta) or delta == 0:
        return None
    m = metric.lower()
    if any(w in m for w in ("demand", "utilization", "inventory")):
        return None  # depends on the situation: shown without colour
    bad_up = any(w in m for w in ("gap", "short", "cost", "cogs", "backorder"))
    return (delta < 0) if bad_up else (delta > 0)


def scenario_totals(scenarios: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario × metric: base, scenario and delta over the horizon.

    Flows (revenue, margin, gap and other quantities) are summed over families and months;
    stocks (inventory) are summed over families and averaged over months; ratios
    (utilization) are averaged over families and months.

    Args:
        scenarios: ``scenario_comparison`` rows.

    Returns:
        scenario, metric, base_value, scenario_value, delta.
    """
    cols = ["base_value", "scenario_value", "delta"]
    keys = ["scenario", "metric"]
    kind = scenarios["metric"].astype(str).map(metric_kind)
    flows = scenarios[kind == "flow"].groupby(keys, as_index=False)[cols].sum()
    stocks = (
        scenarios[kind == "stock"]
        .groupby([*keys, "month"], as_index=False)[cols]
        .sum()
        .groupby(keys, as_index=False)[cols]
        .mean()
    )
    ratios = scenarios[kind == "ratio"].groupby(keys, as_index=False)[cols].mean()
    return pd.concat([flows, stocks, ratios], ignore_index=True)


def _fmt_delta(metric: str, delta: float) -> str:
    kind = metric_kind(metric)
    if kind == "ratio":
        return f"{delta * 100:+.1f} pp"
    fmt = fmt_qty if "qty" in metric.lower() else fmt_money
    return ("+" if delta > 0 else "") + fmt(delta)


def scenarios(data: PackData) -> dict:
    """Each scenario's deltas against the base plan (table of all metrics, chart of three)."""
    sc = data.table("scenario_comparison")
    if sc.empty:
        return {
            "no_data": "no what-if scenarios were run for this plan (add scenarios to the "
            "planning inputs to compare them with the base plan)."
        }
    totals = scenario_totals(sc)
    metrics = sorted(totals["metric"].astype(str).unique(), key=_metric_rank)
    names = sorted(totals["scenario"].astype(str).unique())
    rows = []
    for s in names:
        cells = []
        for m in metrics:
            r = totals[(totals["scenario"] == s) & (totals["metric"] == m)]
            if r.empty:
                cells.append(None)
                continue
            d = float(r["delta"].iloc[0])
            base = float(r["base_value"].iloc[0])
            good = is_good(m, d)
            cells.append(
                {
                    "cls": "" if good is None else "pos" if good else "neg",
                    "delta": d,
                    "text": _fmt_delta(m, d),
                    "key": f"scenario:{s}:{m}",
                    "share": d / base if base and metric_kind(m) != "ratio" else None,
                }
            )
        rows.append({"scenario": s, "cells": cells})
    charted = metrics[:3]  # the table has them all; the chart keeps to the headline three
    return {
        "metrics": [{"label": m.replace("_", " "), "kind": metric_kind(m)} for m in metrics],
        "rows": rows,
        "fig": figures_review.scenario_figure(totals, charted, names, is_good),
        "height": 80 + 40 * max(len(names), 2),
        "cur": data.base_currency,
    }


# --------------------------------------------------------------------------------------
# Waterfall
# --------------------------------------------------------------------------------------


def _component_label(component: object) -> str:
    return COMPONENT_LABELS.get(str(component), str(component).replace("_", " "))


def waterfall(data: PackData) -> dict:
    """Units and revenue from the last plan to this one, by component (all families)."""
    wf = data.waterfall
    if wf is None or wf.empty:
        return {
            "no_data": "the plan-change waterfall is not available for this plan (it needs an "
            "earlier published plan to compare with)."
        }
    family = wf["family"].astype(str).str.strip().str.lower() if "family" in wf.columns else None
    if family is not None and family.isin(TOTAL_FAMILIES).any():
        wf = wf[family.isin(TOTAL_FAMILIES)]  # use the all-families rows, not their parts
    steps = (
        wf.groupby(["sort_order", "component"], as_index=False)[["qty", "revenue"]]
        .sum()
        .sort_values("sort_order")
    )
    labels = [_component_label(c) for c in steps["component"]]
    fig, zoomed = figures_review.waterfall_figure(steps, labels, data.base_currency)
    rows = [
        {"label": _component_label(r.component), "component": r.component}
        | {"qty": r.qty, "revenue": r.revenue}
        for r in steps.itertuples(index=False)
    ]
    return {"fig": fig, "zoomed": zoomed, "rows": rows, "cur": data.base_currency}


# --------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------


def exceptions(data: PackData) -> dict:
    """Counts by type × severity; what needs action first, the low-priority rows grouped."""
    ex = data.exceptions
    if ex is None:
        return {"no_data": "the exceptions list was not provided to the pack."}
    if ex.empty:
        return {"none": True}
    ex = ex.copy()
    sev = ex["severity"] if "severity" in ex.columns else pd.Series("", index=ex.index)
    kind = ex["exception_type"] if "exception_type" in ex.columns else pd.Series("", index=ex.index)
    counts = pd.crosstab(kind.astype(str), sev.astype(str))
    sev_cols = sorted(counts.columns, key=lambda s: SEVERITY_ORDER.get(s, 9))
    summary = [
        {
            "label": t.replace("_", " "),
            "cells": [(int(counts.loc[t, s]), f"exceptions:{t}:{s}") for s in sev_cols],
        }
        for t in counts.index
    ]
    # most severe first; within a severity, capacity before stock-outs (one overload causes
    # many stock-outs), then the largest value. One row per exception type × scope (an item
    # short in five months is one line), the action list first, the low-priority rows (excess
    # inventory: often thousands) grouped and capped below it; the full list is plan_exceptions.
    ex["_sev"] = sev.map(lambda s: SEVERITY_ORDER.get(str(s), 9))
    ex["_type"] = kind.map(lambda t: EXCEPTION_ORDER.get(str(t), 9))
    ex["_abs"] = pd.to_numeric(ex["value"], errors="coerce").abs() if "value" in ex.columns else 0
    action = ex[ex["_sev"] < SEVERITY_ORDER["low"]]
    low = ex[ex["_sev"] >= SEVERITY_ORDER["low"]]
    action_groups = group_exceptions(action)
    low_groups = group_exceptions(low)
    top = action_groups.head(TOP_EXCEPTIONS)
    top_low = low_groups.head(TOP_LOW_EXCEPTIONS)

    def rows_of(frame: pd.DataFrame) -> list[dict]:
        return [
            {**r, "type": str(r["exception_type"]).replace("_", " ")}
            for r in frame.to_dict("records")
        ]

    return {
        "n_total": len(ex),
        "n_action": len(action),
        "n_low": len(low),
        "n_action_groups": len(action_groups),
        "n_low_groups": len(low_groups),
        "low_kinds": (
            ", ".join(sorted({str(t).replace("_", " ") for t in low["exception_type"]}))
            if len(low)
            else ""
        ),
        "sev_cols": sev_cols,
        "summary": summary,
        "top": rows_of(top),
        "top_low": rows_of(top_low),
    }


def group_exceptions(ex: pd.DataFrame) -> pd.DataFrame:
    """One row per exception type × scope, ranked: severity, type order, largest value.

    Columns: severity, exception_type, scope_id, months (``2026-06`` or
    ``2026-06..2026-09 (4 months)``), reason (of the worst row), rows.
    """
    cols = ["severity", "exception_type", "scope_id", "months", "reason", "rows"]
    if ex.empty:
        return pd.DataFrame(columns=cols)
    ex = ex.assign(
        scope_id=ex["scope_id"].astype(str) if "scope_id" in ex.columns else "",
        exception_type=ex["exception_type"].astype(str),
        _m=ex["month"].map(lambda m: mkey(m) if is_date(m) else "")
        if "month" in ex.columns
        else "",
        _absf=pd.to_numeric(ex["_abs"], errors="coerce").fillna(0.0),
    )
    worst = ex.sort_values(["_sev", "_type", "_absf"], ascending=[True, True, False], kind="stable")
    groups = []
    for (_t, _s), g in worst.groupby(["exception_type", "scope_id"], sort=False):
        first = g.iloc[0]
        months = sorted(m for m in g["_m"].unique() if m)
        if not months:
            span = "–"
        elif len(months) == 1:
            span = months[0]
        else:
            span = f"{months[0]}..{months[-1]} ({len(months)} months)"
        groups.append(
            {
                "severity": str(first.get("severity", "")),
                "exception_type": first["exception_type"],
                "scope_id": first["scope_id"],
                "months": span,
                "reason": str(first.get("reason", "")),
                "rows": len(g),
                "_sev": first["_sev"],
                "_type": first["_type"],
                "_absf": first["_absf"],
            }
        )
    out = pd.DataFrame(groups).sort_values(
        ["_sev", "_type", "_absf", "rows"], ascending=[True, True, False, False], kind="stable"
    )
    return out[cols].reset_index(drop=True)


# --------------------------------------------------------------------------------------
# Forecast accuracy and lineage
# --------------------------------------------------------------------------------------


def accuracy(data: PackData) -> dict:
    """WAPE by lag of naive, statistical and consensus forecasts; FVA; consensus bias."""
    acc = data.table("forecast_accuracy")
    if not acc.empty and "forecast_kind" in acc.columns:
        # the stage's own backtest rows (forecast_kind *_backtest) are for BI, not this table
        acc = acc[acc["forecast_kind"].isin(KIND_ORDER)]
    if acc.empty:
        return {
            "no_data": "no earlier published plan forecast this month yet, so accuracy cannot "
            "be measured (backfill earlier months with `sop backfill` to build the track record)."
        }
    latest = acc["month"].max()
    acc = acc[acc["month"] == latest]
    levels = [lv for lv in ("item", "family", "total") if lv in set(acc["level"])]
    levels += sorted(set(acc["level"].astype(str)) - set(levels))
    rows = []
    for level in levels:
        for lag in sorted(acc.loc[acc["level"] == level, "lag"].unique()):
            g = acc[(acc["level"] == level) & (acc["lag"] == lag)].set_index("forecast_kind")
            wape = {
                k: (float(g.loc[k, "wape"]) if k in g.index else float("nan")) for k in KIND_ORDER
            }
            fva = [
                (wape["naive"] - wape["statistical"], f"fva_stat:{level}:{lag}"),
                (wape["statistical"] - wape["consensus"], f"fva_consensus:{level}:{lag}"),
            ]
            rows.append(
                {
                    "level": level,
                    "lag": int(lag),
                    "wape": [(wape[k], f"wape:{k}:{level}:{lag}") for k in KIND_ORDER],
                    "fva": [
                        (
                            v,
                            key,
                            "pos" if isnum(v) and v > 0 else "neg" if isnum(v) and v < 0 else "",
                        )
                        for v, key in fva
                    ],
                    "bias": float(g.loc["consensus", "bias"])
                    if "consensus" in g.index
                    else float("nan"),
                    "bias_key": f"bias:consensus:{level}:{lag}",
                }
            )
    level = levels[0]
    fig = figures_review.accuracy_figure(acc[acc["level"] == level], KIND_ORDER, level)
    return {"latest": mkey(latest), "fig": fig, "rows": rows}


def lineage(data: PackData) -> dict:
    """Plan version, run, fingerprint, code version, checks, other versions, row counts."""
    v = data.version_row
    others = data.versions[data.versions["plan_version"] != data.plan_version]
    backfill = None
    if "is_backfill" in v and not pd.isna(v.get("is_backfill")):
        backfill = "yes" if bool(v["is_backfill"]) else "no"
    return {
        "plan_month": data.plan_month,
        "plan_version": data.plan_version,
        "run_id": v.get("run_id"),
        "published_at": str(v.get("published_at", "")),
        "input_fingerprint": v.get("input_fingerprint"),
        "code_version": v.get("code_version"),
        "checks": [(v.get(k), str(v.get(k)), k) for k in ("checks_passed", "checks_failed")],
        "backfill": backfill,
        "others": [
            f"v{int(r.plan_version)} ({r.published_at!s})" for r in others.itertuples(index=False)
        ],
        "db_name": DB_NAME,
        "counts": ", ".join(f"{name} {len(data.table(name)):,}" for name in PACK_TABLES),
        "with_history": data.history is not None,
        "with_exceptions": data.exceptions is not None,
        "notes": list(data.notes),
    }
