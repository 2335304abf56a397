"""Plan-change waterfall: why this month's plan differs from last month's, per family.

Compared on the months both plans cover, in units and revenue, per family:

=================  ==========================================================================
start              last plan's served qty (its consensus when no inventory plan is given)
new_actuals        Δ stat forecast of series whose chosen model did not change (the re-fit
                   on one more month of actuals), plus the whole served change of series
                   that are new in this plan or dropped from it
model_change       Δ stat forecast of series whose chosen model changed
crm_change         Δ crm_adjustment_qty
override_change    Δ (consensus − stat − crm): the planners' overrides and the floor at 0
capacity_change    − Δ shortage (shortage = consensus − served): what supply serves less/more
price_change       revenue only: the start quantity re-priced at this plan's unit prices
end                this plan's served qty
=================  ==========================================================================

``start + Σ components = end`` per family, in units and in revenue, by construction. Units
are valued at this plan's ``dim_items.unit_price``; ``start`` revenue uses last plan's
prices (its consensus_revenue / consensus_qty per item), and ``price_change`` bridges the
two. See ``docs/scenarios.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import SERIES, as_month_start, require_columns

WATERFALL_COLUMNS = ["family", "component", "qty", "revenue", "sort_order"]
COMPONENTS = (
    "start",
    "new_actuals",
    "model_change",
    "crm_change",
    "override_change",
    "capacity_change",
    "price_change",
    "end",
)
_KEY = [*SERIES, "month"]
_DEMAND_COLUMNS = [*_KEY, "stat_forecast_qty", "crm_adjustment_qty", "consensus_qty"]


def _demand(frame: pd.DataFrame, name: str, months: pd.DatetimeIndex) -> pd.DataFrame:
    require_columns(frame, name, _DEMAND_COLUMNS)
    out = frame.copy()
    out["item_id"] = out["item_id"].astype(str)
    out["location_id"] = out["location_id"].astype(str)
    out["month"] = as_month_start(out["month"])
    out = out[out["month"].isin(months)]
    numeric = ["stat_forecast_qty", "crm_adjustment_qty", "consensus_qty", "consensus_revenue"]
    for col in numeric:
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0.0)
    extra = [c for c in ("consensus_revenue", "family", "stat_model") if c in out]
    cols = [*_DEMAND_COLUMNS, *extra]
    return (
        out[cols]
        .groupby(_KEY, as_index=False)
        .agg({c: "sum" if c in numeric else "first" for c in cols if c not in _KEY})
    )


def _served(demand: pd.DataFrame, inventory: pd.DataFrame | None, name: str) -> pd.Series:
    """Served qty per demand row: from the inventory plan, else the consensus itself."""
    if inventory is None:
        return demand["consensus_qty"]
    require_columns(inventory, name, _KEY)
    inv = inventory.copy()
    inv["item_id"] = inv["item_id"].astype(str)
    inv["location_id"] = inv["location_id"].astype(str)
    inv["month"] = as_month_start(inv["month"])
    if "served_qty" not in inv:
        require_columns(inventory, name, ["demand_qty", "shortage_qty"])
        inv["served_qty"] = inv["demand_qty"] - inv["shortage_qty"]
    served = inv.groupby(_KEY)["served_qty"].sum()
    index = pd.MultiIndex.from_frame(demand[_KEY])
    # a demand row the inventory plan lacks was not short: served = consensus
    return pd.Series(served.reindex(index).to_numpy(), index=demand.index).fillna(
        demand["consensus_qty"]
    )


def _chosen_models(demand: pd.DataFrame, backtest: pd.DataFrame | None) -> pd.Series:
    """Chosen model per series: the backtest's, else the plan's stat_model label."""
    first = demand.sort_values(_KEY).drop_duplicates(SERIES).set_index(SERIES)
    models = first["stat_model"] if "stat_model" in first else pd.Series(np.nan, index=first.index)
    if backtest is not None and not backtest.empty:
        require_columns(backtest, "backtest", [*SERIES, "chosen_model"])
        bt = backtest.assign(
            item_id=backtest["item_id"].astype(str), location_id=backtest["location_id"].astype(str)
        ).drop_duplicates(SERIES)
        chosen = bt.set_index(SERIES)["chosen_model"].reindex(models.index)
        models = chosen.where(chosen.notna(), models)
    return models.astype(object)


def _prev_prices(prev: pd.DataFrame, fallback: pd.Series) -> pd.Series:
    """Last plan's unit price per item: its consensus revenue / consensus qty."""
    if "consensus_revenue" not in prev:
        return fallback
    totals = prev.groupby("item_id")[["consensus_revenue", "consensus_qty"]].sum()
    priced = totals[totals["consensus_qty"] > 0]
    price = priced["consensus_revenue"] / priced["consensus_qty"]
    return price.combine_first(fallback)


def plan_change_waterfall(
    prev_demand: pd.DataFrame,
    prev_inventory: pd.DataFrame | None,
    prev_backtest: pd.DataFrame | None,
    cur_demand: pd.DataFrame,
    cur_inventory: pd.DataFrame | None,
    cur_backtest: pd.DataFrame | None,
    items: pd.DataFrame,
) -> pd.DataFrame:
    """Bridge last month's plan to this month's, per family, on the months both cover.

    Args:
        prev_demand: last plan's ``plan_demand`` (item_id, location_id, month,
            stat_forecast_qty, crm_adjustment_qty, consensus_qty; family, stat_model and
            consensus_revenue used when present).
        prev_inventory: last plan's ``plan_inventory`` (served_qty, or demand_qty −
            shortage_qty), or None to start from its consensus.
        prev_backtest: last plan's ``backtest_results`` (item_id, location_id,
            chosen_model), or None to use ``stat_model``.
        cur_demand: this plan's ``plan_demand``.
        cur_inventory: this plan's ``plan_inventory``, or None to end at its consensus.
        cur_backtest: this plan's ``backtest_results``, or None.
        items: dim_items of this plan (item_id, family, unit_price).

    Returns:
        family, component, qty, revenue, sort_order: one row per family × component of
        :data:`COMPONENTS`, ``start + Σ components = end`` in qty and revenue. Empty when
        the plans share no month.
    """
    require_columns(items, "items", ["item_id", "family", "unit_price"])
    months = pd.DatetimeIndex(
        sorted(set(as_month_start(prev_demand["month"])) & set(as_month_start(cur_demand["month"])))
    )
    if months.empty:
        return pd.DataFrame(columns=WATERFALL_COLUMNS).astype(
            {"qty": float, "revenue": float, "sort_order": int}
        )
    prev = _demand(prev_demand, "prev_demand", months)
    cur = _demand(cur_demand, "cur_demand", months)
    prev["served_qty"] = _served(prev, prev_inventory, "prev_inventory")
    cur["served_qty"] = _served(cur, cur_inventory, "cur_inventory")

    # a series is new/dropped by its presence in either plan at all, not just in the overlap
    def series_of(frame: pd.DataFrame) -> pd.MultiIndex:
        return pd.MultiIndex.from_frame(frame[SERIES].astype(str).drop_duplicates())

    in_prev, in_cur = series_of(prev_demand), series_of(cur_demand)
    models_prev = _chosen_models(prev, prev_backtest)
    models_cur = _chosen_models(cur, cur_backtest)

    measures = ["stat_forecast_qty", "crm_adjustment_qty", "consensus_qty", "served_qty"]
    both = prev[[*_KEY, *measures]].merge(
        cur[[*_KEY, *measures]], on=_KEY, how="outer", suffixes=("_prev", "_cur")
    )
    for col in both.columns:
        if col.endswith(("_prev", "_cur")):
            both[col] = both[col].fillna(0.0)
    idx = pd.MultiIndex.from_frame(both[SERIES])
    continuing = np.asarray(idx.isin(in_prev) & idx.isin(in_cur))
    mp = models_prev.reindex(idx).to_numpy()
    mc = models_cur.reindex(idx).to_numpy()
    same_model = np.array(
        [(pd.isna(a) and pd.isna(b)) or a == b for a, b in zip(mp, mc, strict=True)], dtype=bool
    )

    def delta(col: str) -> np.ndarray:
        return (both[f"{col}_cur"] - both[f"{col}_prev"]).to_numpy(dtype=float)

    d_stat = delta("stat_forecast_qty")
    d_crm = delta("crm_adjustment_qty")
    d_cons = delta("consensus_qty")
    d_served = delta("served_qty")
    d_other = d_cons - d_stat - d_crm
    d_short = d_cons - d_served  # Δ(consensus − served)
    zero = np.zeros(len(both))
    parts = {
        "start": both["served_qty_prev"].to_numpy(dtype=float),
        "new_actuals": np.where(continuing, np.where(same_model, d_stat, 0.0), d_served),
        "model_change": np.where(continuing & ~same_model, d_stat, 0.0),
        "crm_change": np.where(continuing, d_crm, 0.0),
        "override_change": np.where(continuing, d_other, 0.0),
        "capacity_change": np.where(continuing, -d_short, 0.0),
        "price_change": zero,
        "end": both["served_qty_cur"].to_numpy(dtype=float),
    }

    table = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    table = table.set_index("item_id")
    price_cur = pd.to_numeric(table["unit_price"], errors="coerce").fillna(0.0)
    price_prev = _prev_prices(prev, price_cur)
    ids = both["item_id"]
    p_cur = ids.map(price_cur).fillna(ids.map(price_prev)).fillna(0.0).to_numpy(dtype=float)
    p_prev = ids.map(price_prev).fillna(ids.map(price_cur)).fillna(0.0).to_numpy(dtype=float)

    family = ids.map(table["family"])
    for frame in (cur, prev):
        if "family" in frame:
            family = family.fillna(
                ids.map(frame.drop_duplicates("item_id").set_index("item_id")["family"])
            )
    both["family"] = family.fillna("(unknown)").astype(str).to_numpy()

    rows = []
    for order, component in enumerate(COMPONENTS):
        qty = parts[component]
        if component == "start":
            revenue = qty * p_prev
        elif component == "price_change":
            revenue = parts["start"] * (p_cur - p_prev)
        else:
            revenue = qty * p_cur
        frame = pd.DataFrame({"family": both["family"], "qty": qty, "revenue": revenue})
        summed = frame.groupby("family", as_index=False)[["qty", "revenue"]].sum()
        rows.append(summed.assign(component=component, sort_order=order))
    out = pd.concat(rows, ignore_index=True)
    return (
        out[WATERFALL_COLUMNS]
        .sort_values(["family", "sort_order"])
        .reset_index(drop=True)
        .astype({"qty": float, "revenue": float, "sort_order": int})
    )


def check_waterfall(waterfall: pd.DataFrame, tolerance: float = 1e-6) -> list[str]:
    """``start + Σ components = end`` per family, in qty and revenue.

    Args:
        waterfall: output of :func:`plan_change_waterfall`.
        tolerance: relative tolerance (absolute near zero).

    Returns:
        Problems found, naming the family and measure; empty when every family adds up.
    """
    require_columns(waterfall, "waterfall", WATERFALL_COLUMNS)
    problems = []
    for family, rows in waterfall.groupby("family"):
        by = rows.set_index("component")
        for measure in ("qty", "revenue"):
            steps = by.loc[by.index != "end", measure].sum()
            end = float(by.loc["end", measure]) if "end" in by.index else 0.0
            if abs(steps - end) > tolerance * max(1.0, abs(end)):
                problems.append(
                    f"waterfall of family {family}: start + components = {steps:,.6f} {measure} "
                    f"but end = {end:,.6f}."
                )
    return problems
