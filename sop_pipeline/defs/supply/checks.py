"""The supply plan's blocking checks: inventory balance, capacity, non-negative quantities, materials.

``supply_plan`` declares :data:`SUPPLY_CHECKS` and yields :func:`supply_check_results` after its
outputs; the checks themselves are the planning functions' (``planning/inventory.py``,
``planning/capacity.py``, ``planning/materials/checks.py``).
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd


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


def supply_check_results(
    result, demand: pd.DataFrame, overtime_share: float
) -> Iterator[dg.AssetCheckResult]:
    """The result of every check of :data:`SUPPLY_CHECKS` on a ``SupplyResult``.

    Args:
        result: the supply review's ``SupplyResult`` (``plan_supply_review``).
        demand: the consensus demand it was planned for.
        overtime_share: the overtime allowed per work center and month.
    """
    from sop_pipeline.planning.capacity import check_capacity
    from sop_pipeline.planning.inventory import (
        check_demand_served,
        check_inventory_balance,
        check_non_negative,
    )
    from sop_pipeline.planning.materials import check_materials

    inv = result.plan_inventory
    yield _check_result(
        "materials_balance_and_supplier_capacity",
        "plan_materials",
        check_materials(result.plan_materials),
    )
    yield _check_result("inventory_balance_closes", "plan_inventory", check_inventory_balance(inv))
    yield _check_result(
        "inventory_non_negative", "plan_inventory", check_non_negative(inv, name="plan_inventory")
    )
    yield _check_result(
        "demand_served_or_short", "plan_inventory", check_demand_served(inv, demand)
    )
    yield _check_result(
        "hours_within_capacity",
        "plan_capacity",
        check_capacity(result.plan_capacity, overtime_share),
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
