"""Checks and exceptions on the published material plan."""

from __future__ import annotations

import pandas as pd

from sop_pipeline.planning.inventory import (
    require_columns,
)
from sop_pipeline.planning.materials.constants import PLAN_MATERIALS_COLUMNS


def check_materials(plan_materials: pd.DataFrame) -> list[str]:
    """The material plan closes and keeps within supplier capacity (a blocking check).

    Args:
        plan_materials: ``PLAN_MATERIALS_COLUMNS``.

    Returns:
        Problems found, each naming material, location and month; empty when it holds.
    """
    from sop_pipeline.planning.inventory import close, limit_messages

    require_columns(plan_materials, "plan_materials", PLAN_MATERIALS_COLUMNS[:11])
    if plan_materials.empty:
        return []
    m = plan_materials.sort_values(["component_item_id", "location_id", "month"])
    messages = []
    lhs = (
        m["opening_qty"]
        + m["open_order_receipts_qty"]
        + m["planned_purchase_qty"]
        - m["consumed_qty"]
    ).to_numpy(dtype=float)
    bad = ~close(lhs, m["closing_qty"].to_numpy(dtype=float))
    for row, value in zip(m[bad].itertuples(), lhs[bad], strict=True):
        messages.append(
            f"material {row.component_item_id} at {row.location_id} in {row.month:%Y-%m} does not "
            f"balance: opening + receipts + purchases − consumed = {value:.6g} but closing_qty = "
            f"{row.closing_qty:.6g}."
        )
    numbers = ["dependent_demand_qty", "planned_purchase_qty", "closing_qty", "shortage_qty"]
    for col in numbers:
        for row in m[m[col] < -1e-6].itertuples():
            messages.append(
                f"{col} of material {row.component_item_id} at {row.location_id} in "
                f"{row.month:%Y-%m} is negative ({getattr(row, col):.6g})."
            )
    bought = m.groupby(["component_item_id", "month"]).agg(
        bought=("planned_purchase_qty", "sum"), limit=("supplier_capacity_qty", "first")
    )
    over = bought[
        bought["limit"].notna() & (bought["bought"] > bought["limit"] * (1 + 1e-6) + 1e-6)
    ]
    for (item, month), row in over.iterrows():
        messages.append(
            f"purchases of material {item} in {month:%Y-%m} ({row['bought']:,.6g}) exceed its "
            f"supplier capacity ({row['limit']:,.6g})."
        )
    return limit_messages(messages)


def material_exceptions(plan_materials: pd.DataFrame) -> pd.DataFrame:
    """One ``material_short`` exception per material × location × month that is short.

    Args:
        plan_materials: ``PLAN_MATERIALS_COLUMNS``.

    Returns:
        Rows in ``exceptions.EXCEPTION_COLUMNS`` (high severity: production is cut).
    """
    from sop_pipeline.planning.exceptions import EXCEPTION_COLUMNS

    if plan_materials is None or plan_materials.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    short = plan_materials[plan_materials["shortage_qty"] > 1e-6]
    records = []
    for row in short.itertuples(index=False):
        share = row.shortage_qty / row.dependent_demand_qty if row.dependent_demand_qty > 0 else 1
        binding = row.binding_constraint or f"material {row.component_item_id} short"
        records.append(
            (
                "material_short",
                "high",
                "material/location",
                f"{row.component_item_id}@{row.location_id}",
                row.month,
                float(row.shortage_qty),
                0.0,
                f"Material short: {row.component_item_id} at {row.location_id} misses "
                f"{row.shortage_qty:,.0f} units ({share:.0%} of the {row.dependent_demand_qty:,.0f} "
                f"production needs) for {row.month:%Y-%m}, so production of the items made from "
                f"it is cut ({binding}): expedite or add a supplier, buy ahead of the dip, or agree "
                "the cut with sales.",
                binding,
            )
        )
    out = pd.DataFrame.from_records(records, columns=EXCEPTION_COLUMNS)
    out["month"] = pd.to_datetime(out["month"]).astype("datetime64[ns]")
    return out.astype({"value": float, "threshold": float})


def with_material_exceptions(
    exceptions: pd.DataFrame, plan_materials: pd.DataFrame | None
) -> pd.DataFrame:
    """``find_exceptions``' frame with the material shortages added, most severe first."""
    from sop_pipeline.planning.exceptions import _SEVERITY_ORDER

    extra = material_exceptions(plan_materials)
    if extra.empty:
        return exceptions
    out = pd.concat([exceptions, extra], ignore_index=True) if len(exceptions) else extra
    out["_rank"] = out["severity"].map(_SEVERITY_ORDER)
    out = out.sort_values(
        ["_rank", "exception_type", "month", "scope_id"], na_position="first", kind="stable"
    )
    return out.drop(columns="_rank").reset_index(drop=True)
