"""Min lots, applied after the LP.

``_capacity_limit`` is the hours a work center can give in a month (available + overtime, or
the firm hours above it); ``_round_to_lots`` releases whole lots where the capacity left allows,
never behind the LP's cumulative quantity; ``_materials_cap`` asks what the materials allow of
a rounded production plan.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from sop_pipeline.planning.grid import series_month_grid
from sop_pipeline.planning.inventory import SERIES, as_month_start
from sop_pipeline.planning.supply.model import QTY_EPS, _Problem


def _capacity_limit(p: _Problem, overtime_share: float) -> np.ndarray:
    # firm (open production order) hours above available + overtime are committed work:
    # then the limit is the firm hours and the plan adds nothing
    return np.maximum((1.0 + overtime_share) * p.available, p.open_hours)


def _round_to_lots(
    p: _Problem, qty: np.ndarray, overtime_share: float, exact: np.ndarray | None = None
) -> np.ndarray:
    """Release whole lots where the capacity left allows it, else the LP's own quantity.

    Month by month, each series owes what the LP's cumulative quantity exceeds what was
    released so far. A series with a min lot releases that rounded up to whole lots when
    every work center of its routing still has room for the extra hours (series adding the
    fewest extra hours first); else the whole lots below what it owes, plus one lot in the
    latest earlier month with room (pre-build, not before the lead time allows); else
    exactly what it owes (a part lot, which the ``lp_qty`` / ``min_lot_qty`` columns show).

    So by every month the released quantity is never below the LP's (the plan serves at
    least what the LP served: rounding can never lose service, nor let a capacity loss gain
    it), the hours never exceed available + overtime where the LP's did not, and nothing is
    released before the lead time allows; the total stays within one lot of the LP's.
    Series in ``exact`` (a mask) release the LP's quantities, as if they had no min lot.
    """
    lot = np.where(p.min_lot > QTY_EPS, p.min_lot, 0.0)
    if exact is not None:
        lot = np.where(exact, 0.0, lot)
    if not (lot > 0).any():
        return qty.copy()
    n, horizon = qty.shape
    cumulative = np.cumsum(np.where(qty > QTY_EPS, qty, 0.0), axis=1)
    # series × work centers is small (10,000 × 8 at most): dense rows are read in the loop
    route = p.route.toarray() * p.manufactured[:, None] if p.route.nnz else np.zeros((n, 0))
    limit = _capacity_limit(p, overtime_share) if route.shape[1] else np.zeros((0, horizon))
    room = limit + 1e-6 * np.maximum(1.0, limit) - p.open_hours if route.shape[1] else limit
    released = np.zeros(n)
    out = np.zeros_like(qty)
    size = np.where(lot > 0, lot, 1.0)
    for t in range(horizon):
        owe = np.clip(cumulative[:, t] - released, 0.0, None)
        owe = np.where(owe > QTY_EPS, owe, 0.0)
        whole = np.where(lot > 0, np.ceil(owe / size - 1e-9) * lot, owe)
        month = owe.copy()
        extra = route * (whole - owe)[:, None]
        up = whole - owe > QTY_EPS
        # no hours (purchased, or no routing): the whole lot always fits
        free = up & ~(extra > 0).any(axis=1)
        month[free] = whole[free]
        room[:, t] -= route.T @ owe
        candidates = np.flatnonzero(up & ~free)
        for s in candidates[np.argsort(extra[candidates].sum(axis=1), kind="stable")]:
            if np.all(extra[s] <= room[:, t]):
                room[:, t] -= extra[s]
                month[s] = whole[s]
                continue
            # one lot earlier, the rest at t as whole lots below what is owed
            below = whole[s] - lot[s]
            uses = route[s] > 0
            for u in range(t - 1, int(p.blocked[s]) - 1, -1):
                if np.all(route[s, uses] * lot[s] <= room[uses, u]):
                    room[:, u] -= route[s] * lot[s]
                    room[:, t] += route[s] * (owe[s] - below)
                    out[s, u] += lot[s]
                    released[s] += lot[s]
                    month[s] = below
                    break
        out[:, t] = month
        released += month
    return out


def _materials_cap(
    p: _Problem, qty: np.ndarray, limit_rounded: Callable[[pd.DataFrame], pd.DataFrame | None]
) -> np.ndarray:
    """What the materials allow of a production plan, series × month (inf: no limit)."""
    n, horizon = qty.shape
    rounded = pd.DataFrame(
        {
            "item_id": np.repeat(p.series.get_level_values(0).to_numpy(), horizon),
            "location_id": np.repeat(p.series.get_level_values(1).to_numpy(), horizon),
            "month": np.tile(p.months.to_numpy(), n),
            "planned_production_qty": np.where(p.manufactured[:, None], qty, 0.0).reshape(-1),
        }
    )
    cap = limit_rounded(rounded)
    out = np.full((n, horizon), np.inf)
    if cap is None or cap.empty:
        return out
    cap = cap.assign(month=as_month_start(cap["month"]))
    wide = series_month_grid(cap, p.series, p.months, "max_production_qty")
    listed = p.series.isin(pd.MultiIndex.from_frame(cap[SERIES].astype(str)).unique())
    return np.where(listed[:, None] & p.manufactured[:, None], wide, out)
