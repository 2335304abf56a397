"""Explanations of the plan's shortages.

``_explain`` gives one row per series × month short with the constraint that binds: capacity
(the work center with the highest shadow price, with that price), lead time, no source, a min
lot the materials cut back, or a cost trade-off under the strategy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import KEY
from sop_pipeline.planning.supply.model import QTY_EPS, SHADOW_EPS, _Problem


def _explain(
    p: _Problem, shortage: np.ndarray, shadow: np.ndarray, strategy: str, rounded_down: np.ndarray
) -> pd.DataFrame:
    n, horizon = shortage.shape
    best_val = np.zeros((n, horizon))
    best_wc = np.full((n, horizon), -1)
    by_center = p.route.tocsc()
    for wc in range(len(p.centers)):
        members = by_center.indices[by_center.indptr[wc] : by_center.indptr[wc + 1]]
        better = shadow[wc][None, :] > best_val[members]
        best_val[members] = np.where(better, shadow[wc][None, :], best_val[members])
        best_wc[members] = np.where(better, wc, best_wc[members])
    labels = p.months.strftime("%Y-%m")
    records = []
    for s, t in np.argwhere(shortage > QTY_EPS):
        item, loc = p.series[s]
        wc_idx, price, kind = -1, np.nan, "trade_off"
        if not p.has_source[s]:
            kind = "no_source"
            text = "no routing and no supplier: the item has no routing and no purchase lead time in dim_items"
        elif t < p.blocked[s]:
            kind = "lead_time"
            what = "purchase" if not p.manufactured[s] else "production"
            text = (
                f"{what} lead time {p.lead_time[s]:.0f} days: no new receipt before "
                f"{labels[p.blocked[s]] if p.blocked[s] < horizon else 'the horizon end'}"
            )
        else:
            window = np.arange(p.blocked[s], t + 1)[::-1]
            hit = window[best_val[s, window] > SHADOW_EPS]
            if p.manufactured[s] and len(hit):
                tt = hit[0]
                wc_idx, price, kind = best_wc[s, tt], best_val[s, tt], "capacity"
                wc = p.centers[wc_idx]
                if p.available[wc_idx, tt] <= 0:
                    text = f"capacity {wc} in {labels[tt]} (no available hours)"
                else:
                    text = f"capacity {wc} in {labels[tt]} (shadow price {price:,.2f} per hour)"
                if tt < t:
                    text += ": no free capacity earlier to pre-build"
            elif rounded_down[s, : t + 1].any():
                kind = "min_lot"
                text = (
                    f"min lot {p.min_lot[s]:g}: the materials allowed less than the LP planned "
                    "once its lots were rounded"
                )
            else:
                text = (
                    f"cost trade-off under the {strategy} strategy: the shortage costs less than "
                    "building ahead or changing the production rate"
                )
        records.append(
            (
                item,
                loc,
                p.months[t],
                shortage[s, t],
                text,
                kind,
                p.centers[wc_idx] if wc_idx >= 0 else None,
                price,
            )
        )
    return pd.DataFrame.from_records(
        records,
        columns=[
            *KEY,
            "shortage_qty",
            "binding_constraint",
            "constraint_type",
            "work_center_id",
            "shadow_price",
        ],
    ).astype({"month": "datetime64[ns]", "shortage_qty": float, "shadow_price": float})
