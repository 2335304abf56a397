"""The consistency suite of the gate: numbers in different tables that must agree.

Each check returns one :class:`~sop_pipeline.quality.gate.GateCheck` named
``consistency:<check>``; a failure blocks publication like any gate check and its message
names the numbers that disagree (table, key, both values). The checks:

- ``capacity_within_limits`` (plan_capacity): planned hours ≤ available × (1 + overtime
  share), unless firm (open production order) hours alone exceed that; then the plan adds no
  hours of its own (``lp_hours`` = 0), the month carries ``firm_excess_hours`` and
  ``plan_exceptions`` has a ``firm_overload`` row for it;
- ``unmet_demand_agrees`` (plan_inventory, plan_gaps, kpi_scorecard): one unmet-demand
  figure, ``Σ demand − Σ served`` over the horizon, is the same in plan_inventory, in
  plan_gaps (which is also what the run summary prints) and in the ``unmet_demand_rate``
  KPI; plan_gaps.gap_qty is Σ plan_inventory.shortage_qty of each family × month;
- ``scenario_monotonic`` (scenario_comparison): a scenario made only of capacity losses and
  supplier delays never has more revenue than the base, nor a gap smaller in both units and
  value (a smaller gap in units, or more served units, only with a larger gap value; a
  smaller gap value only with a larger gap in units: a mix shift, which items of a family
  are short moves);
  a demand upside never has less demand in any family × month; scenario base values are the
  published plan's (plan_gaps, plan_financials);
- ``kpi_grain`` (kpi_scorecard): one row per kpi × scope × month;
- ``kpi_in_range`` (kpi_scorecard): every value within its documented range
  (``planning.kpis.KPI_RANGES``, docs/kpis.md).

A check whose tables are absent is skipped (the suites report missing tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.core.scenario_schema import MIX_SHIFT_REL_TOL, WORSENING_LEVERS
from sop_pipeline.planning.kpis import KPI_RANGES
from sop_pipeline.quality.checks import MAX_EXAMPLES, GateCheck, _plain_row

ABS_TOL = 1e-6


def _tol(a: np.ndarray | float, b: np.ndarray | float, rel_tol: float, abs_tol: float = ABS_TOL):
    return np.maximum(abs_tol, rel_tol * np.maximum(np.abs(a), np.abs(b)))


def _result(name: str, table: str, rules: int, failures: list[dict], passed_text: str) -> GateCheck:
    if not failures:
        return GateCheck(
            f"consistency:{name}", table, True, rules, f"{table}: {name} passed ({passed_text})."
        )
    parts = []
    for f in failures:
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in e.items()) for e in f["examples"][:3])
        parts.append(
            f"{f['rule']} ({f['count']} row(s)): {f['what']}" + (f" [{shown}]" if shown else "")
        )
    message = f"{table}: {name} failed: " + " | ".join(parts) + "."
    return GateCheck(f"consistency:{name}", table, False, rules, message, failures)


def _examples(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    rows = frame[columns].head(MAX_EXAMPLES).to_dict("records")
    return [
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in _plain_row(r).items()}
        for r in rows
    ]


def capacity_within_limits(
    plan_capacity: pd.DataFrame,
    overtime_share: float,
    plan_exceptions: pd.DataFrame | None = None,
    rel_tol: float = 1e-6,
) -> GateCheck:
    """Hours within available + overtime unless firm hours exceed it (then flagged)."""
    cap = plan_capacity.reset_index(drop=True)
    avail = cap["available_hours"].astype(float).to_numpy()
    planned = cap["planned_hours"].astype(float).to_numpy()
    firm = (
        cap["firm_hours"].astype(float).to_numpy()
        if "firm_hours" in cap
        else cap.get("open_order_hours", pd.Series(0.0, index=cap.index)).astype(float).to_numpy()
    )
    ceiling = (1.0 + overtime_share) * avail
    limit = np.maximum(ceiling, firm)
    failures = []
    over = planned > limit + _tol(planned, limit, rel_tol)
    if over.any():
        frame = cap.assign(limit_hours=limit)[over]
        failures.append(
            {
                "rule": "planned_above_capacity",
                "what": f"planned_hours > available_hours × {1 + overtime_share:g} (or the firm hours)",
                "column": "planned_hours",
                "count": int(over.sum()),
                "examples": _examples(
                    frame,
                    ["work_center_id", "month", "planned_hours", "available_hours", "limit_hours"],
                ),
            }
        )
    firm_over = firm > ceiling + _tol(firm, ceiling, rel_tol)
    if firm_over.any():
        excess = (
            cap["firm_excess_hours"].astype(float).to_numpy()
            if "firm_excess_hours" in cap
            else np.zeros(len(cap))
        )
        unflagged = firm_over & (excess <= ABS_TOL)
        if unflagged.any():
            failures.append(
                {
                    "rule": "firm_excess_not_flagged",
                    "what": "firm hours exceed available + overtime but firm_excess_hours is 0",
                    "column": "firm_excess_hours",
                    "count": int(unflagged.sum()),
                    "examples": _examples(
                        cap[unflagged], ["work_center_id", "month", "firm_hours", "available_hours"]
                    ),
                }
            )
        if plan_exceptions is not None and "exception_type" in plan_exceptions:
            flagged = plan_exceptions[plan_exceptions["exception_type"] == "firm_overload"]
            have = set(
                zip(
                    flagged["scope_id"].astype(str),
                    pd.to_datetime(flagged["month"]).dt.strftime("%Y-%m"),
                    strict=True,
                )
            )
            months = pd.to_datetime(cap["month"]).dt.strftime("%Y-%m")
            missing = np.array(
                [
                    bool(f) and (str(wc), m) not in have
                    for f, wc, m in zip(firm_over, cap["work_center_id"], months, strict=True)
                ]
            )
            if missing.any():
                failures.append(
                    {
                        "rule": "firm_excess_without_exception",
                        "what": "firm hours exceed available + overtime but plan_exceptions has no firm_overload row",
                        "column": None,
                        "count": int(missing.sum()),
                        "examples": _examples(
                            cap[missing], ["work_center_id", "month", "firm_hours"]
                        ),
                    }
                )
    return _result(
        "capacity_within_limits",
        "plan_capacity",
        3,
        failures,
        f"{len(cap)} work center months, {int(firm_over.sum())} with firm hours above capacity flagged",
    )


def _served(inv: pd.DataFrame) -> pd.Series:
    if "served_qty" in inv:
        return inv["served_qty"].astype(float)
    return inv["demand_qty"].astype(float) - inv["shortage_qty"].astype(float)


def unmet_demand_agrees(
    plan_inventory: pd.DataFrame,
    plan_gaps: pd.DataFrame,
    kpi_scorecard: pd.DataFrame | None = None,
    rel_tol: float = 1e-6,
) -> GateCheck:
    """One unmet-demand figure across plan_inventory, plan_gaps, the KPI and the summary."""
    inv = plan_inventory.assign(month=pd.to_datetime(plan_inventory["month"]))
    demand = float(inv["demand_qty"].astype(float).sum())
    figure = demand - float(_served(inv).sum())
    gaps_figure = float(
        plan_gaps["demand_qty"].astype(float).sum() - plan_gaps["supply_qty"].astype(float).sum()
    )
    failures = []
    if abs(figure - gaps_figure) > _tol(figure, gaps_figure, rel_tol, 1e-3):
        failures.append(
            {
                "rule": "gaps_vs_inventory",
                "what": "Σ demand − Σ served differs between plan_inventory and plan_gaps (the run summary's figure)",
                "column": "supply_qty",
                "count": 1,
                "examples": [
                    {"plan_inventory": round(figure, 3), "plan_gaps": round(gaps_figure, 3)}
                ],
            }
        )
    if "family" in inv:
        by = (
            inv.groupby(["family", "month"], as_index=False)["shortage_qty"]
            .sum()
            .rename(columns={"shortage_qty": "inventory_shortage_qty"})
        )
        gaps = plan_gaps.assign(month=pd.to_datetime(plan_gaps["month"]))
        both = gaps[["family", "month", "gap_qty"]].merge(by, on=["family", "month"], how="outer")
        both = both.fillna({"gap_qty": 0.0, "inventory_shortage_qty": 0.0})
        a, b = both["gap_qty"].to_numpy(float), both["inventory_shortage_qty"].to_numpy(float)
        bad = np.abs(a - b) > _tol(a, b, rel_tol)
        if bad.any():
            failures.append(
                {
                    "rule": "gap_qty_vs_shortage_qty",
                    "what": "plan_gaps.gap_qty ≠ Σ plan_inventory.shortage_qty of the family × month",
                    "column": "gap_qty",
                    "count": int(bad.sum()),
                    "examples": _examples(
                        both[bad], ["family", "month", "gap_qty", "inventory_shortage_qty"]
                    ),
                }
            )
    if kpi_scorecard is not None and len(kpi_scorecard):
        kpi = kpi_scorecard[
            (kpi_scorecard["kpi"] == "unmet_demand_rate") & (kpi_scorecard["scope"] == "total")
        ]
        if len(kpi) and demand > 0:
            rate = float(kpi["value"].iloc[0])
            if abs(rate * demand - figure) > _tol(rate * demand, figure, max(rel_tol, 1e-9), 1e-3):
                failures.append(
                    {
                        "rule": "kpi_vs_inventory",
                        "what": "kpi_scorecard unmet_demand_rate × Σ demand ≠ Σ demand − Σ served",
                        "column": "value",
                        "count": 1,
                        "examples": [
                            {
                                "kpi_units": round(rate * demand, 3),
                                "plan_inventory_units": round(figure, 3),
                            }
                        ],
                    }
                )
    policy = (
        str(inv["unmet_demand"].iloc[0]) if "unmet_demand" in inv and len(inv) else "lost_sales"
    )
    return _result(
        "unmet_demand_agrees",
        "plan_inventory",
        3,
        failures,
        f"unmet demand {figure:,.1f} units ({policy}) in plan_inventory, plan_gaps and the KPI",
    )


def _lever_set(text: object) -> frozenset[str]:
    if not isinstance(text, str) or not text:
        return frozenset()
    return frozenset(t.strip() for t in text.split(",") if t.strip())


def scenario_monotonic(
    scenario_comparison: pd.DataFrame,
    plan_gaps: pd.DataFrame | None = None,
    plan_financials: pd.DataFrame | None = None,
    rel_tol: float = 1e-6,
) -> GateCheck:
    """Capacity loss / supplier delay never improve; demand upside never lowers demand."""
    sc = scenario_comparison.assign(month=pd.to_datetime(scenario_comparison["month"]))
    failures = []
    if "lever_kinds" in sc:
        totals = sc.groupby(["scenario", "metric"], as_index=False)[
            ["base_value", "scenario_value"]
        ].sum()
        kinds = sc.drop_duplicates("scenario").set_index("scenario")["lever_kinds"].map(_lever_set)
        totals["kinds"] = totals["scenario"].map(kinds)
        worse = totals[totals["kinds"].map(lambda k: bool(k) and k <= WORSENING_LEVERS)]

        # the gap is measured twice, in units and in value: a plan with less capacity may
        # trade one for the other (a mix shift: which items of a family are short moves),
        # but never improve both; revenue never rises
        def larger(metric: str) -> dict[str, bool]:
            m = worse[worse["metric"] == metric].set_index("scenario")
            a, b = m["scenario_value"], m["base_value"]
            return (a > b + _tol(a, b, MIX_SHIFT_REL_TOL, MIX_SHIFT_REL_TOL)).to_dict()

        # a metric's improvement is a trade when this other one got worse at the same time
        other = {"gap_qty": "gap_value", "supply_qty": "gap_value", "gap_value": "gap_qty"}
        traded = {metric: larger(o) for metric, o in other.items()}
        # ...or the item split of an aggregate plan, when the supply model itself plans the
        # scenario as short as the base (shortage_cost_vs_base ≥ 0, planning/scenarios/plan.py)
        split = (
            sc.groupby("scenario")["shortage_cost_vs_base"].first().ge(-1e-6).to_dict()
            if "shortage_cost_vs_base" in sc
            else {}
        )
        for metric, sign in (
            ("gap_qty", -1.0),
            ("gap_value", -1.0),
            ("revenue", 1.0),
            ("supply_qty", 1.0),
        ):
            rows = worse[worse["metric"] == metric]
            a, b = rows["scenario_value"].to_numpy(float), rows["base_value"].to_numpy(float)
            # gaps must not fall (sign −1), revenue and served units must not rise (sign +1)
            bad = sign * (a - b) > _tol(a, b, max(rel_tol, 1e-6), 1e-3)
            trade = traded.get(metric, {})
            bad &= ~np.array([trade.get(s, False) for s in rows["scenario"]], dtype=bool)
            bad &= ~np.array([split.get(s, False) for s in rows["scenario"]], dtype=bool)
            if bad.any():
                failures.append(
                    {
                        "rule": f"{metric}_improves_under_loss",
                        "what": f"a capacity loss / supplier delay scenario has a "
                        f"{'smaller' if sign < 0 else 'larger'} {metric} than the base over the horizon"
                        + (f" and no larger {other[metric]}" if metric in other else ""),
                        "column": metric,
                        "count": int(bad.sum()),
                        "examples": _examples(
                            rows[bad], ["scenario", "metric", "base_value", "scenario_value"]
                        ),
                    }
                )
        upside = sc[
            sc["scenario"].map(kinds).map(lambda k: k == frozenset({"demand_up"}))
            & (sc["metric"] == "demand_qty")
        ]
        a, b = upside["scenario_value"].to_numpy(float), upside["base_value"].to_numpy(float)
        bad = a < b - _tol(a, b, rel_tol)
        if bad.any():
            failures.append(
                {
                    "rule": "demand_upside_lowers_demand",
                    "what": "a demand-upside scenario has less demand than the base",
                    "column": "demand_qty",
                    "count": int(bad.sum()),
                    "examples": _examples(
                        upside[bad], ["scenario", "family", "month", "base_value", "scenario_value"]
                    ),
                }
            )
    for table, frame, metric, column in (
        ("plan_gaps", plan_gaps, "gap_qty", "gap_qty"),
        ("plan_gaps", plan_gaps, "gap_value", "gap_value"),
        ("plan_gaps", plan_gaps, "demand_qty", "demand_qty"),
        ("plan_financials", plan_financials, "revenue", "revenue"),
    ):
        if frame is None or column not in frame:
            continue
        pub = frame.assign(month=pd.to_datetime(frame["month"]))[["family", "month", column]]
        base = sc[sc["metric"] == metric][["scenario", "family", "month", "base_value"]]
        both = base.merge(pub.astype({"family": str}), on=["family", "month"], how="left")
        both[column] = both[column].fillna(0.0)
        a, b = both["base_value"].to_numpy(float), both[column].to_numpy(float)
        bad = np.abs(a - b) > _tol(a, b, max(rel_tol, 1e-6), 1e-3)
        if bad.any():
            failures.append(
                {
                    "rule": f"base_{metric}_vs_{table}",
                    "what": f"scenario base_value of {metric} ≠ the published {table}.{column}",
                    "column": "base_value",
                    "count": int(bad.sum()),
                    "examples": _examples(
                        both[bad].rename(columns={column: f"{table}_{column}"}),
                        ["scenario", "family", "month", "base_value", f"{table}_{column}"],
                    ),
                }
            )
    return _result(
        "scenario_monotonic",
        "scenario_comparison",
        5,
        failures,
        f"{sc['scenario'].nunique()} scenarios",
    )


def kpi_grain(kpi_scorecard: pd.DataFrame) -> GateCheck:
    """One row per kpi × scope × month."""
    card = kpi_scorecard.assign(month=pd.to_datetime(kpi_scorecard["month"]))
    dup = card.duplicated(["kpi", "scope", "month"], keep=False)
    failures = []
    if dup.any():
        counts = (
            card[dup]
            .groupby(["kpi", "scope", "month"], as_index=False)
            .size()
            .rename(columns={"size": "rows"})
        )
        failures.append(
            {
                "rule": "duplicate_kpi_rows",
                "what": "more than one row per kpi × scope × month",
                "column": None,
                "count": len(counts),
                "examples": _examples(counts, ["kpi", "scope", "month", "rows"]),
            }
        )
    return _result(
        "kpi_grain", "kpi_scorecard", 1, failures, f"{len(card)} rows, one per kpi × scope × month"
    )


def kpi_in_range(kpi_scorecard: pd.DataFrame) -> GateCheck:
    """Every KPI value within its documented range (``KPI_RANGES``)."""
    card = kpi_scorecard.reset_index(drop=True)
    lo = card["kpi"].map(lambda k: KPI_RANGES.get(k, (-np.inf, np.inf))[0]).astype(float)
    hi = card["kpi"].map(lambda k: KPI_RANGES.get(k, (-np.inf, np.inf))[1]).astype(float)
    value = card["value"].astype(float)
    bad = value.isna() | (value < lo - 1e-9) | (value > hi + 1e-9)
    failures = []
    if bad.any():
        frame = card[bad].assign(
            range=[f"[{a:g}, {b:g}]" for a, b in zip(lo[bad], hi[bad], strict=True)]
        )
        failures.append(
            {
                "rule": "kpi_out_of_range",
                "what": "KPI value outside its documented range (docs/kpis.md)",
                "column": "value",
                "count": int(bad.sum()),
                "examples": _examples(frame, ["kpi", "scope", "month", "value", "range"]),
            }
        )
    return _result("kpi_in_range", "kpi_scorecard", 1, failures, f"{len(card)} KPI values in range")


def consistency_checks(
    tables: dict[str, pd.DataFrame], *, overtime_share: float = 0.10, rel_tol: float = 1e-6
) -> list[GateCheck]:
    """Every consistency check whose tables are present (see the module docstring)."""
    checks: list[GateCheck] = []
    cap, inv, gaps = (
        tables.get("plan_capacity"),
        tables.get("plan_inventory"),
        tables.get("plan_gaps"),
    )
    card, scen = tables.get("kpi_scorecard"), tables.get("scenario_comparison")
    if cap is not None and len(cap):
        checks.append(
            capacity_within_limits(cap, overtime_share, tables.get("plan_exceptions"), rel_tol)
        )
    if inv is not None and gaps is not None and len(inv) and len(gaps):
        checks.append(unmet_demand_agrees(inv, gaps, card, rel_tol))
    if scen is not None and len(scen):
        checks.append(scenario_monotonic(scen, gaps, tables.get("plan_financials"), rel_tol))
    if card is not None and len(card):
        checks.append(kpi_grain(card))
        checks.append(kpi_in_range(card))
    return checks
