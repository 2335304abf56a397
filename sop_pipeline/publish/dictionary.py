"""The data dictionary of the published tables: what every column means, its unit and grain.

One source for three places: the writer puts these texts into ``published/sop.duckdb`` as
``COMMENT ON TABLE/VIEW/COLUMN`` and into the Parquet schema (field metadata
``description``), and ``docs/published_tables.md`` is generated from them::

    python -m sop_pipeline.publish.dictionary            # rewrite docs/published_tables.md
    python -m sop_pipeline.publish.dictionary --check    # exit 1 if the doc is stale

Why a module of its own, keyed by table and column, rather than a third element in
``tables.TABLES``: the specs stay a compact list of names and types that several people
extend at once, and a description is added here with one line per column without touching
their layout. ``COLUMNS`` holds the texts of names that mean the same thing in every table
(``plan_month``, ``item_id``, ``month``, ...); ``TABLE_COLUMNS`` the ones particular to a
table, including the extra (non-stable) columns the stages publish after the stable ones.
A column that is in neither is published without a comment, and
``tests/test_dictionary.py`` fails naming it.

Units are written the same way everywhere: ``units`` (the item's unit of measure),
``hours``, ``days``, ``share 0-1``, ``ratio``, and money as ``BASE`` below.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sop_pipeline.publish.tables import PLAN_VERSIONS_EXTRA, TABLES

#: How every money column names its currency.
BASE = "base currency (SOP_BASE_CURRENCY, USD by default; plan_versions.base_currency)"
_H = "the horizon month"

#: What a table is for (the writer appends the spec's grain sentence).
TABLE_PURPOSE: dict[str, str] = {
    "plan_demand": "Consensus demand plan: statistical forecast with ranges, CRM pipeline and "
    "planner overrides, in units and revenue.",
    "plan_supply": "Constrained supply plan (HiGHS LP): planned production, purchases and "
    "receipts of open orders, in units.",
    "plan_inventory": "Projected inventory with safety stock, cover and shortages, in units.",
    "plan_capacity": "Rough-cut and planned capacity load of each work center, in hours.",
    "plan_gaps": "Demand the constrained plan cannot serve, in units and value.",
    "plan_financials": f"Revenue, COGS, gross margin and inventory value of the constrained plan "
    f"versus the annual operating plan (AOP), money in {BASE}.",
    "kpi_scorecard": "S&OP KPIs with target and traffic-light status (definitions: docs/kpis.md).",
    "forecast_accuracy": "Accuracy of earlier plans' forecasts against the actuals known at this "
    "plan month's close.",
    "scenario_comparison": "What-if scenarios re-planned against the base plan.",
    "plan_exceptions": "Exceptions a planner must act on, with the reason and binding constraint.",
    "plan_waterfall": "Bridge from last month's plan to this one, in units and revenue.",
    "plan_versions": "Register of publications: who published what, from which inputs and code.",
    "plan_materials": "Dependent demand and purchases of components (bill of materials) against "
    "supplier capacity, in units.",
    "forecast_levels": "Statistical forecast with 80/95% ranges at every level of the hierarchy "
    "(item, location, family, total), reconciled so the levels add up.",
    "plan_decisions": "Append-only log of every approval or rejection of a plan version.",
}

COLUMNS_FAMILY = "Product family of the item (items extract)."

#: Columns that mean the same in every table that has them.
COLUMNS: dict[str, str] = {
    "plan_month": "S&OP cycle, text YYYY-MM: the plan made after the close of this month "
    "(actuals through its end).",
    "plan_version": "Publication of the plan month: 1 for the first, +1 for each re-publication.",
    "month": "Planned (or measured) month: DATE, the first day of the month.",
    "item_id": "Item (SKU) code from the ERP items extract.",
    "location_id": "Plant or distribution center code from the ERP locations extract.",
    "family": COLUMNS_FAMILY,
    "work_center_id": "Work center code from the ERP work_centers extract.",
    "scenario": "Scenario name from the month's scenarios.yaml.",
}

#: Table-specific texts (stable columns, then the extra columns the stages publish).
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "plan_demand": {
        "stat_forecast_qty": "Statistical forecast (winner of the model tournament), units.",
        "stat_lo80_qty": "Lower bound of the 80% forecast interval, units.",
        "stat_hi80_qty": "Upper bound of the 80% forecast interval, units.",
        "stat_lo95_qty": "Lower bound of the 95% forecast interval, units.",
        "stat_hi95_qty": "Upper bound of the 95% forecast interval, units.",
        "stat_model": "Model that won the backtest for this series (e.g. AutoETS, CrostonSBA).",
        "crm_adjustment_qty": "Probability-weighted CRM opportunities added to the forecast, units.",
        "override_qty": "Planner overrides (demand_overrides) applied, units (+ or -).",
        "consensus_qty": "Consensus demand = statistical + CRM + overrides (never below 0), units.",
        "consensus_revenue": f"consensus_qty × the item's unit price, {BASE}.",
        "clipped_qty": "Units removed to keep consensus from going below zero (>= 0).",
        "override_reason_code": "Reason code(s) of the planner overrides applied to the row "
        "(demand_overrides.reason_code, '; '-joined); null without an override.",
        "override_author": "Author(s) of those overrides ('; '-joined); null without an override.",
    },
    "plan_supply": {
        "planned_production_qty": "Production planned to complete in the month, units.",
        "planned_purchase_qty": "Purchases planned to arrive in the month, units.",
        "open_order_receipts_qty": "Receipts of already open production/purchase orders, units.",
        "family": COLUMNS_FAMILY,
        "supply_type": "How the item is supplied: production, purchase or none.",
        "lp_qty": "Planned quantity from the LP before rounding up to the minimum lot, units.",
        "min_lot_qty": "Minimum lot size of the item (items extract), units.",
    },
    "plan_inventory": {
        "backlog_qty": "Demand due so far and not yet served at month end (SOP_UNMET_DEMAND="
        "backlog; 0 under lost_sales), units.",
        "unmet_demand": "Unmet-demand policy of the plan: backlog or lost_sales (SOP_UNMET_DEMAND).",
        "sigma_qty": "Forecast error (one σ) over lead time + 1 month that safety stock and "
        "stockout_probability use, units.",
        "opening_qty": "On hand at the start of the month, units.",
        "receipts_qty": "Planned production + purchases + open-order receipts, units.",
        "demand_qty": "Consensus demand of the month, units.",
        "closing_qty": "On hand at month end = opening + receipts - served, units.",
        "safety_stock_qty": "Safety stock target for the service level (SOP_SERVICE_LEVEL), units.",
        "days_of_cover": "Days of future consensus demand the closing stock covers, days.",
        "shortage_qty": "Demand the plan cannot serve in the month, units.",
        "served_qty": "Demand served in the month = demand_qty - shortage_qty, units.",
        "open_order_receipts_qty": "Receipts of already open production/purchase orders, units.",
        "planned_receipts_qty": "Receipts of newly planned production and purchases, units.",
        "below_safety_stock_qty": "How far closing stock falls below safety stock (>= 0), units.",
        "family": COLUMNS_FAMILY,
        "binding_constraint": "Why a shortage could not be avoided (capacity, lead time, ...); "
        "null when there is no shortage.",
        "stockout_probability": "Probability that demand exceeds the stock available in the month "
        "(from the forecast interval), share 0-1.",
        "expected_fill_rate": "Expected share of the month's demand served from stock, share 0-1.",
    },
    "plan_capacity": {
        "firm_hours": "Hours of firm open production orders due in the month, hours.",
        "lp_hours": "Hours the plan adds beyond the firm orders (planned production × hours per "
        "unit), hours.",
        "firm_excess_hours": "Firm hours above available × (1 + overtime share), hours; > 0 only "
        "with a firm_overload exception.",
        "available_hours": "Hours available in the month (capacity calendar × efficiency), hours.",
        "required_hours": "Hours the unconstrained consensus would need, hours.",
        "planned_hours": "Hours the constrained supply plan uses, hours.",
        "utilization": "planned_hours ÷ available_hours, ratio (1.0 = full; > 1 is overtime).",
        "required_utilization": "required_hours ÷ available_hours, ratio (> 1: the "
        "unconstrained demand does not fit).",
        "overtime_hours": "Planned hours above available_hours (allowed by SOP_OVERTIME_SHARE), hours.",
        "open_order_hours": "Hours already committed to open production orders, hours.",
        "location_id": "Plant of the work center.",
    },
    "plan_gaps": {
        "demand_qty": "Consensus demand of the family in the month, units.",
        "supply_qty": "Demand the constrained plan serves, units.",
        "gap_qty": "Unserved demand = demand_qty - supply_qty, units.",
        "gap_value": f"gap_qty valued at unit price (revenue at risk), {BASE}.",
        "binding_constraint": "Constraints behind the gap with their share of its value.",
        "short_series": "Item × location series short in the month, count.",
    },
    "plan_financials": {
        "safety_stock_value": f"Value of the closing stock up to safety stock (Σ min(closing, "
        f"safety stock) × unit cost), {BASE}.",
        "above_safety_stock_value": f"Value of the closing stock above safety stock (cycle stock, "
        f"pre-build), {BASE}.",
        "revenue": f"Served units × unit price, {BASE}.",
        "cogs": f"Served units × unit cost, {BASE}.",
        "gross_margin": f"revenue - cogs, {BASE}.",
        "inventory_value": f"Closing inventory × unit cost, {BASE}.",
        "aop_revenue": f"AOP revenue target of the family and month (null: no target), {BASE}.",
        "revenue_vs_aop": f"Difference revenue - aop_revenue (not a ratio; the ratio is KPI "
        f"revenue_to_aop_ratio), {BASE}.",
        "gross_margin_pct": "gross_margin ÷ revenue, share 0-1.",
        "volume_qty": "Served units of the family in the month, units.",
        "aop_volume": "AOP volume target, units (null: no target).",
        "volume_vs_aop": "Difference volume_qty - aop_volume, units.",
        "aop_inventory_value": f"AOP inventory value target, {BASE} (null: no target).",
        "inventory_vs_aop": f"Difference inventory_value - aop_inventory_value, {BASE}.",
        "unconstrained_revenue": f"Consensus revenue before capacity limits, {BASE}.",
    },
    "kpi_scorecard": {
        "kpi": "KPI name (docs/kpis.md), e.g. forecast_accuracy, revenue_to_aop_ratio.",
        "scope": "Where the KPI is measured: 'total' or a family name.",
        "value": "KPI value (unit of the KPI: column unit; most are ratios, 0.95 = 95%).",
        "target": "Target of the KPI (unit of the KPI, as value).",
        "status": "on_track / at_risk / off_track from value, target and band (docs/kpis.md).",
        "unit": "Unit of value and target (ratio, share of value, turns per year).",
        "direction": "Which way is better: higher, lower or closer to the target.",
        "band": "At-risk band around the target (unit of the KPI, as value).",
        "definition": "One-sentence definition of the KPI.",
    },
    "forecast_accuracy": {
        "forecast_kind": "naive (seasonal naive), statistical or consensus.",
        "level": "Aggregation level scored: item, family or total.",
        "lag": "Months between the plan month that forecast and the measured month (1 = next).",
        "mape": "Mean absolute percentage error over the series, ratio (0.1 = 10%).",
        "wape": "Weighted absolute percentage error Σ|F-A| ÷ ΣA, ratio.",
        "bias": "(ΣF - ΣA) ÷ ΣA, ratio (> 0: over-forecast).",
        "mase": "Mean absolute scaled error against the seasonal naive, ratio (< 1 beats it).",
        "coverage_80": "Share of actuals inside the 80% interval, share 0-1.",
        "coverage_95": "Share of actuals inside the 95% interval, share 0-1.",
        "interval_score": "Winkler interval score of the 95% interval, units (lower is better).",
        "n_series": "Series scored in this cell, count.",
        "actual_qty": "Σ actual demand of the scored series, units.",
        "forecast_qty": "Σ forecast of the scored series, units.",
    },
    "scenario_comparison": {
        "lever_kinds": "Kinds of lever the scenario applies (capacity_loss, demand_change, "
        "supplier_delay, price_change, strategy), comma-separated.",
        "note": "What the levers did not change or model (e.g. price elasticity not modelled).",
        "shortage_cost_vs_base": "Supply model (LP) shortage cost of the scenario minus the "
        "base's, base currency; only for a capacity-loss / supplier-delay scenario whose gap is "
        "smaller than the base's in units and value (else null): ≥ 0 means the model plans it "
        "as short as the base and the difference is the item split of aggregate groups.",
        "metric": "Measure compared, e.g. revenue, gross_margin, gap_qty, gap_value, inventory_value, "
        "capacity_utilization; its unit follows the metric (money in base currency).",
        "base_value": "Value of the metric in the base plan (unit of the metric).",
        "scenario_value": "Value of the metric in the scenario (unit of the metric).",
        "delta": "scenario_value - base_value (unit of the metric).",
    },
    "plan_exceptions": {
        "exception_type": "What is wrong: over_capacity, stockout, excess_cover, missing_data, ...",
        "severity": "high / medium / low.",
        "scope": "What the exception is about: work_center, item_location, item, family.",
        "scope_id": "Id of the scope (work center id, item@location, ...).",
        "value": "Measured value that triggered it (unit of the exception type: ratio for "
        "over_capacity, days for excess_cover, units for stockout; reason says which).",
        "threshold": "Limit the value crossed (unit of the exception type, as value).",
        "reason": "Plain-language reason and what to look at.",
        "binding_constraint": "Constraint that causes it (capacity, lead time, ...), if any.",
    },
    "plan_waterfall": {
        "component": "Step of the bridge: start, new_actuals, model_change, crm_change, "
        "override_change, capacity_change, price_change, end.",
        "qty": "Change in consensus units attributed to the step (start/end: totals), units.",
        "revenue": f"Change in revenue attributed to the step (start/end: totals), {BASE}.",
        "sort_order": "Order of the step in the bridge (1 = start).",
    },
    "plan_versions": {
        "run_id": "Dagster run id that published the version (find it in the UI / sop status).",
        "published_at": "When the version was published, UTC timestamp.",
        "input_fingerprint": "SHA-256 of every extract file the plan could see and the planning "
        "settings; equal fingerprints = same inputs.",
        "code_version": "Package version + git commit of the code that made the plan.",
        "checks_passed": "Gate checks that passed, count.",
        "checks_failed": "Non-blocking gate checks that failed, count.",
        "is_backfill": "true when a backfill of a past month published this version.",
        "base_currency": "Currency code of every money column of this version (e.g. USD).",
        "status": "candidate / approved / rejected / superseded.",
        "approved_by": "Who approved the version (null until approved).",
        "approved_at": "When the version was approved, UTC timestamp.",
        "decision_note": "Note given with the approval or rejection.",
        "chosen_scenario": "Scenario the executives chose with the approval, if any.",
    },
    "plan_materials": {
        "opening_qty": "Material on hand at the start of the month, units.",
        "open_order_receipts_qty": "Receipts of open purchase orders of the material, units.",
        "consumed_qty": "Material consumed by the planned production, units.",
        "supplier_id": "Supplier of the material (supplier_capacity, else the item's supplier).",
        "binding_constraint": "Why the material is short (supplier capacity, lead time); null "
        "when it is not.",
        "component_item_id": "Component item (bill of materials child).",
        "dependent_demand_qty": "Component demand exploded from the parents' plan, units.",
        "planned_purchase_qty": "Component purchases planned to arrive in the month, units.",
        "supplier_capacity_qty": "Supplier capacity for the component in the month, units.",
        "closing_qty": "Component on hand at month end, units.",
        "shortage_qty": "Component demand that cannot be covered, units.",
    },
    "forecast_levels": {
        "level": "Hierarchy level: item, location, family or total.",
        "scope_id": "The item_id, location_id or family of the row; 'total' at total level.",
        "stat_forecast_qty": "Reconciled statistical forecast of the scope, units; the levels "
        "add up (blocking check forecast_levels).",
        "stat_lo80_qty": "Lower bound of the scope's 80% forecast interval, units.",
        "stat_hi80_qty": "Upper bound of the scope's 80% forecast interval, units.",
        "stat_lo95_qty": "Lower bound of the scope's 95% forecast interval, units.",
        "stat_hi95_qty": "Upper bound of the scope's 95% forecast interval, units.",
        "n_series": "Number of item × location series in the scope.",
    },
    "plan_decisions": {
        "decision_id": "Sequence number of the decision (1, 2, ... over the file's history).",
        "decision": "approved or rejected.",
        "decided_by": "Who decided.",
        "decided_at": "When, UTC timestamp.",
        "note": "Note given with the decision.",
        "chosen_scenario": "Scenario chosen with an approval, if any.",
    },
}

#: Extra (non-stable) columns the stages publish today, after the stable ones, in order;
#: ``tests/test_pipeline.py`` checks this against a real publication. The doc lists these.
PUBLISHED_EXTRAS: dict[str, tuple[str, ...]] = {
    "plan_demand": ("clipped_qty",),
    "plan_supply": ("family", "supply_type", "lp_qty", "min_lot_qty"),
    "plan_inventory": (
        "served_qty",
        "open_order_receipts_qty",
        "planned_receipts_qty",
        "below_safety_stock_qty",
        "backlog_qty",
        "unmet_demand",
        "family",
        "sigma_qty",
        "binding_constraint",
    ),
    "plan_materials": (
        "opening_qty",
        "open_order_receipts_qty",
        "consumed_qty",
        "supplier_id",
        "binding_constraint",
    ),
    "plan_capacity": (
        "required_utilization",
        "overtime_hours",
        "open_order_hours",
        "location_id",
        "firm_hours",
        "lp_hours",
        "firm_excess_hours",
    ),
    "plan_gaps": ("binding_constraint", "short_series"),
    "plan_financials": (
        "gross_margin_pct",
        "volume_qty",
        "aop_volume",
        "volume_vs_aop",
        "aop_inventory_value",
        "inventory_vs_aop",
        "unconstrained_revenue",
        "safety_stock_value",
        "above_safety_stock_value",
    ),
    "kpi_scorecard": ("unit", "direction", "definition"),
    "forecast_accuracy": (
        "n_series",
        "actual_qty",
        "forecast_qty",
        "coverage_80",
        "coverage_95",
        "interval_score",
    ),
    "scenario_comparison": ("lever_kinds", "note", "shortage_cost_vs_base"),
    "plan_versions": ("is_backfill", "base_currency"),
}

#: Views every table gets, and what they show (``_approved`` comes with approvals, #14).
VIEW_SUFFIXES: dict[str, str] = {
    "_current": "latest plan: the latest plan_month and its latest plan_version",
    "_latest_versions": "latest plan_version of every plan_month (trends across months)",
    "_approved": "latest approved plan_version of every plan_month (the official numbers)",
}


def column_description(table: str, column: str) -> str | None:
    """The description of ``table.column`` (a view name resolves to its table), or None."""
    base = base_table(table)
    text = TABLE_COLUMNS.get(base, {}).get(column) or COLUMNS.get(column)
    return text or None


def base_table(name: str) -> str:
    """``plan_demand_current`` → ``plan_demand`` (a table name is returned as it is)."""
    for suffix in VIEW_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in TABLES:
            return name.removesuffix(suffix)
    return name


def table_description(table: str) -> str:
    """Purpose and grain of a published table, e.g. for ``COMMENT ON TABLE``."""
    spec = TABLES[table]
    purpose = TABLE_PURPOSE.get(table, "")
    return f"{purpose} {spec.grain}".strip()


def view_description(view: str) -> str:
    """What a ``<table>_current`` / ``_latest_versions`` / ``_approved`` view shows."""
    base = base_table(view)
    suffix = view[len(base) :]
    return f"{base}, {VIEW_SUFFIXES[suffix]}. {table_description(base)}"


def missing_descriptions(columns_by_table: dict[str, list[str]]) -> list[str]:
    """``table.column`` names that have no description (for the tests and the writer)."""
    return [
        f"{table}.{col}"
        for table, cols in columns_by_table.items()
        for col in cols
        if not column_description(table, col)
    ]


def documented_columns(table: str) -> list[tuple[str, str, bool]]:
    """(column, DuckDB type or '', stable?) of a table's documented columns.

    The stable columns first, then the published extras (:data:`PUBLISHED_EXTRAS`).
    """
    spec = TABLES[table]
    out = [(name, duck_type, True) for name, duck_type in spec.columns]
    extras = dict(PLAN_VERSIONS_EXTRA) if table == "plan_versions" else {}
    seen = set(spec.types)
    for name in PUBLISHED_EXTRAS.get(table, ()):
        if name not in seen:  # an extra that became a stable column is listed once
            out.append((name, extras.get(name, ""), False))
            seen.add(name)
    return out


def render_markdown() -> str:
    """``docs/published_tables.md``: every published table, its views and columns."""
    lines = [
        "# Published tables: the data dictionary",
        "",
        "Generated by `python -m sop_pipeline.publish.dictionary` from",
        "`sop_pipeline/publish/dictionary.py` and `sop_pipeline/publish/tables.py`; do not edit",
        "by hand. The same texts are in `published/sop.duckdb` (`COMMENT ON` every table, view and",
        "column: `SELECT table_name, column_name, comment FROM duckdb_columns()`) and in the",
        "Parquet schema (field metadata `description`).",
        "",
        f"Money is in the {BASE}. `units` are the item's unit of measure (items.uom).",
        "Every table has these views:",
        "",
    ]
    for suffix, text in VIEW_SUFFIXES.items():
        lines.append(f"- `<table>{suffix}`: {text}.")
    lines += [
        "",
        "Columns marked *stable* are the interface of DESIGN §5 (never renamed); the others are",
        "published after them and may grow.",
        "",
    ]
    for table in TABLES:
        lines += [f"## `{table}`", "", table_description(table), ""]
        lines += ["| column | type | description |", "|---|---|---|"]
        for name, duck_type, stable in documented_columns(table):
            text = column_description(table, name) or "**(no description)**"
            kind = f"{duck_type}, stable" if stable else (duck_type or "extra")
            lines.append(f"| `{name}` | {kind} | {text.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "published_tables.md"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) ``docs/published_tables.md``."""
    parser = argparse.ArgumentParser(prog="python -m sop_pipeline.publish.dictionary")
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is stale")
    parser.add_argument("--output", type=Path, default=DOC_PATH)
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} is out of date; run `python -m sop_pipeline.publish.dictionary`.",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
