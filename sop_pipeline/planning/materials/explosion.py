"""The BOM explosion: ``explode_bom`` and the leaf requirements of planned production.

Multi-level, with scrap and validity dates; leaves are the purchased materials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.inventory import (
    DAYS_PER_LEAD_TIME_MONTH,
    require_columns,
)
from sop_pipeline.planning.materials.constants import (
    EXPLODED_COLUMNS,
    MAX_LEVELS,
    OPEN_END,
    OPEN_START,
)


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
