"""The series × month grid that the supply LP and the inventory projection are built on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.planning.grid import series_month_grid


def test_grid_sums_rows_of_a_cell_and_fills_missing_cells_with_zero() -> None:
    months = pd.DatetimeIndex(["2027-01-01", "2027-02-01", "2027-03-01"])
    series = pd.MultiIndex.from_tuples([("B", "L1"), ("A", "L1")], names=["item_id", "location_id"])
    frame = pd.DataFrame(
        {
            "item_id": ["A", "A", "B", "C"],
            "location_id": ["L1", "L1", "L1", "L1"],
            "month": pd.to_datetime(["2027-02-01", "2027-02-01", "2027-03-01", "2027-01-01"]),
            "qty": [1.5, 2.0, 4.0, 9.0],
        }
    )
    grid = series_month_grid(frame, series, months, "qty")
    # rows in the order asked for, C (not asked for) left out, A's two February rows summed
    np.testing.assert_array_equal(grid, [[0.0, 0.0, 4.0], [0.0, 3.5, 0.0]])


def test_grid_of_an_empty_frame_is_all_zeros_of_the_right_shape() -> None:
    series = pd.MultiIndex.from_tuples([("A", "L1")], names=["item_id", "location_id"])
    months = pd.DatetimeIndex(["2027-01-01", "2027-02-01"])
    empty = pd.DataFrame(columns=["item_id", "location_id", "month", "qty"])
    np.testing.assert_array_equal(series_month_grid(empty, series, months, "qty"), [[0.0, 0.0]])
