"""Benchmark of the supply LP on a synthetic company (``python benchmarks/bench_supply.py``).

Builds ``N`` item × location series over 18 months (two plants with six work centers each,
a DC stocking the plants' items, two thirds of the items manufactured, seasonal demand,
capacity at ~95% of the average load with a 50% overhaul on one work center) and times
``plan_supply`` per strategy. ``--bom with`` adds a bill of material (every made item needs
two of 40 shared raw materials, a third of them through one of 50 shared sub-assemblies)
and supplier capacity (5% above the average requirement, a 60% dip of one supplier in month
3) and times ``materials.plan_supply_with_materials`` instead.

Usage:
    .venv/bin/python benchmarks/bench_supply.py --series 1000 10000 --strategy mixed --bom without with
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import safety_stock
from sop_pipeline.planning.materials import explode_bom, plan_supply_with_materials
from sop_pipeline.planning.supply import plan_supply


def make_company(n_series: int, months: int = 18, seed: int = 7) -> dict[str, pd.DataFrame]:
    """A synthetic company with ``n_series`` item × location series (two per item).

    Args:
        n_series: number of item × location series (rounded down to an even number).
        months: horizon length.
        seed: random seed.

    Returns:
        The inputs of ``plan_supply``: plan_demand, items, routings, capacity,
        inventory_position, open_supply.
    """
    rng = np.random.default_rng(seed)
    n_items = max(1, n_series // 2)
    horizon = pd.date_range("2027-01-01", periods=months, freq="MS")
    item_ids = [f"I{k:06d}" for k in range(n_items)]
    plant = rng.choice(["P1", "P2"], n_items)
    made = rng.random(n_items) < 2 / 3
    unit_cost = rng.lognormal(3.0, 0.6, n_items).round(2)
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "family": [f"F{k % 12:02d}" for k in range(n_items)],
            "unit_cost": unit_cost,
            "unit_price": (unit_cost * rng.uniform(1.3, 2.0, n_items)).round(2),
            "lead_time_days": np.where(
                made, rng.choice([14, 21, 45], n_items), rng.choice([20, 45, 60, 90], n_items)
            ),
            "min_lot_qty": rng.choice([0, 0, 10, 50], n_items).astype(float),
            "is_purchased": ~made,
        }
    )
    centers = [f"{p}-WC{k}" for p in ("P1", "P2") for k in range(6)]
    route_rows = []
    for k in np.flatnonzero(made):
        own = [c for c in centers if c.startswith(plant[k])]
        for wc in rng.choice(own, rng.integers(1, 3), replace=False):
            route_rows.append((item_ids[k], wc, round(float(rng.uniform(0.05, 0.5)), 3)))
    routings = pd.DataFrame(route_rows, columns=["item_id", "work_center_id", "hours_per_unit"])

    base = rng.lognormal(3.5, 1.0, n_series)
    phase = rng.uniform(0, 2 * np.pi, n_series)
    season = 1 + 0.35 * np.sin(2 * np.pi * np.arange(months)[None, :] / 12 + phase[:, None])
    qty = np.round(base[:, None] * season * rng.uniform(0.85, 1.15, (n_series, months)), 1)
    series_item = np.repeat(item_ids, 2)[:n_series]
    series_loc = np.array([p if j == 0 else "DC1" for p in plant for j in range(2)])[:n_series]
    plan_demand = pd.DataFrame(
        {
            "item_id": np.repeat(series_item, months),
            "location_id": np.repeat(series_loc, months),
            "month": np.tile(horizon, n_series),
            "consensus_qty": qty.reshape(-1),
        }
    )
    plan_demand["family"] = plan_demand["item_id"].map(items.set_index("item_id")["family"])
    plan_demand["stat_forecast_qty"] = plan_demand["consensus_qty"]
    plan_demand["stat_hi80_qty"] = plan_demand["consensus_qty"] * 1.25

    load = plan_demand.merge(routings, on="item_id")
    load["hours"] = load["consensus_qty"] * load["hours_per_unit"]
    avg = load.groupby("work_center_id")["hours"].sum() / months
    capacity = pd.DataFrame(
        [(wc, m, 0.95 * avg.get(wc, 100.0)) for wc in centers for m in horizon],
        columns=["work_center_id", "month", "available_hours"],
    )
    capacity["location_id"] = capacity["work_center_id"].str[:2]
    overhaul = (capacity["work_center_id"] == "P1-WC0") & (
        capacity["month"] == horizon[min(4, months - 1)]
    )
    capacity.loc[overhaul, "available_hours"] *= 0.5

    inventory_position = pd.DataFrame(
        {
            "item_id": series_item,
            "location_id": series_loc,
            "on_hand_qty": np.round(qty[:, 0] * rng.uniform(0.5, 1.5), 1),
        }
    )
    pick = rng.random(n_series) < 0.3
    open_supply = pd.DataFrame(
        {
            "supply_type": np.where(made[np.arange(n_series) // 2], "production", "purchase")[pick],
            "item_id": series_item[pick],
            "location_id": series_loc[pick],
            "due_month": horizon[rng.integers(0, 2, pick.sum())],
            "open_qty": np.round(qty[pick, 0] * 0.5, 1),
        }
    )
    return {
        "plan_demand": plan_demand,
        "items": items,
        "routings": routings,
        "capacity": capacity,
        "inventory_position": inventory_position,
        "open_supply": open_supply,
    }


def add_bom(data: dict[str, pd.DataFrame], seed: int = 11) -> dict[str, pd.DataFrame]:
    """The company's bill of material, raw materials, their stock and supplier capacity.

    Args:
        data: ``make_company``'s inputs (changed: materials join items and stock).
        seed: random seed.

    Returns:
        ``data`` plus bom_exploded and supplier_capacity (``plan_supply_with_materials``).
    """
    rng = np.random.default_rng(seed)
    items, demand = data["items"], data["plan_demand"]
    made = items.loc[~items["is_purchased"], "item_id"].to_numpy()
    raws = [f"RM{k:03d}" for k in range(40)]
    subs = [f"SA{k:03d}" for k in range(50)]
    lines = []
    for sub in subs:
        for raw in rng.choice(raws, 2, replace=False):
            lines.append((sub, raw, round(float(rng.uniform(0.5, 2.0)), 2), 0.02))
    for item in made:
        if rng.random() < 1 / 3:
            lines.append((item, str(rng.choice(subs)), 1.0, 0.0))
        for raw in rng.choice(raws, 2, replace=False):
            lines.append((item, raw, round(float(rng.uniform(0.2, 3.0)), 2), 0.0))
    bom = pd.DataFrame(
        lines, columns=["parent_item_id", "component_item_id", "qty_per", "scrap_pct"]
    ).drop_duplicates(["parent_item_id", "component_item_id"])
    extra = pd.DataFrame(
        {
            "item_id": subs + raws,
            "family": "MATERIALS",
            "unit_cost": 5.0,
            "unit_price": 5.0,
            "lead_time_days": [10] * len(subs) + [30] * len(raws),
            "min_lot_qty": 0.0,
            "is_purchased": [False] * len(subs) + [True] * len(raws),
        }
    )
    items = pd.concat([items, extra], ignore_index=True)
    months = pd.DatetimeIndex(sorted(demand["month"].unique()))
    exploded = explode_bom(bom, items, months[0], months[-1])
    leaves = exploded[exploded["is_leaf"]]
    need = demand.merge(leaves, left_on="item_id", right_on="top_item_id")
    need["qty"] = need["consensus_qty"] * need["qty_per_cumulative"]
    monthly = need.groupby("component_item_id")["qty"].sum() / len(months)
    by_loc = need.groupby(["component_item_id", "location_id"])["qty"].sum() / len(months)
    capacity = pd.DataFrame(
        [
            (f"SUP{k % 8}", raw, month, 1.05 * monthly.get(raw, 0.0), 30, 5.0)
            for k, raw in enumerate(raws)
            for month in months
        ],
        columns=["supplier_id", "item_id", "month", "max_qty", "lead_time_days", "unit_cost"],
    )
    dip = (capacity["supplier_id"] == "SUP0") & (
        capacity["month"] == months[min(3, len(months) - 1)]
    )
    capacity.loc[dip, "max_qty"] *= 0.4
    stock = (
        by_loc.rename("on_hand_qty").reset_index().rename(columns={"component_item_id": "item_id"})
    )
    return {
        **data,
        "items": items,
        "inventory_position": pd.concat([data["inventory_position"], stock], ignore_index=True),
        "bom_exploded": exploded,
        "supplier_capacity": capacity,
    }


def run(n_series: int, strategy: str, bom: bool = False) -> dict[str, float]:
    """Time one plan_supply run; returns the result's stats plus shortage figures."""
    data = make_company(n_series)
    if bom:
        data = add_bom(data)
    ss = safety_stock(data["plan_demand"], data["items"], service_level=0.95)
    started = time.perf_counter()
    if bom:
        result = plan_supply_with_materials(**data, safety_stock=ss, strategy=strategy)
    else:
        result = plan_supply(**data, safety_stock=ss, strategy=strategy)
    wall = time.perf_counter() - started
    inv = result.plan_inventory
    return {
        **result.stats,
        "wall_seconds": wall,
        "fill_rate": float(inv["served_qty"].sum() / inv["demand_qty"].sum()),
        "shortage_rows": int((inv["shortage_qty"] > 1e-6).sum()),
        "objective": result.objective["total"],
        "material_passes": result.stats.get("material_lp_passes", 0),
        "material_cut_qty": result.stats.get("material_cut_qty", 0.0),
    }


def main() -> None:
    """Run the benchmark from the command line and print one line per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--strategy", nargs="+", default=["mixed"])
    parser.add_argument("--bom", nargs="+", choices=["without", "with"], default=["without"])
    args = parser.parse_args()
    for strategy in args.strategy:
        for n in args.series:
            for variant in args.bom:
                s = run(n, strategy, bom=variant == "with")
                print(
                    f"{strategy:6s} bom={variant:7s} series={s['series']:>6} lps={s['lps']:>3} "
                    f"vars={s['variables']:>8} "
                    f"cons={s['constraints']:>8} build={s['build_seconds']:.2f}s "
                    f"solve={s['solve_seconds']:.2f}s total={s['wall_seconds']:.2f}s "
                    f"fill_rate={s['fill_rate']:.3f} shortage_rows={s['shortage_rows']} "
                    f"material_passes={s['material_passes']} "
                    f"material_cut={s['material_cut_qty']:.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
