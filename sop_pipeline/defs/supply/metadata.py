"""Metadata of the supply plan's five tables: solver facts, totals, fill rate, previews."""

import dagster as dg

from sop_pipeline.defs.metadata import count_table, preview, qty, share


def supply_metadata(result, unmet_demand: str) -> dict[str, dict[str, dg.MetadataValue]]:
    """Each supply table's materialization metadata, by table name.

    Args:
        result: the supply review's ``SupplyResult`` (``plan_supply_review``).
        unmet_demand: the ``unmet_demand`` setting it was planned with.
    """
    supply, inv, cap = result.plan_supply, result.plan_inventory, result.plan_capacity
    shortages, materials = result.shortages, result.plan_materials
    served = float(inv["served_qty"].sum()) if "served_qty" in inv else float("nan")
    demand_total = float(inv["demand_qty"].sum())
    material_short = materials[materials["shortage_qty"] > 1e-6]
    return {
        "plan_supply": {
            "dagster/row_count": dg.MetadataValue.int(len(supply)),
            "strategy": dg.MetadataValue.text(result.strategy),
            "solver_status": dg.MetadataValue.text(result.status),
            "objective": count_table(result.objective, "term", "value"),
            "lp_stats": count_table(result.stats, "statistic", "value"),
            "planned_production_qty (units)": qty(supply["planned_production_qty"].sum()),
            "planned_purchase_qty (units)": qty(supply["planned_purchase_qty"].sum()),
            "preview": preview(supply, table="plan_supply"),
        },
        "plan_inventory": {
            "dagster/row_count": dg.MetadataValue.int(len(inv)),
            "fill_rate (share 0-1)": share(served / demand_total if demand_total else 1.0),
            "shortage_qty (units)": qty(inv["shortage_qty"].sum()),
            "unmet_demand": dg.MetadataValue.text(unmet_demand),
            "unmet_demand_qty (units)": qty(demand_total - served),
            "preview": preview(inv, table="plan_inventory"),
        },
        "plan_capacity": {
            "dagster/row_count": dg.MetadataValue.int(len(cap)),
            "max_utilization (ratio)": share(cap["utilization"].max(skipna=True) or 0.0),
            "work_center_months_over_100pct_required": dg.MetadataValue.int(
                int((cap["required_hours"] > cap["available_hours"]).sum())
            ),
            "preview": preview(
                cap.sort_values("utilization", ascending=False), table="plan_capacity"
            ),
        },
        "supply_shortages": {
            "dagster/row_count": dg.MetadataValue.int(len(shortages)),
            "by_constraint_type": count_table(
                shortages["constraint_type"].value_counts().to_dict() if len(shortages) else {},
                "constraint_type",
                "shortages",
            ),
            "preview": preview(shortages.sort_values("shortage_qty", ascending=False)),
        },
        "plan_materials": {
            "dagster/row_count": dg.MetadataValue.int(len(materials)),
            "materials": dg.MetadataValue.int(int(materials["component_item_id"].nunique())),
            "material_months_short": dg.MetadataValue.int(len(material_short)),
            "material_shortage_qty": dg.MetadataValue.float(
                float(material_short["shortage_qty"].sum())
            ),
            "preview": preview(materials.sort_values("shortage_qty", ascending=False)),
        },
    }
