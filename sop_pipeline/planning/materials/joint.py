"""The supply plan with materials, ``plan_supply_with_materials``.

Capacity LP → material LP → when production had to be cut, capacity and materials in one
LP (``material_network``). ``plan_supply_review`` is the supply review's one call: safety
stock, then that plan.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import (
    SERIES,
    horizon_months,
    safety_stock,
)
from sop_pipeline.planning.materials.constants import PLAN_MATERIALS_COLUMNS, PURCHASE_TIE_BREAK
from sop_pipeline.planning.materials.explosion import leaf_requirements
from sop_pipeline.planning.materials.lp import _empty_plan, plan_materials
from sop_pipeline.planning.materials.network import _material_stock, _source_rows
from sop_pipeline.planning.supply import (
    MaterialNetwork,
    SupplyCosts,
    plan_supply,
)


# The supply plan with materials -------------------------------------------------------
def material_items(exploded: pd.DataFrame | None, plan_demand: pd.DataFrame) -> set[str]:
    """Purchased materials (BOM leaves) that have no demand of their own in the plan."""
    if exploded is None or exploded.empty:
        return set()
    leaves = set(exploded.loc[exploded["is_leaf"].astype(bool), "component_item_id"].astype(str))
    return leaves - set(plan_demand["item_id"].astype(str))


def material_network(
    series: pd.DataFrame,
    exploded: pd.DataFrame,
    supplier_capacity: pd.DataFrame | None,
    items: pd.DataFrame,
    inventory_position: pd.DataFrame,
    open_supply: pd.DataFrame | None,
    months: pd.DatetimeIndex,
    *,
    costs: SupplyCosts | None = None,
) -> MaterialNetwork | None:
    """The materials of the made series for the joint LP (``plan_supply(materials=...)``).

    The same model as :func:`plan_materials` (BOM leaves, lead-time offsets, supplier
    capacity and lead time, stock and open purchase orders), stated as constraints on
    production instead of on a fixed production plan.

    Args:
        series: item_id, location_id of the series the LP plans (the made ones with a BOM
            get links).
        exploded: ``fct_bom_exploded``.
        supplier_capacity: ``fct_supplier_capacity``, or None.
        items: dim_items (unit_cost, lead_time_days).
        inventory_position: material stock (item_id, location_id, on_hand_qty).
        open_supply: open purchase orders of materials (or None).
        months: the horizon months.
        costs: the LP's weights (material stock is held at ``holding_rate`` × its cost).

    Returns:
        The network, or None when no series has a material within the horizon.
    """
    costs = costs or SupplyCosts()
    reqs = leaf_requirements(exploded, months)
    keys = series[SERIES].astype(str).drop_duplicates()
    keys = keys[keys["item_id"].isin(set(reqs["top_item_id"]))]
    if keys.empty or reqs.empty:
        return None
    links = keys.merge(reqs, left_on="item_id", right_on="top_item_id")
    links["tau"] = months.get_indexer(pd.DatetimeIndex(links["month"]))
    links["t"] = links["tau"] - links["lead_time_offset_months"].astype(int)
    # production in the first months whose material was due before the horizon has it
    links = links[links["t"] >= 0].reset_index(drop=True)
    if links.empty:
        return None
    mats = pd.MultiIndex.from_frame(
        links[["component_item_id", "location_id"]]
        .drop_duplicates()
        .sort_values(["component_item_id", "location_id"])
    )
    mat_items = mats.get_level_values(0)
    sources = _source_rows(
        pd.DataFrame({"component_item_id": mat_items}), supplier_capacity, items, months
    )
    purchase = sources.merge(
        pd.DataFrame(
            {
                "component_item_id": mat_items,
                "location_id": mats.get_level_values(1),
                "c": np.arange(len(mats)),
            }
        ),
        on="component_item_id",
    ).reset_index(drop=True)
    on_hand, receipts = _material_stock(mats, inventory_position, open_supply, months)
    mat_cost = sources.groupby("component_item_id")["unit_cost"].max()
    limited = purchase["max_qty"].notna().to_numpy() & ~purchase["blocked"].to_numpy()
    cap_keys = pd.MultiIndex.from_frame(
        purchase.loc[limited, ["supplier_id", "component_item_id", "t"]]
    )
    unique_keys = cap_keys.unique()
    src_cap = np.full(len(purchase), -1)
    src_cap[limited] = unique_keys.get_indexer(cap_keys)
    cap_limit = (
        purchase.loc[limited]
        .assign(k=src_cap[limited])
        .drop_duplicates("k")
        .sort_values("k")["max_qty"]
        .to_numpy(dtype=float)
    )
    return MaterialNetwork(
        link_item=links["item_id"].to_numpy(dtype=object),
        link_location=links["location_id"].to_numpy(dtype=object),
        link_c=mats.get_indexer(
            pd.MultiIndex.from_frame(links[["component_item_id", "location_id"]])
        ),
        link_tau=links["tau"].to_numpy(dtype=int),
        link_t=links["t"].to_numpy(dtype=int),
        link_qty=links["qty_per"].to_numpy(dtype=float),
        material_group=pd.factorize(mat_items)[0],
        material_item=np.asarray(mat_items, dtype=object),
        on_hand=on_hand,
        receipts=receipts,
        hold_cost=costs.holding_rate * mat_cost.reindex(mat_items).to_numpy(dtype=float),
        src_c=purchase["c"].to_numpy(dtype=int),
        src_t=purchase["t"].to_numpy(dtype=int),
        # purchases are what production needs, whoever sells them: the price only picks
        # the cheaper supplier, it does not make production look dearer than in the
        # capacity LP (so a material-feasible capacity plan is the joint LP's plan too)
        src_cost=PURCHASE_TIE_BREAK * purchase["unit_cost"].to_numpy(dtype=float),
        src_open=~purchase["blocked"].to_numpy(dtype=bool),
        src_cap=src_cap,
        cap_limit=cap_limit,
    )


def plan_supply_review(
    plan_demand: pd.DataFrame,
    items: pd.DataFrame,
    routings: pd.DataFrame,
    capacity: pd.DataFrame,
    inventory_position: pd.DataFrame,
    open_supply: pd.DataFrame,
    *,
    service_level: float,
    bom_exploded: pd.DataFrame | None = None,
    supplier_capacity: pd.DataFrame | None = None,
    **kwargs,
):
    """Safety stock, then the supply plan with materials: the supply review in one call.

    What the ``supply_plan`` asset plans for the base and every scenario plans for itself
    (``scenarios.plan_from_inputs``). The arguments are :func:`plan_supply_with_materials`'
    (the frames, ``plan_supply``'s keyword arguments), with ``service_level``, the safety
    stock's service level in (0, 1), in place of the safety stock.

    Returns:
        :func:`plan_supply_with_materials`' ``SupplyResult``, with ``safety_stock`` set.
    """
    ss = safety_stock(plan_demand, items, service_level=service_level)
    result = plan_supply_with_materials(
        plan_demand,
        items,
        routings,
        capacity,
        inventory_position,
        open_supply,
        ss,
        bom_exploded=bom_exploded,
        supplier_capacity=supplier_capacity,
        **kwargs,
    )
    result.safety_stock = ss
    return result


def plan_supply_with_materials(
    plan_demand: pd.DataFrame,
    items: pd.DataFrame,
    routings: pd.DataFrame,
    capacity: pd.DataFrame,
    inventory_position: pd.DataFrame,
    open_supply: pd.DataFrame,
    safety_stock: pd.DataFrame | None,
    *,
    bom_exploded: pd.DataFrame | None = None,
    supplier_capacity: pd.DataFrame | None = None,
    **kwargs,
):
    """``supply.plan_supply`` with the materials of the BOM (see the module docstring).

    Materials with no demand of their own are planned here only (``plan_materials``), not
    as series of the capacity LP. With no BOM this is exactly ``plan_supply``.

    Args:
        plan_demand: consensus demand, as for ``plan_supply``.
        items: ``dim_items``.
        routings: ``fct_routings``.
        capacity: ``fct_capacity``.
        inventory_position: ``fct_inventory_position``.
        open_supply: ``fct_open_supply``.
        safety_stock: safety stock per series and month (None: none).
        bom_exploded: ``fct_bom_exploded`` (None or empty: no BOM).
        supplier_capacity: ``fct_supplier_capacity`` (None or empty: no supplier limit).
        **kwargs: ``plan_supply``'s keyword arguments (strategy, overtime_share, costs, …).

    Returns:
        The ``SupplyResult``; ``plan_materials`` holds the material plan (empty with no BOM),
        shortages caused by material are ``constraint_type = 'material'`` with
        ``component_item_id`` and ``supplier_id``, and ``stats`` counts the material LP.
    """
    materials = material_items(bom_exploded, plan_demand)
    if bom_exploded is None or bom_exploded.empty:
        result = plan_supply(
            plan_demand,
            items,
            routings,
            capacity,
            inventory_position,
            open_supply,
            safety_stock,
            **kwargs,
        )
        result.plan_materials = _empty_plan().plan_materials
        return result
    started = time.perf_counter()
    own_position = inventory_position[~inventory_position["item_id"].astype(str).isin(materials)]
    own_open = (
        open_supply[~open_supply["item_id"].astype(str).isin(materials)]
        if open_supply is not None
        else None
    )
    args = (plan_demand, items, routings, capacity, own_position, own_open, safety_stock)
    # what the work centers alone allow: the reference the material shortage is measured on
    first = plan_supply(*args, **kwargs)
    months = horizon_months(plan_demand)
    mat_args = (bom_exploded, supplier_capacity, items, inventory_position, open_supply, months)
    costs = kwargs.get("costs")
    material = plan_materials(first.plan_supply, *mat_args, costs=costs)
    result, cuts, passes = first, material.cuts, 1
    if not material.cuts.empty:
        # the materials cannot support the capacity plan: plan production, material
        # purchases and stock in one LP (build ahead where material can be bought ahead)
        network = material_network(first.plan_supply, *mat_args, costs=costs or SupplyCosts())
        if network is not None and network.material_item is not None:
            # what the aggregate LP keeps apart: series that need these materials
            network.scarce = np.isin(
                network.material_item, material.cuts["component_item_id"].astype(str).unique()
            )

        def what_materials_allow(rounded: pd.DataFrame) -> pd.DataFrame:
            # min lots are rounded up after the LP: keep what the materials allow of them
            kept = plan_materials(rounded, *mat_args, costs=costs).kept
            return kept.rename(columns={"kept_qty": "max_production_qty"})

        result = plan_supply(*args, materials=network, limit_rounded=what_materials_allow, **kwargs)
        shortfall = material.plan_materials
        material = plan_materials(
            result.plan_supply, *mat_args, costs=costs, requested=first.plan_supply
        )
        passes = 2
        # the shortage is what the suppliers could not deliver of what the capacity plan
        # needed (first material LP), not production the joint plan chose to move
        key = ["component_item_id", "location_id", "month"]
        first_short = shortfall.set_index(key)
        final = material.plan_materials.set_index(key)
        final["shortage_qty"] = first_short["shortage_qty"].reindex(final.index).fillna(0.0)
        final["binding_constraint"] = first_short["binding_constraint"].reindex(final.index)
        material.plan_materials = final.reset_index()[PLAN_MATERIALS_COLUMNS]
    _explain_material_shortages(result, cuts)
    result.plan_materials = material.plan_materials
    result.stats["material_lp_passes"] = passes
    result.stats["material_lp_variables"] = material.stats.get("variables", 0)
    result.stats["material_cut_qty"] = float(cuts["cut_qty"].sum()) if len(cuts) else 0.0
    # the whole supply plan with materials: capacity LP(s) and material LP(s)
    result.stats["with_materials_seconds"] = time.perf_counter() - started
    return result


def _explain_material_shortages(result, cuts: pd.DataFrame) -> None:
    """Shortages of a made item whose production was cut for material, up to that month."""
    shortages = result.shortages
    shortages["component_item_id"] = pd.Series([None] * len(shortages), dtype=object)
    shortages["supplier_id"] = pd.Series([None] * len(shortages), dtype=object)
    if cuts.empty or shortages.empty:
        return
    key = ["item_id", "location_id", "month"]
    left = shortages[key].reset_index().sort_values("month", kind="stable")
    right = cuts.rename(
        columns={"month": "cut_month", "binding_constraint": "cut_binding"}
    ).sort_values("cut_month", kind="stable")
    right["month"] = right["cut_month"]
    hit = pd.merge_asof(
        left.astype({"month": "datetime64[ns]"}),
        right.astype({"month": "datetime64[ns]"}),
        on="month",
        by=["item_id", "location_id"],
        direction="backward",
    ).set_index("index")
    hit = hit[hit["cut_binding"].notna()]
    hit = hit[~shortages.loc[hit.index, "constraint_type"].isin(["lead_time", "no_source"])]
    if hit.empty:
        return
    text = [
        f"{b} ({q:,.0f} units of {i} not made in {m:%Y-%m})"
        for b, q, i, m in zip(
            hit["cut_binding"], hit["cut_qty"], hit["item_id"], hit["cut_month"], strict=True
        )
    ]
    rows = hit.index
    shortages.loc[rows, "constraint_type"] = "material"
    shortages.loc[rows, "binding_constraint"] = text
    shortages.loc[rows, "component_item_id"] = hit["component_item_id"].to_numpy()
    shortages.loc[rows, "supplier_id"] = hit["supplier_id"].to_numpy()
    shortages.loc[rows, "work_center_id"] = None
    shortages.loc[rows, "shadow_price"] = np.nan
    inv = result.plan_inventory.drop(columns=["binding_constraint"])
    result.plan_inventory = inv.merge(shortages[[*key, "binding_constraint"]], on=key, how="left")
