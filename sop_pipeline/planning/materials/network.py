"""What the material LPs share: the ``MaterialPlan`` result, items, sources, stock.

Supplier sources (capacity, lead time) and material stock per location feed both the
material LP (``lp.py``) and the joint capacity + material LP (``joint.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import (
    SERIES,
    as_month_start,
    lead_time_blocked_months,
)


# The material LP ------------------------------------------------------------------------
@dataclass
class MaterialPlan:
    """What the material LP decided for one production plan.

    Attributes:
        plan_materials: ``PLAN_MATERIALS_COLUMNS``, one row per material × location × month.
        purchases: supplier_id (None: bought without a supplier limit), component_item_id,
            location_id, month, planned_purchase_qty.
        kept: item_id, location_id, month, planned_production_qty, kept_qty (production
            the materials allow) for every made item with a BOM.
        cuts: ``MATERIAL_CUT_COLUMNS``: production that could not be made for lack of
            material, with the binding material and supplier.
        stats: sizes and seconds.
    """

    plan_materials: pd.DataFrame
    purchases: pd.DataFrame
    kept: pd.DataFrame
    cuts: pd.DataFrame
    stats: dict[str, float] = field(default_factory=dict)


def _item_table(items: pd.DataFrame) -> pd.DataFrame:
    table = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    return table.set_index("item_id")


def _source_rows(
    components: pd.DataFrame,
    supplier_capacity: pd.DataFrame | None,
    items: pd.DataFrame,
    months: pd.DatetimeIndex,
) -> pd.DataFrame:
    """One row per source × material × month: supplier (or none), limit, blocked, cost."""
    table = _item_table(items)
    mats = pd.Index(components["component_item_id"].unique())
    item_cost = pd.to_numeric(table["unit_cost"], errors="coerce").reindex(mats)
    item_lead = pd.to_numeric(table["lead_time_days"], errors="coerce").reindex(mats)
    sc = (
        supplier_capacity.copy()
        if supplier_capacity is not None and not supplier_capacity.empty
        else pd.DataFrame(
            columns=["supplier_id", "item_id", "month", "max_qty", "lead_time_days", "unit_cost"]
        )
    )
    sc["item_id"] = sc["item_id"].astype(str)
    sc = sc[sc["item_id"].isin(mats)]
    if not sc.empty:
        sc["month"] = as_month_start(sc["month"])
        sc = sc[sc["month"].isin(months)]
    with_supplier = set(sc["item_id"])
    free = [m for m in mats if m not in with_supplier]
    rows = []
    if len(sc):
        rows.append(
            pd.DataFrame(
                {
                    "supplier_id": sc["supplier_id"].astype(str).to_numpy(),
                    "component_item_id": sc["item_id"].to_numpy(),
                    "month": sc["month"].to_numpy(),
                    "max_qty": pd.to_numeric(sc["max_qty"], errors="coerce").to_numpy(dtype=float),
                    "lead_time_days": pd.to_numeric(sc["lead_time_days"], errors="coerce")
                    .fillna(sc["item_id"].map(item_lead))
                    .to_numpy(dtype=float),
                    "unit_cost": pd.to_numeric(sc["unit_cost"], errors="coerce")
                    .fillna(sc["item_id"].map(item_cost))
                    .to_numpy(dtype=float),
                }
            )
        )
    if free:
        grid = pd.MultiIndex.from_product([free, months], names=["component_item_id", "month"])
        frame = grid.to_frame(index=False)
        frame["supplier_id"] = None
        frame["max_qty"] = np.nan
        frame["lead_time_days"] = frame["component_item_id"].map(item_lead).astype(float)
        frame["unit_cost"] = frame["component_item_id"].map(item_cost).astype(float)
        rows.append(frame)
    out = pd.concat(rows, ignore_index=True)
    out["unit_cost"] = out["unit_cost"].where(out["unit_cost"] > 0, 1.0).fillna(1.0)
    t = months.get_indexer(pd.DatetimeIndex(out["month"]))
    blocked = np.array([lead_time_blocked_months(lt, True) for lt in out["lead_time_days"]])
    out["t"] = t
    out["blocked"] = t < blocked
    return out


def _material_stock(
    mats: pd.MultiIndex,
    inventory_position: pd.DataFrame,
    open_supply: pd.DataFrame | None,
    months: pd.DatetimeIndex,
) -> tuple[np.ndarray, np.ndarray]:
    """Stock on hand per material × location and its open purchase orders per month."""
    on_hand = (
        inventory_position.assign(
            item_id=inventory_position["item_id"].astype(str),
            location_id=inventory_position["location_id"].astype(str),
        )
        .groupby(SERIES)["on_hand_qty"]
        .sum()
        .reindex(mats, fill_value=0.0)
        .clip(lower=0.0)
        .to_numpy(dtype=float)
    )
    receipts = np.zeros((len(mats), len(months)))
    if open_supply is not None and not open_supply.empty:
        opens = open_supply.assign(
            item_id=open_supply["item_id"].astype(str),
            location_id=open_supply["location_id"].astype(str),
        )
        if "supply_type" in opens:
            opens = opens[opens["supply_type"].astype(str).str.lower() != "production"]
        opens = opens.assign(month=as_month_start(opens["due_month"]).clip(lower=months[0]))
        opens = opens[opens["month"] <= months[-1]]
        c_idx = mats.get_indexer(pd.MultiIndex.from_frame(opens[SERIES]))
        keep = c_idx >= 0
        np.add.at(
            receipts,
            (c_idx[keep], months.get_indexer(pd.DatetimeIndex(opens["month"][keep]))),
            pd.to_numeric(opens["open_qty"][keep], errors="coerce").fillna(0.0).to_numpy(),
        )
    return on_hand, receipts
