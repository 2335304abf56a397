"""The material LP, ``plan_materials``: what the suppliers can deliver of a production plan.

Also the cuts where they cannot, and their explanation.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog

from sop_pipeline.planning.grid import series_month_grid
from sop_pipeline.planning.inventory import (
    SERIES,
    as_month_start,
)
from sop_pipeline.planning.materials.constants import (
    MATERIAL_CUT_COLUMNS,
    PLAN_MATERIALS_COLUMNS,
    SHADOW_EPS,
)
from sop_pipeline.planning.materials.explosion import leaf_requirements
from sop_pipeline.planning.materials.network import (
    MaterialPlan,
    _item_table,
    _material_stock,
    _source_rows,
)
from sop_pipeline.planning.supply import (
    QTY_EPS,
    SupplyCosts,
    SupplyPlanError,
)


def plan_materials(
    production: pd.DataFrame,
    exploded: pd.DataFrame,
    supplier_capacity: pd.DataFrame | None,
    items: pd.DataFrame,
    inventory_position: pd.DataFrame,
    open_supply: pd.DataFrame | None,
    months: pd.DatetimeIndex,
    *,
    costs: SupplyCosts | None = None,
    requested: pd.DataFrame | None = None,
) -> MaterialPlan:
    """Buy the materials of a production plan within supplier capacity; cut what cannot be made.

    Args:
        production: item_id, location_id, month, planned_production_qty (``plan_supply``).
        exploded: ``fct_bom_exploded``.
        supplier_capacity: ``fct_supplier_capacity`` (supplier_id, item_id, month, max_qty,
            lead_time_days, unit_cost), or None.
        items: dim_items (item_id, unit_cost, unit_price, lead_time_days).
        inventory_position: item_id, location_id, on_hand_qty (material stock).
        open_supply: supply_type, item_id, location_id, due_month, open_qty, supplier_id
            (open purchase orders of materials), or None.
        months: the horizon months.
        costs: the capacity LP's weights (shortage and holding rates).
        requested: the production the capacity LP wanted before materials were known
            (same columns as ``production``); dependent demand and shortage are measured
            against it. Default: ``production``.

    Returns:
        The material plan (see :class:`MaterialPlan`).

    Raises:
        SupplyPlanError: HiGHS did not solve the material LP.
    """
    started = time.perf_counter()
    costs = costs or SupplyCosts()
    T = len(months)  # noqa: N806 - T, P, C: the LP's month, parent and component counts
    reqs = leaf_requirements(exploded, months)
    prod = production[[*SERIES, "month", "planned_production_qty"]].copy()
    prod["item_id"] = prod["item_id"].astype(str)
    prod["location_id"] = prod["location_id"].astype(str)
    prod["month"] = as_month_start(prod["month"])
    prod = prod[prod["item_id"].isin(set(reqs["top_item_id"]))]
    if prod.empty or reqs.empty:
        return _empty_plan()

    parents = pd.MultiIndex.from_frame(prod[SERIES].drop_duplicates().sort_values(SERIES))
    P = len(parents)  # noqa: N806 - see T
    r = np.clip(series_month_grid(prod, parents, months, "planned_production_qty"), 0.0, None)
    r_req = r
    if requested is not None:
        req = requested.assign(
            item_id=requested["item_id"].astype(str),
            location_id=requested["location_id"].astype(str),
            month=as_month_start(requested["month"]),
        )
        r_req = np.clip(
            series_month_grid(req, parents, months, "planned_production_qty"), 0.0, None
        )
    # requirement links: parent series p, production month tau, material, consumption month t
    links = (
        pd.DataFrame(
            {
                "item_id": parents.get_level_values(0),
                "location_id": parents.get_level_values(1),
                "p": np.arange(P),
            }
        )
        .merge(reqs, left_on="item_id", right_on="top_item_id")
        .assign(tau=lambda d: months.get_indexer(pd.DatetimeIndex(d["month"])))
    )
    links["t"] = links["tau"] - links["lead_time_offset_months"].astype(int)
    links = links[links["t"] >= 0]
    mats = pd.MultiIndex.from_frame(
        links[["component_item_id", "location_id"]]
        .drop_duplicates()
        .sort_values(["component_item_id", "location_id"])
    )
    if not len(mats):
        return _empty_plan()
    C = len(mats)  # noqa: N806 - see T
    links["c"] = mats.get_indexer(
        pd.MultiIndex.from_frame(links[["component_item_id", "location_id"]])
    )

    table = _item_table(items)
    mat_items = mats.get_level_values(0)
    sources = _source_rows(
        pd.DataFrame({"component_item_id": mat_items}), supplier_capacity, items, months
    )
    # a purchase variable per source row × location of the material
    purchase = sources.merge(
        pd.DataFrame(
            {
                "component_item_id": mat_items,
                "location_id": mats.get_level_values(1),
                "c": np.arange(C),
            }
        ),
        on="component_item_id",
    ).reset_index(drop=True)

    on_hand, receipts = _material_stock(mats, inventory_position, open_supply, months)

    # costs
    price = pd.to_numeric(table["unit_price"], errors="coerce").reindex(parents.get_level_values(0))
    cost = pd.to_numeric(table["unit_cost"], errors="coerce").reindex(parents.get_level_values(0))
    price = np.where(price > 0, price, np.where(cost > 0, cost, 1.0))
    mat_cost = sources.groupby("component_item_id")["unit_cost"].max()
    link_cost = links["qty_per"].to_numpy() * links["component_item_id"].map(mat_cost).to_numpy()
    material_cost = np.bincount(links["p"], weights=link_cost, minlength=P) / max(T, 1)
    penalty = costs.shortage_rate * price + 2.0 * material_cost + 1.0
    hold_cost = costs.holding_rate * mat_cost.reindex(mat_items).to_numpy(dtype=float)

    # variables: x (P×T), I (C×T), q (len(purchase))
    n_x, n_i, n_q = P * T, C * T, len(purchase)
    i_x = np.arange(n_x).reshape(P, T)
    i_i = n_x + np.arange(n_i).reshape(C, T)
    i_q = n_x + n_i + np.arange(n_q)
    n_var = n_x + n_i + n_q
    obj = np.zeros(n_var)
    obj[i_x.reshape(-1)] = -np.repeat(penalty, T)
    obj[i_i.reshape(-1)] = np.repeat(hold_cost, T)
    obj[i_q] = purchase["unit_cost"].to_numpy(dtype=float)
    upper = np.full(n_var, np.inf)
    upper[i_x.reshape(-1)] = r.reshape(-1)
    upper[i_q] = np.where(purchase["blocked"].to_numpy(), 0.0, np.inf)
    bounds = np.column_stack([np.zeros(n_var), upper])

    # balance rows: (c, t): I_t − I_{t−1} − Σ q + Σ a x = receipts (+ on hand at t = 0)
    row = lambda c, t: np.asarray(c) * T + np.asarray(t)  # noqa: E731
    rows = [row(np.arange(C)[:, None].repeat(T, 1), np.arange(T)[None, :].repeat(C, 0)).reshape(-1)]
    cols = [i_i.reshape(-1)]
    vals = [np.ones(n_i)]
    if T > 1:
        cc, tt = np.meshgrid(np.arange(C), np.arange(1, T), indexing="ij")
        rows.append(row(cc, tt).reshape(-1))
        cols.append(i_i[:, :-1].reshape(-1))
        vals.append(-np.ones(C * (T - 1)))
    rows.append(row(purchase["c"].to_numpy(), purchase["t"].to_numpy()))
    cols.append(i_q)
    vals.append(-np.ones(n_q))
    rows.append(row(links["c"].to_numpy(), links["t"].to_numpy()))
    cols.append(i_x[links["p"].to_numpy(), links["tau"].to_numpy()])
    vals.append(links["qty_per"].to_numpy(dtype=float))
    a_eq = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(C * T, n_var)
    )
    b_eq = receipts.copy()
    b_eq[:, 0] += on_hand
    b_eq = b_eq.reshape(-1)

    # supplier capacity rows: Σ_locations q ≤ max_qty per supplier × material × month
    limited = purchase[purchase["max_qty"].notna() & ~purchase["blocked"]]
    cap_keys = limited[["supplier_id", "component_item_id", "t"]].drop_duplicates()
    cap_keys = cap_keys.reset_index(drop=True)
    a_ub = b_ub = None
    if len(cap_keys):
        key_pos = pd.MultiIndex.from_frame(cap_keys).get_indexer(
            pd.MultiIndex.from_frame(limited[["supplier_id", "component_item_id", "t"]])
        )
        a_ub = sparse.csr_matrix(
            (np.ones(len(limited)), (key_pos, i_q[limited.index.to_numpy()])),
            shape=(len(cap_keys), n_var),
        )
        b_ub = (
            limited.assign(k=key_pos)
            .drop_duplicates("k")
            .sort_values("k")["max_qty"]
            .to_numpy(dtype=float)
        )

    built = time.perf_counter()
    res = linprog(obj, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        raise SupplyPlanError(
            f"HiGHS could not solve the material LP of {P} made items and {C} materials "
            f"({res.message}). Check fct_bom_exploded and fct_supplier_capacity for NaN or "
            "infinite quantities."
        )
    solved = time.perf_counter()
    x = np.clip(res.x[i_x], 0.0, None)
    stock = np.clip(res.x[i_i], 0.0, None)
    q = np.clip(res.x[i_q], 0.0, None)
    # value of one more unit of a material in a month (≥ 0), and of one more unit of capacity
    bal_value = np.clip(-np.asarray(res.eqlin.marginals), 0.0, None).reshape(C, T)
    cap_value = (
        np.clip(-np.asarray(res.ineqlin.marginals), 0.0, None) if len(cap_keys) else np.zeros(0)
    )

    # what production needs (from the plan) and what it consumes (from the kept production)
    a_link = links["qty_per"].to_numpy(dtype=float)
    need = np.zeros((C, T))
    used = np.zeros((C, T))
    np.add.at(
        need,
        (links["c"].to_numpy(), links["t"].to_numpy()),
        a_link * r_req[links["p"], links["tau"]],
    )
    np.add.at(
        used, (links["c"].to_numpy(), links["t"].to_numpy()), a_link * x[links["p"], links["tau"]]
    )
    bought = np.zeros((C, T))
    np.add.at(bought, (purchase["c"].to_numpy(), purchase["t"].to_numpy()), q)

    by_month = sources.groupby(["component_item_id", "t"])["max_qty"]
    # a month with one unlimited source has no limit (NaN)
    cap_total = by_month.sum().where(by_month.count() == by_month.size())
    cap_qty = (
        cap_total.reindex(
            pd.MultiIndex.from_product([mat_items, range(T)], names=["component_item_id", "t"])
        )
        .to_numpy(dtype=float)
        .reshape(C, T)
    )
    supplier_name = (
        sources.dropna(subset=["supplier_id"])
        .groupby("component_item_id")["supplier_id"]
        .agg(lambda s: ", ".join(sorted(set(s))))
    )
    explain = _Explainer(months, cap_keys, cap_value, sources, bal_value, mats)

    cut = r - x
    cut_records = []
    by_parent_month = links.groupby(["p", "tau"]).indices
    link_c = links["c"].to_numpy()
    link_t = links["t"].to_numpy()
    link_qty = links["qty_per"].to_numpy(dtype=float)
    # scarcity: what one more unit is worth beyond its price (a freely bought one: ~0)
    scarcity = bal_value - mat_cost.reindex(mat_items).to_numpy(dtype=float)[:, None]
    short = np.zeros((C, T))
    for p, tau in np.argwhere(cut > QTY_EPS * np.maximum(1.0, r)):
        mine = by_parent_month.get((p, tau))
        if mine is None:
            continue
        score = scarcity[link_c[mine], link_t[mine]] * link_qty[mine]
        pick = mine[int(np.argmax(score))]
        # the cut is the binding material's shortage (not its other materials')
        short[link_c[pick], link_t[pick]] += link_qty[pick] * cut[p, tau]
        supplier, text = explain.why(int(link_c[pick]), int(link_t[pick]))
        cut_records.append(
            (
                parents[p][0],
                parents[p][1],
                months[tau],
                float(cut[p, tau]),
                mat_items[link_c[pick]],
                supplier,
                text,
            )
        )
    cuts = pd.DataFrame.from_records(cut_records, columns=MATERIAL_CUT_COLUMNS).astype(
        {"month": "datetime64[ns]", "cut_qty": float}
    )

    # a parent cut for another material uses less of this one too: not this one's shortage
    binding = np.full((C, T), None, dtype=object)
    for c, t in np.argwhere(short > QTY_EPS * np.maximum(1.0, need)):
        binding[c, t] = explain.why(c, t)[1]
    opening = np.concatenate([on_hand[:, None], stock[:, :-1]], axis=1)
    plan = pd.DataFrame(
        {
            "component_item_id": np.repeat(mat_items.to_numpy(), T),
            "location_id": np.repeat(mats.get_level_values(1).to_numpy(), T),
            "month": np.tile(months.to_numpy(), C),
            "dependent_demand_qty": need.reshape(-1),
            "planned_purchase_qty": bought.reshape(-1),
            "supplier_capacity_qty": cap_qty.reshape(-1),
            "closing_qty": stock.reshape(-1),
            "shortage_qty": short.reshape(-1),
            "opening_qty": opening.reshape(-1),
            "open_order_receipts_qty": receipts.reshape(-1),
            "consumed_qty": used.reshape(-1),
            "supplier_id": np.repeat(mat_items.map(supplier_name).to_numpy(dtype=object), T),
            "binding_constraint": binding.reshape(-1),
        }
    )
    plan["month"] = plan["month"].astype("datetime64[ns]")
    plan["supplier_id"] = plan["supplier_id"].where(plan["supplier_id"].notna(), None)
    kept = pd.DataFrame(
        {
            "item_id": np.repeat(parents.get_level_values(0).to_numpy(), T),
            "location_id": np.repeat(parents.get_level_values(1).to_numpy(), T),
            "month": np.tile(months.to_numpy(), P),
            "planned_production_qty": r.reshape(-1),
            "kept_qty": np.minimum(x, r).reshape(-1),
        }
    ).astype({"month": "datetime64[ns]"})
    purchases = pd.DataFrame(
        {
            "supplier_id": purchase["supplier_id"].to_numpy(dtype=object),
            "component_item_id": purchase["component_item_id"].to_numpy(),
            "location_id": mats.get_level_values(1).to_numpy()[purchase["c"].to_numpy()],
            "month": months.to_numpy()[purchase["t"].to_numpy()],
            "planned_purchase_qty": q,
        }
    )
    purchases = purchases[purchases["planned_purchase_qty"] > QTY_EPS].reset_index(drop=True)
    finished = time.perf_counter()
    return MaterialPlan(
        plan_materials=plan[PLAN_MATERIALS_COLUMNS],
        purchases=purchases,
        kept=kept,
        cuts=cuts,
        stats={
            "made_series": P,
            "materials": C,
            "variables": n_var,
            "constraints": C * T + len(cap_keys),
            "build_seconds": built - started,
            "solve_seconds": solved - built,
            "total_seconds": finished - started,
        },
    )


class _Explainer:
    """Why a material is short in a month: the binding supplier capacity or lead time."""

    def __init__(self, months, cap_keys, cap_value, sources, bal_value, mats):
        self.months = months
        self.mats = mats
        self.cache: dict[tuple[int, int], tuple[str | None, str]] = {}
        self.cap_supplier = cap_keys["supplier_id"].astype(str).to_numpy()
        self.cap_t = cap_keys["t"].to_numpy()
        self.cap_value = cap_value
        self.cap_by_item = cap_keys.groupby("component_item_id").indices if len(cap_keys) else {}
        self.limit = {
            (sup, item, t): q
            for sup, item, t, q in zip(
                sources["supplier_id"],
                sources["component_item_id"],
                sources["t"],
                sources["max_qty"],
                strict=True,
            )
        }
        self.src_by_item = sources.groupby("component_item_id").indices
        self.src_t = sources["t"].to_numpy()
        self.src_blocked = sources["blocked"].to_numpy()
        self.src_lead = sources["lead_time_days"].to_numpy(dtype=float)
        self.src_supplier = sources["supplier_id"].to_numpy(dtype=object)

    def why(self, c: int, t: int) -> tuple[str | None, str]:
        if (c, t) not in self.cache:
            self.cache[(c, t)] = self._why(c, t)
        return self.cache[(c, t)]

    def _why(self, c: int, t: int) -> tuple[str | None, str]:
        item, loc = self.mats[c]
        head = f"material {item} short at {loc} for {self.months[t]:%Y-%m}"
        mine = self.cap_by_item.get(item, np.zeros(0, dtype=int))
        mine = mine[self.cap_t[mine] <= t]
        hit = mine[self.cap_value[mine] > SHADOW_EPS]
        if len(hit):
            k = hit[np.argmax(self.cap_t[hit])]
            supplier, tt = str(self.cap_supplier[k]), int(self.cap_t[k])
            limit = float(self.limit.get((supplier, item, tt), math.nan))
            return supplier, (
                f"{head}: supplier {supplier} capacity {limit:,.0f} in "
                f"{self.months[tt]:%Y-%m} is fully booked"
            )
        src = self.src_by_item.get(item, np.zeros(0, dtype=int))
        src = src[self.src_t[src] <= t]
        named = [v for v in self.src_supplier[src] if v is not None and not pd.isna(v)]
        supplier = str(named[0]) if named else None
        if len(src) and self.src_blocked[src].all():
            who = f"supplier {supplier}" if supplier else "purchase"
            return supplier, (
                f"{head}: {who} lead time {np.nanmax(self.src_lead[src]):.0f} days, no new "
                "receipt in time"
            )
        return supplier, f"{head}: the material costs more than the lost sale of the parent"


def _empty_plan() -> MaterialPlan:
    plan = pd.DataFrame({c: pd.Series(dtype=object) for c in PLAN_MATERIALS_COLUMNS})
    for c in PLAN_MATERIALS_COLUMNS[3:11]:
        plan[c] = plan[c].astype(float)
    plan["month"] = plan["month"].astype("datetime64[ns]")
    cuts = pd.DataFrame({c: pd.Series(dtype=object) for c in MATERIAL_CUT_COLUMNS}).astype(
        {"month": "datetime64[ns]", "cut_qty": float}
    )
    return MaterialPlan(
        plan_materials=plan,
        purchases=pd.DataFrame(
            columns=[
                "supplier_id",
                "component_item_id",
                "location_id",
                "month",
                "planned_purchase_qty",
            ]
        ),
        kept=pd.DataFrame(
            columns=["item_id", "location_id", "month", "planned_production_qty", "kept_qty"]
        ),
        cuts=cuts,
    )
