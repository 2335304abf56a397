"""The data of the pack's plan sections.

The sections: headline, KPIs, decisions, demand, supply, capacity, inventory.

Each function takes the :class:`~sop_pipeline.report.data.PackData` and returns the plain
dict its template (``templates/<section>.html.j2``) shows: numbers, texts, rows and the
plotly figures (``report/figures.py``); no HTML. A section without data returns
``{"no_data": "..."}`` and its template says so. The review sections (finance, scenarios,
waterfall, exceptions, accuracy, lineage) are in ``sections_review.py``.
"""

from __future__ import annotations

import re

import pandas as pd

from sop_pipeline.report import figures
from sop_pipeline.report.data import PackData, family_order
from sop_pipeline.report.formatting import fmt_kpi, fmt_pct, fmt_qty, isnum, mkey

#: Rows in the "decisions needed" table.
TOP_GAPS = 8
#: Rows in the supply section's "top material constraints" table.
TOP_MATERIALS = 5
#: rows of the "items at risk" table of the inventory section
TOP_ITEMS_AT_RISK = 10

#: KPI display order and labels (docs/kpis.md).
KPI_LABELS: dict[str, str] = {
    "forecast_accuracy": "Forecast accuracy",
    "forecast_bias": "Forecast bias",
    "revenue_forecast_accuracy": "Revenue forecast accuracy",
    "total_sales_vs_forecast": "Total sales vs forecast",
    "inventory_turns": "Inventory turns",
    "inventory_aging": "Inventory aging (>180 days)",
    "capacity_utilization": "Capacity utilization",
    "production_schedule_attainment": "Production schedule attainment",
    "on_time_delivery": "On-time delivery",
    "order_fill_rate": "Order fill rate",
    "backorder_rate": "Backorder rate",
    "gross_margin_pct": "Gross margin %",
    "revenue_to_aop_ratio": "Revenue ÷ AOP",
    "working_capital_vs_plan": "Working capital vs plan",
}
STATUS_LABELS = {"on_track": "on track", "at_risk": "at risk", "off_track": "off track"}
DIRECTION_LABELS = {
    "higher": "↑ higher is better",
    "lower": "↓ lower is better",
    "closer": "◎ closer to target is better",
}


def _nan() -> float:
    return float("nan")


# --------------------------------------------------------------------------------------
# Headline and KPIs
# --------------------------------------------------------------------------------------


def headline(data: PackData) -> dict:
    """The headline cards: demand, revenue vs AOP, margin, gap or backlog, inventory, KPIs."""
    demand = data.table("plan_demand")
    fin = data.table("plan_financials")
    gaps = data.table("plan_gaps")
    kpis = data.table("kpi_scorecard")
    out: dict = {"cur": data.base_currency}
    out["cons_rev"] = float(demand["consensus_revenue"].sum()) if len(demand) else _nan()
    out["cons_qty"] = float(demand["consensus_qty"].sum()) if len(demand) else _nan()
    rev = float(fin["revenue"].sum()) if len(fin) else _nan()
    aop_rows = fin[fin["aop_revenue"].notna()] if len(fin) else fin
    aop = float(aop_rows["aop_revenue"].sum()) if len(aop_rows) else _nan()
    rev_in_aop = float(aop_rows["revenue"].sum()) if len(aop_rows) else _nan()
    vs_aop = rev_in_aop - aop if isnum(aop) and len(aop_rows) else _nan()
    out.update(
        rev=rev,
        aop=aop,
        vs_aop=vs_aop,
        rev_cls="bad" if isnum(vs_aop) and vs_aop < 0 else "good" if isnum(vs_aop) else "",
    )
    gm = float(fin["gross_margin"].sum()) if len(fin) else _nan()
    out["gm"] = gm
    out["gm_pct"] = gm / rev if isnum(gm) and isnum(rev) and rev else _nan()
    inv = data.table("plan_inventory")
    out["backlog"] = out["gap"] = None
    if len(gaps) and "unmet_demand" in inv and (inv["unmet_demand"] == "backlog").any():
        # a backlog waits: month-end backlogs do not add up over months, so the card shows
        # the peak and what is still open at the horizon end (docs/supply_and_finance.md)
        unmet = max(0.0, float(gaps["demand_qty"].sum() - gaps["supply_qty"].sum()))
        by_month = gaps.groupby("month")[["gap_qty", "gap_value"]].sum()
        peak_qty, peak_value = by_month.loc[by_month["gap_qty"].idxmax()]
        out["backlog"] = {
            "peak_qty": peak_qty,
            "peak_value": peak_value,
            "unmet": unmet,
            "cls": "bad" if unmet > 1e-6 else "",
        }
    else:
        gap_value = float(gaps["gap_value"].sum()) if len(gaps) else _nan()
        out["gap"] = {
            "value": gap_value,
            "qty": float(gaps["gap_qty"].sum()) if len(gaps) else _nan(),
            "short": int((gaps["gap_qty"] > 0).sum()) if len(gaps) else 0,
            "cls": "bad" if isnum(gap_value) and gap_value > 0 else "good",
        }
    out["inventory"] = None
    if len(fin):
        by_month = fin.groupby("month")["inventory_value"].sum().sort_index()
        out["inventory"] = {
            "first": float(by_month.iloc[0]),
            "last": float(by_month.iloc[-1]),
            "first_month": mkey(by_month.index[0]),
            "last_month": mkey(by_month.index[-1]),
        }
    total = kpis[kpis["scope"] == "total"] if len(kpis) else kpis
    counts = total["status"].value_counts() if len(total) else pd.Series(dtype=int)
    out["kpi_counts"] = [(s, int(counts.get(s, 0))) for s in ("on_track", "at_risk", "off_track")]
    return out


def kpis(data: PackData) -> dict:
    """The total-scope KPI table with traffic lights and the family × KPI matrix."""
    kpis = data.table("kpi_scorecard")
    if kpis.empty:
        return {
            "no_data": "the scorecard of this plan is empty (see the kpi_scorecard asset's "
            "'missing' metadata)."
        }
    order = {k: i for i, k in enumerate(KPI_LABELS)}
    kpis = kpis.assign(
        kpi_order=kpis["kpi"].map(order).fillna(len(order)), month_key=kpis["month"].map(mkey)
    ).sort_values(["kpi_order", "kpi", "month_key"])
    rows = []
    for r in kpis[kpis["scope"] == "total"].itertuples(index=False):
        unit = getattr(r, "unit", None)
        direction = getattr(r, "direction", None)
        key = f"kpi:{r.kpi}:{r.scope}:{r.month_key}"
        rows.append(
            {
                "kpi": r.kpi,
                "status": r.status,
                "status_label": STATUS_LABELS.get(r.status, r.status),
                "label": KPI_LABELS.get(r.kpi, str(r.kpi).replace("_", " ").capitalize()),
                "definition": getattr(r, "definition", None) or "",
                "month_key": r.month_key,
                "value": r.value,
                "value_text": fmt_kpi(r.value, unit),
                "target": r.target,
                "target_text": fmt_kpi(r.target, unit),
                "key": key,
                "direction": DIRECTION_LABELS.get(direction or "", direction or ""),
            }
        )
    fam = kpis[kpis["scope"].astype(str).str.startswith("family:")]
    matrix = None
    if len(fam):
        families = [f for f in family_order(data) if f"family:{f}" in set(fam["scope"])]
        families += sorted(
            {s.split(":", 1)[1] for s in fam["scope"]} - set(families)
        )  # families with KPIs but no plan rows
        body = []
        for kpi, grp in fam.groupby("kpi", sort=False):
            cells = []
            unit = grp["unit"].iloc[0] if "unit" in grp.columns else None
            by_scope = {s: g.iloc[0] for s, g in grp.groupby("scope")}
            for f in families:
                r = by_scope.get(f"family:{f}")
                if r is None:
                    cells.append(None)
                    continue
                cells.append(
                    {
                        "status": r["status"],
                        "status_label": STATUS_LABELS.get(r["status"], r["status"]),
                        "target_text": fmt_kpi(r["target"], unit),
                        "value": r["value"],
                        "value_text": fmt_kpi(r["value"], unit),
                        "key": f"kpi:{kpi}:family:{f}:{mkey(r['month'])}",
                    }
                )
            body.append({"label": KPI_LABELS.get(str(kpi), str(kpi)), "cells": cells})
        matrix = {"families": families, "rows": body}
    return {"rows": rows, "matrix": matrix}


# --------------------------------------------------------------------------------------
# Decisions needed
# --------------------------------------------------------------------------------------

_CAPACITY_RE = re.compile(r"capacity\s+(\S+)\s+in\s+(\d{4}-\d{2})")


def capacity_shortfall_text(row: pd.Series) -> str:
    """What is short at a work center in a month, in hours, said plainly.

    Args:
        row: a ``plan_capacity`` row (available_hours, required_hours, planned_hours).

    Returns:
        ``": short 123 h (demand needs 843 h; the plan uses 706 h of the 720 h available,
        98%)"``, or, when this month's demand alone fits, that no hours are short then.
    """
    avail = float(row["available_hours"] or 0.0)
    required = float(row["required_hours"] or 0.0)
    planned = float(row["planned_hours"] or 0.0)
    if avail <= 0:
        return f": no hours available, demand needs {fmt_qty(required)} h"
    short = required - planned
    used = f"the plan uses {fmt_qty(planned)} h of the {fmt_qty(avail)} h available, {fmt_pct(planned / avail, 0)}"
    if short > 0.5:
        return f": short {fmt_qty(short)} h (demand needs {fmt_qty(required)} h; {used})"
    return (
        f": no hours short in that month itself ({used}; that month's own demand needs "
        f"{fmt_qty(required)} h, {fmt_pct(required / avail, 0)}, the other planned hours build "
        "stock for other months)"
    )


def decision_options(constraint: str | None, capacity: pd.DataFrame | None = None) -> list[str]:
    """Options a planner can put to the executives for a gap with this binding constraint.

    Args:
        constraint: the gap's binding constraint text (e.g. ``capacity WC-W-MOLD in
            2026-12 (100% of gap value)`` or ``purchase lead time 44 days: ...``).
        capacity: ``plan_capacity`` rows, to quote the work center's planned load.

    Returns:
        Short option sentences, most direct first.
    """
    text = (constraint or "").strip()
    match = _CAPACITY_RE.search(text)
    if match:
        wc, month = match.group(1), match.group(2)
        load = ""
        if capacity is not None and len(capacity):
            rows = capacity[
                (capacity["work_center_id"].astype(str) == wc)
                & (capacity["month"].map(mkey) == month)
            ]
            if len(rows):
                load = capacity_shortfall_text(rows.iloc[0])
        options = [f"Overtime or extra shift on {wc} in {month}{load}"]
        if "no free capacity earlier" not in text:
            options.append(f"Pre-build in the months before {month}")
        options += [
            "Re-prioritise the constrained hours to the highest-margin items",
            "Move volume to another work center or subcontract",
        ]
        return options
    if "lead time" in text or "purchase" in text:
        return [
            "Expedite purchase orders with the supplier",
            "Re-prioritise stock across locations and customers",
            "Agree the shortfall or a later date with sales",
        ]
    return [
        "Re-prioritise supply to the most valuable orders",
        "Expedite purchase or add capacity",
        "Agree the shortfall with sales",
    ]


def decisions(data: PackData) -> dict:
    """The largest gaps by value with their binding constraint and the options."""
    gaps = data.table("plan_gaps")
    short = gaps[gaps["gap_value"] > 0] if len(gaps) else gaps
    if short.empty:
        return {"none_short": True}
    top = short.sort_values(["gap_value", "family"], ascending=[False, True]).head(TOP_GAPS)
    cap = data.table("plan_capacity")
    rows = []
    for i, r in enumerate(top.itertuples(index=False), start=1):
        constraint = getattr(r, "binding_constraint", None)
        constraint = None if constraint is None or pd.isna(constraint) else str(constraint)
        month = mkey(r.month)
        rows.append(
            {
                "rank": i,
                "family": r.family,
                "month": month,
                "gap_qty": r.gap_qty,
                "gap_value": r.gap_value,
                "qty_key": f"gap_qty:{r.family}:{month}",
                "value_key": f"gap_value:{r.family}:{month}",
                "share": r.gap_qty / r.demand_qty if r.demand_qty else _nan(),
                "constraint": constraint or "not recorded",
                "options": decision_options(constraint, cap),
            }
        )
    return {
        "rows": rows,
        "shown": float(top["gap_value"].sum()),
        "total": float(short["gap_value"].sum()),
        "n_short": len(short),
        "cur": data.base_currency,
    }


# --------------------------------------------------------------------------------------
# Demand, supply, capacity
# --------------------------------------------------------------------------------------


def demand(data: PackData) -> dict:
    """Small multiples per family: actual demand, forecasts and the 80/95% bands."""
    demand = data.table("plan_demand")
    if demand.empty:
        return {"no_data": "plan_demand holds no rows for this plan version."}
    history = data.history
    hist = (
        history
        if history is not None
        else pd.DataFrame(
            {
                "family": pd.Series(dtype="object"),
                "month": pd.Series(dtype="datetime64[ns]"),
                "demand_qty": pd.Series(dtype="float64"),
            }
        )
    )
    tiles = []
    for family in (f for f in family_order(data) if f in set(demand["family"])):
        fig = figures.demand_tile_figure(hist, demand, family, with_history=history is not None)
        rows = demand["family"] == family
        tiles.append(
            {
                "family": family,
                "fig": fig,
                "qty": float(demand.loc[rows, "consensus_qty"].sum()),
                "revenue": float(demand.loc[rows, "consensus_revenue"].sum()),
            }
        )
    return {
        "tiles": tiles,
        "with_history": history is not None,
        "actual_color": figures.C_ACTUAL,
        "cur": data.base_currency,
    }


def material_constraints(materials: pd.DataFrame | None) -> dict | None:
    """The supply section's top material constraints (``plan_materials``); None without a BOM.

    One row per material × location that is short in some month, largest shortage first:
    total units short, the first month short, and the binding supplier constraint.
    """
    if materials is None or materials.empty:
        return None
    short = materials[pd.to_numeric(materials["shortage_qty"], errors="coerce") > 1e-6]
    if short.empty:
        return {"rows": [], "n_materials": materials["component_item_id"].nunique()}
    top = (
        short.sort_values("month")
        .groupby(["component_item_id", "location_id"], as_index=False)
        .agg(
            shortage_qty=("shortage_qty", "sum"),
            first_month=("month", "min"),
            months=("month", "nunique"),
            binding=("binding_constraint", "first"),
        )
        .sort_values(["shortage_qty", "component_item_id"], ascending=[False, True])
        .head(TOP_MATERIALS)
    )
    rows = [
        {
            "material": r["component_item_id"],
            "location": r["location_id"],
            "shortage_qty": r["shortage_qty"],
            "key": "material_short:" + str(r["component_item_id"]),
            "first_month": mkey(r["first_month"]),
            "months": int(r["months"]),
            "binding": r["binding"] or "",
        }
        for r in top.to_dict("records")
    ]
    return {"rows": rows}


def supply(data: PackData) -> dict:
    """Supply and gap against demand per month, the gap heatmap and material constraints."""
    gaps = data.table("plan_gaps")
    if gaps.empty:
        return {"no_data": "plan_gaps holds no rows for this plan version."}
    families = [f for f in family_order(data) if f in set(gaps["family"])]
    groups: list[tuple[str, pd.DataFrame]] = [
        (
            "All families",
            gaps.groupby("month", as_index=False)[["demand_qty", "supply_qty", "gap_qty"]].sum(),
        )
    ]
    groups += [(f, gaps[gaps["family"] == f].sort_values("month")) for f in families]
    pivot = gaps.assign(m=gaps["month"].map(mkey)).pivot_table(
        index="family", columns="m", values="gap_value", aggfunc="sum"
    )
    pivot = pivot.reindex([f for f in families if f in pivot.index])
    return {
        "fig": figures.supply_figure(groups),
        "heatmap": figures.gap_heatmap(pivot, data.base_currency),
        "heatmap_height": 60 + 26 * max(len(pivot), 3),
        "materials": material_constraints(data.table("plan_materials")),
    }


def capacity(data: PackData) -> dict:
    """Utilization heatmaps (planned and required hours ÷ available) and the months over 100%."""
    cap = data.table("plan_capacity")
    if cap.empty:
        return {"no_data": "plan_capacity holds no rows for this plan version."}
    cap = cap.assign(
        m=cap["month"].map(mkey),
        required_util=cap["required_hours"]
        / cap["available_hours"].where(cap["available_hours"] > 0),
    )
    wcs = sorted(cap["work_center_id"].astype(str).unique())
    return {
        "over": len(cap[cap["utilization"] > 1.0]),
        "fig": figures.capacity_figure(cap, wcs),
        "height": 140 + 2 * 28 * max(len(wcs), 3),
    }


# --------------------------------------------------------------------------------------
# Inventory
# --------------------------------------------------------------------------------------


def inventory(data: PackData) -> dict:
    """Series below safety stock per month, units summed, items at risk, value vs AOP."""
    inv = data.table("plan_inventory")
    if inv.empty:
        return {"no_data": "plan_inventory holds no rows for this plan version."}
    demand = data.table("plan_demand")
    fam_of = demand.drop_duplicates("item_id").set_index("item_id")["family"] if len(demand) else {}
    family = inv["item_id"].map(fam_of)
    if "family" in inv.columns:
        family = family.fillna(inv["family"])
    inv = inv.assign(family=family.fillna("(unknown)"))
    # a sum over items hides the series below safety stock (one item's surplus covers another's
    # deficit): count them per month, and list the items at risk
    inv = inv.assign(
        below=inv["closing_qty"] < inv["safety_stock_qty"] - 1e-9,
        deficit=(inv["safety_stock_qty"] - inv["closing_qty"]).clip(lower=0),
    )

    def per_month(g: pd.DataFrame) -> pd.DataFrame:
        out = g.groupby("month", as_index=False).agg(
            closing_qty=("closing_qty", "sum"),
            safety_stock_qty=("safety_stock_qty", "sum"),
            shortage_qty=("shortage_qty", "sum"),
            n_below=("below", "sum"),
        )
        n = g[["item_id", "location_id"]].drop_duplicates().shape[0]
        return out.assign(share_below=out["n_below"] / n if n else 0.0)

    groups = [("All families", per_month(inv))]
    for f in family_order(data) + sorted(set(inv["family"]) - set(family_order(data))):
        g = inv[inv["family"] == f]
        if len(g):
            groups.append((f, per_month(g)))
    fig = figures.inventory_figure(groups)
    below = inv[inv["below"]]
    n_series = inv[["item_id", "location_id"]].drop_duplicates().shape[0]
    n_below = below[["item_id", "location_id"]].drop_duplicates().shape[0]
    total = groups[0][1]
    worst = total.loc[total["n_below"].idxmax()] if len(total) else None
    return {
        "n_below": n_below,
        "n_series": n_series,
        "share": n_below / n_series if n_series else 0.0,
        "worst": (
            {
                "month": mkey(worst["month"]),
                "n_below": int(worst["n_below"]),
                "share": worst["share_below"],
            }
            if worst is not None and worst["n_below"] > 0
            else None
        ),
        "fig": fig,
        "at_risk": items_at_risk(inv),
        "vs_aop": inventory_vs_aop(data),
    }


def items_at_risk(inv: pd.DataFrame) -> dict | None:
    """The series furthest below safety stock over the horizon (largest total deficit first)."""
    below = inv[inv["below"]]
    if below.empty:
        return None
    risk = (
        below.groupby(["item_id", "location_id"], as_index=False)
        .agg(
            family=("family", "first"),
            months_below=("month", "nunique"),
            first_month=("month", "min"),
            deficit=("deficit", "sum"),
            worst_deficit=("deficit", "max"),
            shortage=("shortage_qty", "sum"),
        )
        .sort_values(["shortage", "deficit", "item_id"], ascending=[False, False, True])
    )
    top = risk.head(TOP_ITEMS_AT_RISK)
    rows = [
        {
            "item_id": r.item_id,
            "location_id": r.location_id,
            "family": r.family,
            "months_below": int(r.months_below),
            "first_month": mkey(r.first_month),
            "worst_deficit": r.worst_deficit,
            "key": f"risk_deficit:{r.item_id}@{r.location_id}",
            "shortage": r.shortage,
        }
        for r in top.itertuples(index=False)
    ]
    return {"rows": rows, "more": len(risk) - len(top)}


def inventory_vs_aop(data: PackData) -> dict | None:
    """Where the projected inventory value goes, against the AOP inventory target.

    Reads plan_financials' safety_stock_value (Σ min(closing, safety stock) × unit cost),
    inventory_value and aop_inventory_value over the horizon months with a target.
    """
    fin = data.table("plan_financials")
    need = {"inventory_value", "aop_inventory_value", "safety_stock_value"}
    if fin.empty or not need <= set(fin.columns):
        return None
    fin = fin[fin["aop_inventory_value"].fillna(0) > 0]
    if fin.empty:
        return None
    inv, aop = float(fin["inventory_value"].sum()), float(fin["aop_inventory_value"].sum())
    ss = float(fin["safety_stock_value"].sum())
    by = fin.groupby("family")[["inventory_value", "aop_inventory_value"]].sum()
    ratio = (by["inventory_value"] / by["aop_inventory_value"]).sort_values(ascending=False)
    return {
        "ratio": inv / aop,
        "ratio_text": f"{inv / aop:.2f}×",
        "highest": [f"{f} {r:.1f}×" for f, r in ratio.head(3).items()],
        "ss_share": ss / inv if inv else 0.0,
        "ss_of_aop": ss / aop,
    }
