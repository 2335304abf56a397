"""How long the gate's GX validation takes: 15 expectations on 100,000 rows (target: under 1 s).

.venv/bin/python benchmarks/bench_gx.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from sop_pipeline.quality.gx import validate_dataframe


def main() -> None:
    """Print the seconds of one validation of a 100k-row frame after a warm-up."""
    n = 100_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "order_id": np.char.add("O", np.arange(n).astype(str)),
            "line_no": rng.integers(1, 5, n),
            "status": rng.choice(["open", "shipped"], n),
            "qty": rng.uniform(0, 100, n),
            "price": rng.uniform(0, 100, n),
        }
    )
    exps = [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}}]
    exps.append(
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "status", "value_set": ["open", "shipped"]},
        }
    )
    for col in ("line_no", "qty", "price"):
        exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col}})
        exps.append({"type": "expect_column_to_exist", "kwargs": {"column": col}})
        exps.append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": col, "min_value": 0},
            }
        )
    exps += [
        {"type": "expect_column_to_exist", "kwargs": {"column": c}} for c in ("order_id", "status")
    ]
    suite = {"name": "bench", "expectations": exps}
    validate_dataframe(df.head(10), suite)  # warm the cached context
    start = time.perf_counter()
    outcome = validate_dataframe(df, suite)
    elapsed = time.perf_counter() - start
    print(f"{outcome.evaluated} expectations on {n:,} rows: {elapsed:.2f} s (target < 1 s)")


if __name__ == "__main__":
    main()
