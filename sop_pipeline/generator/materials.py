"""The demo company's bills of material, raw materials and supplier capacity.

Every made family gets a two-level BOM: each made item needs one of its family's two
sub-assemblies (shared by the family's items) and one raw material directly; each
sub-assembly needs two raw materials, with a little scrap. The raw materials come from a
pool shared across families and are bought from two material suppliers. ``SUP-RM1``
delivers copper wire, whose capacity is about what production needs except for four
months early in the latest plan's horizon (a smelter outage, 10% of normal): the demo plan shows a
real material constraint there. Materials keep about ten weeks of stock at every location
that makes something from them.

Drawn from its own random stream (``seed`` plus a fixed tag), so the rest of the demo
company is byte-identical with or without it; the same seed gives the same files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sop_pipeline.generator.catalog import FAMILIES, LOCATIONS
from sop_pipeline.generator.common import _dates, _dec, _ints, _strs, _table, _take

#: The random stream of this module: ``default_rng([seed, STREAM_TAG])``.
STREAM_TAG = 16
#: (item_id, description, uom, unit cost USD, supplier index, lead time days)
RAW_MATERIALS: tuple[tuple[str, str, str, float, int, int], ...] = (
    ("RM-1001", "Copper winding wire", "KG", 11.5, 0, 30),
    ("RM-1002", "Cast iron housing blank", "EA", 24.0, 1, 45),
    ("RM-1003", "Stainless steel bar", "KG", 6.2, 1, 30),
    ("RM-1004", "Ball bearing set", "SET", 8.9, 1, 20),
    ("RM-1005", "Printed circuit board", "EA", 14.0, 1, 40),
    ("RM-1006", "Engineering resin", "KG", 3.4, 1, 25),
    ("RM-1007", "EPDM rubber compound", "KG", 2.8, 1, 25),
    ("RM-1008", "Fastener kit", "SET", 1.6, 1, 15),
)
SUPPLIERS = ("SUP-RM1", "SUP-RM2")
#: The material with the capacity dip and the dip (months after the last extract month).
DIP_MATERIAL = 0
DIP_MONTHS = (3, 4, 5, 6)
DIP_SHARE = 0.1
#: Normal supplier capacity as a multiple of the expected monthly requirement.
CAPACITY_HEADROOM = (1.0, 2.5)
#: Months of expected use held in stock: the dip material, the others.
STOCK_MONTHS = (1.2, 2.5)
MATERIALS_FAMILY = "materials"
ASSEMBLIES_FAMILY = "assemblies"


@dataclass
class DemoMaterials:
    """What the month loop of the generator writes.

    Attributes:
        items: item rows of the sub-assemblies and raw materials (items contract).
        bom: the BOM (one snapshot, the same every month).
        requirement: raw material × location × month expected use (timeline months).
        supplier_capacity_max: raw material × timeline month capacity of its supplier.
        lead_time: raw material lead time in days.
        bom_parent: item index of each BOM line's parent (−1: a sub-assembly, always listed).
    """

    items: pa.Table
    bom: pa.Table
    requirement: np.ndarray
    supplier_capacity_max: np.ndarray
    lead_time: np.ndarray
    bom_parent: np.ndarray


def build_materials(seed: int, items, series, cap, tl) -> DemoMaterials:
    """Sub-assemblies, raw materials, the BOM and the supplier capacity of the demo.

    Args:
        seed: the generator's seed.
        items: the generator's ``_Items``.
        series: the generator's ``_Series`` (expected demand per series and month).
        cap: the generator's ``_Capacity`` (which items have a routing).
        tl: the generator's ``_Timeline``.

    Returns:
        The materials of the demo company.
    """
    rng = np.random.default_rng([seed, STREAM_TAG])
    made = np.zeros(items.n, dtype=bool)
    made[np.unique(cap.routing_item)] = True
    n_raw = len(RAW_MATERIALS)
    sub_ids, sub_desc, sub_lead, lines, parent_index = [], [], [], [], []
    # qty of each raw material per unit of each item (for the requirement)
    per_item = np.zeros((items.n, n_raw))
    for f_idx, family in enumerate(FAMILIES):
        members = np.flatnonzero(made & (items.fam == f_idx))
        if not len(members):
            continue
        subs = []
        for k in (1, 2):
            sub = f"SA-{family.code}-{k}"
            others = np.delete(np.arange(n_raw), DIP_MATERIAL)
            raws = rng.choice(others, size=2, replace=False)
            if k == 1 and family.plant == 0:
                raws[0] = DIP_MATERIAL  # the East plant's first assemblies are wound with copper
            qty = np.round(rng.uniform(0.5, 3.0, 2), 2)
            scrap = np.round(rng.uniform(0.0, 0.05, 2), 3)
            sub_ids.append(sub)
            sub_desc.append(f"{family.name.capitalize()} core assembly {k}")
            sub_lead.append(int(rng.integers(5, 15)))
            subs.append((sub, raws, qty / (1 - scrap)))
            lines += [
                (sub, RAW_MATERIALS[r][0], q, s) for r, q, s in zip(raws, qty, scrap, strict=True)
            ]
            parent_index += [-1, -1]
        for j, item in enumerate(members):
            sub, raws, per_sub = subs[j % 2]
            direct = int(rng.integers(0, n_raw))
            qty = float(np.round(rng.uniform(0.2, 1.5), 2))
            lines += [
                (items.ids[item], sub, 1.0, 0.0),
                (items.ids[item], RAW_MATERIALS[direct][0], qty, 0.0),
            ]
            parent_index += [item, item]
            per_item[item, raws] += per_sub
            per_item[item, direct] += qty

    locs = len(LOCATIONS)
    requirement = np.zeros((n_raw, locs, tl.n))
    use = per_item[series.item]  # series × raw
    for loc in range(locs):
        at = series.loc == loc
        requirement[:, loc, :] = use[at].T @ series.expected[at, : tl.n]
    total = requirement.sum(axis=1)  # raw × month
    headroom = np.where(
        np.arange(n_raw) == DIP_MATERIAL,
        CAPACITY_HEADROOM[0],
        CAPACITY_HEADROOM[1],
    )
    smooth = np.maximum.accumulate(np.maximum(total, 1.0), axis=1)
    capacity = np.ceil(smooth * headroom[:, None] / 10.0) * 10.0
    for m in DIP_MONTHS:
        if tl.h1 + m < tl.n:
            capacity[DIP_MATERIAL, tl.h1 + m] = (
                np.ceil(capacity[DIP_MATERIAL, tl.h1 + m] * DIP_SHARE / 10.0) * 10.0
            )

    n_sub = len(sub_ids)
    ids = sub_ids + [r[0] for r in RAW_MATERIALS]
    cost = np.concatenate([np.round(rng.uniform(30, 90, n_sub), 2), [r[3] for r in RAW_MATERIALS]])
    lead = np.array(sub_lead + [r[5] for r in RAW_MATERIALS], dtype=np.int64)
    n = len(ids)
    launch = np.full(n, np.datetime64(tl.base, "D") - np.timedelta64(800, "D"))
    item_table = _table(
        "items",
        {
            "item_id": _strs(ids),
            "description": _strs(sub_desc + [r[1] for r in RAW_MATERIALS]),
            "family": _strs([ASSEMBLIES_FAMILY] * n_sub + [MATERIALS_FAMILY] * n_raw),
            "category": _strs(["sub-assembly"] * n_sub + ["raw material"] * n_raw),
            "uom": _strs(["EA"] * n_sub + [r[2] for r in RAW_MATERIALS]),
            "unit_cost": _dec(cost, 2),
            "unit_price": _dec(cost, 2),
            "currency": _strs(["USD"] * n),
            "lifecycle_status": _strs(["active"] * n),
            "launch_date": _dates(launch),
            "eol_date": _dates(np.full(n, np.datetime64("NaT")), np.ones(n, dtype=bool)),
            "lead_time_days": _ints(lead),
            "min_lot_qty": _ints(np.zeros(n)),
        },
    )
    parent, component, qty_per, scrap = zip(*lines, strict=True)
    bom = _table(
        "bom",
        {
            "parent_item_id": _strs(list(parent)),
            "component_item_id": _strs(list(component)),
            "qty_per": _dec(np.array(qty_per), 4),
            "scrap_pct": _dec(np.array(scrap), 4),
            "valid_from": _dates(
                np.full(len(lines), np.datetime64("NaT")), np.ones(len(lines), bool)
            ),
            "valid_to": _dates(
                np.full(len(lines), np.datetime64("NaT")), np.ones(len(lines), bool)
            ),
        },
    )
    return DemoMaterials(
        items=item_table,
        bom=bom,
        requirement=requirement,
        supplier_capacity_max=capacity,
        lead_time=np.array([r[5] for r in RAW_MATERIALS], dtype=np.int64),
        bom_parent=np.array(parent_index, dtype=np.int64),
    )


def bom_snapshot(mat: DemoMaterials, listed: np.ndarray) -> pa.Table:
    """The bom extract of a month: the lines of the items already in the item master."""
    keep = (mat.bom_parent < 0) | listed[np.maximum(mat.bom_parent, 0)]
    return mat.bom.filter(pa.array(keep))


def supplier_capacity_snapshot(mat: DemoMaterials, t: int, horizon: int, tl) -> pa.Table:
    """The supplier_capacity extract of month ``t``: the next ``horizon`` months."""
    months = np.arange(t + 1, min(t + horizon, tl.n - 1) + 1)
    n_raw = len(RAW_MATERIALS)
    raw = np.repeat(np.arange(n_raw), len(months))
    month = np.tile(months, n_raw)
    supplier = np.array([RAW_MATERIALS[r][4] for r in raw], dtype=np.int64)
    return _table(
        "supplier_capacity",
        {
            "supplier_id": _take(list(SUPPLIERS), supplier),
            "item_id": _take([r[0] for r in RAW_MATERIALS], raw),
            "family": pa.nulls(len(raw), pa.string()),
            "month": _take(tl.keys, month),
            "max_qty": _dec(mat.supplier_capacity_max[raw, month], 0),
            "lead_time_days": _ints(mat.lead_time[raw]),
            "unit_cost": _dec(np.array([RAW_MATERIALS[r][3] for r in raw]), 2),
        },
    )


def material_inventory(mat: DemoMaterials, t: int, tl) -> pa.Table:
    """Raw material stock at the close of month ``t``: ~ten weeks of the coming use."""
    ahead = (
        mat.requirement[:, :, t + 1 : t + 4].mean(axis=2)
        if t + 1 < tl.n
        else mat.requirement[:, :, t]
    )
    months = np.where(np.arange(len(RAW_MATERIALS)) == DIP_MATERIAL, *STOCK_MONTHS)
    qty = np.round(ahead * months[:, None])
    raw, loc = np.nonzero(qty > 0)
    n = len(raw)
    snap = np.full(n, tl.ends[t])
    return _table(
        "inventory",
        {
            "snapshot_date": _dates(snap),
            "item_id": _take([r[0] for r in RAW_MATERIALS], raw),
            "location_id": _take([loc_[0] for loc_ in LOCATIONS], loc),
            "lot_id": _strs([f"RM{tl.keys[t].replace('-', '')}" for _ in range(n)]),
            "receipt_date": _dates(snap - np.timedelta64(10, "D")),
            "qty_on_hand": _ints(qty[raw, loc]),
        },
    )
