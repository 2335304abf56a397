"""``sop explain``: a published number traced to its plan version and the extract rows behind it.

The tiny company of ``fixtures_raw`` (restated and late rows, overrides, open and closed
opportunities) in a working database, and a published plan_demand of plan month 2026-03.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fixtures_raw import PLAN_MONTH, build_raw_warehouse

from sop_pipeline.cli.commands import main
from sop_pipeline.cli.explain import ExplainError, WarehouseLocked, explain, parse_where, render
from sop_pipeline.publish.writer import publish_plan

HOME_PARTS = ("warehouse/sop.duckdb", "published")


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    build_raw_warehouse(tmp_path / "warehouse" / "sop.duckdb")
    months = pd.to_datetime(["2026-04-01", "2026-05-01"])
    demand = pd.DataFrame(
        {
            "item_id": ["A100", "A100", "B200", "B200", "C300", "C300"],
            "location_id": ["D1", "D1", "D1", "D1", "P1", "P1"],
            "family": ["Widgets", "Widgets", "Widgets", "Widgets", "Parts", "Parts"],
            "month": [*months, *months, *months],
            "stat_forecast_qty": [10.0, 11.0, 2.0, 2.0, 5.0, 5.0],
            "stat_model": "AutoETS",
            "crm_adjustment_qty": [0.0, 25.0, 0.0, 0.0, 0.0, 0.0],
            "override_qty": [120.0, -1.1, -2.0, -0.2, 0.0, 0.0],
            "override_reason_code": ["PROMO", "PROMO", "CUST", "CUST", None, None],
            "override_author": ["ana", "ana", "bo", "bo", None, None],
        }
    )
    for c in ("stat_lo80_qty", "stat_hi80_qty", "stat_lo95_qty", "stat_hi95_qty"):
        demand[c] = demand["stat_forecast_qty"]
    demand["consensus_qty"] = demand[
        ["stat_forecast_qty", "crm_adjustment_qty", "override_qty"]
    ].sum(axis=1)
    demand["consensus_revenue"] = demand["consensus_qty"] * 20
    publish_plan(
        tmp_path / "published",
        PLAN_MONTH,
        {"plan_demand": demand},
        run_id="run-explain-1",
        input_fingerprint="ab" * 32,
        code_version="0.1.0+abc1234",
        checks_passed=15,
        checks_failed=0,
    )
    return tmp_path


def _explain(home: Path, where: str | None, table: str = "plan_demand", rows: int = 50):
    return explain(
        home / "published" / "sop.duckdb",
        home / "warehouse" / "sop.duckdb",
        PLAN_MONTH,
        table,
        where,
        rows=rows,
    )


def test_a_familys_demand_is_traced_to_version_run_and_extract_rows(home: Path) -> None:
    ex = _explain(home, "family='Widgets'")
    assert ex.version["plan_version"] == 1 and ex.version["run_id"] == "run-explain-1"
    assert ex.version["code_version"] == "0.1.0+abc1234"
    assert ex.version["input_fingerprint"] == "ab" * 32
    assert ex.totals["rows"].item() == 4
    assert ex.totals["consensus_qty"].item() == pytest.approx(10 + 11 + 2 + 2 + 120 + 25 - 3.3)
    history = ex.rows["demand history (sales_orders)"]
    lines = {
        (o, n): (f, m)
        for o, n, f, m in zip(
            history["order_id"],
            history["line_no"],
            history["_source_file"],
            history["_extract_month"],
            strict=True,
        )
    }
    # the 2026-03 restatement of SO4/1 wins; the 2026-04 extract is not visible to March
    assert lines[("SO4", 1)] == ("landing/2026-03/sales_orders.csv", "2026-03")
    assert ("SO9", 1) not in lines  # a line of the April extract
    assert ("SO8", 1) not in lines  # another family
    assert {("SO1", 1), ("SO2", 1), ("SO3", 1), ("SO3", 2), ("SO6", 1), ("SO7", 1)} <= set(lines)
    by_file = ex.sources["demand history (sales_orders)"].set_index("source_file")
    assert by_file["rows"].sum() == len(history)
    assert by_file.loc["landing/2026-03/sales_orders.csv", "first_source_row"] >= 2


def test_a_consensus_change_is_traced_to_overrides_and_opportunities(home: Path) -> None:
    ex = _explain(home, "family='Widgets'")
    overrides = ex.rows["overrides (demand_overrides)"]
    assert set(overrides["scope"]) == {"A100", "B200", "Widgets"}  # not C300 (Parts)
    assert set(overrides["_extract_month"]) == {"2026-03"}  # the latest snapshot <= March
    assert overrides["_source_row"].min() >= 2
    crm = ex.rows["CRM pipeline (opportunities, open)"]
    assert set(crm["opportunity_id"]) == {"OP1", "OP3"}  # OP2 is closed and of Parts
    one_item = _explain(home, "item_id='A100' and month='2026-04-01'")
    assert one_item.totals["rows"].item() == 1
    assert set(one_item.rows["overrides (demand_overrides)"]["scope"]) == {"A100"}
    text = render(ex)
    assert "run-explain-1" in text and "landing/2026-03/demand_overrides.csv" in text


def test_bad_filters_and_unknown_months_say_what_to_do(home: Path) -> None:
    with pytest.raises(ExplainError, match="has no column 'colour'"):
        parse_where("colour='red'", "plan_demand")
    with pytest.raises(ExplainError, match="is not column='value'"):
        parse_where("family like 'W%'", "plan_demand")
    with pytest.raises(ExplainError, match="family values there: Parts, Widgets"):
        _explain(home, "family='widgets'")
    with pytest.raises(ExplainError, match="not a published plan table"):
        _explain(home, None, table="plan_versions")


def _cli(home: Path, capsys, *args: str) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOP_HOME", str(home))
        for name in ("SOP_WAREHOUSE_PATH", "DAGSTER_HOME"):
            mp.delenv(name, raising=False)
        code = main(["explain", "--month", PLAN_MONTH, "--table", "plan_demand", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_prints_the_answer_and_exits_2_on_bad_usage(home: Path, capsys) -> None:
    code, out, _ = _cli(home, capsys, "--where", "family='Widgets'", "--rows", "2")
    assert code == 0, out
    assert "plan 2026-03 version 1" in out and "first 2 rows" in out
    code, _, err = _cli(home, capsys, "--where", "family = Widgets")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "column='value'" in err


def test_a_locked_working_database_is_one_clear_line(home: Path, capsys) -> None:
    db = home / "warehouse" / "sop.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
            " time.sleep(120)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseLocked, match=f"pid {holder.pid}"):
            _explain(home, "family='Widgets'")
        code, _, err = _cli(home, capsys, "--where", "family='Widgets'")
        assert code == 1
        assert len(err.strip().splitlines()) == 1 and "in use by a running pipeline" in err
        assert "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()
    assert os.path.exists(db)
