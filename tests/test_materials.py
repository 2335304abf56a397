"""Bills of material in the supply plan: explosion, dependent demand, supplier capacity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sop_pipeline.planning.inventory import (
    check_demand_served,
    check_inventory_balance,
    safety_stock,
)
from sop_pipeline.planning.materials import (
    PLAN_MATERIALS_COLUMNS,
    explode_bom,
    leaf_requirements,
    plan_materials,
    plan_supply_with_materials,
)
from sop_pipeline.planning.supply import plan_supply

MONTHS = pd.date_range("2027-01-01", periods=3, freq="MS")


def _bom(*lines: tuple) -> pd.DataFrame:
    """(parent, component, qty_per[, scrap_pct[, valid_from[, valid_to]]]) per line."""
    rows = []
    for line in lines:
        parent, component, qty, *rest = line
        rest = [*rest, None, None, None][:3]
        rows.append((parent, component, qty, rest[0] or 0.0, rest[1], rest[2]))
    frame = pd.DataFrame(
        rows,
        columns=[
            "parent_item_id",
            "component_item_id",
            "qty_per",
            "scrap_pct",
            "valid_from",
            "valid_to",
        ],
    )
    frame["valid_from"] = pd.to_datetime(frame["valid_from"])
    frame["valid_to"] = pd.to_datetime(frame["valid_to"])
    return frame


def _items(**lead: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "item_id": item,
                "family": "FAM",
                "unit_cost": 10.0 if item.startswith("R") else 40.0,
                "unit_price": 20.0 if item.startswith("R") else 100.0,
                "lead_time_days": days,
                "min_lot_qty": 0.0,
            }
            for item, days in lead.items()
        ]
    )


# The explosion ------------------------------------------------------------------------
def test_explosion_multiplies_scrap_adds_lead_times_and_keeps_valid_paths():
    bom = _bom(
        ("A", "S", 2),
        ("S", "R", 3, 0.25),  # 3 / (1 - 0.25) = 4 per S
        ("A", "R", 1, 0, None, "2027-01-31"),
        ("A", "OLD", 1, 0, None, "2026-06-30"),  # ended before the horizon
        ("B", "S", 1, 0, "2027-02-01", None),
    )
    items = _items(A=40, B=10, S=20, R=30, OLD=5)
    out = explode_bom(bom, items, "2026-11-01", "2027-04-01")
    got = {
        (r.top_item_id, r.bom_path): (
            r.bom_level,
            r.qty_per_cumulative,
            r.lead_time_offset_days,
            r.lead_time_offset_months,
            r.is_leaf,
        )
        for r in out.itertuples()
    }
    assert got == {
        ("A", "A > S"): (1, 2.0, 40, 1, False),
        ("A", "A > S > R"): (2, 8.0, 60, 2, True),
        ("A", "A > R"): (1, 1.0, 40, 1, True),
        ("S", "S > R"): (1, 4.0, 20, 0, True),
        ("B", "B > S"): (1, 1.0, 10, 0, False),
        ("B", "B > S > R"): (2, 4.0, 30, 1, True),
    }
    path = out[out["bom_path"] == "B > S > R"].iloc[0]
    assert path["valid_from"] == pd.Timestamp("2027-02-01") and pd.isna(path["valid_to"])
    assert out[out["bom_path"] == "A > R"].iloc[0]["valid_to"] == pd.Timestamp("2027-01-31")


def test_leaf_requirements_apply_validity_per_production_month():
    bom = _bom(("A", "R", 1, 0, None, "2027-01-31"), ("A", "R2", 2, 0, "2027-02-01", None))
    exploded = explode_bom(bom, _items(A=0, R=0, R2=0), MONTHS[0], MONTHS[-1])
    reqs = leaf_requirements(exploded, MONTHS)
    by_month = reqs.groupby("month")["component_item_id"].apply(list).to_dict()
    assert by_month == {MONTHS[0]: ["R"], MONTHS[1]: ["R2"], MONTHS[2]: ["R2"]}


# The LP with a binding supplier ---------------------------------------------------------
def _company(capacity_r: list[float], *, strategy: str = "chase") -> dict:
    """A made at P1 (0.1 h on WC1, plenty of hours) needs 2 R; R comes from supplier S1."""
    demand = pd.DataFrame(
        {
            "item_id": "A",
            "location_id": "P1",
            "family": "FAM",
            "month": MONTHS,
            "consensus_qty": [100.0, 100.0, 100.0],
        }
    )
    items = _items(A=10, R=0)
    return {
        "plan_demand": demand,
        "items": items,
        "routings": pd.DataFrame(
            [("A", "WC1", 0.1)], columns=["item_id", "work_center_id", "hours_per_unit"]
        ),
        "capacity": pd.DataFrame(
            {"work_center_id": "WC1", "month": MONTHS, "available_hours": 1000.0}
        ),
        "inventory_position": pd.DataFrame(columns=["item_id", "location_id", "on_hand_qty"]),
        "open_supply": pd.DataFrame(
            columns=["supply_type", "item_id", "location_id", "due_month", "open_qty"]
        ),
        "safety_stock": None,
        "bom_exploded": explode_bom(_bom(("A", "R", 2)), items, MONTHS[0], MONTHS[-1]),
        "supplier_capacity": pd.DataFrame(
            {
                "supplier_id": "S1",
                "item_id": "R",
                "month": MONTHS,
                "max_qty": capacity_r,
                "lead_time_days": 0,
                "unit_cost": 10.0,
            }
        ),
        "strategy": strategy,
        "overtime_share": 0.0,
    }


def _series(frame: pd.DataFrame, col: str, item: str = "A") -> list[float]:
    key = "item_id" if "item_id" in frame else "component_item_id"
    return frame[frame[key] == item].sort_values("month")[col].tolist()


def test_supplier_dip_buys_ahead_then_cuts_the_parent_and_names_the_supplier():
    # A needs 2 R per unit, 200 R a month; S1 can deliver 250, 50, 200. Buying 50 ahead in
    # January covers half of February; 50 A cannot be made in February.
    result = plan_supply_with_materials(**_company([250.0, 50.0, 200.0]))
    assert _series(result.plan_supply, "planned_production_qty") == pytest.approx(
        [100.0, 50.0, 100.0], abs=1e-6
    )
    assert _series(result.plan_inventory, "shortage_qty") == pytest.approx(
        [0.0, 50.0, 0.0], abs=1e-6
    )
    short = result.shortages.iloc[0]
    assert (short["item_id"], short["month"], short["constraint_type"]) == (
        "A",
        MONTHS[1],
        "material",
    )
    assert (short["component_item_id"], short["supplier_id"]) == ("R", "S1")
    assert short["binding_constraint"].startswith(
        "material R short at P1 for 2027-02: supplier S1 capacity 50 in 2027-02 is fully booked"
    )
    mats = result.plan_materials
    assert list(mats.columns) == PLAN_MATERIALS_COLUMNS
    # dependent demand of the production the capacity LP wanted; shortage = what was not had
    assert _series(mats, "dependent_demand_qty", "R") == pytest.approx([200.0, 200.0, 200.0])
    assert _series(mats, "consumed_qty", "R") == pytest.approx([200.0, 100.0, 200.0])
    assert _series(mats, "planned_purchase_qty", "R") == pytest.approx([250.0, 50.0, 200.0])
    assert _series(mats, "supplier_capacity_qty", "R") == pytest.approx([250.0, 50.0, 200.0])
    assert _series(mats, "closing_qty", "R") == pytest.approx([50.0, 0.0, 0.0], abs=1e-6)
    assert _series(mats, "shortage_qty", "R") == pytest.approx([0.0, 100.0, 0.0], abs=1e-6)
    assert mats["binding_constraint"].notna().tolist() == [False, True, False]
    assert result.stats["material_lp_passes"] == 2
    # the plan still balances and serves what it says
    assert check_inventory_balance(result.plan_inventory) == []
    assert check_demand_served(result.plan_inventory) == []


def test_enough_supplier_capacity_changes_nothing():
    data = _company([500.0, 500.0, 500.0])
    result = plan_supply_with_materials(**data)
    assert _series(result.plan_supply, "planned_production_qty") == pytest.approx([100.0] * 3)
    assert result.shortages.empty
    assert result.stats["material_lp_passes"] == 1
    assert _series(result.plan_materials, "planned_purchase_qty", "R") == pytest.approx([200.0] * 3)


def test_material_lead_time_offset_moves_dependent_demand_earlier():
    # A takes 40 days to make: its material is needed a month before A is finished; the
    # material of January's production was due before the horizon (already there).
    items = _items(A=40, R=0)
    exploded = explode_bom(_bom(("A", "R", 2)), items, MONTHS[0], MONTHS[-1])
    production = pd.DataFrame(
        {
            "item_id": "A",
            "location_id": "P1",
            "month": MONTHS,
            "planned_production_qty": [10.0, 20.0, 30.0],
        }
    )
    plan = plan_materials(
        production,
        exploded,
        None,
        items,
        pd.DataFrame(columns=["item_id", "location_id", "on_hand_qty"]),
        None,
        MONTHS,
    ).plan_materials
    assert _series(plan, "dependent_demand_qty", "R") == pytest.approx([40.0, 60.0, 0.0])
    # no supplier row: bought without a limit (no capacity to show)
    assert plan["supplier_capacity_qty"].isna().all()
    assert plan["shortage_qty"].sum() == pytest.approx(0.0, abs=1e-6)


def test_without_a_bom_the_plan_is_exactly_the_capacity_lp():
    data = _company([0.0, 0.0, 0.0], strategy="mixed")
    data.pop("bom_exploded")
    data.pop("supplier_capacity")
    base = plan_supply(**data)
    for bom in (None, explode_bom(_bom(("A", "R", 2)).iloc[0:0], data["items"], *MONTHS[[0, -1]])):
        same = plan_supply_with_materials(**data, bom_exploded=bom, supplier_capacity=None)
        for name in ("plan_supply", "plan_inventory", "plan_capacity", "shortages"):
            pd.testing.assert_frame_equal(getattr(same, name), getattr(base, name))
        assert same.objective == base.objective
        assert same.plan_materials.empty


def test_no_supplier_capacity_means_nothing_made_and_every_month_explained():
    result = plan_supply_with_materials(**_company([0.0, 0.0, 0.0]))
    assert np.allclose(_series(result.plan_supply, "planned_production_qty"), 0.0)
    assert set(result.shortages["constraint_type"]) == {"material"}
    assert set(result.shortages["supplier_id"]) == {"S1"}
    mats = result.plan_materials
    assert _series(mats, "dependent_demand_qty", "R") == pytest.approx([200.0] * 3)
    assert _series(mats, "shortage_qty", "R") == pytest.approx([200.0] * 3)


# Exceptions, the pack, the blocking check, the supplier-delay scenario -------------------
def test_material_shortage_is_an_exception_and_a_pack_row_and_the_plan_checks_out():
    from sop_pipeline.planning.materials import check_materials, with_material_exceptions
    from sop_pipeline.report.pack import material_constraints_html

    result = plan_supply_with_materials(**_company([250.0, 50.0, 200.0]))
    mats = result.plan_materials
    assert check_materials(mats) == []
    tampered = mats.assign(planned_purchase_qty=mats["planned_purchase_qty"] * 2)
    problems = check_materials(tampered)
    assert any("does not balance" in p for p in problems)
    assert any("exceed its supplier capacity" in p for p in problems)

    exceptions = with_material_exceptions(pd.DataFrame(), mats)
    row = exceptions.iloc[0]
    assert len(exceptions) == 1
    assert (row["exception_type"], row["severity"], row["scope_id"], row["month"]) == (
        "material_short",
        "high",
        "R@P1",
        MONTHS[1],
    )
    assert row["reason"].startswith(
        "Material short: R at P1 misses 100 units (50% of the 200 production needs) for 2027-02"
    )
    assert "supplier S1 capacity 50 in 2027-02 is fully booked" in row["binding_constraint"]

    html = material_constraints_html(mats)
    assert "Top material constraints" in html
    assert "<td>R</td><td>P1</td>" in html and "supplier S1 capacity 50 in 2027-02" in html
    assert material_constraints_html(mats.iloc[0:0]) == ""


def test_supplier_delay_scenario_loses_the_suppliers_first_months():
    from sop_pipeline.planning.scenarios import ScenarioInputs, parse_levers, run_scenario

    data = _company([250.0, 50.0, 200.0])
    inputs = ScenarioInputs(
        plan_demand=data["plan_demand"].assign(
            consensus_revenue=10_000.0, stat_forecast_qty=100.0, stat_hi80_qty=100.0
        ),
        items=data["items"].assign(supplier_id=None),
        routings=data["routings"],
        capacity=data["capacity"],
        inventory_position=data["inventory_position"],
        open_supply=data["open_supply"].assign(supplier_id=None),
        aop=pd.DataFrame(columns=["family", "month", "revenue_target"]),
        strategy="chase",
        overtime_share=0.0,
        bom_exploded=data["bom_exploded"],
        supplier_capacity=data["supplier_capacity"],
    )
    base = run_scenario(inputs)
    assert _series(base.supply.plan_supply, "planned_production_qty") == pytest.approx(
        [100.0, 50.0, 100.0], abs=1e-6
    )
    late = run_scenario(
        inputs, parse_levers([{"type": "supplier_delay", "supplier_id": "S1", "days": 30}])
    )
    # 30 days late: nothing from S1 in January; February's 50 R make 25 A
    assert _series(late.supply.plan_supply, "planned_production_qty") == pytest.approx(
        [0.0, 25.0, 100.0], abs=1e-6
    )
    january = late.supply.shortages.sort_values("month").iloc[0]
    assert january["constraint_type"] == "material" and january["supplier_id"] == "S1"
    assert "supplier S1 lead time 30 days" in january["binding_constraint"]
    # the base inputs are untouched
    assert inputs.supplier_capacity["lead_time_days"].tolist() == [0, 0, 0]


def test_a_parent_cut_for_one_material_is_not_a_shortage_of_its_other_materials():
    data = _company([250.0, 50.0, 200.0])
    data["items"] = _items(A=10, R=0, F=0)
    data["bom_exploded"] = explode_bom(
        _bom(("A", "R", 2), ("A", "F", 1)), data["items"], MONTHS[0], MONTHS[-1]
    )
    result = plan_supply_with_materials(**data)
    mats = result.plan_materials
    assert _series(mats, "shortage_qty", "R") == pytest.approx([0.0, 100.0, 0.0], abs=1e-6)
    # F could be bought: February's cut uses less F, but F is not short
    assert _series(mats, "shortage_qty", "F") == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert _series(mats, "consumed_qty", "F") == pytest.approx([100.0, 50.0, 100.0], abs=1e-6)


# Capacity and materials in one LP -------------------------------------------------------
def test_a_backlog_is_caught_up_when_the_material_returns():
    # S1 delivers 200, 0, 600 R: February's 100 A cannot be made. The work center could
    # make 200 A in March; planned in passes (capacity LP, material LP, capacity LP bounded
    # by the first plan) March stayed at 100 and the backlog stayed open at the horizon end.
    data = _company([200.0, 0.0, 600.0], strategy="mixed")
    result = plan_supply_with_materials(**data, unmet_demand="backlog")
    assert _series(result.plan_supply, "planned_production_qty") == pytest.approx(
        [100.0, 0.0, 200.0], abs=1e-6
    )
    assert _series(result.plan_inventory, "shortage_qty") == pytest.approx(
        [0.0, 100.0, 0.0], abs=1e-6
    )
    mats = result.plan_materials
    # the joint plan buys what it makes, and the shortage is February's material
    assert _series(mats, "consumed_qty", "R") == pytest.approx([200.0, 0.0, 400.0], abs=1e-6)
    assert _series(mats, "shortage_qty", "R") == pytest.approx([0.0, 200.0, 0.0], abs=1e-6)
    assert result.shortages.iloc[0]["constraint_type"] == "material"
    assert result.objective["material_holding_cost"] >= 0.0
    assert check_inventory_balance(result.plan_inventory) == []


def _bench_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_supply.py"
    spec = importlib.util.spec_from_file_location("bench_supply", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outcome(data: dict, ss: pd.DataFrame, price: pd.Series, **kwargs) -> dict[str, float]:
    result = plan_supply_with_materials(**data, safety_stock=ss, strategy="mixed", **kwargs)
    inv = result.plan_inventory
    assert result.plan_materials["shortage_qty"].sum() > 0  # the materials do bind
    return {
        "gap": float(inv["shortage_qty"].sum()),
        "served": float(inv["served_qty"].sum()),
        "revenue": float((inv["served_qty"] * inv["item_id"].map(price)).sum()),
    }


@pytest.mark.parametrize("lever", ["capacity_loss", "supplier_delay"])
def test_a_capacity_loss_or_supplier_delay_never_improves_a_plan_with_a_bom(lever):
    # A seeded synthetic company with a BOM (60 series, shared raw materials, a supplier
    # dip). Planned in passes, losing 40% of P2-WC0 in months 3-6 *lowered* the gap
    # (3,044 against 3,392 units) and raised revenue: the pass-wise base plan paid for
    # material cuts it could not re-time. Planned jointly, a loss can only cost.
    bench = _bench_module()
    data = bench.add_bom(bench.make_company(60, seed=8), seed=12)
    ss = safety_stock(data["plan_demand"], data["items"], service_level=0.95)
    price = data["items"].set_index("item_id")["unit_price"]
    base = _outcome(data, ss, price, unmet_demand="lost_sales")
    months = sorted(data["plan_demand"]["month"].unique())
    if lever == "capacity_loss":
        cap = data["capacity"].copy()
        hit = (cap["work_center_id"] == "P2-WC0") & cap["month"].isin(months[2:6])
        cap.loc[hit, "available_hours"] *= 0.6
        changed = {**data, "capacity": cap}
    else:
        sc = data["supplier_capacity"].copy()
        sc.loc[sc["supplier_id"] == "SUP1", "lead_time_days"] += 60
        changed = {**data, "supplier_capacity": sc}
    worse = _outcome(changed, ss, price, unmet_demand="lost_sales")
    assert worse["gap"] >= base["gap"] - 1e-6
    assert worse["served"] <= base["served"] + 1e-6
    assert worse["revenue"] <= base["revenue"] + 1e-6


def test_an_aggregated_plan_rations_only_the_items_that_need_the_scarce_material():
    # finding (demo 2026-11, 541 of 639 series planned in aggregate): a family group's unit
    # used its members' materials in their mix, so one scarce hose material rationed every
    # hose of the group — Σ backlog 91,623 units against ~15,500 planned item by item, with
    # the extruder idle. A and B share WC1 (one component, aggregated here); only A needs R,
    # whose supplier delivers 50 a month (25 A); B needs Q, which is plentiful.
    data = _company([50.0, 50.0, 50.0])
    items = pd.concat([_items(A=10, B=10, R=0, Q=0)], ignore_index=True)
    demand = pd.concat(
        [data["plan_demand"], data["plan_demand"].assign(item_id="B")], ignore_index=True
    )
    supplier = data["supplier_capacity"]
    data.update(
        plan_demand=demand,
        items=items,
        routings=pd.DataFrame(
            [("A", "WC1", 0.1), ("B", "WC1", 0.1)],
            columns=["item_id", "work_center_id", "hours_per_unit"],
        ),
        bom_exploded=explode_bom(_bom(("A", "R", 2), ("B", "Q", 1)), items, MONTHS[0], MONTHS[-1]),
        supplier_capacity=pd.concat(
            [supplier, supplier.assign(supplier_id="S2", item_id="Q", max_qty=1000.0)],
            ignore_index=True,
        ),
    )
    exact = plan_supply_with_materials(**data)
    agg = plan_supply_with_materials(**data, item_level_max_series=1)
    assert exact.stats["aggregated_series"] == 0 and agg.stats["aggregated_series"] == 2
    for result in (exact, agg):
        inv = result.plan_inventory
        served = inv.groupby("item_id")["served_qty"].sum()
        assert served["B"] == pytest.approx(300.0, abs=1e-6)  # Q is plentiful: B is all made
        assert served["A"] == pytest.approx(75.0, abs=1e-6)  # 50 R a month make 25 A
        assert check_inventory_balance(inv) == []
