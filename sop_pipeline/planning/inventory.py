"""Safety stock and the projected inventory of the supply plan (item × location × month).

Safety stock: ``SS = z × σ × sqrt(L + R)`` with ``z = norm.ppf(service_level)``, σ the
one-month forecast error of the series, ``L`` the replenishment lead time in months
(``lead_time_days / 30``) and ``R`` the review period (1 month: the plan is re-run monthly).

Projection: every month closes its books, ``opening + receipts − served = closing``, with
``demand`` equal to the consensus quantity of that month. What happens to demand the plan
cannot serve is one setting (``SOP_UNMET_DEMAND``):

- ``backlog`` (default): it waits, ``backlog_t = backlog_{t−1} + demand_t − served_t``, and
  is served first from the next receipts; ``shortage_qty`` is the backlog open at month end;
- ``lost_sales``: it is lost in its month, ``demand = served + shortage``.

Either way the plan's unmet demand over the horizon is ``Σ demand − Σ served``
(:func:`unmet_demand_total`). Stock-out risk (:func:`stockout_risk`) reads the same demand
distribution as safety stock. See ``docs/supply_and_finance.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import norm

from sop_pipeline.planning.grid import SERIES, series_month_grid

KEY = ["item_id", "location_id", "month"]
Z80 = float(norm.ppf(0.90))  # an 80% two-sided interval spans ±1.2816 σ
Z95 = float(norm.ppf(0.975))
COVER_WINDOW_MONTHS = 3
DAYS_PER_LEAD_TIME_MONTH = 30.0
REL_TOL = 1e-6
MAX_MESSAGES = 20
UNMET_DEMAND_POLICIES = ("backlog", "lost_sales")

PLAN_INVENTORY_COLUMNS = [
    "item_id",
    "location_id",
    "month",
    "opening_qty",
    "receipts_qty",
    "demand_qty",
    "closing_qty",
    "safety_stock_qty",
    "days_of_cover",
    "shortage_qty",
    "stockout_probability",
    "expected_fill_rate",
]


def _policy(unmet_demand: str) -> str:
    if unmet_demand not in UNMET_DEMAND_POLICIES:
        raise ValueError(
            f"unmet_demand={unmet_demand!r} is unknown; use one of {', '.join(UNMET_DEMAND_POLICIES)}."
        )
    return unmet_demand


# Shared helpers (used by the other planning modules) -----------------------------------
def as_month_start(values: pd.Series) -> pd.Series:
    """Normalize a date-like column to ``datetime64[ns]`` month starts."""
    # a datetime64 column skips pd.to_datetime: its cache probe turns up to 10,000 values
    # into Timestamp objects per call, a sixth of a scenario re-plan at the demo's size
    is_datetime = isinstance(values, pd.Series) and np.issubdtype(values.dtype, np.datetime64)
    dates = values if is_datetime else pd.to_datetime(values)
    if isinstance(dates.dtype, np.dtype):  # tz-naive: truncate in numpy (NaT stays NaT)
        month = dates.to_numpy().astype("datetime64[M]").astype("datetime64[ns]")
        return pd.Series(month, index=dates.index, name=dates.name)
    return dates.dt.to_period("M").dt.to_timestamp().astype("datetime64[ns]")


def require_columns(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    """Raise a ValueError naming the frame and the missing columns, if any."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} is missing column(s) {', '.join(missing)}; it has "
            f"{', '.join(map(str, frame.columns)) or 'no columns'}. Pass the mart/table "
            "documented in docs/internals.md."
        )


def close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality within the planning tolerance (1e-6 relative, 1e-6 absolute)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    scale = np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
    return np.abs(a - b) <= REL_TOL * scale


def horizon_months(plan_demand: pd.DataFrame) -> pd.DatetimeIndex:
    """The sorted months of the plan horizon (those present in ``plan_demand``)."""
    return pd.DatetimeIndex(sorted(as_month_start(plan_demand["month"]).unique()))


def limit_messages(messages: list[str]) -> list[str]:
    """Keep the first messages and summarize the rest, so a check result stays readable."""
    if len(messages) <= MAX_MESSAGES:
        return messages
    extra = len(messages) - MAX_MESSAGES
    return [*messages[:MAX_MESSAGES], f"... and {extra} more row(s) with the same problem."]


def _series_index(*frames: pd.DataFrame) -> pd.MultiIndex:
    keys = pd.concat([f[SERIES] for f in frames if not f.empty], ignore_index=True)
    keys = keys.drop_duplicates().sort_values(SERIES)
    return pd.MultiIndex.from_frame(keys.astype({"item_id": str, "location_id": str}))


def _month_lead_time(items: pd.DataFrame, item_ids: pd.Index) -> np.ndarray:
    lt = items.drop_duplicates("item_id").set_index("item_id")["lead_time_days"]
    lt = pd.to_numeric(lt, errors="coerce").reindex(item_ids)
    return (lt.fillna(0.0).clip(lower=0.0) / DAYS_PER_LEAD_TIME_MONTH).to_numpy(dtype=float)


# Safety stock -------------------------------------------------------------------------
def forecast_sigma(plan_demand: pd.DataFrame) -> pd.DataFrame:
    """One-month forecast error σ per series, from the statistical forecast interval.

    σ is read from the first horizon month with an interval: ``(hi80 − point) / 1.2816``,
    or ``(hi95 − point) / 1.96`` when the 80% bound is missing, else 0. The first month is
    the one-step-ahead error that a monthly re-plan is exposed to; later months' intervals
    add up the model's multi-step uncertainty, which a plan re-run every month never faces.

    Args:
        plan_demand: consensus demand plan (item_id, location_id, month, stat_forecast_qty,
            stat_hi80_qty, stat_hi95_qty).

    Returns:
        One row per item × location: item_id, location_id, sigma_qty (≥ 0).
    """
    require_columns(plan_demand, "plan_demand", [*KEY, "stat_forecast_qty"])
    frame = plan_demand.copy()
    frame["month"] = as_month_start(frame["month"])
    point = pd.to_numeric(frame["stat_forecast_qty"], errors="coerce")
    hi80 = pd.to_numeric(frame.get("stat_hi80_qty", np.nan), errors="coerce")
    hi95 = pd.to_numeric(frame.get("stat_hi95_qty", np.nan), errors="coerce")
    frame["sigma_qty"] = ((hi80 - point) / Z80).fillna((hi95 - point) / Z95).clip(lower=0.0)
    first = (
        frame.dropna(subset=["sigma_qty"])
        .sort_values("month")
        .groupby(SERIES, as_index=False)
        .first()
    )
    out = (
        frame[SERIES].drop_duplicates().merge(first[[*SERIES, "sigma_qty"]], on=SERIES, how="left")
    )
    out["sigma_qty"] = out["sigma_qty"].fillna(0.0)
    return out.reset_index(drop=True)


def safety_stock(
    plan_demand: pd.DataFrame,
    items: pd.DataFrame,
    *,
    service_level: float = 0.95,
    review_period_months: float = 1.0,
    sigma: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Safety stock per item × location × month: ``z × σ × sqrt(L + R)``.

    The stock is 0 in months from which the series has no consensus demand left
    (end-of-life items are not stocked for demand that will not come).

    Args:
        plan_demand: consensus demand plan (item_id, location_id, month, consensus_qty and
            the stat forecast interval columns).
        items: dim_items (item_id, lead_time_days).
        service_level: target cycle service level (settings ``service_level``), in (0, 1).
        review_period_months: review period R in months (1: monthly S&OP).
        sigma: optional per-series σ (item_id, location_id, sigma_qty) to use instead of
            the interval-implied one, e.g. the backtest RMSE of the chosen model.

    Returns:
        item_id, location_id, month, safety_stock_qty, sigma_qty, lead_time_months, z.
    """
    if not 0.0 < service_level < 1.0:
        raise ValueError(f"service_level={service_level} must be between 0 and 1 (e.g. 0.95).")
    require_columns(plan_demand, "plan_demand", [*KEY, "consensus_qty"])
    require_columns(items, "items", ["item_id", "lead_time_days"])
    z = float(norm.ppf(service_level))
    demand = plan_demand[[*KEY, "consensus_qty"]].copy()
    demand["month"] = as_month_start(demand["month"])
    sig = forecast_sigma(plan_demand) if sigma is None else sigma[[*SERIES, "sigma_qty"]]
    out = demand.merge(sig, on=SERIES, how="left")
    out["sigma_qty"] = pd.to_numeric(out["sigma_qty"], errors="coerce").fillna(0.0).clip(lower=0.0)
    out["lead_time_months"] = _month_lead_time(items, pd.Index(out["item_id"]))
    out["z"] = z
    out["safety_stock_qty"] = (
        z * out["sigma_qty"] * np.sqrt(out["lead_time_months"] + review_period_months)
    ).clip(lower=0.0)
    # Demand remaining from this month to the horizon end: none left → no stock to keep.
    out = out.sort_values(KEY, ascending=[True, True, False])
    remaining = out.groupby(SERIES)["consensus_qty"].cumsum()
    out.loc[remaining <= 0, "safety_stock_qty"] = 0.0
    out = out.sort_values(KEY).reset_index(drop=True)
    return out[[*KEY, "safety_stock_qty", "sigma_qty", "lead_time_months", "z"]]


# Projection ---------------------------------------------------------------------------
def project_inventory(
    plan_demand: pd.DataFrame,
    plan_supply: pd.DataFrame,
    inventory_position: pd.DataFrame,
    safety_stock: pd.DataFrame | None = None,
    *,
    unmet_demand: str = "lost_sales",
) -> pd.DataFrame:
    """Project inventory month by month, serving demand from stock.

    ``available = opening + receipts``; ``due = demand`` (lost sales) or ``demand +
    previous backlog`` (backlog); ``served = min(due, available)``; ``closing = available −
    served``; ``shortage = due − served`` (lost in the month, or the backlog open at month
    end); the next month opens with this month's closing. ``days_of_cover = closing / average daily demand of the next
    3 months`` (the current month's when it is the last of the horizon); 0 when closing is 0,
    null when there is stock but no demand ahead.

    Args:
        plan_demand: item_id, location_id, month, consensus_qty (family optional).
        plan_supply: item_id, location_id, month, planned_production_qty,
            planned_purchase_qty, open_order_receipts_qty.
        inventory_position: fct_inventory_position (item_id, location_id, on_hand_qty),
            the stock at the plan month's close.
        safety_stock: optional item_id, location_id, month, safety_stock_qty.
        unmet_demand: ``backlog`` or ``lost_sales`` (settings ``unmet_demand``).

    Returns:
        plan_inventory: item_id, location_id, month, opening_qty, receipts_qty, demand_qty,
        closing_qty, safety_stock_qty, days_of_cover, shortage_qty, then served_qty,
        open_order_receipts_qty, planned_receipts_qty, below_safety_stock_qty, backlog_qty
        (0 under lost sales), unmet_demand (the policy). ``stockout_probability`` and
        ``expected_fill_rate`` are added by :func:`stockout_risk`.
    """
    backlog_mode = _policy(unmet_demand) == "backlog"
    require_columns(plan_demand, "plan_demand", [*KEY, "consensus_qty"])
    require_columns(
        plan_supply,
        "plan_supply",
        [*KEY, "planned_production_qty", "planned_purchase_qty", "open_order_receipts_qty"],
    )
    require_columns(inventory_position, "inventory_position", [*SERIES, "on_hand_qty"])
    months = horizon_months(plan_demand)
    demand = plan_demand[[*KEY, "consensus_qty"]].copy()
    demand["month"] = as_month_start(demand["month"])
    supply = plan_supply.copy()
    supply["month"] = as_month_start(supply["month"])
    supply = supply[supply["month"].isin(months)]
    supply["planned_receipts_qty"] = (
        supply["planned_production_qty"] + supply["planned_purchase_qty"]
    )
    position = inventory_position[[*SERIES, "on_hand_qty"]]
    series = _series_index(demand[SERIES], supply[SERIES], position[SERIES])

    d = series_month_grid(demand, series, months, "consensus_qty")
    planned = series_month_grid(supply, series, months, "planned_receipts_qty")
    open_rx = series_month_grid(supply, series, months, "open_order_receipts_qty")
    if safety_stock is not None and not safety_stock.empty:
        ss_frame = safety_stock[[*KEY, "safety_stock_qty"]].copy()
        ss_frame["month"] = as_month_start(ss_frame["month"])
        ss = series_month_grid(ss_frame, series, months, "safety_stock_qty")
    else:
        ss = np.zeros_like(d)
    on_hand = position.groupby(SERIES)["on_hand_qty"].sum().reindex(series, fill_value=0.0)

    n, horizon = d.shape
    opening = np.zeros((n, horizon))
    receipts = planned + open_rx
    served = np.zeros((n, horizon))
    closing = np.zeros((n, horizon))
    shortage = np.zeros((n, horizon))
    stock = np.clip(on_hand.to_numpy(dtype=float), 0.0, None)
    owed = np.zeros(n)
    for t in range(horizon):
        opening[:, t] = stock
        available = stock + receipts[:, t]
        due = d[:, t] + owed
        served[:, t] = np.clip(np.minimum(due, available), 0.0, None)
        closing[:, t] = available - served[:, t]
        shortage[:, t] = due - served[:, t]
        stock = closing[:, t]
        owed = shortage[:, t] if backlog_mode else np.zeros(n)

    days = np.asarray(months.days_in_month, dtype=float)
    cover = np.full((n, horizon), np.nan)
    for t in range(horizon):
        window = slice(t + 1, min(t + 1 + COVER_WINDOW_MONTHS, horizon))
        if window.start >= horizon:
            window = slice(t, t + 1)
        daily = d[:, window].sum(axis=1) / days[window].sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            cover[:, t] = np.where(daily > 0, closing[:, t] / daily, np.nan)
    cover = np.where(closing <= 0, 0.0, cover)

    def flat(a: np.ndarray) -> np.ndarray:
        return a.reshape(-1)

    out = pd.DataFrame(
        {
            "item_id": np.repeat(series.get_level_values(0).to_numpy(), horizon),
            "location_id": np.repeat(series.get_level_values(1).to_numpy(), horizon),
            "month": np.tile(months.to_numpy(), n),
            "opening_qty": flat(opening),
            "receipts_qty": flat(receipts),
            "demand_qty": flat(d),
            "closing_qty": flat(closing),
            "safety_stock_qty": flat(ss),
            "days_of_cover": flat(cover),
            "shortage_qty": flat(shortage),
            "served_qty": flat(served),
            "open_order_receipts_qty": flat(open_rx),
            "planned_receipts_qty": flat(planned),
            "below_safety_stock_qty": flat(np.clip(ss - closing, 0.0, None)),
            "backlog_qty": flat(shortage if backlog_mode else np.zeros_like(shortage)),
        }
    )
    out["unmet_demand"] = unmet_demand
    out["month"] = out["month"].astype("datetime64[ns]")
    return out


def unmet_demand_total(frame: pd.DataFrame) -> float:
    """The plan's unmet demand over the horizon: ``Σ demand − Σ served``.

    One figure under both policies: the units lost (lost sales) or still open at the
    horizon end (backlog). Reads ``demand_qty`` and ``served_qty`` (plan_inventory) or
    ``supply_qty`` (plan_gaps, whose supply is the served quantity).
    """
    served = "served_qty" if "served_qty" in frame else "supply_qty"
    require_columns(frame, "plan", ["demand_qty", served])
    return float(frame["demand_qty"].astype(float).sum() - frame[served].astype(float).sum())


# Stock-out risk -------------------------------------------------------------------------
def _normal_loss(z: np.ndarray) -> np.ndarray:
    """Standard normal loss function ``L(z) = φ(z) − z (1 − Φ(z))`` = E[(X − z)+], X ~ N(0, 1)."""
    return norm.pdf(z) - z * norm.sf(z)


def stockout_risk(
    plan_inventory: pd.DataFrame,
    plan_demand: pd.DataFrame,
    items: pd.DataFrame,
    *,
    review_period_months: float = 1.0,
    sigma: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Stock-out probability and expected fill rate per item × location × month.

    The demand distribution is the one safety stock is sized on (:func:`safety_stock`):
    the forecast error over the protection interval is normal with ``σ_P = σ × sqrt(L +
    R)``, σ the one-month error of :func:`forecast_sigma`. The plan's buffer against it is
    ``b = closing − shortage`` (stock left after the planned demand, negative when the plan
    is already short). Then

    - ``stockout_probability = P(error > b) = 1 − Φ(b / σ_P)`` — at ``closing = safety
      stock`` this is exactly ``1 − service_level``;
    - ``expected_fill_rate = 1 − σ_P L(b / σ_P) / demand`` (the cycle fill rate with the
      standard normal loss function ``L``, R = one month of demand), clipped to [0, 1];
      null in a month without demand.

    With σ = 0 (no interval) the risk is 1 when the plan is short and 0 otherwise.

    Args:
        plan_inventory: the projection (item_id, location_id, month, demand_qty,
            closing_qty, shortage_qty).
        plan_demand: the consensus plan with its stat forecast interval columns.
        items: dim_items (item_id, lead_time_days).
        review_period_months: review period R (1: monthly S&OP), as in safety stock.
        sigma: optional per-series σ (item_id, location_id, sigma_qty), as in safety stock.

    Returns:
        ``plan_inventory`` with stockout_probability, expected_fill_rate and sigma_qty.
    """
    require_columns(plan_inventory, "plan_inventory", [*KEY, "demand_qty", "closing_qty"])
    require_columns(items, "items", ["item_id", "lead_time_days"])
    out = plan_inventory.drop(
        columns=["stockout_probability", "expected_fill_rate", "sigma_qty"], errors="ignore"
    )
    if sigma is not None:
        sig = sigma[[*SERIES, "sigma_qty"]]
    elif "stat_forecast_qty" in plan_demand:
        sig = forecast_sigma(plan_demand)
    else:  # no forecast interval: no known error (risk only where the plan is short)
        sig = plan_demand[SERIES].drop_duplicates().assign(sigma_qty=0.0)
    sig = sig.assign(
        item_id=sig["item_id"].astype(str), location_id=sig["location_id"].astype(str)
    ).drop_duplicates(SERIES)
    keys = pd.MultiIndex.from_arrays(
        [out["item_id"].astype(str), out["location_id"].astype(str)], names=SERIES
    )
    sigma_qty = (
        sig.set_index(SERIES)["sigma_qty"].reindex(keys).fillna(0.0).clip(lower=0.0).to_numpy()
    )
    lead = _month_lead_time(
        items.assign(item_id=items["item_id"].astype(str)), keys.get_level_values(0)
    )
    protection = np.sqrt(lead + review_period_months)
    sigma_p = sigma_qty * protection
    shortage = out["shortage_qty"].to_numpy(dtype=float) if "shortage_qty" in out else 0.0
    buffer = out["closing_qty"].to_numpy(dtype=float) - shortage
    demand = out["demand_qty"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma_p > 0, buffer / np.where(sigma_p > 0, sigma_p, 1.0), 0.0)
        prob = np.where(sigma_p > 0, norm.sf(z), (buffer < -REL_TOL).astype(float))
        expected_short = np.where(sigma_p > 0, sigma_p * _normal_loss(z), np.clip(-buffer, 0, None))
        fill = np.where(demand > 0, np.clip(1.0 - expected_short / demand, 0.0, 1.0), np.nan)
    out["stockout_probability"] = prob
    out["expected_fill_rate"] = fill
    out["sigma_qty"] = sigma_qty
    stable = [c for c in PLAN_INVENTORY_COLUMNS if c in out]
    return out[[*stable, *(c for c in out.columns if c not in stable)]]


# Invariant checks (blocking asset checks) ---------------------------------------------
def _where(frame: pd.DataFrame, mask: np.ndarray) -> list[tuple[str, str, str]]:
    rows = frame.loc[mask]
    months = pd.to_datetime(rows["month"]).dt.strftime("%Y-%m") if "month" in rows else ""
    return list(
        zip(rows["item_id"].astype(str), rows["location_id"].astype(str), months, strict=False)
    )


def check_inventory_balance(plan_inventory: pd.DataFrame) -> list[str]:
    """Every row closes (opening + receipts − served = closing) and chains to the next month.

    Args:
        plan_inventory: the projected inventory (needs served_qty, or demand − shortage).

    Returns:
        Problems found, each naming item, location and month; empty when the plan balances.
    """
    require_columns(
        plan_inventory, "plan_inventory", [*KEY, "opening_qty", "receipts_qty", "closing_qty"]
    )
    inv = plan_inventory.sort_values(KEY).reset_index(drop=True)
    if "served_qty" in inv:
        served = inv["served_qty"].to_numpy(dtype=float)
    else:
        served = (inv["demand_qty"] - inv["shortage_qty"]).to_numpy(dtype=float)
    lhs = (inv["opening_qty"] + inv["receipts_qty"]).to_numpy(dtype=float) - served
    bad = ~close(lhs, inv["closing_qty"].to_numpy(dtype=float))
    messages = [
        f"inventory does not balance for item {i} at {loc} in {m}: opening + receipts − served "
        f"= {v:.6g} but closing_qty = {c:.6g}."
        for (i, loc, m), v, c in zip(
            _where(inv, bad), lhs[bad], inv.loc[bad, "closing_qty"], strict=True
        )
    ]
    same = (inv["item_id"].eq(inv["item_id"].shift())) & (
        inv["location_id"].eq(inv["location_id"].shift())
    )
    prev_close = inv["closing_qty"].shift().to_numpy(dtype=float)
    broken = same.to_numpy() & ~close(inv["opening_qty"].to_numpy(dtype=float), prev_close)
    messages += [
        f"opening_qty of item {i} at {loc} in {m} is not the previous month's closing_qty."
        for i, loc, m in _where(inv, broken)
    ]
    return limit_messages(messages)


def check_non_negative(
    frame: pd.DataFrame, columns: Iterable[str] | None = None, name: str = "plan"
) -> list[str]:
    """Quantities, hours and money that cannot be negative are not (beyond the tolerance).

    Args:
        frame: any plan table.
        columns: the columns to check; default every numeric column ending in ``_qty``
            or ``_hours``.
        name: table name used in the messages.

    Returns:
        Problems found, naming the column and the row key; empty when none is negative.
    """
    if columns is None:
        columns = [
            c
            for c in frame.columns
            if (c.endswith("_qty") or c.endswith("_hours"))
            and pd.api.types.is_numeric_dtype(frame[c])
        ]
    keys = [
        c for c in ("item_id", "location_id", "work_center_id", "family", "month") if c in frame
    ]
    messages: list[str] = []
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values < -REL_TOL * np.maximum(1.0, values.abs())
        for idx in frame.index[bad.to_numpy()]:
            row = frame.loc[idx]
            where = ", ".join(
                f"{k}={row[k]:%Y-%m}" if k == "month" else f"{k}={row[k]}" for k in keys
            )
            messages.append(f"{name}.{col} is negative ({row[col]:.6g}) at {where}.")
    return limit_messages(messages)


def check_demand_served(
    plan_inventory: pd.DataFrame, plan_demand: pd.DataFrame | None = None
) -> list[str]:
    """Demand (plus last month's backlog under backlog) = served + shortage; demand = consensus.

    Args:
        plan_inventory: projected inventory (demand_qty, served_qty, shortage_qty).
        plan_demand: optional consensus plan; its consensus_qty must equal demand_qty.

    Returns:
        Problems found, naming item, location and month; empty when consistent.
    """
    require_columns(
        plan_inventory, "plan_inventory", [*KEY, "demand_qty", "served_qty", "shortage_qty"]
    )
    inv = plan_inventory.sort_values(KEY).reset_index(drop=True)
    due = inv["demand_qty"].to_numpy(dtype=float)
    backlog = "unmet_demand" in inv and (inv["unmet_demand"] == "backlog").any()
    if backlog:
        # backlog: what is due is this month's demand plus last month's open backlog
        same = inv["item_id"].eq(inv["item_id"].shift()) & inv["location_id"].eq(
            inv["location_id"].shift()
        )
        due = due + np.where(same, inv["shortage_qty"].shift().fillna(0.0), 0.0)
    total = (inv["served_qty"] + inv["shortage_qty"]).to_numpy(dtype=float)
    bad = ~close(total, due)
    what = "demand_qty + last month's backlog" if backlog else "demand_qty"
    messages = [
        f"{what} of item {i} at {loc} in {m} is not served_qty + shortage_qty."
        for i, loc, m in _where(inv, bad)
    ]
    if plan_demand is not None:
        dem = plan_demand[[*KEY, "consensus_qty"]].copy()
        dem["month"] = as_month_start(dem["month"])
        inv = inv.copy()
        inv["month"] = as_month_start(inv["month"])
        both = dem.merge(inv[[*KEY, "demand_qty"]], on=KEY, how="left")
        lost = both["demand_qty"].isna().to_numpy() & (both["consensus_qty"].to_numpy() > 0)
        messages += [
            f"consensus demand of item {i} at {loc} in {m} has no row in plan_inventory."
            for i, loc, m in _where(both, lost)
        ]
        both = both.dropna(subset=["demand_qty"]).reset_index(drop=True)
        differ = ~close(
            both["consensus_qty"].to_numpy(dtype=float), both["demand_qty"].to_numpy(dtype=float)
        )
        messages += [
            f"demand_qty of item {i} at {loc} in {m} differs from the consensus_qty."
            for i, loc, m in _where(both, differ)
        ]
    return limit_messages(messages)


def lead_time_blocked_months(lead_time_days: float, is_purchased: bool) -> int:
    """Horizon months in which no new receipt can arrive because of the lead time.

    An order placed when the plan is approved (early in the first horizon month) arrives
    ``lead_time_days`` later: 60 days blocks the first two months. Manufactured items are
    only blocked by a production lead time longer than a month.

    Args:
        lead_time_days: item lead time in days (NaN: unknown).
        is_purchased: True for purchased items.

    Returns:
        Number of leading horizon months with no possible new receipt.
    """
    if lead_time_days is None or not math.isfinite(lead_time_days) or lead_time_days <= 0:
        return 0
    if not is_purchased and lead_time_days <= DAYS_PER_LEAD_TIME_MONTH:
        return 0
    return math.ceil(lead_time_days / DAYS_PER_LEAD_TIME_MONTH - 1e-9)
