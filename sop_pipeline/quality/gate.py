"""The publication gate: GX suites plus the checks GX cannot express, on the candidate plan.

Two kinds of checks, one ``GateCheck`` each:

- ``suite:<table>``: the GX suite ``data_quality/plan/<table>.json`` (keys unique, stable
  columns present and not null, quantities ≥ 0, status in its set, forecast intervals
  ordered ``lo95 ≤ lo80 ≤ forecast ≤ hi80 ≤ hi95``), run with ``quality.gx``.
- Python checks over several rows or tables: ``horizon_complete`` (every series has
  exactly ``horizon`` consecutive months starting the month after the plan month, and
  supply / inventory cover the demand series), ``family_consistency`` (plan_gaps demand =
  Σ plan_demand consensus per family × month) and ``revenue_consistency``
  (plan_financials revenue = Σ served × price per family × month, served = demand −
  shortage from plan_inventory, price = the item's consensus revenue ÷ consensus qty).

- ``consistency:<check>`` (``quality.consistency``): hours within capacity + overtime unless
  firm and flagged, one unmet-demand figure, scenario monotonicity, one KPI row per kpi ×
  scope × month, every KPI in its documented range.

The gate fails if any check fails, a table is missing or empty, or a suite evaluates no
expectation (GX reports those two as successes; see TOOLCHAIN.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.publish.tables import GATED_TABLES, TABLES
from sop_pipeline.quality.checks import MAX_EXAMPLES, GateCheck, _plain_row
from sop_pipeline.quality.consistency import consistency_checks
from sop_pipeline.quality.gx import load_suite, validate_dataframe

SUITES_DIR = Path(__file__).resolve().parents[2] / "data_quality" / "plan"
#: Tables whose series must cover the whole horizon, with the columns naming a series.
HORIZON_SERIES: dict[str, list[str]] = {
    "plan_demand": ["item_id", "location_id"],
    "plan_supply": ["item_id", "location_id"],
    "plan_inventory": ["item_id", "location_id"],
    "plan_capacity": ["work_center_id"],
    "plan_gaps": ["family"],
    "plan_financials": ["family"],
}


@dataclass(frozen=True)
class GateResult:
    """All checks of a candidate plan; ``passed`` only if every blocking check passed."""

    plan_month: str
    checks: list[GateCheck]

    @property
    def passed(self) -> bool:
        """True when every blocking check passed and at least one check ran."""
        return bool(self.checks) and all(c.passed for c in self.checks if c.blocking)

    @property
    def checks_passed(self) -> int:
        """Number of passing checks (goes into ``plan_versions``)."""
        return sum(c.passed for c in self.checks)

    @property
    def checks_failed(self) -> int:
        """Number of failing blocking checks (a failed warning is not counted)."""
        return sum(not c.passed for c in self.checks if c.blocking)

    @property
    def warnings(self) -> list[GateCheck]:
        """Non-blocking checks that failed."""
        return [c for c in self.checks if not c.passed and not c.blocking]

    def failure_report(self) -> str:
        """The messages of the failed checks, one per line (empty if every check passed).

        Failed non-blocking checks are marked ``(warning)``.
        """
        return "\n".join(
            f"- {'' if c.blocking else '(warning) '}{c.message}"
            for c in self.checks
            if not c.passed
        )


def _keys_of(df: pd.DataFrame, index: list, table: str) -> list[dict]:
    """Key values of the rows at ``index`` labels (the grain of the table)."""
    key = [c for c in TABLES[table].key if c in df.columns] if table in TABLES else []
    rows = df.loc[[i for i in index if i in df.index][:MAX_EXAMPLES], key or list(df.columns[:3])]
    return [_plain_row(r) for r in rows.to_dict("records")]


def _fmt_examples(examples: list[dict]) -> str:
    if not examples:
        return ""
    unique = list(dict.fromkeys(", ".join(f"{k}={v}" for k, v in e.items()) for e in examples))
    return f"; rows: [{'; '.join(unique[:3])}]"


def _suite_check(table: str, df: pd.DataFrame, suites_dir: Path) -> GateCheck:
    suite = load_suite(suites_dir / f"{table}.json")
    # a plain positional index lets failing index labels map back to rows and their keys
    frame = df.reset_index(drop=True)
    outcome = validate_dataframe(frame, suite)
    failures = []
    parts = []
    for f in outcome.failures:
        examples = _keys_of(frame, list(f.unexpected_index), table)
        failures.append(
            {
                "rule": f.expectation,
                "column": f.column,
                "count": f.unexpected_count,
                "examples": examples,
            }
        )
        text = f.message.removeprefix(f"{suite['name']}: ").rstrip(".")
        parts.append(f"{f.expectation} on {text}{_fmt_examples(examples)}.")
    passed = outcome.success and outcome.evaluated > 0 and outcome.row_count > 0
    message = (
        f"{table}: suite {suite['name']} passed ({outcome.evaluated} expectations, {outcome.row_count} rows)."
        if passed
        else f"{table}: suite {suite['name']} failed: " + " ".join(parts)
    )
    return GateCheck(f"suite:{table}", table, passed, outcome.evaluated, message, failures)


def _horizon_complete(
    tables: dict[str, pd.DataFrame], plan_month: str, horizon: int
) -> list[GateCheck]:
    """Every series has exactly ``horizon`` consecutive months from plan_month + 1."""
    start = pd.Timestamp(month_start(parse_month(plan_month), 1))
    expected = pd.date_range(start, periods=horizon, freq="MS")
    checks = []
    demand_series = None
    for table, cols in HORIZON_SERIES.items():
        df = tables.get(table)
        if df is None or df.empty or any(c not in df.columns for c in [*cols, "month"]):
            continue  # the suite check reports missing / empty tables and columns
        months = pd.to_datetime(df["month"])
        frame = df[cols].assign(month=months)
        failures = []
        outside = ~months.isin(expected)
        if outside.any():
            ex = [_plain_row(r) for r in frame[outside].head(MAX_EXAMPLES).to_dict("records")]
            failures.append(
                {
                    "rule": "month_in_horizon",
                    "column": "month",
                    "count": int(outside.sum()),
                    "examples": ex,
                }
            )
        present = frame[~outside].drop_duplicates()
        series = present[cols].drop_duplicates()
        full = series.merge(pd.DataFrame({"month": expected}), how="cross")
        gaps = full.merge(present, on=[*cols, "month"], how="left", indicator=True)
        gaps = gaps[gaps["_merge"] == "left_only"]
        if not gaps.empty:
            ex = [
                _plain_row(r) for r in gaps[[*cols, "month"]].head(MAX_EXAMPLES).to_dict("records")
            ]
            failures.append(
                {
                    "rule": "missing_horizon_month",
                    "column": "month",
                    "count": len(gaps),
                    "examples": ex,
                }
            )
        if table == "plan_demand":
            demand_series = df[cols].drop_duplicates()
        elif table in ("plan_supply", "plan_inventory") and demand_series is not None:
            lost = demand_series.merge(df[cols].drop_duplicates(), how="left", indicator=True)
            lost = lost[lost["_merge"] == "left_only"]
            if not lost.empty:
                ex = [_plain_row(r) for r in lost[cols].head(MAX_EXAMPLES).to_dict("records")]
                failures.append(
                    {
                        "rule": "series_missing_vs_plan_demand",
                        "column": None,
                        "count": len(lost),
                        "examples": ex,
                    }
                )
        if failures:
            text = "; ".join(
                f"{f['rule']} ({f['count']} row(s)){_fmt_examples(f['examples'])}" for f in failures
            )
            message = (
                f"{table}: horizon_complete failed: each {' × '.join(cols)} needs the {horizon} months "
                f"{expected[0]:%Y-%m} … {expected[-1]:%Y-%m} exactly once: {text}."
            )
        else:
            message = f"{table}: horizon_complete passed ({len(series)} series × {horizon} months)."
        checks.append(GateCheck("horizon_complete", table, not failures, 3, message, failures))
    return checks


def _mismatch_check(
    name: str,
    table: str,
    lhs: pd.DataFrame,
    rhs: pd.DataFrame,
    keys: list[str],
    what: str,
    rel_tol: float,
    abs_tol: float,
) -> GateCheck:
    """Compare ``lhs.value`` to ``rhs.value`` on ``keys`` (missing = 0) within tolerance."""
    both = lhs.merge(rhs, on=keys, how="outer", suffixes=("_lhs", "_rhs")).fillna(
        {"value_lhs": 0.0, "value_rhs": 0.0}
    )
    diff = (both["value_lhs"] - both["value_rhs"]).abs()
    bad = diff > np.maximum(abs_tol, rel_tol * both[["value_lhs", "value_rhs"]].abs().max(axis=1))
    if not bad.any():
        return GateCheck(name, table, True, 1, f"{table}: {name} passed ({len(both)} rows).")
    rows = both[bad].head(MAX_EXAMPLES)
    examples = [
        {
            **_plain_row({k: r[k] for k in keys}),
            "published": round(float(r["value_lhs"]), 6),
            "expected": round(float(r["value_rhs"]), 6),
        }
        for _, r in rows.iterrows()
    ]
    message = f"{table}: {name} failed on {int(bad.sum())} row(s): {what}{_fmt_examples(examples)}."
    return GateCheck(
        name,
        table,
        False,
        1,
        message,
        [{"rule": name, "column": None, "count": int(bad.sum()), "examples": examples}],
    )


def _family_consistency(tables: dict[str, pd.DataFrame], rel_tol: float) -> list[GateCheck]:
    gaps, demand = tables.get("plan_gaps"), tables.get("plan_demand")
    need_g, need_d = {"family", "month", "demand_qty"}, {"family", "month", "consensus_qty"}
    if (
        gaps is None
        or demand is None
        or not need_g <= set(gaps.columns)
        or not need_d <= set(demand.columns)
    ):
        return []
    lhs = (
        gaps.assign(month=pd.to_datetime(gaps["month"]))
        .groupby(["family", "month"], as_index=False)["demand_qty"]
        .sum()
    )
    d = demand.assign(month=pd.to_datetime(demand["month"]))
    rhs = d.groupby(["family", "month"], as_index=False)["consensus_qty"].sum()
    return [
        _mismatch_check(
            "family_consistency",
            "plan_gaps",
            lhs.rename(columns={"demand_qty": "value"}),
            rhs.rename(columns={"consensus_qty": "value"}),
            ["family", "month"],
            "demand_qty ≠ Σ plan_demand.consensus_qty of the family",
            rel_tol,
            1e-6,
        )
    ]


def _revenue_consistency(tables: dict[str, pd.DataFrame], rel_tol: float) -> list[GateCheck]:
    fin, demand, inv = (
        tables.get("plan_financials"),
        tables.get("plan_demand"),
        tables.get("plan_inventory"),
    )
    keys = ["item_id", "location_id", "month"]
    if (
        fin is None
        or demand is None
        or inv is None
        or not {"family", "month", "revenue"} <= set(fin.columns)
        or not {*keys, "family", "consensus_qty", "consensus_revenue"} <= set(demand.columns)
        or not {*keys, "demand_qty", "shortage_qty"} <= set(inv.columns)
    ):
        return []
    if "served_qty" not in inv:
        # lost sales: served = demand − shortage (under backlog the table carries served_qty)
        inv = inv.assign(served_qty=inv["demand_qty"] - inv["shortage_qty"])
    d = demand.assign(month=pd.to_datetime(demand["month"]))[
        [*keys, "family", "consensus_qty", "consensus_revenue"]
    ]
    i = inv.assign(month=pd.to_datetime(inv["month"]))[[*keys, "served_qty"]]
    m = d.merge(i, on=keys, how="left")
    qty = m["consensus_qty"].astype(float)
    # the item's price over the horizon: under backlog a month without demand can still ship
    # (catching up), so a price per row would be 0 exactly where revenue is earned
    per_item = m.groupby("item_id")[["consensus_revenue", "consensus_qty"]].sum()
    item_price = (
        per_item["consensus_revenue"]
        / per_item["consensus_qty"].where(per_item["consensus_qty"] > 0)
    ).fillna(0.0)
    price = m["item_id"].map(item_price).to_numpy(dtype=float)
    served = m["served_qty"].astype(float).fillna(qty)
    m["value"] = served * price
    rhs = m.groupby(["family", "month"], as_index=False)["value"].sum()
    lhs = (
        fin.assign(month=pd.to_datetime(fin["month"]))
        .groupby(["family", "month"], as_index=False)["revenue"]
        .sum()
    )
    return [
        _mismatch_check(
            "revenue_consistency",
            "plan_financials",
            lhs.rename(columns={"revenue": "value"}),
            rhs,
            ["family", "month"],
            "revenue ≠ Σ served qty × price (served_qty of plan_inventory)",
            rel_tol,
            0.01,
        )
    ]


def run_gate(
    tables: dict[str, pd.DataFrame],
    plan_month: str,
    horizon: int,
    *,
    suites_dir: Path | None = None,
    rel_tol: float = 1e-6,
    overtime_share: float = 0.10,
) -> GateResult:
    """Run every gate check on a candidate plan.

    Args:
        tables: candidate plan tables by published name (``plan_demand`` … ``kpi_scorecard``);
            extra tables are ignored, a missing gated table fails the gate.
        plan_month: ``YYYY-MM``.
        horizon: months planned after the plan month.
        suites_dir: folder of the suite JSON files (default ``data_quality/plan``).
        rel_tol: relative tolerance of the consistency checks.
        overtime_share: settings ``overtime_share`` (the capacity check's limit).

    Returns:
        One ``GateCheck`` per suite and Python check; ``passed`` is False if any failed.
    """
    parse_month(plan_month)
    suites_dir = Path(suites_dir) if suites_dir is not None else SUITES_DIR
    checks: list[GateCheck] = []
    for table in GATED_TABLES:
        df = tables.get(table)
        if df is None:
            checks.append(
                GateCheck(
                    f"suite:{table}",
                    table,
                    False,
                    0,
                    f"{table}: the candidate plan has no {table} table; the stage that writes it did not run.",
                    [{"rule": "table_present", "column": None, "count": 0, "examples": []}],
                )
            )
            continue
        checks.append(_suite_check(table, df, suites_dir))
    checks += _horizon_complete(tables, plan_month, horizon)
    checks += _family_consistency(tables, rel_tol)
    checks += _revenue_consistency(tables, max(rel_tol, 1e-6))
    checks += consistency_checks(tables, overtime_share=overtime_share, rel_tol=rel_tol)
    return GateResult(plan_month=plan_month, checks=checks)
