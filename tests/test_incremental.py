"""Incremental runs: an unchanged stage is reused, any change to its inputs or code recomputes."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import duckdb
import pandas as pd
import pytest

from sop_pipeline.storage import incremental
from sop_pipeline.storage.warehouse import replace_plan_rows

MONTH = "2026-06"


def _frame(qty: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["A", "B"],
            "month": pd.to_datetime(["2026-05-01", "2026-06-01"]),
            "demand_qty": [qty, 3.5],
        }
    )


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "work.duckdb"))
    yield connection
    connection.close()


def _record(con, fp: str) -> None:
    rows = replace_plan_rows(con, "stat_forecast", _frame(), MONTH)
    incremental.record(
        con, "stat_forecast", MONTH, fp, "code1", "run-1", {"stat_forecast": rows}, {"series": 2}
    )


def test_fingerprint_changes_with_any_input_value_setting_or_code() -> None:
    base = incremental.fingerprint({"history": _frame()}, {"horizon": 18}, "code1")
    assert base == incremental.fingerprint({"history": _frame()}, {"horizon": 18}, "code1")
    assert base != incremental.fingerprint({"history": _frame(10.000001)}, {"horizon": 18}, "code1")
    assert base != incremental.fingerprint({"history": _frame()}, {"horizon": 12}, "code1")
    assert base != incremental.fingerprint({"history": _frame()}, {"horizon": 18}, "code2")
    # a dropped row or a changed dtype is a change too
    assert base != incremental.fingerprint({"history": _frame().iloc[:1]}, {"horizon": 18}, "code1")
    retyped = _frame().astype({"demand_qty": "float32"})
    assert base != incremental.fingerprint({"history": retyped}, {"horizon": 18}, "code1")


def test_same_fingerprint_reuses_the_recorded_run(con) -> None:
    _record(con, "fp-a")
    reuse = incremental.find_reusable(con, "stat_forecast", MONTH, "fp-a")
    assert reuse is not None
    assert reuse.run_id == "run-1"
    assert reuse.metadata == {"series": 2}
    # another month or another fingerprint is not reused
    assert incremental.find_reusable(con, "stat_forecast", "2026-07", "fp-a") is None
    assert incremental.find_reusable(con, "stat_forecast", MONTH, "fp-b") is None


def test_missing_or_changed_output_rows_are_recomputed(con) -> None:
    _record(con, "fp-a")
    con.execute("delete from plan.stat_forecast where item_id = 'A'")
    assert incremental.find_reusable(con, "stat_forecast", MONTH, "fp-a") is None
    con.execute("drop table plan.stat_forecast")
    assert incremental.find_reusable(con, "stat_forecast", MONTH, "fp-a") is None


def test_forget_before_rewrite_means_a_killed_stage_is_recomputed(con) -> None:
    _record(con, "fp-a")
    incremental.forget(con, "stat_forecast", MONTH)
    # the stage died after forgetting and before recording: nothing may be reused
    assert incremental.find_reusable(con, "stat_forecast", MONTH, "fp-a") is None


def test_code_version_follows_the_module_source() -> None:
    one = incremental.source_hash("sop_pipeline.planning.forecast", "sop_pipeline.core.months")
    assert one == incremental.source_hash(
        "sop_pipeline.core.months", "sop_pipeline.planning.forecast"
    )
    assert one != incremental.source_hash("sop_pipeline.planning.forecast")
    assert len(one) == 16


def test_code_version_of_a_package_follows_every_module_in_it(tmp_path, monkeypatch) -> None:
    # the forecast is a package: its __init__ alone is not the code that computes the stage
    pkg = tmp_path / "hashed_pkg"
    (pkg / "inner").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""The package."""\n')
    (pkg / "first.py").write_text("A = 1\n")
    (pkg / "inner" / "__init__.py").write_text('"""A subpackage."""\n')
    (pkg / "inner" / "deep.py").write_text("B = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        before = incremental.source_hash("hashed_pkg")
        incremental.source_hash.cache_clear()  # computed once per process; here the code changes
        assert incremental.source_hash("hashed_pkg") == before
        (pkg / "inner" / "deep.py").write_text("B = 22\n")  # a nested module is edited
        incremental.source_hash.cache_clear()
        edited = incremental.source_hash("hashed_pkg")
        assert edited != before
        (pkg / "second.py").write_text("C = 1\n")  # a module is added to the package
        importlib.invalidate_caches()
        incremental.source_hash.cache_clear()
        assert incremental.source_hash("hashed_pkg") not in (before, edited)
    finally:
        incremental.source_hash.cache_clear()
        for name in [m for m in sys.modules if m.split(".")[0] == "hashed_pkg"]:
            del sys.modules[name]


def test_forecast_code_version_covers_every_forecast_module() -> None:
    from sop_pipeline.planning.statistical import FORECAST_CODE

    package = importlib.import_module("sop_pipeline.planning.forecast")
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert {"api", "tournament", "calibration", "rules"} <= modules
    covered = {part for name in FORECAST_CODE for part in incremental._package_modules(name)}
    assert {f"sop_pipeline.planning.forecast.{m}" for m in modules} <= covered


def _dbt_record(con, extracts: dict[str, str], base: str = "base1") -> None:
    con.execute("create schema if not exists marts")
    con.execute("create or replace table marts.fct_demand_overrides as select 1 as x")
    incremental.record(
        con,
        "dbt_build",
        "current",
        "fp-old",
        "code1",
        "run-dbt",
        {"marts.fct_demand_overrides": 1},
        {"tests": 199, "base": base, "extracts": extracts},
    )


def test_a_changed_override_file_rebuilds_only_the_models_downstream_of_it(con) -> None:
    """A planner's edit of demand_overrides builds the override models again, not the 40."""
    from sop_pipeline.defs.clean.builds import _manifest_json, _partial_build

    manifest = _manifest_json()
    before = {"items": "i1", "sales_orders": "s1", "demand_overrides": "d1"}
    _dbt_record(con, before)
    earlier, changed, select, rebuilt, retested = _partial_build(
        con, "base1", {**before, "demand_overrides": "d2"}, manifest
    )
    assert earlier.run_id == "run-dbt" and changed == {"demand_overrides"}
    assert select == ["source:planning.demand_overrides+"]
    assert "fct_demand_overrides" in rebuilt and "fct_demand_history" not in rebuilt
    assert "dim_items" not in rebuilt and len(rebuilt) < 6
    # the tests on the rebuilt models run again (and are not reported as reused)
    assert any("fct_demand_overrides" in name for name in retested)
    # a change to the items master reaches most of the marts
    _, _, select, rebuilt, _ = _partial_build(con, "base1", {**before, "items": "i2"}, manifest)
    assert select == ["source:erp.items+"] and {"dim_items", "fct_demand_history"} <= rebuilt


def test_new_dbt_code_vars_or_lost_tables_mean_a_full_build(con) -> None:
    from sop_pipeline.defs.clean.builds import _manifest_json, _partial_build

    manifest = _manifest_json()
    _dbt_record(con, {"demand_overrides": "d1"})
    changed = {"demand_overrides": "d2"}
    # other dbt code, vars or versions: the recorded build says nothing about this one
    assert _partial_build(con, "base2", changed, manifest) is None
    # nothing changed since: the whole build is reused instead (find_reusable), not partial
    assert _partial_build(con, "base1", {"demand_overrides": "d1"}, manifest) is None
    # a table of the build is gone: full build
    con.execute("drop table marts.fct_demand_overrides")
    assert _partial_build(con, "base1", changed, manifest) is None
