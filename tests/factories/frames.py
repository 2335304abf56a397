"""Builders of the per-series plan frames that every plan fixture needs.

The published columns of ``plan_demand``, ``plan_supply`` and ``plan_inventory`` on a key
frame (``item_id``, ``location_id``, ``month``, and ``family`` for demand), with the values
a test chooses and plain defaults for the rest.
"""

from __future__ import annotations

import pandas as pd


def demand_frame(
    keys: pd.DataFrame,
    qty: pd.Series,
    revenue: pd.Series,
    *,
    lo95: float = 0.7,
    hi95: float = 1.3,
    override_columns: bool = True,
) -> pd.DataFrame:
    """``plan_demand`` rows: consensus = statistical forecast = ``qty``, no adjustment.

    Args:
        keys: one row per series × month (with ``family``).
        qty: the forecast per row; the 80% interval is ×0.8 / ×1.2, the 95% ×lo95 / ×hi95.
        revenue: the consensus revenue per row.
        lo95: lower 95% bound as a share of ``qty``.
        hi95: upper 95% bound as a share of ``qty``.
        override_columns: add the (empty) override reason and author columns.
    """
    demand = keys.assign(
        stat_forecast_qty=qty,
        stat_lo80_qty=qty * 0.8,
        stat_hi80_qty=qty * 1.2,
        stat_lo95_qty=qty * lo95,
        stat_hi95_qty=qty * hi95,
        stat_model="AutoETS",
        crm_adjustment_qty=0.0,
        override_qty=0.0,
        consensus_qty=qty,
        consensus_revenue=revenue,
    )
    if override_columns:
        demand = demand.assign(override_reason_code=None, override_author=None)
    return demand


def supply_frame(keys: pd.DataFrame, production, receipts=1.0, purchase=0.0) -> pd.DataFrame:
    """``plan_supply`` rows: planned production, purchases and open-order receipts."""
    return keys.assign(
        planned_production_qty=production,
        planned_purchase_qty=purchase,
        open_order_receipts_qty=receipts,
    )


def inventory_frame(keys: pd.DataFrame, receipts, demand, **columns) -> pd.DataFrame:
    """``plan_inventory`` rows; ``columns`` replace the defaults or add columns at the end."""
    values = {
        "opening_qty": 5.0,
        "receipts_qty": receipts,
        "demand_qty": demand,
        "closing_qty": 5.0,
        "safety_stock_qty": 2.0,
        "days_of_cover": 10.0,
        "shortage_qty": 0.0,
        "stockout_probability": 0.05,
        "expected_fill_rate": 0.99,
    }
    values.update(columns)
    return keys.assign(**values)
