"""The series × month grid: long plan frames to the dense arrays the supply and inventory maths use."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The columns naming a plan series (one item at one location).
SERIES = ["item_id", "location_id"]


def series_month_grid(
    frame: pd.DataFrame, series: pd.MultiIndex, months: pd.DatetimeIndex, col: str
) -> np.ndarray:
    """Pivot ``col`` of a long item × location × month frame to a series × month array.

    Args:
        frame: rows with ``item_id``, ``location_id``, ``month`` and ``col``; rows of one
            series and month are summed.
        series: the rows of the result, (item_id, location_id) pairs in order.
        months: the columns of the result (month starts).
        col: the value column.

    Returns:
        ``len(series) × len(months)`` floats; 0.0 where the frame has no row.
    """
    if frame.empty:
        return np.zeros((len(series), len(months)))
    wide = frame.pivot_table(
        index=SERIES, columns="month", values=col, aggfunc="sum", fill_value=0.0
    )
    return wide.reindex(index=series, columns=months, fill_value=0.0).to_numpy(dtype=float)
