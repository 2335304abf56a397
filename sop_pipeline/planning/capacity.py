"""Rough-cut capacity: hours needed and available per work center × month.

Every unit of an item, at any location, loads each work center of the item's routing with
``hours_per_unit`` hours (a distribution center is a stocking point of the plant, so its
demand is made on the plant's work centers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import (
    as_month_start,
    close,
    horizon_months,
    limit_messages,
    require_columns,
)

PLAN_CAPACITY_COLUMNS = [
    "work_center_id",
    "month",
    "available_hours",
    "required_hours",
    "planned_hours",
    "utilization",
]


_HOUR_COLUMNS = ("planned_hours", "overtime_hours", "open_order_hours")
#: firm hours (open production orders), the hours the plan adds, and firm hours above
#: available + overtime (see ``check_capacity``)
_FIRM_COLUMNS = ("firm_hours", "lp_hours", "firm_excess_hours")


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    # A work center with no hours has no meaningful utilization: null, and the exception
    # report flags any load on it instead.
    return (num / den.where(den > 0)).astype(float)


def rough_cut_capacity(
    plan_demand: pd.DataFrame,
    routings: pd.DataFrame,
    capacity: pd.DataFrame,
    planned_hours: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Required (unconstrained) and available hours per work center × month.

    Args:
        plan_demand: consensus plan (item_id, month, consensus_qty).
        routings: fct_routings (item_id, work_center_id, hours_per_unit).
        capacity: fct_capacity (work_center_id, month, available_hours; location_id kept).
        planned_hours: optional supply-plan load (work_center_id, month, planned_hours and
            optionally overtime_hours, open_order_hours); without it planned_hours is 0.

    Returns:
        plan_capacity: work_center_id, month, available_hours, required_hours,
        planned_hours, utilization (planned / available: calendar load, up to 1 +
        overtime share), then required_utilization (required / available),
        overtime_hours, open_order_hours, location_id, firm_hours (= open_order_hours),
        lp_hours (planned − firm), firm_excess_hours (firm above available + overtime). Months are
        the plan horizon; work centers are those of the capacity table and the routings.
    """
    require_columns(plan_demand, "plan_demand", ["item_id", "month", "consensus_qty"])
    require_columns(routings, "routings", ["item_id", "work_center_id", "hours_per_unit"])
    require_columns(capacity, "capacity", ["work_center_id", "month", "available_hours"])
    months = horizon_months(plan_demand)

    demand = plan_demand[["item_id", "month", "consensus_qty"]].copy()
    demand["month"] = as_month_start(demand["month"])
    load = demand.merge(routings[["item_id", "work_center_id", "hours_per_unit"]], on="item_id")
    load["required_hours"] = load["consensus_qty"] * load["hours_per_unit"]
    required = load.groupby(["work_center_id", "month"], as_index=False)["required_hours"].sum()

    cap = capacity.copy()
    cap["month"] = as_month_start(cap["month"])
    available = cap.groupby(["work_center_id", "month"], as_index=False)["available_hours"].sum()

    centers = sorted(
        set(cap["work_center_id"].astype(str)) | set(routings["work_center_id"].astype(str))
    )
    grid = pd.MultiIndex.from_product(
        [centers, months], names=["work_center_id", "month"]
    ).to_frame(index=False)
    for part in (available, required):
        part["work_center_id"] = part["work_center_id"].astype(str)
    out = grid.merge(available, on=["work_center_id", "month"], how="left")
    out = out.merge(required, on=["work_center_id", "month"], how="left")
    if planned_hours is not None and not planned_hours.empty:
        planned = planned_hours.copy()
        planned["work_center_id"] = planned["work_center_id"].astype(str)
        planned["month"] = as_month_start(planned["month"])
        keep = [c for c in (*_HOUR_COLUMNS, *_FIRM_COLUMNS) if c in planned]
        out = out.merge(
            planned[["work_center_id", "month", *keep]], on=["work_center_id", "month"], how="left"
        )
    for col in ("available_hours", "required_hours", *_HOUR_COLUMNS, *_FIRM_COLUMNS):
        if col not in out:
            out[col] = 0.0
        out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0.0).astype(float)
    out["utilization"] = _ratio(out["planned_hours"], out["available_hours"])
    out["required_utilization"] = _ratio(out["required_hours"], out["available_hours"])
    if "location_id" in cap:
        loc = cap.assign(work_center_id=cap["work_center_id"].astype(str)).drop_duplicates(
            "work_center_id"
        )
        out["location_id"] = out["work_center_id"].map(
            loc.set_index("work_center_id")["location_id"]
        )
    else:
        out["location_id"] = None
    out["month"] = out["month"].astype("datetime64[ns]")
    return out[
        [
            *PLAN_CAPACITY_COLUMNS,
            "required_utilization",
            "overtime_hours",
            "open_order_hours",
            "location_id",
            *_FIRM_COLUMNS,
        ]
    ]


def check_capacity(plan_capacity: pd.DataFrame, overtime_share: float) -> list[str]:
    """Planned hours stay within available hours plus the allowed overtime.

    Open production orders due in a month are firm, committed work: they use the calendar
    and the overtime first; when they alone exceed available + overtime the limit is their
    hours (the plan adds nothing on top; ``find_exceptions`` flags the month).

    Args:
        plan_capacity: work_center_id, month, available_hours, planned_hours (and
            optionally open_order_hours).
        overtime_share: overtime allowed as a share of available hours (settings).

    Returns:
        Problems found, naming the work center and month; empty when within capacity.
    """
    require_columns(
        plan_capacity,
        "plan_capacity",
        ["work_center_id", "month", "available_hours", "planned_hours"],
    )
    cap = plan_capacity.reset_index(drop=True)
    avail = cap["available_hours"].to_numpy(dtype=float)
    committed = (
        cap["open_order_hours"].to_numpy(dtype=float)
        if "open_order_hours" in cap
        else np.zeros_like(avail)
    )
    limit = np.maximum((1.0 + overtime_share) * avail, committed)
    planned = cap["planned_hours"].to_numpy(dtype=float)
    bad = (planned > limit) & ~close(planned, limit)
    rows = cap.loc[bad]
    messages = [
        f"work center {wc} in {m:%Y-%m} is planned for {p:,.1f} h ({f:,.1f} h firm) but only "
        f"{lim:,.1f} h ({a:,.1f} h available + {overtime_share:.0%} overtime, or the firm hours "
        "when they alone exceed that) are allowed."
        for wc, m, p, f, lim, a in zip(
            rows["work_center_id"],
            pd.to_datetime(rows["month"]),
            planned[bad],
            committed[bad],
            limit[bad],
            avail[bad],
            strict=True,
        )
    ]
    return limit_messages(messages)
