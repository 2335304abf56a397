"""Stage 3, supply review: rough-cut capacity, constrained supply plan (LP), inventory, gaps."""

import dagster as dg
import pandas as pd

from sop_pipeline.defs.metadata import (
    count_table,
    money,
    plan_table_asset,
    plan_table_metadata,
    preview,
    qty,
    table_ins,
)
from sop_pipeline.defs.partitions import MONTHLY_RUNS, plan_month_partitions
from sop_pipeline.defs.resources import MartsResource, SopResource
from sop_pipeline.defs.retry import no_retry_on_validation
from sop_pipeline.defs.supply.checks import SUPPLY_CHECKS, supply_check_results
from sop_pipeline.defs.supply.metadata import supply_metadata

SUPPLY_TAGS = {"sop_step": "supply_review"}
OWNERS = ["team:supply-planning"]

#: the supply plan's tables, one asset each, with their descriptions (the grain)
SUPPLY_TABLES = {
    "plan_supply": "Constrained supply plan, one row per item × location × horizon month.",
    "plan_inventory": "Projected inventory with safety stock, one row per item × location × month.",
    "plan_capacity": "Rough-cut and planned capacity, one row per work center × month.",
    "supply_shortages": "Why the plan is short: one row per item × location × month with a shortage and its binding constraint.",
    "plan_materials": "Material plan, one row per purchased BOM component × location × month (empty without a BOM).",
}
#: the marts the supply plan reads (plan_demand comes in as an input)
SUPPLY_MARTS = (
    "dim_items",
    "fct_routings",
    "fct_capacity",
    "fct_inventory_position",
    "fct_open_supply",
    "fct_bom_exploded",
    "fct_supplier_capacity",
)
#: without them (a warehouse built before the BOM marts) the plan is made without materials
OPTIONAL_MARTS = ("fct_bom_exploded", "fct_supplier_capacity")
SUPPLY_OUTS = {
    f"plan__{table}": dg.AssetOut(
        key=dg.AssetKey(["plan", table]),
        description=description,
        metadata=plan_table_metadata(table),
        group_name="supply",
        owners=OWNERS,
        tags=SUPPLY_TAGS,
        kinds={"python", "highs", "duckdb"},
    )
    for table, description in SUPPLY_TABLES.items()
}


@dg.multi_asset(
    outs=SUPPLY_OUTS,
    ins=table_ins(plans=("plan_demand",)),
    deps=[dg.AssetKey(["marts", name]) for name in SUPPLY_MARTS],
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
    marts: MartsResource,
    plan_demand: pd.DataFrame,
):
    """Plan production and purchases against capacity (HiGHS LP) and project inventory."""
    from sop_pipeline.planning.materials import plan_supply_review

    settings = sop.settings
    with marts.reader() as mart:
        frames = {
            name: mart.read_mart(name)
            for name in SUPPLY_MARTS
            if name not in OPTIONAL_MARTS or mart.has_mart(name)
        }
    result = plan_supply_review(
        plan_demand,
        frames["dim_items"],
        frames["fct_routings"],
        frames["fct_capacity"],
        frames["fct_inventory_position"],
        frames["fct_open_supply"],
        service_level=settings.service_level,
        strategy=settings.strategy,
        overtime_share=settings.overtime_share,
        unmet_demand=settings.unmet_demand,
        bom_exploded=frames.get("fct_bom_exploded"),
        supplier_capacity=frames.get("fct_supplier_capacity"),
    )
    # the IO manager writes each table as its asset's month
    tables, metadata = result.tables(), supply_metadata(result, settings.unmet_demand)
    for table in SUPPLY_TABLES:
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey(["plan", table]), value=tables[table], metadata=metadata[table]
        )
    yield from supply_check_results(result, plan_demand, settings.overtime_share)


@plan_table_asset(
    "plan_gaps",
    group_name="supply",
    ins=table_ins(plans=("plan_demand", "plan_inventory"), marts=("dim_items",)),
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
    ins=table_ins(
        plans=("plan_capacity", "plan_inventory", "plan_supply", "plan_materials"),
        marts=("dim_items", "fct_routings"),
    ),
    description="Exceptions a planner must act on (over-capacity, stock-outs, material shortages, part lots, excess cover, missing data), one row per exception type × scope × month.",
    owners=OWNERS,
    tags=SUPPLY_TAGS,
)
def plan_exceptions(
    context: dg.AssetExecutionContext,
    sop: SopResource,
    plan_capacity: pd.DataFrame,
    plan_inventory: pd.DataFrame,
    plan_supply: pd.DataFrame,
    plan_materials: pd.DataFrame,
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
    out = with_material_exceptions(out, plan_materials)
    counts = out["exception_type"].value_counts() if len(out) else pd.Series(dtype=int)
    return dg.Output(
        out,
        metadata={
            "by_type": count_table(counts.to_dict(), "exception_type", "exceptions"),
            "preview": preview(out, table="plan_exceptions"),
        },
    )
