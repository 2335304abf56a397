"""Materials in the supply plan: bills of material, dependent demand, supplier capacity.

The capacity LP (``supply.plan_supply``) plans what the work centers can make. Whether the
materials for it can be bought is a second linear program, solved here with
``scipy.optimize.linprog(method="highs")``:

- the exploded BOM (``fct_bom_exploded``, leaves only: purchased materials) turns planned
  production of a made item in month τ into dependent demand of each material in month
  ``τ − lead_time_offset_months`` (the made levels above the material need that long;
  production in the first months whose material was due before the horizon has it already);
- variables: production kept ``x ≤ planned production`` per made item × location × month,
  purchases ``q`` per supplier × material × location × month, material stock ``I ≥ 0``;
- balance ``I_t = I_{t−1} + open purchase orders_t + Σ_s q_t − Σ qty_per × x`` per material
  × location (``I_{−1}`` = on hand);
- supplier capacity ``Σ_locations q ≤ max_qty`` per supplier × material × month
  (``fct_supplier_capacity``; no stated limit, no constraint); no receipt from a supplier in
  the first ``ceil(lead_time_days / 30)`` months; a material with no supplier row is bought
  without limit after its item lead time;
- objective: a unit of production not made costs the parent's lost-sale penalty (as in the
  capacity LP) plus its material cost, so the LP cuts production only where no material
  can be had; then purchase cost and holding cost of material stock.

:func:`plan_supply_with_materials` is the supply plan with materials: capacity LP → material
LP → when production had to be cut, the capacity LP again with the kept production as an
upper bound per item × month (the capacity LP may still move volume of other items into
the freed hours) → the material LP once more on the final plan, which gives the published
``plan_materials``. Cutting production only ever lowers material use, so the second plan
is material-feasible. Shortages caused by a cut are explained with the binding material
and supplier (``constraint_type = 'material'``). With no BOM the capacity LP runs once,
unchanged. See ``docs/supply_and_finance.md``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog

from sop_pipeline.planning.inventory import (
    DAYS_PER_LEAD_TIME_MONTH,
    SERIES,
    as_month_start,
    horizon_months,
    lead_time_blocked_months,
    require_columns,
)
from sop_pipeline.planning.supply import (
    QTY_EPS,
    MaterialNetwork,
    SupplyCosts,
    SupplyPlanError,
    plan_supply,
)

EXPLODED_COLUMNS = [
    "top_item_id",
    "component_item_id",
    "parent_item_id",
    "bom_level",
    "bom_path",
    "qty_per_cumulative",
    "lead_time_offset_days",
    "lead_time_offset_months",
    "valid_from",
    "valid_to",
    "is_leaf",
]
PLAN_MATERIALS_COLUMNS = [
    "component_item_id",
    "location_id",
    "month",
    "dependent_demand_qty",
    "planned_purchase_qty",
    "supplier_capacity_qty",
    "closing_qty",
    "shortage_qty",
    "opening_qty",
    "open_order_receipts_qty",
    "consumed_qty",
    "supplier_id",
    "binding_constraint",
]
MATERIAL_CUT_COLUMNS = [
    "item_id",
    "location_id",
    "month",
    "cut_qty",
    "component_item_id",
    "supplier_id",
    "binding_constraint",
]
OPEN_START = pd.Timestamp("1900-01-01")
OPEN_END = pd.Timestamp(
    "2262-04-01"
)  # the last pandas timestamp month (9999-12-31 is out of range)
MAX_LEVELS = 20
SHADOW_EPS = 1e-7
#: material purchase cost in the joint LP's objective, × unit cost (a supplier tie-break)
PURCHASE_TIE_BREAK = 1e-3


# The explosion ------------------------------------------------------------------------
def _window(values: pd.Series, default: pd.Timestamp) -> pd.Series:
    # dates past pandas' range (9999-12-31 from a source) are open-ended too
    dates = pd.to_datetime(pd.Series(values), errors="coerce")
    return dates.fillna(default).astype("datetime64[ns]")


def explode_bom(
    bom: pd.DataFrame,
    items: pd.DataFrame,
    horizon_start: pd.Timestamp | str,
    horizon_end: pd.Timestamp | str,
) -> pd.DataFrame:
    """Explode the BOM lines to every level: the Python statement of ``fct_bom_exploded``.

    Every parent is a top item; a path's quantity is the product of
    ``qty_per / (1 − scrap_pct)`` along it, its lead-time offset the sum of the made levels'
    ``lead_time_days`` above the component (in months ``floor(days / 30)``), its validity
    the intersection of its lines' windows. Lines and paths not valid at any day of the
    horizon (first day of ``horizon_start`` to the last of ``horizon_end``) are left out.

    Args:
        bom: parent_item_id, component_item_id, qty_per, scrap_pct (optional), valid_from,
            valid_to (empty = open).
        items: item_id, lead_time_days.
        horizon_start: first horizon month.
        horizon_end: last horizon month.

    Returns:
        ``EXPLODED_COLUMNS`` (an open valid_from is 1900-01-01, an open valid_to NaT, as
        in the mart), sorted by top item and path.

    Raises:
        ValueError: a line misses a column, or the BOM has a cycle (deeper than 20 levels).
    """
    require_columns(bom, "bom", ["parent_item_id", "component_item_id", "qty_per"])
    if bom.empty:
        return _empty_exploded()
    start = pd.Timestamp(horizon_start).to_period("M").to_timestamp()
    last_day = pd.Timestamp(horizon_end).to_period("M").to_timestamp() + pd.offsets.MonthEnd(0)
    scrap = (
        pd.to_numeric(bom["scrap_pct"], errors="coerce").fillna(0.0)
        if "scrap_pct" in bom
        else pd.Series(0.0, index=bom.index)
    )
    lead = (
        items.assign(item_id=items["item_id"].astype(str))
        .drop_duplicates("item_id")
        .set_index("item_id")["lead_time_days"]
    )
    lines = pd.DataFrame(
        {
            "parent_item_id": bom["parent_item_id"].astype(str),
            "component_item_id": bom["component_item_id"].astype(str),
            "qty": pd.to_numeric(bom["qty_per"], errors="coerce").astype(float) / (1.0 - scrap),
            "valid_from": _window(
                bom.get("valid_from", pd.Series(pd.NaT, index=bom.index)), OPEN_START
            ),
            "valid_to": _window(bom.get("valid_to", pd.Series(pd.NaT, index=bom.index)), OPEN_END),
        }
    )
    lines["lead"] = (
        pd.to_numeric(lines["parent_item_id"].map(lead), errors="coerce").fillna(0).astype(int)
    )
    lines = lines[(lines["valid_from"] <= last_day) & (lines["valid_to"] >= start)]
    level = lines.rename(columns={"qty": "qty_per_cumulative", "lead": "lead_time_offset_days"})
    level = level.assign(
        top_item_id=level["parent_item_id"],
        bom_level=1,
        bom_path=level["parent_item_id"] + " > " + level["component_item_id"],
    )
    parts = []
    for depth in range(1, MAX_LEVELS + 1):
        parts.append(level)
        nxt = level.merge(
            lines, left_on="component_item_id", right_on="parent_item_id", suffixes=("", "_line")
        )
        nxt = nxt[
            (nxt["valid_from_line"] <= nxt["valid_to"])
            & (nxt["valid_to_line"] >= nxt["valid_from"])
        ]
        if nxt.empty:
            break
        if depth == MAX_LEVELS:
            raise ValueError(
                f"the BOM is deeper than {MAX_LEVELS} levels (a cycle?): path "
                f"{nxt['bom_path'].iloc[0]}; fix the bom extract."
            )
        level = pd.DataFrame(
            {
                "top_item_id": nxt["top_item_id"],
                "parent_item_id": nxt["parent_item_id_line"],
                "component_item_id": nxt["component_item_id_line"],
                "bom_level": nxt["bom_level"] + 1,
                "bom_path": nxt["bom_path"] + " > " + nxt["component_item_id_line"],
                "qty_per_cumulative": nxt["qty_per_cumulative"] * nxt["qty"],
                "lead_time_offset_days": nxt["lead_time_offset_days"] + nxt["lead"],
                "valid_from": np.maximum(nxt["valid_from"], nxt["valid_from_line"]),
                "valid_to": np.minimum(nxt["valid_to"], nxt["valid_to_line"]),
            }
        )
    out = pd.concat(parts, ignore_index=True)
    out["lead_time_offset_months"] = np.floor(
        out["lead_time_offset_days"] / DAYS_PER_LEAD_TIME_MONTH
    ).astype(int)
    out["is_leaf"] = ~out["component_item_id"].isin(set(lines["parent_item_id"]))
    out["valid_to"] = out["valid_to"].where(out["valid_to"] < OPEN_END)
    out = out[EXPLODED_COLUMNS].sort_values(["top_item_id", "bom_path", "valid_from"])
    return out.reset_index(drop=True)


def _empty_exploded() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(dtype=t)
            for c, t in zip(
                EXPLODED_COLUMNS,
                [
                    object,
                    object,
                    object,
                    int,
                    object,
                    float,
                    int,
                    int,
                    "datetime64[ns]",
                    "datetime64[ns]",
                    bool,
                ],
                strict=True,
            )
        }
    )


def leaf_requirements(exploded: pd.DataFrame, months: pd.DatetimeIndex) -> pd.DataFrame:
    """Material per unit of each made item in each production month of the horizon.

    A path applies to a production month when it is valid on the month's first day.

    Args:
        exploded: ``fct_bom_exploded`` (or :func:`explode_bom`).
        months: the horizon months.

    Returns:
        top_item_id, component_item_id, month, lead_time_offset_months, qty_per (summed over
        the paths that reach the material with the same offset).
    """
    columns = ["top_item_id", "component_item_id", "month", "lead_time_offset_months", "qty_per"]
    if exploded is None or exploded.empty or not len(months):
        return pd.DataFrame(columns=columns)
    leaves = exploded[exploded["is_leaf"].astype(bool)]
    grid = leaves.merge(pd.DataFrame({"month": months}), how="cross")
    lo = _window(grid["valid_from"], OPEN_START)
    hi = _window(grid["valid_to"], OPEN_END)
    grid = grid[(lo <= grid["month"]) & (hi >= grid["month"])]
    out = grid.groupby(
        ["top_item_id", "component_item_id", "month", "lead_time_offset_months"], as_index=False
    )["qty_per_cumulative"].sum()
    out = out.rename(columns={"qty_per_cumulative": "qty_per"})
    out["top_item_id"] = out["top_item_id"].astype(str)
    out["component_item_id"] = out["component_item_id"].astype(str)
    return out[columns]


# The material LP ------------------------------------------------------------------------
@dataclass
class MaterialPlan:
    """What the material LP decided for one production plan.

    Attributes:
        plan_materials: ``PLAN_MATERIALS_COLUMNS``, one row per material × location × month.
        purchases: supplier_id (None: bought without a supplier limit), component_item_id,
            location_id, month, planned_purchase_qty.
        kept: item_id, location_id, month, planned_production_qty, kept_qty (production
            the materials allow) for every made item with a BOM.
        cuts: ``MATERIAL_CUT_COLUMNS``: production that could not be made for lack of
            material, with the binding material and supplier.
        stats: sizes and seconds.
    """

    plan_materials: pd.DataFrame
    purchases: pd.DataFrame
    kept: pd.DataFrame
    cuts: pd.DataFrame
    stats: dict[str, float] = field(default_factory=dict)


def _item_table(items: pd.DataFrame) -> pd.DataFrame:
    table = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    return table.set_index("item_id")


def _source_rows(
    components: pd.DataFrame,
    supplier_capacity: pd.DataFrame | None,
    items: pd.DataFrame,
    months: pd.DatetimeIndex,
) -> pd.DataFrame:
    """One row per source × material × month: supplier (or none), limit, blocked, cost."""
    table = _item_table(items)
    mats = pd.Index(components["component_item_id"].unique())
    item_cost = pd.to_numeric(table["unit_cost"], errors="coerce").reindex(mats)
    item_lead = pd.to_numeric(table["lead_time_days"], errors="coerce").reindex(mats)
    sc = (
        supplier_capacity.copy()
        if supplier_capacity is not None and not supplier_capacity.empty
        else pd.DataFrame(
            columns=["supplier_id", "item_id", "month", "max_qty", "lead_time_days", "unit_cost"]
        )
    )
    sc["item_id"] = sc["item_id"].astype(str)
    sc = sc[sc["item_id"].isin(mats)]
    if not sc.empty:
        sc["month"] = as_month_start(sc["month"])
        sc = sc[sc["month"].isin(months)]
    with_supplier = set(sc["item_id"])
    free = [m for m in mats if m not in with_supplier]
    rows = []
    if len(sc):
        rows.append(
            pd.DataFrame(
                {
                    "supplier_id": sc["supplier_id"].astype(str).to_numpy(),
                    "component_item_id": sc["item_id"].to_numpy(),
                    "month": sc["month"].to_numpy(),
                    "max_qty": pd.to_numeric(sc["max_qty"], errors="coerce").to_numpy(dtype=float),
                    "lead_time_days": pd.to_numeric(sc["lead_time_days"], errors="coerce")
                    .fillna(sc["item_id"].map(item_lead))
                    .to_numpy(dtype=float),
                    "unit_cost": pd.to_numeric(sc["unit_cost"], errors="coerce")
                    .fillna(sc["item_id"].map(item_cost))
                    .to_numpy(dtype=float),
                }
            )
        )
    if free:
        grid = pd.MultiIndex.from_product([free, months], names=["component_item_id", "month"])
        frame = grid.to_frame(index=False)
        frame["supplier_id"] = None
        frame["max_qty"] = np.nan
        frame["lead_time_days"] = frame["component_item_id"].map(item_lead).astype(float)
        frame["unit_cost"] = frame["component_item_id"].map(item_cost).astype(float)
        rows.append(frame)
    out = pd.concat(rows, ignore_index=True)
    out["unit_cost"] = out["unit_cost"].where(out["unit_cost"] > 0, 1.0).fillna(1.0)
    t = months.get_indexer(pd.DatetimeIndex(out["month"]))
    blocked = np.array([lead_time_blocked_months(lt, True) for lt in out["lead_time_days"]])
    out["t"] = t
    out["blocked"] = t < blocked
    return out


def _material_stock(
    mats: pd.MultiIndex,
    inventory_position: pd.DataFrame,
    open_supply: pd.DataFrame | None,
    months: pd.DatetimeIndex,
) -> tuple[np.ndarray, np.ndarray]:
    """Stock on hand per material × location and its open purchase orders per month."""
    on_hand = (
        inventory_position.assign(
            item_id=inventory_position["item_id"].astype(str),
            location_id=inventory_position["location_id"].astype(str),
        )
        .groupby(SERIES)["on_hand_qty"]
        .sum()
        .reindex(mats, fill_value=0.0)
        .clip(lower=0.0)
        .to_numpy(dtype=float)
    )
    receipts = np.zeros((len(mats), len(months)))
    if open_supply is not None and not open_supply.empty:
        opens = open_supply.assign(
            item_id=open_supply["item_id"].astype(str),
            location_id=open_supply["location_id"].astype(str),
        )
        if "supply_type" in opens:
            opens = opens[opens["supply_type"].astype(str).str.lower() != "production"]
        opens = opens.assign(month=as_month_start(opens["due_month"]).clip(lower=months[0]))
        opens = opens[opens["month"] <= months[-1]]
        c_idx = mats.get_indexer(pd.MultiIndex.from_frame(opens[SERIES]))
        keep = c_idx >= 0
        np.add.at(
            receipts,
            (c_idx[keep], months.get_indexer(pd.DatetimeIndex(opens["month"][keep]))),
            pd.to_numeric(opens["open_qty"][keep], errors="coerce").fillna(0.0).to_numpy(),
        )
    return on_hand, receipts


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
    r = (
        prod.pivot_table(
            index=SERIES, columns="month", values="planned_production_qty", aggfunc="sum"
        )
        .reindex(index=parents, columns=months)
        .fillna(0.0)
        .clip(lower=0.0)
        .to_numpy(dtype=float)
    )
    r_req = r
    if requested is not None:
        req = requested.assign(
            item_id=requested["item_id"].astype(str),
            location_id=requested["location_id"].astype(str),
            month=as_month_start(requested["month"]),
        )
        r_req = (
            req.pivot_table(
                index=SERIES, columns="month", values="planned_production_qty", aggfunc="sum"
            )
            .reindex(index=parents, columns=months)
            .fillna(0.0)
            .clip(lower=0.0)
            .to_numpy(dtype=float)
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


# The supply plan with materials -------------------------------------------------------
def material_items(exploded: pd.DataFrame | None, plan_demand: pd.DataFrame) -> set[str]:
    """Purchased materials (BOM leaves) that have no demand of their own in the plan."""
    if exploded is None or exploded.empty:
        return set()
    leaves = set(exploded.loc[exploded["is_leaf"].astype(bool), "component_item_id"].astype(str))
    return leaves - set(plan_demand["item_id"].astype(str))


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


def check_materials(plan_materials: pd.DataFrame) -> list[str]:
    """The material plan closes and keeps within supplier capacity (a blocking check).

    Args:
        plan_materials: ``PLAN_MATERIALS_COLUMNS``.

    Returns:
        Problems found, each naming material, location and month; empty when it holds.
    """
    from sop_pipeline.planning.inventory import close, limit_messages

    require_columns(plan_materials, "plan_materials", PLAN_MATERIALS_COLUMNS[:11])
    if plan_materials.empty:
        return []
    m = plan_materials.sort_values(["component_item_id", "location_id", "month"])
    messages = []
    lhs = (
        m["opening_qty"]
        + m["open_order_receipts_qty"]
        + m["planned_purchase_qty"]
        - m["consumed_qty"]
    ).to_numpy(dtype=float)
    bad = ~close(lhs, m["closing_qty"].to_numpy(dtype=float))
    for row, value in zip(m[bad].itertuples(), lhs[bad], strict=True):
        messages.append(
            f"material {row.component_item_id} at {row.location_id} in {row.month:%Y-%m} does not "
            f"balance: opening + receipts + purchases − consumed = {value:.6g} but closing_qty = "
            f"{row.closing_qty:.6g}."
        )
    numbers = ["dependent_demand_qty", "planned_purchase_qty", "closing_qty", "shortage_qty"]
    for col in numbers:
        for row in m[m[col] < -1e-6].itertuples():
            messages.append(
                f"{col} of material {row.component_item_id} at {row.location_id} in "
                f"{row.month:%Y-%m} is negative ({getattr(row, col):.6g})."
            )
    bought = m.groupby(["component_item_id", "month"]).agg(
        bought=("planned_purchase_qty", "sum"), limit=("supplier_capacity_qty", "first")
    )
    over = bought[
        bought["limit"].notna() & (bought["bought"] > bought["limit"] * (1 + 1e-6) + 1e-6)
    ]
    for (item, month), row in over.iterrows():
        messages.append(
            f"purchases of material {item} in {month:%Y-%m} ({row['bought']:,.6g}) exceed its "
            f"supplier capacity ({row['limit']:,.6g})."
        )
    return limit_messages(messages)


def material_exceptions(plan_materials: pd.DataFrame) -> pd.DataFrame:
    """One ``material_short`` exception per material × location × month that is short.

    Args:
        plan_materials: ``PLAN_MATERIALS_COLUMNS``.

    Returns:
        Rows in ``exceptions.EXCEPTION_COLUMNS`` (high severity: production is cut).
    """
    from sop_pipeline.planning.exceptions import EXCEPTION_COLUMNS

    if plan_materials is None or plan_materials.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    short = plan_materials[plan_materials["shortage_qty"] > 1e-6]
    records = []
    for row in short.itertuples(index=False):
        share = row.shortage_qty / row.dependent_demand_qty if row.dependent_demand_qty > 0 else 1
        binding = row.binding_constraint or f"material {row.component_item_id} short"
        records.append(
            (
                "material_short",
                "high",
                "material/location",
                f"{row.component_item_id}@{row.location_id}",
                row.month,
                float(row.shortage_qty),
                0.0,
                f"Material short: {row.component_item_id} at {row.location_id} misses "
                f"{row.shortage_qty:,.0f} units ({share:.0%} of the {row.dependent_demand_qty:,.0f} "
                f"production needs) for {row.month:%Y-%m}, so production of the items made from "
                f"it is cut ({binding}): expedite or add a supplier, buy ahead of the dip, or agree "
                "the cut with sales.",
                binding,
            )
        )
    out = pd.DataFrame.from_records(records, columns=EXCEPTION_COLUMNS)
    out["month"] = pd.to_datetime(out["month"]).astype("datetime64[ns]")
    return out.astype({"value": float, "threshold": float})


def with_material_exceptions(
    exceptions: pd.DataFrame, plan_materials: pd.DataFrame | None
) -> pd.DataFrame:
    """``find_exceptions``' frame with the material shortages added, most severe first."""
    from sop_pipeline.planning.exceptions import _SEVERITY_ORDER

    extra = material_exceptions(plan_materials)
    if extra.empty:
        return exceptions
    out = pd.concat([exceptions, extra], ignore_index=True) if len(exceptions) else extra
    out["_rank"] = out["severity"].map(_SEVERITY_ORDER)
    out = out.sort_values(
        ["_rank", "exception_type", "month", "scope_id"], na_position="first", kind="stable"
    )
    return out.drop(columns="_rank").reset_index(drop=True)
