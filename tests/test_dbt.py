"""The dbt project on a tiny company: the marts are the "one set of numbers" the plan uses.

Runs ``dbt build`` in-process (dbtRunner) against a ``tmp_path`` DuckDB loaded by
``fixtures_raw``; target and log folders go to ``tmp_path`` so the project's own
``target/manifest.json`` (read by dagster-dbt) is left alone.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunnerResult
from dbt_inprocess import invoke_dbt
from fixtures_raw import (
    EUR_RATE_2026_01,
    EXPECTED,
    HORIZON_MONTHS,
    PLAN_MONTH,
    bom_rows,
    build_raw_warehouse,
    insert_rows,
)

from sop_pipeline.defs.partitions import plan_month_window


def run_dbt(work: Path, *args: str) -> dbtRunnerResult:
    """``dbt <args>`` for the test plan month against ``work/sop.duckdb``.

    Every invocation of the module uses the same warehouse path and target folder, so dbt
    re-uses its parse (the profile, vars and env stay the same) and the tests stay fast.
    """
    return invoke_dbt(work / "sop.duckdb", work, PLAN_MONTH, HORIZON_MONTHS, *args)


def load_raw(work: Path, broken: tuple[str, ...] = ()) -> None:
    """Replace ``work/sop.duckdb`` with a fresh raw schema of the tiny company."""
    (work / "sop.duckdb").unlink(missing_ok=True)
    build_raw_warehouse(work / "sop.duckdb", broken=broken)


def failed_nodes(result: dbtRunnerResult) -> dict[str, str]:
    """unique_id → status of every node that did not pass."""
    return {
        r.node.unique_id: str(r.status)
        for r in result.result.results
        if str(r.status) not in ("success", "pass")
    }


@pytest.fixture(scope="module")
def dbt_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dbt")


@pytest.fixture(scope="module")
def marts(dbt_work: Path) -> duckdb.DuckDBPyConnection:
    load_raw(dbt_work)
    result = run_dbt(dbt_work, "build")
    assert result.success, f"dbt build failed: {result.exception or failed_nodes(result)}"
    # read a copy: the grain tests below rebuild the warehouse file with broken rows
    built = dbt_work / "built.duckdb"
    shutil.copyfile(dbt_work / "sop.duckdb", built)
    con = duckdb.connect(str(built), read_only=True)
    yield con
    con.close()


def demand(con: duckdb.DuckDBPyConnection, item_id: str, location_id: str) -> dict[date, tuple]:
    rows = con.execute(
        """
        select month, ordered_qty, cancelled_qty, returned_qty, demand_qty
        from marts.fct_demand_history
        where item_id = ? and location_id = ?
        order by month
        """,
        [item_id, location_id],
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_restated_line_latest_visible_extract_wins(marts):
    qty, status = marts.execute(
        "select qty_ordered, status from marts.fct_order_lines where order_id = 'SO4' and line_no = 1"
    ).fetchone()
    # first extracted as 15 (2026-02), restated to 14 (2026-03); 999 comes in 2026-04
    assert (qty, status) == (14.0, "shipped")
    report = marts.execute(
        """
        select first_extract_month, restated_extract_month, first_qty_ordered,
               restated_qty_ordered, restatement_count
        from marts.fct_restatements
        """
    ).fetchall()
    assert report == [("2026-02", "2026-03", 15.0, 14.0, 1)]


def test_later_extract_is_invisible_to_the_plan_month(marts):
    assert (
        marts.execute(
            "select count(*) from marts.fct_order_lines where order_id = 'SO9'"
        ).fetchone()[0]
        == 0
    )
    items = {r[0] for r in marts.execute("select item_id from marts.dim_items").fetchall()}
    assert items == {"A100", "B200", "C300"}
    snapshot_dates = marts.execute(
        "select distinct snapshot_date from marts.fct_inventory_position"
    ).fetchall()
    assert snapshot_dates == [(date(2026, 3, 31),)]


def test_demand_history_nets_returns_and_cancellations(marts):
    for (item, loc, month), expected in EXPECTED.items():
        assert demand(marts, item, loc)[month] == expected, (item, loc, month)
    # A100 in 2026-02: 14 ordered (after the restatement) minus the return of 2
    assert demand(marts, "A100", "D1")[date(2026, 2, 1)] == (14.0, 0.0, 2.0, 12.0)
    bad = marts.execute(
        "select count(*) from marts.fct_demand_history "
        "where demand_qty <> ordered_qty - cancelled_qty - returned_qty or returned_qty < 0"
    ).fetchone()[0]
    assert bad == 0


def test_demand_history_is_zero_filled_from_first_month_to_plan_month(marts):
    a100 = demand(marts, "A100", "D1")
    assert list(a100) == [date(2025, m, 1) for m in (10, 11, 12)] + [
        date(2026, m, 1) for m in (1, 2, 3)
    ]
    assert a100[date(2025, 12, 1)] == (0.0, 0.0, 0.0, 0.0)
    # SO8/2 is requested in 2026-04: order book, not history
    c300 = demand(marts, "C300", "P1")
    assert list(c300) == [date(2026, 3, 1)]


def test_no_demand_before_launch(marts):
    # B200 launched 2025-11-15; its pre-order requested in 2025-10 counts in 2025-11
    b200 = demand(marts, "B200", "D1")
    assert min(b200) == date(2025, 11, 1)
    assert b200[date(2025, 11, 1)][3] == 3.0
    before_launch = marts.execute(
        """
        select count(*) from marts.fct_demand_history as h
        join marts.dim_items as i using (item_id)
        where h.month < date_trunc('month', i.launch_date)
        """
    ).fetchone()[0]
    assert before_launch == 0


def test_foreign_currency_converted_with_the_months_rate(marts):
    price = marts.execute(
        "select unit_price_base from marts.fct_order_lines where order_id = 'SO3' and line_no = 1"
    ).fetchone()[0]
    assert price == pytest.approx(10 * EUR_RATE_2026_01)
    revenue = marts.execute(
        "select demand_revenue from marts.fct_demand_history where item_id = 'A100' and month = '2026-01-01'"
    ).fetchone()[0]
    assert revenue == pytest.approx(8 * 10 * EUR_RATE_2026_01)
    # no EUR rate for 2026-03: the latest earlier one (2026-02, 1.10) applies
    so8 = marts.execute(
        "select unit_price_base from marts.fct_order_lines where order_id = 'SO8' and line_no = 1"
    ).fetchone()[0]
    assert so8 == pytest.approx(5 * 1.10)


def test_capacity_covers_the_horizon(marts):
    window = plan_month_window(PLAN_MONTH, HORIZON_MONTHS)
    rows = marts.execute(
        "select work_center_id, month, available_hours from marts.fct_capacity order by 1, 2"
    ).fetchall()
    months = sorted({r[1] for r in rows})
    assert months[0] == date.fromisoformat(window["horizon_start"])
    assert months[-1] == date.fromisoformat(window["horizon_end"])
    assert len(months) == HORIZON_MONTHS and len(rows) == 2 * HORIZON_MONTHS
    hours = {(r[0], r[1]): r[2] for r in rows}
    assert hours[("WC1", date(2026, 5, 1))] == 100.0  # overhaul in the calendar
    assert hours[("WC1", date(2026, 7, 1))] == pytest.approx(16 * 21 * 0.9)  # not in the calendar


def test_open_supply_moves_overdue_orders_to_horizon_start(marts):
    rows = marts.execute(
        "select supply_type, order_id, due_month, open_qty from marts.fct_open_supply order by 1"
    ).fetchall()
    assert rows == [
        ("production", "MO1", date(2026, 4, 1), 100.0),  # due 2026-02-15, overdue
        ("purchase", "PO1", date(2026, 5, 1), 15.0),  # 20 ordered, 5 received
    ]


def test_overrides_and_pipeline_parsed(marts):
    overrides = marts.execute(
        "select scope_id, scope_type, adjustment_type, adjustment_value from marts.fct_demand_overrides order by 1"
    ).fetchall()
    assert overrides == [
        ("A100", "item", "qty", 120.0),
        ("B200", "item", "qty", -40.0),
        ("C300", "item", "pct", pytest.approx(0.15)),
        ("Widgets", "family", "pct", pytest.approx(-0.10)),
    ]
    pipeline = marts.execute(
        "select opportunity_id, family, amount from marts.fct_crm_pipeline order by 1"
    ).fetchall()
    # OP2 is closed_won (dropped); OP1 takes its family from A100 and is EUR at 1.10
    assert pipeline == [("OP1", "Widgets", pytest.approx(1100.0)), ("OP3", "Widgets", 600.0)]


def test_duplicate_item_fails_the_grain_test(dbt_work, marts):
    load_raw(dbt_work, broken=("duplicate_item",))
    result = run_dbt(dbt_work, "build", "--select", "+dim_items")
    assert not result.success
    failed = failed_nodes(result)
    assert any(
        k.startswith("test.sop.unique_stg_erp__items_item_id") and v == "fail"
        for k, v in failed.items()
    ), failed
    # the bad snapshot never reaches the mart the planning stages read
    assert failed.get("model.sop.dim_items") == "skipped"


def test_unknown_override_scope_fails_instead_of_vanishing(dbt_work, marts):
    load_raw(dbt_work, broken=("unknown_scope",))
    result = run_dbt(dbt_work, "build", "--select", "+fct_demand_overrides")
    assert not result.success
    failed = failed_nodes(result)
    assert any(
        k.startswith("test.sop.accepted_values_fct_demand_overrides_scope_type") and v == "fail"
        for k, v in failed.items()
    ), failed


def test_absent_bom_and_supplier_capacity_give_empty_marts(marts):
    for mart in ("fct_bom_exploded", "fct_supplier_capacity"):
        assert marts.execute(f"select count(*) from marts.{mart}").fetchone()[0] == 0


def test_bom_explodes_to_every_level_and_family_capacity_expands(dbt_work, marts):
    load_raw(dbt_work)
    con = duckdb.connect(str(dbt_work / "sop.duckdb"))
    try:
        for extract, rows in bom_rows().items():
            insert_rows(con, extract, PLAN_MONTH, rows)
    finally:
        con.close()
    result = run_dbt(
        dbt_work,
        "build",
        "--select",
        "+fct_bom_exploded",
        "+fct_supplier_capacity",
        "--indirect-selection",
        "cautious",
    )
    assert result.success, failed_nodes(result)
    con = duckdb.connect(str(dbt_work / "sop.duckdb"), read_only=True)
    try:
        exploded = con.execute(
            "select bom_path, bom_level, qty_per_cumulative, lead_time_offset_days, is_leaf "
            "from marts.fct_bom_exploded order by bom_path"
        ).fetchall()
        capacity = con.execute(
            "select month, max_qty, lead_time_days, is_stated from marts.fct_supplier_capacity "
            "where supplier_id = 'SUP1' and item_id = 'C300' order by month"
        ).fetchall()
    finally:
        con.close()
    # 1 / (1 - 0.2) = 1.25 A100 per B200, × 2 C300; lead times B200 15 + A100 10 days
    assert exploded == [
        ("A100 > C300", 1, 2.0, 10, True),
        ("B200 > A100", 1, 1.25, 15, False),
        ("B200 > A100 > C300", 2, 2.5, 25, True),
    ]
    assert [(m.isoformat(), q, lt, s) for m, q, lt, s in capacity] == [
        ("2026-04-01", 30.0, None, True),
        ("2026-05-01", 5.0, 40, True),
        *[(f"2026-{m:02d}-01", None, 40, False) for m in range(6, 10)],
    ]


def test_column_metadata_of_every_model_after_the_build(dbt_work, marts):
    """What the dbt assets show in the Dagster UI after a build.

    Every model's columns as built, and column lineage parsed from the compiled SQL down to
    the raw extracts.
    """
    from sop_pipeline.defs.clean.metadata import column_metadata

    manifest = json.loads((dbt_work / "target" / "manifest.json").read_text())
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    meta = column_metadata(marts, manifest, dbt_work / "target")
    assert set(meta) == models
    for model, entry in meta.items():
        built = [
            r[0]
            for r in marts.execute(
                "select column_name from information_schema.columns where table_name = ? "
                "order by ordinal_position",
                [model],
            ).fetchall()
        ]
        assert [c.name for c in entry["dagster/column_schema"].schema.columns] == built, model
    lineage = meta["fct_demand_history"]["dagster/column_lineage"]
    # demand_qty of the mart comes from the netted order lines, not from nowhere
    deps = lineage.deps_by_column["demand_qty"]
    assert deps and all(d.asset_key.path[0] in ("intermediate", "staging") for d in deps)
    stg = meta["stg_erp__sales_orders"]["dagster/column_lineage"].deps_by_column
    assert [(d.asset_key.path, d.column_name) for d in stg["qty_ordered"]] == [
        (["raw", "sales_orders"], "qty_ordered")
    ]
