"""The formula of every KPI of the scorecard, and what they read (:class:`KpiInputs`).

Each KPI is one function; its docstring is its definition (the ``definition`` column of
``kpi_scorecard`` repeats it, docs/kpis.md explains it). :data:`KPIS` lists them in
scorecard order; :func:`sop_pipeline.planning.kpis.kpi_scorecard` runs them and adds targets
and status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

AGING_DAYS = 180


@dataclass
class KpiInputs:
    """Everything the scorecard reads (marts and candidate plan tables; see internals.md).

    Any frame may be None when the stage has no such data; KPIs that need it are then
    reported as missing.

    Attributes:
        order_lines: ``fct_order_lines``.
        production_orders: ``fct_production_orders``.
        inventory_history: ``fct_inventory_history`` (month-end inventory value).
        inventory_position: ``fct_inventory_position`` (value and average age).
        demand_history: ``fct_demand_history`` (shipped_qty, demand_revenue).
        plan_demand: candidate ``plan_demand``.
        plan_capacity: candidate ``plan_capacity``.
        plan_financials: candidate ``plan_financials``.
        aop: ``fct_aop_targets``.
        accuracy: ``forecast_accuracy`` output for this plan month.
        items: ``dim_items`` (family, unit_cost, unit_price).
        snapshots: earlier plans' forecasts (input of ``forecast_accuracy``), for the
            revenue KPIs.
        plan_inventory: candidate ``plan_inventory`` (served, shortage, stock-out risk).
        routings: ``fct_routings``, for the family scopes of capacity utilization.
    """

    order_lines: pd.DataFrame | None = None
    production_orders: pd.DataFrame | None = None
    inventory_history: pd.DataFrame | None = None
    inventory_position: pd.DataFrame | None = None
    demand_history: pd.DataFrame | None = None
    plan_demand: pd.DataFrame | None = None
    plan_capacity: pd.DataFrame | None = None
    plan_financials: pd.DataFrame | None = None
    aop: pd.DataFrame | None = None
    accuracy: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    snapshots: pd.DataFrame | None = None
    plan_inventory: pd.DataFrame | None = None
    routings: pd.DataFrame | None = None


class MissingKpi(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a KPI function that has no data; the message is the reason."""


@dataclass(frozen=True)
class _Window:
    plan_month: str
    start: pd.Timestamp  # first day of the plan month
    end: pd.Timestamp  # first day after the plan month

    def forward(self, months: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        """[first, last] month starts of the next ``months`` months after the plan month."""
        return self.end, self.end + pd.DateOffset(months=months - 1)


def _ts(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series)


def _month(series: pd.Series) -> pd.Series:
    return _ts(series).dt.to_period("M").dt.to_timestamp()


def _need(frame: pd.DataFrame | None, what: str, columns: list[str]) -> pd.DataFrame:
    if frame is None or frame.empty:
        raise MissingKpi(f"no {what}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}.")
    return frame


def _with_family(frame: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    if "family" in frame.columns:
        return frame
    if items is None:
        return frame.assign(family="(unknown)")
    out = frame.merge(items[["item_id", "family"]], on="item_id", how="left")
    out["family"] = out["family"].fillna("(unknown)")
    return out


def _ratio_by_scope(
    df: pd.DataFrame, num: str, den: str, by_family: bool = True
) -> list[tuple[str, float]]:
    """(scope, Σnum / Σden) for the total and each family; scopes with Σden = 0 are skipped."""
    out: list[tuple[str, float]] = []
    total_den = df[den].sum()
    if total_den > 0:
        out.append(("total", float(df[num].sum() / total_den)))
    if by_family and "family" in df.columns:
        for fam, g in df.groupby("family", sort=True):
            if g[den].sum() > 0:
                out.append((f"family:{fam}", float(g[num].sum() / g[den].sum())))
    return out


# ---------------------------------------------------------------------------------------
# KPI functions: each returns [(scope, month, value)] or raises MissingKpi(reason)
# ---------------------------------------------------------------------------------------

_Rows = list[tuple[str, pd.Timestamp, float]]


def _lag1_consensus(inputs: KpiInputs, w: _Window) -> pd.Series:
    acc = _need(
        inputs.accuracy,
        "forecast accuracy",
        ["forecast_kind", "level", "lag", "month", "wape", "bias"],
    )
    sel = acc[
        (acc["forecast_kind"] == "consensus")
        & (acc["level"] == "item")
        & (acc["lag"] == 1)
        & (_month(acc["month"]) == w.start)
    ]
    if sel.empty or pd.isna(sel["wape"].iloc[0]):
        raise MissingKpi(
            f"no lag-1 consensus forecast of {w.plan_month} (no earlier plan snapshot yet)"
        )
    return sel.iloc[0]


def forecast_accuracy_kpi(inputs: KpiInputs, w: _Window) -> _Rows:
    """max(0, 1 − WAPE) of the lag-1 consensus forecast over item × location series in the plan month."""
    return [("total", w.start, max(0.0, 1.0 - float(_lag1_consensus(inputs, w)["wape"])))]


BIAS_MONTHS = 3
"""Months the bias KPI pools: one month's total error is mostly noise (on the demo its sign
flips month to month, −7.5% … +6.4%, as the naive's does); bias is the error that persists."""


def forecast_bias(inputs: KpiInputs, w: _Window) -> _Rows:
    """Σ(F − A) / ΣA of the lag-1 consensus forecast over the plan month and the two before it.

    Positive = over-forecast. Months of the window without a lag-1 forecast (the first plans)
    are left out; the plan month itself must have one.
    """
    _lag1_consensus(inputs, w)  # raises MissingKpi without a lag-1 forecast of the plan month
    acc = _need(
        inputs.accuracy,
        "forecast accuracy",
        ["forecast_kind", "level", "lag", "month", "actual_qty", "forecast_qty"],
    )
    first = w.start - pd.DateOffset(months=BIAS_MONTHS - 1)
    months = _month(acc["month"])
    sel = acc[
        (acc["forecast_kind"] == "consensus")
        & (acc["level"] == "item")
        & (acc["lag"] == 1)
        & (months >= first)
        & (months <= w.start)
    ]
    actual = float(sel["actual_qty"].sum())
    if actual <= 0:
        raise MissingKpi(f"no actual demand in the {BIAS_MONTHS} months to {w.plan_month}")
    return [("total", w.start, float((sel["forecast_qty"].sum() - actual) / actual))]


def _revenue_pairs(inputs: KpiInputs, w: _Window) -> pd.DataFrame:
    """Lag-1 consensus forecast revenue (qty × unit price) and actual demand revenue per series."""
    snap = _need(
        inputs.snapshots,
        "earlier plan snapshots",
        ["item_id", "location_id", "month", "lag", "consensus_qty"],
    )
    hist = _need(
        inputs.demand_history,
        "demand history",
        ["item_id", "location_id", "month", "demand_revenue"],
    )
    items = _need(inputs.items, "items", ["item_id", "family", "unit_price"])
    snap = snap[(snap["lag"] == 1) & (_month(snap["month"]) == w.start)]
    if snap.empty:
        raise MissingKpi(
            f"no lag-1 consensus forecast of {w.plan_month} (no earlier plan snapshot yet)"
        )
    if "unit_price" in snap.columns:
        # the snapshot keeps the price the plan was made with: forecast revenue as planned
        fc = snap.copy()
    else:
        fc = snap.merge(items[["item_id", "unit_price"]], on="item_id", how="left")
    fc["forecast_revenue"] = fc["consensus_qty"].astype(float) * fc["unit_price"].astype(
        float
    ).fillna(0.0)
    act = hist[_month(hist["month"]) == w.start][["item_id", "location_id", "demand_revenue"]]
    both = fc[["item_id", "location_id", "forecast_revenue"]].merge(
        act, on=["item_id", "location_id"], how="outer"
    )
    both = both.fillna({"forecast_revenue": 0.0, "demand_revenue": 0.0})
    both["abs_error"] = (both["forecast_revenue"] - both["demand_revenue"]).abs()
    # |F − R| ≤ max(F, R) for F, R ≥ 0: the denominator that keeps the accuracy in [0, 1]
    # even for intermittent series whose forecast lands in months without demand
    both["max_revenue"] = np.maximum(both["forecast_revenue"], both["demand_revenue"])
    return _with_family(both.drop(columns=["family"], errors="ignore"), items)


def revenue_forecast_accuracy(inputs: KpiInputs, w: _Window) -> _Rows:
    """1 − Σ|F·price − R| / Σmax(F·price, R) over item × location in the plan month (lag-1 consensus F, actual demand revenue R), in [0, 1]."""
    pairs = _revenue_pairs(inputs, w)
    return [
        (scope, w.start, 1.0 - v) for scope, v in _ratio_by_scope(pairs, "abs_error", "max_revenue")
    ]


def total_sales_vs_forecast(inputs: KpiInputs, w: _Window) -> _Rows:
    """Actual demand revenue ÷ lag-1 consensus forecast revenue in the plan month (1.0 = as forecast)."""
    pairs = _revenue_pairs(inputs, w)
    return [
        (scope, w.start, v)
        for scope, v in _ratio_by_scope(pairs, "demand_revenue", "forecast_revenue")
    ]


def inventory_turns(inputs: KpiInputs, w: _Window) -> _Rows:
    """COGS of the last 12 months (shipped qty × unit cost) ÷ average month-end inventory value over those months."""
    hist = _need(inputs.demand_history, "demand history", ["item_id", "month", "shipped_qty"])
    inv = _need(
        inputs.inventory_history, "inventory history", ["item_id", "month", "inventory_value"]
    )
    items = _need(inputs.items, "items", ["item_id", "family", "unit_cost"])
    first = w.start - pd.DateOffset(months=11)
    h = hist[(_month(hist["month"]) >= first) & (_month(hist["month"]) <= w.start)]
    h = h.drop(columns=["family"], errors="ignore").merge(
        items[["item_id", "family", "unit_cost"]], on="item_id", how="left"
    )
    h["cogs"] = h["shipped_qty"].astype(float) * h["unit_cost"].astype(float).fillna(0.0)
    i = inv[(_month(inv["month"]) >= first) & (_month(inv["month"]) <= w.start)]
    if i.empty:
        raise MissingKpi("no inventory snapshots in the last 12 months")
    i = _with_family(i.drop(columns=["family"], errors="ignore"), items)
    n_months = _month(i["month"]).nunique()
    rows: _Rows = []
    scopes = [("total", h, i)] + [
        (f"family:{f}", h[h["family"] == f], i[i["family"] == f])
        for f in sorted(set(i["family"]) | set(h["family"].dropna()))
    ]
    for scope, hs, is_ in scopes:
        avg_value = is_["inventory_value"].astype(float).sum() / n_months
        if avg_value > 0:
            rows.append((scope, w.start, float(hs["cogs"].sum() / avg_value)))
    return rows


def inventory_aging(inputs: KpiInputs, w: _Window) -> _Rows:
    """Share of on-hand inventory value at the plan month's close whose average age exceeds 180 days."""
    pos = _need(
        inputs.inventory_position,
        "inventory position",
        ["item_id", "inventory_value", "avg_age_days"],
    )
    pos = _with_family(pos, inputs.items).copy()
    pos["old_value"] = np.where(
        pos["avg_age_days"].astype(float) > AGING_DAYS, pos["inventory_value"].astype(float), 0.0
    )
    pos["inventory_value"] = pos["inventory_value"].astype(float)
    return [(s, w.start, v) for s, v in _ratio_by_scope(pos, "old_value", "inventory_value")]


def capacity_utilization(inputs: KpiInputs, w: _Window) -> _Rows:
    """Σ planned hours ÷ Σ available hours of the next 3 months (plan_capacity.utilization pooled; a family: its work centers weighted by its hours there; month = first month)."""
    cap = _need(
        inputs.plan_capacity,
        "capacity plan",
        ["work_center_id", "month", "available_hours", "planned_hours"],
    )
    first, last = w.forward(3)
    cap = cap.assign(month=_month(cap["month"]))
    cap = cap[(cap["month"] >= first) & (cap["month"] <= last)]
    rows: _Rows = []
    avail = cap["available_hours"].astype(float).sum()
    if avail > 0:
        rows.append(("total", first, float(cap["planned_hours"].astype(float).sum() / avail)))
    if inputs.routings is not None and inputs.plan_demand is not None and inputs.items is not None:
        # the same family weighting as scenario_comparison's capacity_utilization
        from sop_pipeline.planning.scenarios import family_capacity_utilization

        fam = family_capacity_utilization(
            cap.assign(
                utilization=cap["planned_hours"]
                / cap["available_hours"].where(cap["available_hours"] > 0)
            ),
            inputs.plan_demand,
            inputs.routings,
            inputs.items,
        )
        fam = fam.assign(weighted=fam["capacity_utilization"] * fam["required_hours"])
        for family, g in fam.groupby("family", sort=True):
            if g["required_hours"].sum() > 0:
                rows.append(
                    (
                        f"family:{family}",
                        first,
                        float(g["weighted"].sum() / g["required_hours"].sum()),
                    )
                )
    return rows


def production_schedule_attainment(inputs: KpiInputs, w: _Window) -> _Rows:
    """Σ min(qty completed, qty planned) of production orders due in the plan month and completed by its end ÷ Σ qty planned of those orders (cancelled excluded)."""
    po = _need(
        inputs.production_orders,
        "production orders",
        ["item_id", "qty_planned", "qty_completed", "due_date", "completed_date", "status"],
    )
    due = _ts(po["due_date"])
    po = po[
        (due >= w.start) & (due < w.end) & (po["status"].astype(str).str.lower() != "cancelled")
    ].copy()
    if po.empty:
        raise MissingKpi(f"no production orders due in {w.plan_month}")
    done = _ts(po["completed_date"])
    planned = po["qty_planned"].astype(float)
    # the schedule is a monthly bucket: what was due in M and made in M counts, up to the
    # planned quantity (over-production is not attainment); a day's slip inside the month
    # is not a miss (on-time delivery measures dates, at the customer)
    made = np.minimum(po["qty_completed"].astype(float).fillna(0.0), planned)
    po["attained"] = np.where(done.notna() & (done < w.end), made, 0.0)
    po["planned"] = planned
    po = _with_family(po, inputs.items)
    return [(s, w.start, v) for s, v in _ratio_by_scope(po, "attained", "planned")]


def _lines(inputs: KpiInputs) -> pd.DataFrame:
    lines = _need(
        inputs.order_lines,
        "order lines",
        ["item_id", "requested_date", "ship_date", "qty_ordered", "qty_shipped", "status"],
    )
    lines = lines[lines["status"].astype(str).str.lower() != "cancelled"].copy()
    lines["requested_date"] = _ts(lines["requested_date"])
    lines["ship_date"] = _ts(lines["ship_date"])
    lines["qty_ordered"] = lines["qty_ordered"].astype(float)
    lines["qty_shipped"] = lines["qty_shipped"].astype(float).fillna(0.0)
    lines["one"] = 1.0
    return _with_family(lines, inputs.items)


def on_time_delivery(inputs: KpiInputs, w: _Window) -> _Rows:
    """Order lines shipped in the plan month on or before their requested date ÷ lines shipped in the plan month."""
    lines = _lines(inputs)
    shipped = lines[(lines["ship_date"] >= w.start) & (lines["ship_date"] < w.end)].copy()
    if shipped.empty:
        raise MissingKpi(f"no order lines shipped in {w.plan_month}")
    shipped["on_time"] = (shipped["ship_date"] <= shipped["requested_date"]).astype(float)
    return [(s, w.start, v) for s, v in _ratio_by_scope(shipped, "on_time", "one")]


def order_fill_rate(inputs: KpiInputs, w: _Window) -> _Rows:
    """Σ qty shipped ÷ Σ qty ordered over non-cancelled order lines requested in the plan month."""
    lines = _lines(inputs)
    req = lines[(lines["requested_date"] >= w.start) & (lines["requested_date"] < w.end)].copy()
    if req.empty:
        raise MissingKpi(f"no order lines requested in {w.plan_month}")
    req["filled"] = np.minimum(
        req["qty_shipped"], req["qty_ordered"]
    )  # over-shipment is not service
    return [(s, w.start, v) for s, v in _ratio_by_scope(req, "filled", "qty_ordered")]


def backorder_rate(inputs: KpiInputs, w: _Window) -> _Rows:
    """Share of non-cancelled order lines requested in the plan month not shipped in full by their requested date."""
    lines = _lines(inputs)
    req = lines[(lines["requested_date"] >= w.start) & (lines["requested_date"] < w.end)].copy()
    if req.empty:
        raise MissingKpi(f"no order lines requested in {w.plan_month}")
    late = req["ship_date"].isna() | (req["ship_date"] > req["requested_date"])
    req["backordered"] = (late | (req["qty_shipped"] < req["qty_ordered"])).astype(float)
    return [(s, w.start, v) for s, v in _ratio_by_scope(req, "backordered", "one")]


def _forward_financials(inputs: KpiInputs, w: _Window, columns: list[str]) -> pd.DataFrame:
    fin = _need(inputs.plan_financials, "financial plan", ["family", "month", *columns])
    first, last = w.forward(12)
    fin = fin.assign(month=_month(fin["month"]))
    fin = fin[(fin["month"] >= first) & (fin["month"] <= last)].copy()
    for c in columns:
        fin[c] = fin[c].astype(float)
    return fin


def gross_margin_pct(inputs: KpiInputs, w: _Window) -> _Rows:
    """Σ gross margin ÷ Σ revenue of the plan over the next 12 months (month = first month of the window)."""
    fin = _forward_financials(inputs, w, ["revenue", "gross_margin"])
    return [(s, w.end, v) for s, v in _ratio_by_scope(fin, "gross_margin", "revenue")]


def revenue_to_aop_ratio(inputs: KpiInputs, w: _Window) -> _Rows:
    """Σ planned revenue ÷ Σ AOP revenue over the next 12 months where the AOP has a target (month = first month)."""
    fin = _forward_financials(inputs, w, ["revenue", "aop_revenue"])
    fin = fin[fin["aop_revenue"].fillna(0) > 0]
    if fin.empty:
        raise MissingKpi("no AOP revenue target in the next 12 months")
    return [(s, w.end, v) for s, v in _ratio_by_scope(fin, "revenue", "aop_revenue")]


def working_capital_vs_plan(inputs: KpiInputs, w: _Window) -> _Rows:
    """Inventory value at the plan month's close ÷ AOP inventory value target of the plan month (1.0 = on plan)."""
    pos = _need(inputs.inventory_position, "inventory position", ["item_id", "inventory_value"])
    aop = _need(inputs.aop, "AOP targets", ["family", "month", "inventory_value_target"])
    aop = aop[_month(aop["month"]) == w.start]
    aop = aop[aop["inventory_value_target"].fillna(0).astype(float) > 0]
    if aop.empty:
        raise MissingKpi(f"no AOP inventory value target for {w.plan_month}")
    pos = _with_family(pos, inputs.items)
    value = pos.groupby("family")["inventory_value"].sum().astype(float)
    target = aop.groupby("family")["inventory_value_target"].sum().astype(float)
    both = pd.DataFrame({"value": value, "target": target}).fillna(0.0)
    both = both[both["target"] > 0].reset_index(names="family")
    return [(s, w.start, v) for s, v in _ratio_by_scope(both, "value", "target")]


def _horizon_inventory(inputs: KpiInputs, columns: list[str]) -> pd.DataFrame:
    inv = _need(inputs.plan_inventory, "inventory plan", ["item_id", "month", *columns])
    inv = _with_family(inv.drop(columns=["family"], errors="ignore"), inputs.items).copy()
    for c in columns:
        inv[c] = inv[c].astype(float)
    return inv


def projected_service_level(inputs: KpiInputs, w: _Window) -> _Rows:
    """Σ demand × (1 − stockout_probability) ÷ Σ demand over the horizon: the cycle service level the plan is expected to reach (target: SOP_SERVICE_LEVEL; month = first horizon month)."""
    inv = _horizon_inventory(inputs, ["demand_qty", "stockout_probability"])
    inv["served_cycles"] = inv["demand_qty"] * (1.0 - inv["stockout_probability"].fillna(0.0))
    return [(s, w.end, v) for s, v in _ratio_by_scope(inv, "served_cycles", "demand_qty")]


def unmet_demand_rate(inputs: KpiInputs, w: _Window) -> _Rows:
    """(Σ demand − Σ served) ÷ Σ demand over the horizon: the plan's unmet demand (lost, or backlog still open at the horizon end, per SOP_UNMET_DEMAND) as a share of demand (month = first horizon month)."""
    inv = _horizon_inventory(inputs, ["demand_qty", "served_qty"])
    inv["unmet"] = inv["demand_qty"] - inv["served_qty"]
    return [(s, w.end, max(0.0, v)) for s, v in _ratio_by_scope(inv, "unmet", "demand_qty")]


KPIS: dict[str, Callable[[KpiInputs, _Window], _Rows]] = {
    "forecast_accuracy": forecast_accuracy_kpi,
    "forecast_bias": forecast_bias,
    "revenue_forecast_accuracy": revenue_forecast_accuracy,
    "total_sales_vs_forecast": total_sales_vs_forecast,
    "inventory_turns": inventory_turns,
    "inventory_aging": inventory_aging,
    "capacity_utilization": capacity_utilization,
    "production_schedule_attainment": production_schedule_attainment,
    "on_time_delivery": on_time_delivery,
    "order_fill_rate": order_fill_rate,
    "backorder_rate": backorder_rate,
    "gross_margin_pct": gross_margin_pct,
    "revenue_to_aop_ratio": revenue_to_aop_ratio,
    "working_capital_vs_plan": working_capital_vs_plan,
    "projected_service_level": projected_service_level,
    "unmet_demand_rate": unmet_demand_rate,
}


def definition(kpi: str) -> str:
    """The one-sentence definition of a KPI (first line of its function's docstring)."""
    return (KPIS[kpi].__doc__ or "").strip().splitlines()[0]
