"""The column lists and constants of the material plan (shared by its modules)."""

from __future__ import annotations

import pandas as pd

EXPLODED_COLUMNS = [
    "top_item_id",
    "component_item_id",
    "parent_item_id",
    "bom_level",
    "bom_path",
    "qty_per_cumulative",
    "lead_time_offset_days",
    "lead_time_offset_months",
    "valid_from",
    "valid_to",
    "is_leaf",
]
PLAN_MATERIALS_COLUMNS = [
    "component_item_id",
    "location_id",
    "month",
    "dependent_demand_qty",
    "planned_purchase_qty",
    "supplier_capacity_qty",
    "closing_qty",
    "shortage_qty",
    "opening_qty",
    "open_order_receipts_qty",
    "consumed_qty",
    "supplier_id",
    "binding_constraint",
]
MATERIAL_CUT_COLUMNS = [
    "item_id",
    "location_id",
    "month",
    "cut_qty",
    "component_item_id",
    "supplier_id",
    "binding_constraint",
]
OPEN_START = pd.Timestamp("1900-01-01")
OPEN_END = pd.Timestamp(
    "2262-04-01"
)  # the last pandas timestamp month (9999-12-31 is out of range)
MAX_LEVELS = 20
SHADOW_EPS = 1e-7
#: material purchase cost in the joint LP's objective, × unit cost (a supplier tie-break)
PURCHASE_TIE_BREAK = 1e-3
