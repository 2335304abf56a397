"""Exceptions for the pre-S&OP meeting: what a planner must look at, and why.

One row per exception: exception_type, severity (high / medium / low), scope (item/location,
item, work center), scope_id, month (null for master-data problems), value, threshold,
reason (a sentence a planner can act on) and binding_constraint.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import as_month_start, require_columns
from sop_pipeline.planning.supply import QTY_EPS

EXCEPTION_COLUMNS = [
    "exception_type",
    "severity",
    "scope",
    "scope_id",
    "month",
    "value",
    "threshold",
    "reason",
    "binding_constraint",
]
_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
STOCKOUT_HIGH_SHARE = 0.2


def _frame(records: list[tuple]) -> pd.DataFrame:
    out = pd.DataFrame.from_records(records, columns=EXCEPTION_COLUMNS)
    out["month"] = pd.to_datetime(out["month"]).astype("datetime64[ns]")
    return out.astype({"value": float, "threshold": float})


def _capacity(plan_capacity: pd.DataFrame, overtime_share: float) -> list[tuple]:
    cap = plan_capacity[plan_capacity["required_hours"] > plan_capacity["available_hours"] + 1e-9]
    records = []
    for row in cap.itertuples(index=False):
        month = f"{row.month:%Y-%m}"
        avail = row.available_hours
        if avail <= 0:
            value, severity = np.inf, "high"
            reason = (
                f"Work center {row.work_center_id} has no available hours in {month} but the consensus "
                f"needs {row.required_hours:,.0f} h: add capacity to the calendar, move the routing or "
                "cut demand."
            )
        else:
            value = row.required_hours / avail
            severity = "high" if value > 1 + overtime_share else "medium"
            cover = (
                f"overtime ({overtime_share:.0%}) covers it"
                if severity == "medium"
                else f"more than the {overtime_share:.0%} overtime allowed"
            )
            reason = (
                f"Work center {row.work_center_id} needs {row.required_hours:,.0f} h in {month} against "
                f"{avail:,.0f} h available ({value:.0%}), {cover}: pre-build in earlier months, add "
                "shifts, or move volume to another work center."
            )
        records.append(
            (
                "capacity_overload",
                severity,
                "work center",
                str(row.work_center_id),
                row.month,
                value,
                1.0,
                reason,
                f"capacity {row.work_center_id} in {month}",
            )
        )
    return records


def _firm_overload(plan_capacity: pd.DataFrame, overtime_share: float) -> list[tuple]:
    """Work center months whose firm (open production order) hours exceed available + overtime."""
    if "firm_excess_hours" not in plan_capacity:
        return []
    cap = plan_capacity[plan_capacity["firm_excess_hours"] > 1e-6]
    records = []
    for row in cap.itertuples(index=False):
        month = f"{row.month:%Y-%m}"
        limit = row.available_hours * (1 + overtime_share)
        records.append(
            (
                "firm_overload",
                "high",
                "work center",
                str(row.work_center_id),
                row.month,
                float(row.firm_hours),
                float(limit),
                f"Work center {row.work_center_id} has {row.firm_hours:,.0f} h of firm (released) "
                f"production orders due in {month} against {row.available_hours:,.0f} h available + "
                f"{overtime_share:.0%} overtime ({limit:,.0f} h): {row.firm_excess_hours:,.0f} h cannot "
                "be made as due. The plan adds nothing there; reschedule or split the orders, or add "
                "capacity.",
                f"firm orders on {row.work_center_id} in {month}",
            )
        )
    return records


def _stockout_risk(inv: pd.DataFrame, threshold: float | None) -> list[tuple]:
    """One exception per item × location whose stock-out probability exceeds the threshold.

    Months the plan is already short are stock_out exceptions; this flags the months that
    are not short on plan but whose buffer is too thin for the forecast error. The first such
    month is reported, with the number of months at risk.
    """
    if threshold is None or "stockout_probability" not in inv:
        return []
    risky = inv[(inv["stockout_probability"] > threshold) & (inv["shortage_qty"] <= 1e-6)]
    risky = risky[risky["demand_qty"] > 0]
    records = []
    for (item, loc), rows in risky.groupby(["item_id", "location_id"], sort=True):
        first = rows.sort_values("month").iloc[0]
        worst = float(rows["stockout_probability"].max())
        records.append(
            (
                "stockout_risk",
                "high" if worst >= 0.5 else "medium",
                "item/location",
                f"{item}@{loc}",
                first["month"],
                worst,
                float(threshold),
                f"Item {item} at {loc} has a {first['stockout_probability']:.0%} chance of a stock-out in "
                f"{first['month']:%Y-%m} ({len(rows)} month(s) above {threshold:.0%}, worst {worst:.0%}): "
                f"the projected stock ({first['closing_qty']:,.0f}) is below the safety stock "
                f"({first['safety_stock_qty']:,.0f}); pull receipts forward or raise the plan.",
                "buffer below safety stock",
            )
        )
    return records


def _stockouts(inv: pd.DataFrame) -> list[tuple]:
    short = inv[inv["shortage_qty"] > 1e-6]
    records = []
    for row in short.itertuples(index=False):
        share = row.shortage_qty / row.demand_qty if row.demand_qty > 0 else 1.0
        binding = getattr(row, "binding_constraint", None)
        binding = binding if isinstance(binding, str) and binding else "unexplained"
        records.append(
            (
                "stock_out",
                "high" if share >= STOCKOUT_HIGH_SHARE else "medium",
                "item/location",
                f"{row.item_id}@{row.location_id}",
                row.month,
                float(row.shortage_qty),
                0.0,
                f"Item {row.item_id} at {row.location_id} is short {row.shortage_qty:,.0f} units "
                f"({share:.0%} of demand {row.demand_qty:,.0f}) in {row.month:%Y-%m} because of {binding}: "
                "expedite supply, reallocate stock or agree the shortfall with sales.",
                binding,
            )
        )
    return records


def _part_lots(supply: pd.DataFrame | None) -> list[tuple]:
    """One exception per item × location that releases a part lot (below its min lot).

    Min-lot rounding releases a part lot only where no whole lot fits the capacity (or the
    materials) left in that month or any earlier one (docs/supply_and_finance.md, "Min
    lots"); production must then agree to run it. The first such month is reported, with the
    number of months that hold one.
    """
    if supply is None or supply.empty or "min_lot_qty" not in supply:
        return []
    supply = supply.assign(month=as_month_start(supply["month"]))
    lot = supply["min_lot_qty"].to_numpy(dtype=float)
    qty = (supply["planned_production_qty"] + supply["planned_purchase_qty"]).to_numpy(dtype=float)
    has_lot = lot > QTY_EPS
    lots = np.divide(qty, lot, out=np.zeros_like(qty), where=has_lot)
    part = has_lot & (qty > QTY_EPS) & (np.abs(lots - np.round(lots)) * lot > QTY_EPS)
    records = []
    for (item, loc), rows in supply[part].groupby(["item_id", "location_id"], sort=True):
        rows = rows.sort_values("month")
        first = rows.iloc[0]
        released = float(first["planned_production_qty"] + first["planned_purchase_qty"])
        records.append(
            (
                "part_lot",
                "low",
                "item/location",
                f"{item}@{loc}",
                first["month"],
                released,
                float(first["min_lot_qty"]),
                f"Item {item} at {loc} releases {released:,.1f} units in {first['month']:%Y-%m}, not a "
                f"multiple of its min lot of {first['min_lot_qty']:,.0f} ({len(rows)} month(s) with a "
                "part lot): no whole lot fits the capacity or materials left in that month or earlier; "
                "agree the part lot with production, or add capacity so a whole lot fits.",
                "min lot vs capacity",
            )
        )
    return records


def _excess(inv: pd.DataFrame, cover_limit_days: float) -> list[tuple]:
    cover = inv["days_of_cover"]
    over = inv[(cover > cover_limit_days) | (cover.isna() & (inv["closing_qty"] > 1e-6))]
    records = []
    for row in over.itertuples(index=False):
        month = f"{row.month:%Y-%m}"
        if pd.isna(row.days_of_cover):
            value = np.inf
            reason = (
                f"Item {row.item_id} at {row.location_id} holds {row.closing_qty:,.0f} units at the end "
                f"of {month} with no demand in the following months: stop replenishment, sell off or "
                "transfer the stock."
            )
        else:
            value = float(row.days_of_cover)
            reason = (
                f"Item {row.item_id} at {row.location_id} has {value:,.0f} days of cover at the end of "
                f"{month} (limit {cover_limit_days:,.0f}): reduce or delay planned receipts."
            )
        records.append(
            (
                "excess_inventory",
                "low",
                "item/location",
                f"{row.item_id}@{row.location_id}",
                row.month,
                value,
                cover_limit_days,
                reason,
                "cover limit",
            )
        )
    return records


def _master_data(
    items: pd.DataFrame, routings: pd.DataFrame, planned_items: set[str] | None
) -> list[tuple]:
    table = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    if planned_items is not None:
        table = table[table["item_id"].isin(planned_items)]
    routed = set(routings["item_id"].astype(str))
    lead = pd.to_numeric(table["lead_time_days"], errors="coerce")
    cost = pd.to_numeric(table["unit_cost"], errors="coerce")
    records = []
    no_source = table[~table["item_id"].isin(routed) & lead.isna()]
    for item in no_source["item_id"]:
        records.append(
            (
                "no_supply_source",
                "high",
                "item",
                item,
                pd.NaT,
                np.nan,
                np.nan,
                f"Item {item} has no routing and no purchase lead time, so the plan cannot replenish "
                "it: add a routing or the supplier lead time in the item master.",
                "no routing and no supplier",
            )
        )
    no_cost = table[cost.isna() | (cost <= 0)]
    for item, value in zip(no_cost["item_id"], cost[no_cost.index], strict=True):
        records.append(
            (
                "missing_unit_cost",
                "medium",
                "item",
                item,
                pd.NaT,
                float(value) if pd.notna(value) else np.nan,
                0.0,
                f"Item {item} has no positive unit cost, so its COGS and inventory value are zero and "
                "the plan prices its holding cost from the unit price: fix unit_cost in the item master.",
                "item master",
            )
        )
    return records


def find_exceptions(
    plan_capacity: pd.DataFrame,
    plan_inventory: pd.DataFrame,
    items: pd.DataFrame,
    routings: pd.DataFrame,
    *,
    cover_limit_days: float = 120.0,
    overtime_share: float = 0.10,
    stockout_risk_threshold: float | None = None,
    plan_supply: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Collect the plan's exceptions, most severe first.

    Raised for: capacity overload (required hours > available; high when overtime cannot
    cover it), stock-outs (shortage > 0; high when ≥ 20% of the month's demand), excess
    inventory (days of cover above ``cover_limit_days``, or stock with no demand ahead),
    items with no routing and no purchase lead time, and items without a unit cost.

    Args:
        plan_capacity: work_center_id, month, available_hours, required_hours.
        plan_inventory: item_id, location_id, month, demand_qty, closing_qty,
            days_of_cover, shortage_qty (binding_constraint optional).
        items: dim_items (item_id, lead_time_days, unit_cost).
        routings: fct_routings (item_id).
        cover_limit_days: settings ``cover_limit_days``.
        overtime_share: settings ``overtime_share``.
        stockout_risk_threshold: settings ``stockout_risk_threshold``; item × locations
            whose ``stockout_probability`` exceeds it in a month without a planned shortage
            get a ``stockout_risk`` exception (None: not checked). Work centers whose firm
            hours exceed available + overtime get a ``firm_overload`` exception.
        plan_supply: the supply plan (planned_production_qty, planned_purchase_qty,
            min_lot_qty); item × locations that release a part lot get a ``part_lot``
            exception (None: not checked).

    Returns:
        The exceptions frame (columns ``EXCEPTION_COLUMNS``).
    """
    require_columns(
        plan_capacity,
        "plan_capacity",
        ["work_center_id", "month", "available_hours", "required_hours"],
    )
    require_columns(
        plan_inventory,
        "plan_inventory",
        [
            "item_id",
            "location_id",
            "month",
            "demand_qty",
            "closing_qty",
            "days_of_cover",
            "shortage_qty",
        ],
    )
    require_columns(items, "items", ["item_id", "lead_time_days", "unit_cost"])
    cap = plan_capacity.copy()
    cap["month"] = as_month_start(cap["month"])
    inv = plan_inventory.copy()
    inv["month"] = as_month_start(inv["month"])
    planned = set(inv["item_id"].astype(str)) if not inv.empty else None
    records = (
        _capacity(cap, overtime_share)
        + _firm_overload(cap, overtime_share)
        + _stockouts(inv)
        + _stockout_risk(inv, stockout_risk_threshold)
        + _excess(inv, cover_limit_days)
        + _part_lots(plan_supply)
        + _master_data(items, routings, planned)
    )
    out = _frame(records)
    out["_rank"] = out["severity"].map(_SEVERITY_ORDER)
    out = out.sort_values(
        ["_rank", "exception_type", "month", "scope_id"], na_position="first", kind="stable"
    )
    return out.drop(columns="_rank").reset_index(drop=True)
