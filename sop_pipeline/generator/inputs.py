"""The demo company's planning inputs and master data snapshots.

The CRM pipeline, planner overrides, the AOP, the scenarios file, and the item master and
static tables of each month.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import yaml

from sop_pipeline.generator.catalog import (
    CURRENCIES,
    FAMILIES,
    LOCATIONS,
    OVERRIDE_REASONS,
    PLANNERS,
    WORK_CENTERS,
)
from sop_pipeline.generator.common import (
    ITEM_LISTED_MONTHS_AHEAD,
    _dates,
    _dec,
    _ids,
    _ints,
    _strs,
    _table,
    _take,
    _Timeline,
)
from sop_pipeline.generator.demand import _Customers, _Items, _price_factor, _Series
from sop_pipeline.generator.operations import _Capacity

#: Probability of each open opportunity stage and the stage order.
STAGE_PROBABILITY = {
    "prospecting": 0.10,
    "qualification": 0.25,
    "proposal": 0.50,
    "negotiation": 0.75,
}
_OPEN_STAGES = ("prospecting", "qualification", "proposal", "negotiation")
_STAGES = (*_OPEN_STAGES, "closed_won", "closed_lost")


# --------------------------------------------------------------------------------------
# CRM pipeline
# --------------------------------------------------------------------------------------
def _opportunities(
    rng: np.random.Generator,
    items: _Items,
    series: _Series,
    customers: _Customers,
    fx: np.ndarray,
    tl: _Timeline,
) -> tuple[pa.Table, np.ndarray]:
    h0, h1 = tl.h0, tl.h1
    item_expected = np.add.reduceat(series.expected, series.item_first, axis=0)
    n_fam = len(FAMILIES)
    fam_expected = np.zeros((n_fam, tl.n))
    np.add.at(fam_expected, items.fam, item_expected)
    pf = _price_factor(tl)
    rate = max(3.0, items.n * 0.05)
    stage_prob = np.array([STAGE_PROBABILITY[s] for s in _OPEN_STAGES] + [1.0, 0.0])

    cap = int(rate * 2 * (h1 - h0 + 1)) + 100
    o_cust = np.zeros(cap, dtype=np.int64)
    o_item = np.full(cap, -1, dtype=np.int64)
    o_fam = np.zeros(cap, dtype=np.int64)
    o_qty = np.zeros(cap)
    o_amount = np.zeros(cap)
    o_stage = np.zeros(cap, dtype=np.int64)
    o_close = np.zeros(cap, dtype="datetime64[D]")
    count = 0
    v_opp: list[np.ndarray] = []
    v_ext: list[np.ndarray] = []
    v_stage: list[np.ndarray] = []
    v_close: list[np.ndarray] = []
    for t in tl.hist:
        # existing open opportunities move on, slip or close
        live = np.flatnonzero(o_stage[:count] < 4)
        changed = np.zeros(live.size, dtype=bool)
        close_month = tl.month_index(o_close[live])
        due = close_month <= t
        won = rng.random(live.size) < stage_prob[o_stage[live]] + 0.1
        r = rng.random(live.size)
        new_stage = o_stage[live].copy()
        new_stage[due] = np.where(won[due], 4, 5)
        lost_early = ~due & (r < 0.04)
        new_stage[lost_early] = 5
        advance = ~due & (r >= 0.04) & (r < 0.34) & (new_stage < 3)
        new_stage[advance] += 1
        slip = ~due & (r >= 0.34) & (r < 0.42)
        o_close[live[slip]] += rng.integers(25, 62, slip.sum()).astype("timedelta64[D]")
        changed |= due | lost_early | advance | slip
        o_stage[live] = new_stage
        # opportunities closed early close today: the close date is the decision date
        early = live[lost_early]
        o_close[early] = np.minimum(o_close[early], tl.ends[t])
        upd = live[changed]

        k = int(rng.poisson(rate))
        idx = np.arange(count, count + k)
        if count + k > cap:
            raise AssertionError("generator bug: opportunity buffer too small")
        count += k
        cust = rng.choice(customers.n, size=k, p=customers.weight)
        at_item = rng.random(k) < 0.6
        target = item_expected[:, min(t + 3, tl.n - 1)]
        w = np.sqrt(np.maximum(target, 0))
        w = w / w.sum() if w.sum() > 0 else np.full(items.n, 1 / items.n)
        it = rng.choice(items.n, size=k, p=w)
        fam = items.fam[it]
        qty_item = np.maximum(1, np.round(rng.uniform(0.3, 3.0, k) * item_expected[it, t]))
        qty_fam = np.maximum(5, np.round(rng.uniform(0.03, 0.15, k) * fam_expected[fam, t]))
        qty = np.where(at_item, qty_item, qty_fam)
        price_base = items.price[it] * pf[t] * fx[items.ccy[it], t]
        ccy = customers.ccy[cust]
        amount = qty * price_base * (1 - customers.discount[cust]) / fx[ccy, t]
        created = tl.starts[t] + rng.integers(0, tl.days[t], k).astype("timedelta64[D]")
        o_cust[idx] = cust
        o_item[idx] = np.where(at_item, it, -1)
        o_fam[idx] = fam
        o_qty[idx] = qty
        o_amount[idx] = np.round(amount, 2)
        o_stage[idx] = rng.choice(3, size=k, p=[0.5, 0.3, 0.2])
        o_close[idx] = created + rng.integers(32, 271, k).astype("timedelta64[D]")
        both = np.concatenate([upd, idx])
        v_opp.append(both)
        v_ext.append(np.full(both.size, t))
        v_stage.append(o_stage[both].copy())
        v_close.append(o_close[both].copy())
    opp = np.concatenate(v_opp)
    ext = np.concatenate(v_ext)
    stage = np.concatenate(v_stage)
    close = np.concatenate(v_close)
    order = np.lexsort((opp, ext))
    opp, ext, stage, close = opp[order], ext[order], stage[order], close[order]
    at_item = o_item[opp] >= 0
    cust_ids = customers.table.column("customer_id").combine_chunks()
    table = _table(
        "opportunities",
        {
            "opportunity_id": _ids("OPP-", opp + 1, 6),
            "customer_id": _take(cust_ids, o_cust[opp]),
            "item_id": pa.array(
                np.array(items.ids, dtype=object)[np.maximum(o_item[opp], 0)],
                pa.string(),
                mask=~at_item,
            ),
            "family": pa.array(
                np.array([f.name for f in FAMILIES], dtype=object)[o_fam[opp]],
                pa.string(),
                mask=at_item,
            ),
            "expected_qty": _ints(o_qty[opp]),
            "amount": _dec(o_amount[opp], 2),
            "currency": _take(list(CURRENCIES), customers.ccy[o_cust[opp]]),
            "stage": _take(list(_STAGES), stage),
            "probability": _dec(stage_prob[stage], 2),
            "expected_close_date": _dates(close),
        },
    )
    return table, ext


# --------------------------------------------------------------------------------------
# Planning inputs: overrides, AOP, scenarios
# --------------------------------------------------------------------------------------
def _overrides(
    rng: np.random.Generator, items: _Items, series: _Series, tl: _Timeline
) -> dict[int, pa.Table]:
    item_expected = np.add.reduceat(series.expected, series.item_first, axis=0)
    fam_names = [f.name for f in FAMILIES]
    tables: dict[int, pa.Table] = {}
    for t in tl.hist:
        rows: dict[tuple[str, int, str], tuple[str, str, str]] = {}
        # a family override names a family of the month's items extract: a small company
        # (`--items 20`) may have no item of some family listed yet
        listed = items.launch_t <= t + ITEM_LISTED_MONTHS_AHEAD
        fams = sorted({int(f) for f in items.fam[listed]}) or list(range(len(fam_names)))
        for j in range(12):
            month = t + 1 + int(rng.integers(0, 6))
            reason, sign, comment = OVERRIDE_REASONS[int(rng.integers(0, len(OVERRIDE_REASONS)))]
            sign = sign or (1 if rng.random() < 0.5 else -1)
            author = PLANNERS[int(rng.integers(0, len(PLANNERS)))]
            active = np.flatnonzero((item_expected[:, month] > 1) & (items.eol_t > month + 6))
            if j < 7 and active.size:
                it = int(active[rng.integers(0, active.size)])
                base = item_expected[it, month]
                step = 5 if base >= 20 else 1
                size = max(step, round(rng.uniform(0.1, 0.4) * base / step) * step)
                adjustment = f"{sign * size}"
                scope = items.ids[it]
            else:
                scope = fam_names[fams[int(rng.integers(0, len(fams)))]]
                adjustment = f"{'+' if sign > 0 else '-'}{5 * int(rng.integers(1, 5))}%"
            rows.setdefault((scope, month, reason), (adjustment, author, comment))
        keys = sorted(rows, key=lambda k: (k[1], k[0], k[2]))
        tables[t] = _table(
            "demand_overrides",
            {
                "scope": _strs([k[0] for k in keys]),
                "month": _strs([tl.keys[k[1]] for k in keys]),
                "adjustment": _strs([rows[k][0] for k in keys]),
                "reason_code": _strs([k[2] for k in keys]),
                "author": _strs([rows[k][1] for k in keys]),
                "comment": _strs([rows[k][2] for k in keys]),
            },
        )
    return tables


def _aop(
    rng: np.random.Generator, items: _Items, series: _Series, fx: np.ndarray, tl: _Timeline
) -> pa.Table:
    item_expected = np.add.reduceat(series.expected, series.item_first, axis=0)
    pf = _price_factor(tl)
    t_fx = np.clip(np.arange(tl.n), tl.h0, tl.h1)
    price_base = items.price[:, None] * pf[None, :] * fx[items.ccy][:, t_fx]
    cost_base = items.cost[:, None] * pf[None, :] * fx[items.ccy][:, t_fx]
    n_fam = len(FAMILIES)
    revenue = np.zeros((n_fam, tl.n))
    volume = np.zeros((n_fam, tl.n))
    inv_value = np.zeros((n_fam, tl.n))
    np.add.at(revenue, items.fam, item_expected * price_base * 0.94)  # average discount
    np.add.at(volume, items.fam, item_expected)
    np.add.at(inv_value, items.fam, item_expected * cost_base * 1.4)
    # The AOP is set once a year per family, usually a little ambitious.
    years = tl.n // 12
    bias = np.clip(rng.normal(0.03, 0.04, (n_fam, years)), -0.08, 0.10)
    factor = np.repeat(bias, 12, axis=1) + 1 + rng.normal(0, 0.01, (n_fam, tl.n))
    # full fiscal years: the timeline starts in January of the first history year
    month_idx = np.tile(np.arange(tl.n), n_fam)
    fam_idx = np.repeat(np.arange(n_fam), tl.n)
    return _table(
        "aop_targets",
        {
            "family": _take([f.name for f in FAMILIES], fam_idx),
            "month": _take(tl.keys, month_idx),
            "revenue_target": _dec((revenue * factor).ravel(), 2),
            "volume_target": _dec(np.round(volume * factor).ravel(), 0),
            "inventory_value_target": _dec((inv_value * factor).ravel(), 2),
        },
    )


class _Quoted(str):
    """A string YAML writes in quotes (months must stay text for every YAML reader)."""


class _ScenarioDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # C emitter when built
    pass


_ScenarioDumper.add_representer(
    _Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style='"')
)


def _scenarios(t: int, cap: _Capacity, supplier: int, tl: _Timeline) -> str:
    """The what-if scenarios of extract month ``t`` (YAML); ``months`` are ``[first, last]``."""
    wc_id, _, wc_name, _ = WORK_CENTERS[cap.overhaul_wc]
    extended = _Quoted(tl.keys[cap.overhaul_months[1] + 1])
    doc = {
        "scenarios": [
            {
                "name": "overhaul_extended",
                "description": f"The overhaul of {wc_id} ({wc_name}) runs one month longer into {extended}",
                "levers": [
                    {
                        "type": "capacity_loss",
                        "work_center_id": wc_id,
                        "months": [extended, extended],
                        "pct": 0.7,
                    }
                ],
            },
            {
                "name": "demand_upside_pumps",
                "description": "A large irrigation program lifts pump demand 15% for six months",
                "levers": [
                    {
                        "type": "demand_change",
                        "family": "pumps",
                        "months": [_Quoted(tl.keys[t + 3]), _Quoted(tl.keys[t + 8])],
                        "pct": 0.15,
                    }
                ],
            },
            {
                "name": "supplier_delay",
                "description": f"SUP-{supplier + 1:03d} (largest open purchase volume) delivers 45 days late",
                "levers": [
                    {"type": "supplier_delay", "supplier_id": f"SUP-{supplier + 1:03d}", "days": 45}
                ],
            },
            {
                "name": "price_increase",
                "description": "Valve list prices go up 5% from next month",
                "levers": [{"type": "price_change", "family": "valves", "pct": 0.05}],
            },
            {
                "name": "chase_strategy",
                "description": "Produce to demand month by month instead of levelling production",
                "levers": [{"type": "strategy", "value": "chase"}],
            },
        ]
    }
    return yaml.dump(
        doc, Dumper=_ScenarioDumper, sort_keys=False, default_flow_style=None, width=120
    )


# --------------------------------------------------------------------------------------
# Master data snapshots
# --------------------------------------------------------------------------------------
def _items_snapshot(items: _Items, t: int, pf: np.ndarray) -> pa.Table:
    status = np.full(items.n, 1, dtype=np.int64)  # active
    status[t < items.launch_t + 6] = 0  # new: launched within six months or not yet launched
    announced = t >= items.eol_t - 12
    status[announced] = 2
    return _table(
        "items",
        {
            "item_id": _strs(items.ids),
            "description": _strs(items.description),
            "family": _take([f.name for f in FAMILIES], items.fam),
            "category": _strs(items.category),
            "uom": _strs(items.uom),
            "unit_cost": _dec(items.cost * pf[t], 2),
            "unit_price": _dec(items.price * pf[t], 2),
            "currency": _take(list(CURRENCIES), items.ccy),
            "lifecycle_status": _take(["new", "active", "eol"], status),
            "launch_date": _dates(items.launch_date),
            "eol_date": _dates(
                np.where(announced, items.eol_date, np.datetime64("NaT")), ~announced
            ),
            "lead_time_days": _ints(items.lead_time),
            "min_lot_qty": _ints(items.min_lot),
        },
    )


def _static_tables(items: _Items, cap: _Capacity) -> dict[str, pa.Table]:
    wc_ids = [w[0] for w in WORK_CENTERS]
    names = [
        f"{w[2]} ({k} lines)" if k > 1 else w[2]
        for w, k in zip(WORK_CENTERS, cap.lines, strict=True)
    ]
    return {
        "locations": _table(
            "locations",
            {
                "location_id": _strs([loc[0] for loc in LOCATIONS]),
                "name": _strs([loc[1] for loc in LOCATIONS]),
                "type": _strs([loc[2] for loc in LOCATIONS]),
                "region": _strs([loc[3] for loc in LOCATIONS]),
            },
        ),
        "work_centers": _table(
            "work_centers",
            {
                "work_center_id": _strs(wc_ids),
                "location_id": _take(
                    [loc[0] for loc in LOCATIONS], np.array([w[1] for w in WORK_CENTERS])
                ),
                "name": _strs(names),
                "hours_per_day": _dec(cap.hours_per_day, 1),
                "efficiency": _dec(cap.efficiency, 2),
            },
        ),
        "routings": _table(
            "routings",
            {
                "item_id": _take(items.ids, cap.routing_item),
                "work_center_id": _take(wc_ids, cap.routing_wc),
                "hours_per_unit": _dec(cap.routing_hpu, 4),
            },
        ),
    }
