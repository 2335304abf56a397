"""Scenario levers: parse them, check what they name, apply them to a copy of the inputs.

The schema of a lever (types, fields, months, pct) is ``core.scenario_schema``, shared with
ingest; here a parsed lever meets the plan's items, work centers and suppliers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from sop_pipeline.core import scenario_schema
from sop_pipeline.core.scenario_schema import Lever, ScenarioError
from sop_pipeline.planning.inventory import (
    DAYS_PER_LEAD_TIME_MONTH,
    as_month_start,
    horizon_months,
    require_columns,
)
from sop_pipeline.planning.scenarios.inputs import ScenarioInputs


# Parsing (the schema is core.scenario_schema, shared with ingest) ---------------------
def parse_levers(
    levers_json: str | Sequence[Mapping[str, Any]],
    *,
    scenario: str = "",
    inputs: ScenarioInputs | None = None,
) -> list[Lever]:
    """Parse and validate the levers of one scenario (``core.scenario_schema.parse_levers``).

    Args:
        levers_json: the ``levers`` list of ``scenarios.yaml`` or its JSON text
            (``raw.scenarios.levers_json``).
        scenario: scenario name, used in error messages.
        inputs: when given, every family, item, work center and supplier a lever names
            must exist in them (see :func:`check_references`).

    Returns:
        The levers, in file order.

    Raises:
        ScenarioError: the file's schema is broken (an unknown type or field, a bad month /
            number) or, with ``inputs``, a family / work center / supplier is unknown; the
            message names the scenario and the lever.
    """
    levers = scenario_schema.parse_levers(levers_json, scenario=scenario)
    if inputs is not None:
        check_references(levers, inputs)
    return levers


def _known(values: Iterable[Any]) -> set[str]:
    """Distinct non-null values as text (unique first: columns have 100,000s of rows)."""
    return {str(v) for v in pd.unique(pd.Series(values, dtype=object).dropna())}


def _suggest(known: set[str]) -> str:
    shown = sorted(known)
    more = f" (+{len(shown) - 12} more)" if len(shown) > 12 else ""
    return ", ".join(shown[:12]) + more if shown else "none"


def check_references(levers: Sequence[Lever], inputs: ScenarioInputs) -> None:
    """Every family, item, work center and supplier a lever names exists in the inputs.

    Args:
        levers: parsed levers.
        inputs: the base plan's inputs.

    Raises:
        ScenarioError: naming the scenario, the lever, the unknown value and the known ones.
    """
    families = _known(inputs.items["family"]) | _known(inputs.plan_demand.get("family", []))
    item_ids = _known(inputs.items["item_id"])
    centers = _known(inputs.capacity["work_center_id"]) | _known(inputs.routings["work_center_id"])
    for lever in levers:
        if lever.family is not None and lever.family not in families:
            raise ScenarioError(
                f"{lever.where}: family {lever.family!r} is not in dim_items; known families: "
                f"{_suggest(families)}."
            )
        if lever.item_id is not None and lever.item_id not in item_ids:
            raise ScenarioError(
                f"{lever.where}: item_id {lever.item_id!r} is not in dim_items; fix the scenario."
            )
        if lever.work_center_id is not None and lever.work_center_id not in centers:
            raise ScenarioError(
                f"{lever.where}: work center {lever.work_center_id!r} is not in fct_capacity or "
                f"fct_routings; known work centers: {_suggest(centers)}."
            )
        if lever.supplier_id is not None:
            for frame, name in (
                (inputs.items, "dim_items"),
                (inputs.open_supply, "fct_open_supply"),
            ):
                if "supplier_id" not in frame:
                    raise ScenarioError(
                        f"{lever.where}: {name} has no supplier_id column; rebuild the marts "
                        "(dbt build) with this version of the project."
                    )
            suppliers = _known(inputs.items["supplier_id"]) | _known(
                inputs.open_supply["supplier_id"]
            )
            if "supplier_id" in inputs.supplier_capacity:
                suppliers |= _known(inputs.supplier_capacity["supplier_id"])
            if lever.supplier_id not in suppliers:
                raise ScenarioError(
                    f"{lever.where}: supplier {lever.supplier_id!r} is neither the main supplier "
                    f"of an item nor on an open purchase order; known suppliers: "
                    f"{_suggest(suppliers)}."
                )


def _check_inputs(inputs: ScenarioInputs) -> None:
    require_columns(inputs.plan_demand, "plan_demand", ["item_id", "month", "consensus_qty"])
    require_columns(inputs.plan_demand, "plan_demand", ["consensus_revenue"])
    require_columns(inputs.items, "items", ["item_id", "family", "unit_price", "lead_time_days"])
    require_columns(inputs.capacity, "capacity", ["work_center_id", "month", "available_hours"])
    require_columns(inputs.open_supply, "open_supply", ["item_id", "due_month", "open_qty"])


# Levers -----------------------------------------------------------------------------------
def _in_months(months: pd.Series, lever: Lever) -> pd.Series:
    if lever.first_month is None:
        return pd.Series(True, index=months.index)
    m = as_month_start(months)
    return (m >= lever.first_month) & (m <= lever.last_month)


def _scope(frame: pd.DataFrame, lever: Lever, items: pd.DataFrame) -> pd.Series:
    """Rows of ``frame`` (with item_id, maybe family) in the lever's family / item."""
    ids = frame["item_id"].astype(str)
    if lever.item_id is not None:
        return ids == lever.item_id
    if "family" in frame:
        family = frame["family"].astype(str)
    else:
        family = ids.map(
            items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["family"]
        )
    return family == lever.family


def _note_if_outside(inputs: ScenarioInputs, lever: Lever, hits: int, what: str) -> ScenarioInputs:
    if hits:
        return inputs
    months = horizon_months(inputs.plan_demand)
    horizon = f"{months[0]:%Y-%m}..{months[-1]:%Y-%m}" if len(months) else "(empty)"
    note = (
        f"{lever.where}: no {what} in {lever.months_text} (plan horizon {horizon}); "
        "the lever changes nothing."
    )
    return dataclasses.replace(inputs, notes=(*inputs.notes, note))


def _demand_change(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    demand = inputs.plan_demand
    rows = _scope(demand, lever, inputs.items) & _in_months(demand["month"], lever)
    factor = 1.0 + float(lever.pct)
    added = demand.loc[rows, "consensus_qty"] * lever.pct
    demand.loc[rows, "consensus_qty"] = demand.loc[rows, "consensus_qty"] * factor
    demand.loc[rows, "consensus_revenue"] = demand.loc[rows, "consensus_revenue"] * factor
    # book the change as an override so consensus = stat + crm + override (+ clipped) holds
    if "override_qty" in demand:
        demand.loc[rows, "override_qty"] = demand.loc[rows, "override_qty"] + added
    return _note_if_outside(inputs, lever, int(rows.sum()), "consensus rows of that scope")


def _capacity_loss(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    cap = inputs.capacity
    rows = (cap["work_center_id"].astype(str) == lever.work_center_id) & _in_months(
        cap["month"], lever
    )
    cap.loc[rows, "available_hours"] = cap.loc[rows, "available_hours"] * (1.0 - float(lever.pct))
    return _note_if_outside(inputs, lever, int(rows.sum()), "capacity rows of that work center")


def _supplier_delay(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    items, opens = inputs.items, inputs.open_supply
    own = items["supplier_id"].astype("string") == lever.supplier_id
    items["lead_time_days"] = pd.to_numeric(items["lead_time_days"], errors="coerce").astype(float)
    # an item without a lead time has no supplier in the LP; a delay does not give it one
    items.loc[own.fillna(False), "lead_time_days"] += lever.days
    sc = inputs.supplier_capacity
    if "supplier_id" in sc and len(sc):
        # the supplier's materials arrive later: the first months' capacity is lost
        mine = (sc["supplier_id"].astype("string") == lever.supplier_id).fillna(False)
        lead = pd.to_numeric(sc["lead_time_days"], errors="coerce").astype(float)
        item_lead = pd.to_numeric(
            sc["item_id"].map(
                items.drop_duplicates("item_id").set_index("item_id")["lead_time_days"]
            ),
            errors="coerce",
        )
        sc["lead_time_days"] = lead.where(~mine, lead.fillna(item_lead).fillna(0.0) + lever.days)
    shift = math.ceil(lever.days / DAYS_PER_LEAD_TIME_MONTH - 1e-9)
    late = (opens["supplier_id"].astype("string") == lever.supplier_id).fillna(False)
    if shift and late.any():
        due = as_month_start(opens["due_month"])
        due.loc[late] = due.loc[late] + pd.DateOffset(months=shift)
        horizon_end = horizon_months(inputs.plan_demand)[-1]
        opens["due_month"] = due
        # pushed past the horizon: no longer a receipt of this plan (the LP ignores them too)
        keep = ~late | (due <= horizon_end)
        inputs = dataclasses.replace(inputs, open_supply=opens[keep].reset_index(drop=True))
    return inputs


def _price_change(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    factor = 1.0 + float(lever.pct)
    items = inputs.items
    rows = _scope(items, lever, items)
    items.loc[rows, "unit_price"] = pd.to_numeric(items.loc[rows, "unit_price"]) * factor
    demand = inputs.plan_demand
    in_scope = _scope(demand, lever, items)
    demand.loc[in_scope, "consensus_revenue"] = demand.loc[in_scope, "consensus_revenue"] * factor
    if lever.elasticity is None:
        note = (
            f"{lever.where}: price elasticity is not modelled, demand volume is unchanged (the "
            "revenue change is price only); add elasticity (e.g. -1.2) to the lever for a "
            "volume response."
        )
        return dataclasses.replace(inputs, notes=(*inputs.notes, note))
    volume = factor**lever.elasticity
    added = demand.loc[in_scope, "consensus_qty"] * (volume - 1.0)
    demand.loc[in_scope, "consensus_qty"] = demand.loc[in_scope, "consensus_qty"] * volume
    demand.loc[in_scope, "consensus_revenue"] = demand.loc[in_scope, "consensus_revenue"] * volume
    if "override_qty" in demand:
        demand.loc[in_scope, "override_qty"] = demand.loc[in_scope, "override_qty"] + added
    return inputs


def _strategy(inputs: ScenarioInputs, lever: Lever) -> ScenarioInputs:
    return dataclasses.replace(inputs, strategy=str(lever.value))


_APPLY = {
    "demand_change": _demand_change,
    "capacity_loss": _capacity_loss,
    "supplier_delay": _supplier_delay,
    "price_change": _price_change,
    "strategy": _strategy,
}


def apply_levers(inputs: ScenarioInputs, levers: Sequence[Lever]) -> ScenarioInputs:
    """The inputs with the levers applied, in order (levers of one kind compound).

    Pure: the returned inputs hold new frames; ``inputs`` is never changed.

    Args:
        inputs: the base plan's inputs.
        levers: parsed levers (:func:`parse_levers`).

    Returns:
        New inputs; ``notes`` lists levers that changed nothing (e.g. months outside the
        horizon).

    Raises:
        ScenarioError: a lever names a family, item, work center or supplier the inputs do
            not have.
    """
    _check_inputs(inputs)
    check_references(levers, inputs)
    out = inputs.copy()
    for lever in levers:
        out = _APPLY[lever.type](out, lever)
    return out


def lever_kinds(levers: Sequence[Lever]) -> str:
    """What a scenario's levers do, for the gate's monotonicity check (``lever_kinds``).

    capacity_loss, supplier_delay, demand_up / demand_down, price_up / price_down,
    strategy; comma-separated, sorted.
    """
    kinds = set()
    for lever in levers:
        if lever.type in ("demand_change", "price_change"):
            word = "demand" if lever.type == "demand_change" else "price"
            kinds.add(f"{word}_{'up' if (lever.pct or 0.0) >= 0 else 'down'}")
        elif lever.type == "capacity_loss" and not lever.pct:
            continue  # a 0% loss changes nothing
        else:
            kinds.add(lever.type)
    return ",".join(sorted(kinds))
