"""Finance review: the constrained plan in money, versus the annual operating plan.

Revenue is the **served** quantity (what the supply plan can actually ship) × the item's
unit_price; ``unconstrained_revenue`` keeps the consensus demand's revenue for comparison.
COGS is served × unit_cost, inventory value is closing stock × unit_cost, all in the base
currency, per family × month.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import (
    KEY,
    as_month_start,
    close,
    limit_messages,
    require_columns,
)

PLAN_FINANCIALS_COLUMNS = [
    "family",
    "month",
    "revenue",
    "cogs",
    "gross_margin",
    "inventory_value",
    "aop_revenue",
    "revenue_vs_aop",
]
PLAN_GAPS_COLUMNS = ["family", "month", "demand_qty", "supply_qty", "gap_qty", "gap_value"]


def _valued(
    plan_inventory: pd.DataFrame, items: pd.DataFrame, plan_demand: pd.DataFrame | None
) -> pd.DataFrame:
    """Inventory rows with family, unit_cost and unit_price attached."""
    require_columns(
        plan_inventory, "plan_inventory", [*KEY, "demand_qty", "closing_qty", "shortage_qty"]
    )
    require_columns(items, "items", ["item_id", "family", "unit_cost", "unit_price"])
    inv = plan_inventory.copy()
    inv["month"] = as_month_start(inv["month"])
    inv["item_id"] = inv["item_id"].astype(str)
    if "served_qty" not in inv:
        inv["served_qty"] = inv["demand_qty"] - inv["shortage_qty"]
    table = (
        items.assign(item_id=items["item_id"].astype(str))
        .drop_duplicates("item_id")
        .set_index("item_id")
    )
    inv["unit_cost"] = pd.to_numeric(
        inv["item_id"].map(table["unit_cost"]), errors="coerce"
    ).fillna(0.0)
    inv["unit_price"] = pd.to_numeric(
        inv["item_id"].map(table["unit_price"]), errors="coerce"
    ).fillna(0.0)
    family = inv["family"] if "family" in inv else pd.Series(np.nan, index=inv.index, dtype=object)
    if plan_demand is not None and "family" in plan_demand:
        demand_family = plan_demand.assign(
            item_id=plan_demand["item_id"].astype(str)
        ).drop_duplicates("item_id")
        family = family.fillna(inv["item_id"].map(demand_family.set_index("item_id")["family"]))
    inv["family"] = (
        family.fillna(inv["item_id"].map(table["family"])).fillna("(unknown)").astype(str)
    )
    return inv


def financials(
    plan_demand: pd.DataFrame,
    plan_inventory: pd.DataFrame,
    items: pd.DataFrame,
    aop: pd.DataFrame | None,
) -> pd.DataFrame:
    """Revenue, margin and inventory value per family × month, against the AOP.

    Args:
        plan_demand: consensus plan (item_id, family, month, consensus_revenue).
        plan_inventory: projected inventory (item_id, month, served_qty or demand −
            shortage, closing_qty).
        items: dim_items (item_id, family, unit_cost, unit_price; base currency).
        aop: fct_aop_targets (family, month, revenue_target, volume_target,
            inventory_value_target), or None/empty when there is no AOP.

    Returns:
        plan_financials: family, month, revenue, cogs, gross_margin, inventory_value,
        aop_revenue, revenue_vs_aop, then gross_margin_pct, volume_qty, aop_volume,
        volume_vs_aop, aop_inventory_value, inventory_vs_aop, unconstrained_revenue,
        safety_stock_value (Σ min(closing, safety stock) × unit_cost) and
        above_safety_stock_value (the rest: min-lot cycle stock, pre-build, run-down).
        AOP columns are null where the AOP has no target; AOP family × months of the
        horizon that have no plan rows appear with zero plan values.
    """
    inv = _valued(plan_inventory, items, plan_demand)
    inv["revenue"] = inv["served_qty"] * inv["unit_price"]
    inv["cogs"] = inv["served_qty"] * inv["unit_cost"]
    inv["inventory_value"] = inv["closing_qty"] * inv["unit_cost"]
    # where the inventory value goes: the part that is safety stock, and the rest (cycle
    # stock of min lots, pre-build ahead of capacity shortfalls and seasons, run-down)
    safety = inv.get("safety_stock_qty", 0.0)
    inv["safety_stock_value"] = np.minimum(inv["closing_qty"], safety) * inv["unit_cost"]
    out = inv.groupby(["family", "month"], as_index=False).agg(
        revenue=("revenue", "sum"),
        cogs=("cogs", "sum"),
        inventory_value=("inventory_value", "sum"),
        volume_qty=("served_qty", "sum"),
        safety_stock_value=("safety_stock_value", "sum"),
    )
    months = inv["month"].unique()
    if "consensus_revenue" in plan_demand:
        dem = plan_demand.copy()
        dem["month"] = as_month_start(dem["month"])
        family_of = inv.drop_duplicates("item_id").set_index("item_id")["family"]
        dem["family"] = dem["item_id"].astype(str).map(family_of).fillna(dem.get("family"))
        unconstrained = dem.groupby(["family", "month"], as_index=False)["consensus_revenue"].sum()
        out = out.merge(
            unconstrained.rename(columns={"consensus_revenue": "unconstrained_revenue"}),
            on=["family", "month"],
            how="left",
        )
    else:
        out["unconstrained_revenue"] = np.nan
    if aop is not None and not aop.empty:
        require_columns(aop, "aop", ["family", "month", "revenue_target"])
        targets = aop.copy()
        targets["month"] = as_month_start(targets["month"])
        targets["family"] = targets["family"].astype(str)
        targets = targets[targets["month"].isin(months)]
        for col in ("volume_target", "inventory_value_target"):
            if col not in targets:
                targets[col] = np.nan
        targets = (
            targets.groupby(["family", "month"])[
                ["revenue_target", "volume_target", "inventory_value_target"]
            ]
            .sum(min_count=1)
            .reset_index()
            .rename(
                columns={
                    "revenue_target": "aop_revenue",
                    "volume_target": "aop_volume",
                    "inventory_value_target": "aop_inventory_value",
                }
            )
        )
        out = out.merge(targets, on=["family", "month"], how="outer")
        for col in ("revenue", "cogs", "inventory_value", "volume_qty", "safety_stock_value"):
            out[col] = out[col].fillna(0.0)
    else:
        out["aop_revenue"] = np.nan
        out["aop_volume"] = np.nan
        out["aop_inventory_value"] = np.nan
    out["gross_margin"] = out["revenue"] - out["cogs"]
    out["gross_margin_pct"] = out["gross_margin"] / out["revenue"].where(out["revenue"] != 0)
    out["revenue_vs_aop"] = out["revenue"] - out["aop_revenue"]
    out["volume_vs_aop"] = out["volume_qty"] - out["aop_volume"]
    out["inventory_vs_aop"] = out["inventory_value"] - out["aop_inventory_value"]
    out["above_safety_stock_value"] = out["inventory_value"] - out["safety_stock_value"]
    out["month"] = out["month"].astype("datetime64[ns]")
    out = out.sort_values(["family", "month"]).reset_index(drop=True)
    return out[
        [
            *PLAN_FINANCIALS_COLUMNS,
            "gross_margin_pct",
            "volume_qty",
            "aop_volume",
            "volume_vs_aop",
            "aop_inventory_value",
            "inventory_vs_aop",
            "unconstrained_revenue",
            "safety_stock_value",
            "above_safety_stock_value",
        ]
    ]


def _summarize_constraints(rows: pd.DataFrame) -> str | None:
    """The constraints behind a family-month's gap, largest gap value first."""
    short = rows[rows["shortage_qty"] > 0]
    if short.empty:
        return None
    reasons = short["binding_constraint"].fillna("unexplained").astype(str)
    # Work-center reasons carry a shadow price; group on the constraint itself.
    reasons = reasons.str.replace(r" \(shadow price [^)]*\)", "", regex=True)
    by_value = (
        short.assign(reason=reasons)
        .groupby("reason")["gap_value"]
        .sum()
        .sort_values(ascending=False)
    )
    total = by_value.sum()
    parts = [
        f"{reason} ({value / total:.0%} of gap value)" if total > 0 else reason
        for reason, value in by_value.head(3).items()
    ]
    if len(by_value) > 3:
        parts.append(f"+{len(by_value) - 3} more")
    return "; ".join(parts)


def gaps(
    plan_demand: pd.DataFrame, plan_inventory: pd.DataFrame, items: pd.DataFrame
) -> pd.DataFrame:
    """Demand that the supply plan cannot serve, per family × month.

    Args:
        plan_demand: consensus plan (item_id, family) — used for the family of each item.
        plan_inventory: projected inventory (demand_qty, served_qty, shortage_qty and
            optionally binding_constraint).
        items: dim_items (item_id, family, unit_price, unit_cost).

    Returns:
        plan_gaps: family, month, demand_qty, supply_qty (served), gap_qty (demand −
        served, ≥ 0), gap_value (Σ shortage × unit_price), then binding_constraint (the
        constraints behind the gap with their share of its value) and short_series (item
        × locations short that month).
    """
    inv = _valued(plan_inventory, items, plan_demand)
    if "binding_constraint" not in inv:
        inv["binding_constraint"] = None
    inv["gap_value"] = inv["shortage_qty"] * inv["unit_price"]
    grouped = inv.groupby(["family", "month"])
    out = grouped.agg(
        demand_qty=("demand_qty", "sum"),
        supply_qty=("served_qty", "sum"),
        gap_qty=("shortage_qty", "sum"),
        gap_value=("gap_value", "sum"),
        short_series=("shortage_qty", lambda s: int((s > 0).sum())),
    ).reset_index()
    reasons = {
        key: _summarize_constraints(rows)
        for key, rows in grouped
        if (rows["shortage_qty"] > 0).any()
    }
    out["binding_constraint"] = [
        reasons.get((f, m)) for f, m in zip(out["family"], out["month"], strict=True)
    ]
    out["gap_qty"] = out["gap_qty"].clip(lower=0.0)
    out["month"] = out["month"].astype("datetime64[ns]")
    return (
        out[[*PLAN_GAPS_COLUMNS, "binding_constraint", "short_series"]]
        .sort_values(["family", "month"])
        .reset_index(drop=True)
    )


def check_finance_matches_units(
    plan_financials: pd.DataFrame, plan_inventory: pd.DataFrame, items: pd.DataFrame
) -> list[str]:
    """Revenue, COGS and inventory value equal units × prices of the inventory plan.

    Args:
        plan_financials: family × month financials.
        plan_inventory: the projected inventory they were computed from.
        items: dim_items (unit_cost, unit_price, family).

    Returns:
        Problems found, naming the family, month and measure; empty when they agree.
    """
    require_columns(
        plan_financials,
        "plan_financials",
        ["family", "month", "revenue", "cogs", "inventory_value"],
    )
    inv = _valued(plan_inventory, items, None)
    if "family" in plan_inventory:
        inv["family"] = plan_inventory["family"].fillna(inv["family"]).astype(str).to_numpy()
    inv["revenue"] = inv["served_qty"] * inv["unit_price"]
    inv["cogs"] = inv["served_qty"] * inv["unit_cost"]
    inv["inventory_value"] = inv["closing_qty"] * inv["unit_cost"]
    expected = inv.groupby(["family", "month"], as_index=False)[
        ["revenue", "cogs", "inventory_value"]
    ].sum()
    fin = plan_financials.copy()
    fin["month"] = as_month_start(fin["month"])
    both = expected.merge(
        fin, on=["family", "month"], how="outer", suffixes=("_units", "_plan")
    ).fillna(0.0)
    messages = []
    for measure in ("revenue", "cogs", "inventory_value"):
        units = both[f"{measure}_units"].to_numpy(dtype=float)
        plan = both[f"{measure}_plan"].to_numpy(dtype=float)
        bad = ~close(units, plan)
        messages += [
            f"{measure} of family {fam} in {m:%Y-%m} is {p:,.2f} but units × prices give {u:,.2f}."
            for fam, m, p, u in zip(
                both.loc[bad, "family"], both.loc[bad, "month"], plan[bad], units[bad], strict=True
            )
        ]
    return limit_messages(messages)
