"""The GX adapter really fails bad frames, passes good ones and points at the right rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sop_pipeline.ingest.contract import EXTRACTS
from sop_pipeline.quality.extract_suites import SUITES_DIR, build_extract_suite, suite_json
from sop_pipeline.quality.gx import (
    EMPTY_FRAME,
    NO_EXPECTATIONS,
    SuiteFileError,
    load_suite,
    validate_dataframe,
)

SUITE = {
    "name": "orders",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "status"}},
        {
            "type": "expect_compound_columns_to_be_unique",
            "kwargs": {"column_list": ["order_id", "line_no"]},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "status", "value_set": ["open", "shipped"]},
        },
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "qty", "min_value": 0}},
    ],
}


def good_frame() -> pd.DataFrame:
    # index = file line numbers, as the reader gives them
    return pd.DataFrame(
        {
            "order_id": ["A", "A", "B", "C"],
            "line_no": [1, 2, 1, 1],
            "status": ["open", "shipped", "open", "shipped"],
            "qty": [1.0, 2.5, 0.0, 10.0],
        },
        index=[2, 3, 4, 5],
    )


def failures_by_type(outcome):
    return {f.expectation: f for f in outcome.failures}


def test_good_frame_passes():
    outcome = validate_dataframe(good_frame(), SUITE)
    assert outcome.success
    assert outcome.evaluated == 5
    assert outcome.row_count == 4
    assert outcome.failures == []


def test_null_is_caught_on_the_right_row():
    df = good_frame()
    df.loc[4, "order_id"] = None
    outcome = validate_dataframe(df, SUITE)
    assert not outcome.success
    fail = next(f for f in outcome.failures if f.column == "order_id")
    assert fail.expectation == "expect_column_values_to_not_be_null"
    assert fail.unexpected_count == 1
    assert fail.unexpected_index == [4]
    assert "order_id" in fail.message and "empty" in fail.message


def test_duplicate_compound_key_fails_and_names_both_rows():
    df = good_frame()
    df.loc[5, ["order_id", "line_no"]] = ["A", 2]  # same key as line 3
    fail = failures_by_type(validate_dataframe(df, SUITE))["expect_compound_columns_to_be_unique"]
    assert fail.column == "order_id, line_no"
    assert fail.unexpected_count == 2
    assert sorted(fail.unexpected_index) == [3, 5]
    assert {"order_id": "A", "line_no": 2} in fail.unexpected_values


def test_value_not_in_set_fails_with_value():
    df = good_frame()
    df.loc[3, "status"] = "lost"
    fail = failures_by_type(validate_dataframe(df, SUITE))["expect_column_values_to_be_in_set"]
    assert fail.unexpected_index == [3]
    assert fail.unexpected_values == ["lost"]
    assert "'lost'" in fail.message and "status" in fail.message


def test_negative_number_fails():
    df = good_frame()
    df.loc[2, "qty"] = -4.0
    outcome = validate_dataframe(df, SUITE)
    fail = failures_by_type(outcome)["expect_column_values_to_be_between"]
    assert not outcome.success
    assert fail.unexpected_index == [2]
    assert fail.unexpected_values == [-4.0]
    assert "at least 0" in fail.message


def test_missing_column_is_a_failure_not_a_crash():
    df = good_frame().drop(columns=["qty"])
    outcome = validate_dataframe(df, SUITE)
    fail = failures_by_type(outcome)["expect_column_values_to_be_between"]
    assert not outcome.success
    assert fail.column == "qty"
    assert "qty" in fail.message


def test_empty_frame_fails_unless_allowed():
    empty = good_frame().iloc[0:0]
    outcome = validate_dataframe(empty, SUITE)
    assert not outcome.success
    assert EMPTY_FRAME in failures_by_type(outcome)
    assert "empty" in failures_by_type(outcome)[EMPTY_FRAME].message
    assert validate_dataframe(empty, SUITE, allow_empty=True).success


def test_suite_without_expectations_fails():
    outcome = validate_dataframe(good_frame(), {"name": "nothing", "expectations": []})
    assert not outcome.success
    assert outcome.evaluated == 0
    assert outcome.failures[0].expectation == NO_EXPECTATIONS


def test_unexpected_index_maps_to_rows_of_a_non_default_index():
    rng = np.random.default_rng(7)
    n = 1000
    df = pd.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(n)],
            "line_no": 1,
            "status": "open",
            "qty": rng.uniform(0, 10, n),
        },
        index=np.arange(n) + 2,
    )
    bad_labels = [17, 501, 999]
    df.loc[bad_labels, "qty"] = -1.0
    fail = failures_by_type(validate_dataframe(df, SUITE))["expect_column_values_to_be_between"]
    assert sorted(fail.unexpected_index) == bad_labels
    assert (df.loc[fail.unexpected_index, "qty"] < 0).all()


def test_index_capped_at_200_but_count_is_total():
    n = 500
    df = pd.DataFrame(
        {"order_id": [f"O{i}" for i in range(n)], "line_no": 1, "status": "open", "qty": -1.0}
    )
    fail = failures_by_type(validate_dataframe(df, SUITE))["expect_column_values_to_be_between"]
    assert fail.unexpected_count == n
    assert len(fail.unexpected_index) == 200
    assert len(fail.unexpected_values) == 20
    full = failures_by_type(validate_dataframe(df, SUITE, index_limit=None))
    assert len(full["expect_column_values_to_be_between"].unexpected_index) == n


def test_load_suite_round_trip_and_errors(tmp_path):
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(SUITE))
    assert load_suite(path) == SUITE
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "expectations": {}}')
    with pytest.raises(SuiteFileError, match=r"bad\.json"):
        load_suite(bad)
    with pytest.raises(SuiteFileError, match="not valid JSON"):
        (tmp_path / "broken.json").write_text("{")
        load_suite(tmp_path / "broken.json")


def test_fifteen_expectations_on_100k_rows_are_all_evaluated():
    # how long it takes is measured by benchmarks/bench_gx.py, not asserted here (shared machine)
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
    exps = list(SUITE["expectations"])
    for col in ("line_no", "qty", "price"):
        exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col}})
        exps.append({"type": "expect_column_to_exist", "kwargs": {"column": col}})
        exps.append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": col, "min_value": 0},
            }
        )
    exps.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}})
    assert len(exps) == 15
    suite = {"name": "perf", "expectations": exps}
    validate_dataframe(df.head(10), suite)  # warm the cached context
    outcome = validate_dataframe(df, suite)
    assert outcome.evaluated == 15
    assert outcome.success


@pytest.mark.parametrize("name", sorted(EXTRACTS))
def test_committed_extract_suites_match_the_contract(name):
    path = SUITES_DIR / f"{name}.json"
    assert path.exists(), (
        f"{path} missing; run python -m sop_pipeline.quality.extract_suites --write"
    )
    assert path.read_text(encoding="utf-8") == suite_json(EXTRACTS[name]), (
        f"{path} is stale; run python -m sop_pipeline.quality.extract_suites --write"
    )
    assert load_suite(path)["expectations"], "a suite with no expectations proves nothing"


def test_extract_suite_encodes_contract_rules():
    suite = build_extract_suite(EXTRACTS["sales_orders"])
    by_type = {}
    for e in suite["expectations"]:
        by_type.setdefault(e["type"], []).append(e["kwargs"])
    not_null = {k["column"] for k in by_type["expect_column_values_to_not_be_null"]}
    assert "order_id" in not_null and "ship_date" not in not_null  # ship_date is optional
    assert {
        "column": "status",
        "value_set": ["open", "shipped", "cancelled", "returned"],
    } in by_type["expect_column_values_to_be_in_set"]
    assert by_type["expect_compound_columns_to_be_unique"] == [
        {"column_list": ["order_id", "line_no"]}
    ]
    assert {"column": "line_no", "min_value": 1} in by_type["expect_column_values_to_be_between"]
