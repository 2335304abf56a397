"""Stage 3, supply review: rough-cut capacity, constrained supply plan (LP), inventory, gaps."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.metadata import (
    count_table,
    mart_in,
    money,
    plan_in,
    plan_table_asset,
    plan_table_metadata,
    preview,
    qty,
    share,
)
from sop_pipeline.defs.partitions import MONTHLY_RUNS, plan_month_partitions
from sop_pipeline.defs.resources import MartsResource, SopResource
from sop_pipeline.defs.retry import no_retry_on_validation
from sop_pipeline.storage.warehouse import read_plan, replace_plan_rows, table_exists

SUPPLY_TAGS = {"sop_step": "supply_review"}
OWNERS = ["team:supply-planning"]
PLAN_DEMAND = dg.AssetKey(["plan", "plan_demand"])

SUPPLY_SPECS = [
    dg.AssetSpec(
        key=dg.AssetKey(["plan", "plan_supply"]),
        description="Constrained supply plan, one row per item × location × horizon month.",
    ),
    dg.AssetSpec(
        key=dg.AssetKey(["plan", "plan_inventory"]),
        description="Projected inventory with safety stock, one row per item × location × month.",
    ),
    dg.AssetSpec(
        key=dg.AssetKey(["plan", "plan_capacity"]),
        description="Rough-cut and planned capacity, one row per work center × month.",
    ),
    dg.AssetSpec(
        key=dg.AssetKey(["plan", "supply_shortages"]),
        description="Why the plan is short: one row per item × location × month with a shortage and its binding constraint.",
    ),
    dg.AssetSpec(
        key=dg.AssetKey(["plan", "plan_materials"]),
        description="Material plan, one row per purchased BOM component × location × month (empty without a BOM).",
    ),
]
SUPPLY_SPECS = [
    s.replace_attributes(
        metadata=plan_table_metadata(s.key.path[-1]),
        group_name="supply",
        deps=[
            PLAN_DEMAND,
            dg.AssetKey(["marts", "dim_items"]),
            dg.AssetKey(["marts", "fct_routings"]),
            dg.AssetKey(["marts", "fct_capacity"]),
            dg.AssetKey(["marts", "fct_inventory_position"]),
            dg.AssetKey(["marts", "fct_open_supply"]),
            dg.AssetKey(["marts", "fct_bom_exploded"]),
            dg.AssetKey(["marts", "fct_supplier_capacity"]),
        ],
        owners=OWNERS,
        tags=SUPPLY_TAGS,
        kinds={"python", "highs", "duckdb"},
    )
    for s in SUPPLY_SPECS
]


def _check(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=name, asset=dg.AssetKey(["plan", asset]), blocking=True, description=description
    )


SUPPLY_CHECKS = [
    _check(
        "inventory_balance_closes",
        "plan_inventory",
        "opening + receipts − served = closing on every row",
    ),
    _check(
        "inventory_non_negative",
        "plan_inventory",
        "no negative inventory, receipts, demand or safety stock",
    ),
    _check("demand_served_or_short", "plan_inventory", "consensus demand = served + shortage"),
    _check(
        "hours_within_capacity",
        "plan_capacity",
        "planned hours ≤ available hours + allowed overtime",
    ),
    _check("supply_non_negative", "plan_supply", "no negative planned or open-order quantity"),
    _check(
        "materials_balance_and_supplier_capacity",
        "plan_materials",
        "opening + receipts − consumed = closing; purchases ≤ supplier capacity; no negatives",
    ),
]


def _check_result(name: str, asset: str, messages: list[str]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=dg.AssetKey(["plan", asset]),
        passed=not messages,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(messages[:5]) if messages else None,
        metadata={"violations": dg.MetadataValue.int(len(messages))},
    )


@dg.multi_asset(
    specs=SUPPLY_SPECS,
    check_specs=SUPPLY_CHECKS,
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    can_subset=False,
    pool="sop_warehouse",
)
@no_retry_on_validation()
def supply_plan(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    marts: MartsResource,
):
    """Plan production and purchases against capacity (HiGHS LP) and project inventory."""
    from sop_pipeline.planning.capacity import check_capacity
    from sop_pipeline.planning.inventory import (
        check_demand_served,
        check_inventory_balance,
        check_non_negative,
        safety_stock,
    )
    from sop_pipeline.planning.materials import check_materials, plan_supply_with_materials

    settings = sop.settings
    month = context.partition_key
    with warehouse.get_connection() as con, marts.reader() as mart:
        demand = read_plan(con, "plan_demand", month)
        items = mart.read_mart("dim_items")
        routings = mart.read_mart("fct_routings")
        capacity = mart.read_mart("fct_capacity")
        position = mart.read_mart("fct_inventory_position")
        open_supply = mart.read_mart("fct_open_supply")
        bom, suppliers = (
            mart.read_mart(name) if mart.has_mart(name) else None
            for name in ("fct_bom_exploded", "fct_supplier_capacity")
        )
    ss = safety_stock(demand, items, service_level=settings.service_level)
    result = plan_supply_with_materials(
        demand,
        items,
        routings,
        capacity,
        position,
        open_supply,
        ss,
        strategy=settings.strategy,
        overtime_share=settings.overtime_share,
        unmet_demand=settings.unmet_demand,
        bom_exploded=bom,
        supplier_capacity=suppliers,
    )
    materials = result.plan_materials
    with warehouse.get_connection() as con:
        replace_plan_rows(con, "plan_materials", materials, month)
        replace_plan_rows(con, "plan_supply", result.plan_supply, month)
        replace_plan_rows(con, "plan_inventory", result.plan_inventory, month)
        replace_plan_rows(con, "plan_capacity", result.plan_capacity, month)
        replace_plan_rows(con, "supply_shortages", result.shortages, month)
    inv, cap = result.plan_inventory, result.plan_capacity
    served = float(inv["served_qty"].sum()) if "served_qty" in inv else float("nan")
    demand_total = float(inv["demand_qty"].sum())
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey(["plan", "plan_supply"]),
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(result.plan_supply)),
            "strategy": dg.MetadataValue.text(result.strategy),
            "solver_status": dg.MetadataValue.text(result.status),
            "objective": count_table(result.objective, "term", "value"),
            "lp_stats": count_table(result.stats, "statistic", "value"),
            "planned_production_qty (units)": qty(
                result.plan_supply["planned_production_qty"].sum()
            ),
            "planned_purchase_qty (units)": qty(result.plan_supply["planned_purchase_qty"].sum()),
            "preview": preview(result.plan_supply, table="plan_supply"),
        },
    )
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey(["plan", "plan_inventory"]),
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(inv)),
            "fill_rate (share 0-1)": share(served / demand_total if demand_total else 1.0),
            "shortage_qty (units)": qty(inv["shortage_qty"].sum()),
            "unmet_demand": dg.MetadataValue.text(settings.unmet_demand),
            "unmet_demand_qty (units)": qty(demand_total - served),
            "preview": preview(inv, table="plan_inventory"),
        },
    )
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey(["plan", "plan_capacity"]),
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(cap)),
            "max_utilization (ratio)": share(cap["utilization"].max(skipna=True) or 0.0),
            "work_center_months_over_100pct_required": dg.MetadataValue.int(
                int((cap["required_hours"] > cap["available_hours"]).sum())
            ),
            "preview": preview(
                cap.sort_values("utilization", ascending=False), table="plan_capacity"
            ),
        },
    )
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey(["plan", "supply_shortages"]),
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(result.shortages)),
            "by_constraint_type": count_table(
                result.shortages["constraint_type"].value_counts().to_dict()
                if len(result.shortages)
                else {},
                "constraint_type",
                "shortages",
            ),
            "preview": preview(result.shortages.sort_values("shortage_qty", ascending=False)),
        },
    )
    material_short = materials[materials["shortage_qty"] > 1e-6]
    yield dg.MaterializeResult(
        asset_key=dg.AssetKey(["plan", "plan_materials"]),
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(materials)),
            "materials": dg.MetadataValue.int(int(materials["component_item_id"].nunique())),
            "material_months_short": dg.MetadataValue.int(len(material_short)),
            "material_shortage_qty": dg.MetadataValue.float(
                float(material_short["shortage_qty"].sum())
            ),
            "preview": preview(materials.sort_values("shortage_qty", ascending=False)),
        },
    )
    yield _check_result(
        "materials_balance_and_supplier_capacity", "plan_materials", check_materials(materials)
    )
    yield _check_result("inventory_balance_closes", "plan_inventory", check_inventory_balance(inv))
    yield _check_result(
        "inventory_non_negative", "plan_inventory", check_non_negative(inv, name="plan_inventory")
    )
    yield _check_result(
        "demand_served_or_short", "plan_inventory", check_demand_served(inv, demand)
    )
    yield _check_result(
        "hours_within_capacity", "plan_capacity", check_capacity(cap, settings.overtime_share)
    )
    yield _check_result(
        "supply_non_negative",
        "plan_supply",
        check_non_negative(
            result.plan_supply,
            columns=["planned_production_qty", "planned_purchase_qty", "open_order_receipts_qty"],
            name="plan_supply",
        ),
    )


@plan_table_asset(
    "plan_gaps",
    group_name="supply",
    ins={
        "plan_demand": plan_in("plan_demand"),
        "plan_inventory": plan_in("plan_inventory"),
        "dim_items": mart_in("dim_items"),
    },
    description="Demand-supply gaps, one row per family × month, in units and value with the binding constraint.",
    owners=OWNERS,
    tags=SUPPLY_TAGS,
)
def plan_gaps(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    plan_demand: pd.DataFrame,
    plan_inventory: pd.DataFrame,
    dim_items: pd.DataFrame,
):
    """Family × month gaps between consensus demand and what the constrained plan serves."""
    from sop_pipeline.planning.finance import gaps

    out = gaps(plan_demand, plan_inventory, dim_items)
    short = out[out["gap_qty"] > 0]
    return dg.Output(
        out,
        metadata={
            "family_months_short": dg.MetadataValue.int(len(short)),
            "gap_qty (units)": qty(out["gap_qty"].sum()),
            "gap_value": money(out["gap_value"].sum(), sop.settings.base_currency),
            "largest_gaps": preview(
                short.sort_values("gap_value", ascending=False), table="plan_gaps"
            ),
        },
    )


@plan_table_asset(
    "plan_exceptions",
    group_name="supply",
    deps=[dg.AssetKey(["plan", "plan_materials"])],
    ins={
        "plan_capacity": plan_in("plan_capacity"),
        "plan_inventory": plan_in("plan_inventory"),
        "plan_supply": plan_in("plan_supply"),
        "dim_items": mart_in("dim_items"),
        "fct_routings": mart_in("fct_routings"),
    },
    description="Exceptions a planner must act on (over-capacity, stock-outs, material shortages, part lots, excess cover, missing data), one row per exception type × scope × month.",
    owners=OWNERS,
    tags=SUPPLY_TAGS,
)
def plan_exceptions(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    warehouse: DuckDBResource,
    plan_capacity: pd.DataFrame,
    plan_inventory: pd.DataFrame,
    plan_supply: pd.DataFrame,
    dim_items: pd.DataFrame,
    fct_routings: pd.DataFrame,
):
    """Exceptions list with a reason and the binding constraint for each."""
    from sop_pipeline.planning.exceptions import find_exceptions
    from sop_pipeline.planning.materials import with_material_exceptions

    settings = sop.settings
    out = find_exceptions(
        plan_capacity,
        plan_inventory,
        dim_items,
        fct_routings,
        cover_limit_days=settings.cover_limit_days,
        overtime_share=settings.overtime_share,
        stockout_risk_threshold=settings.stockout_risk_threshold,
        plan_supply=plan_supply,
    )
    # an empty materials plan (no BOM extract) may have no table yet
    with warehouse.get_connection() as con:
        if table_exists(con, "plan", "plan_materials"):
            materials = read_plan(con, "plan_materials", context.partition_key)
            out = with_material_exceptions(out, materials)
    counts = out["exception_type"].value_counts() if len(out) else pd.Series(dtype=int)
    return dg.Output(
        out,
        metadata={
            "by_type": count_table(counts.to_dict(), "exception_type", "exceptions"),
            "preview": preview(out, table="plan_exceptions"),
        },
    )
