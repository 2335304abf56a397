"""Loader: point in time, folder checks, reject policy, idempotence, restatements, lineage."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
from factories.extracts import company_rows, count, load, write_company, write_extract

from sop_pipeline.ingest.problems import IngestError


def test_valid_company_loads_with_lineage(tmp_path, con):
    landing = write_company(tmp_path / "landing")
    summary = load(con, landing)
    assert summary.months == ["2026-09", "2026-10"]
    assert len(summary.files_loaded) == 18 and summary.files_skipped == []
    assert summary.rows_loaded["sales_orders"] == 8
    assert summary.rows_rejected == 0
    row = con.execute(
        "SELECT _extract_month, _source_file, _source_row, _loaded_at IS NOT NULL, qty_ordered, order_date "
        "FROM raw.sales_orders WHERE order_id = 'SO-2026-10-2'"
    ).fetchone()
    assert row[:4] == ("2026-10", "2026-10/sales_orders.csv", 3, True)
    assert row[4] == Decimal("10")
    assert str(row[5]) == "2026-10-01"
    # month columns are the first day of the month
    assert (
        str(con.execute("SELECT min(month) FROM raw.capacity_calendar").fetchone()[0])
        == "2026-09-01"
    )
    assert count(con, "_ingest_log", "status = 'loaded'") == 18


def test_required_file_missing(tmp_path, con):
    landing = write_company(tmp_path / "landing")
    (landing / "2026-10" / "routings.csv").unlink()
    with pytest.raises(
        IngestError, match=r"landing/2026-10: required extract\(s\) routings missing"
    ):
        load(con, landing)


def test_csv_and_parquet_of_one_extract(tmp_path, con):
    landing = write_company(tmp_path / "landing")
    shutil.copy(landing / "2026-10" / "items.csv", landing / "2026-10" / "items.parquet")
    with pytest.raises(IngestError, match=r"items is there as both items\.csv and items\.parquet"):
        load(con, landing)


def test_gap_in_month_folders(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-08", "2026-10"))
    with pytest.raises(IngestError, match=r"landing/2026-09: missing \(a gap in the month folders"):
        load(con, landing)
    assert (
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'"
        ).fetchone()[0]
        == 0
    )


def test_folder_that_is_not_a_month(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    (landing / "october").mkdir()
    with pytest.raises(IngestError, match="landing/october: folder name is not a month"):
        load(con, landing)


def test_plan_month_folder_missing(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-09",))
    with pytest.raises(IngestError, match="landing/2026-10: missing \\(the plan month's folder"):
        load(con, landing)


def test_point_in_time_ignores_later_months(tmp_path, con):
    landing = write_company(tmp_path / "landing")
    summary = load(con, landing, plan_month="2026-09")
    assert summary.months == ["2026-09"]
    assert con.execute("SELECT DISTINCT _extract_month FROM raw.sales_orders").fetchall() == [
        ("2026-09",)
    ]
    assert count(con, "_ingest_log", "extract_month = '2026-10'") == 0


def test_unknown_item_rejects_the_whole_file(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    rows = company_rows("2026-10")["sales_orders"]
    rows[1]["item_id"] = "IT-99"  # row 3
    write_extract(landing / "2026-10", "sales_orders", rows)
    with pytest.raises(IngestError) as err:
        load(con, landing)
    msg = str(err.value)
    assert "landing/2026-10/sales_orders.csv: 1 of 4 rows rejected" in msg
    assert "row 3, column item_id, value 'IT-99': unknown item_id 'IT-99'" in msg
    assert "see table raw.rejects" in msg
    assert list(err.value.rejected) == ["2026-10/sales_orders.csv"]
    # nothing of the rejected file is in raw; its problems are, committed
    assert count(con, "sales_orders") == 0
    assert con.execute("SELECT source_row, column_name, value FROM raw.rejects").fetchall() == [
        (3, "item_id", "IT-99")
    ]
    # the other files of the run were loaded
    assert count(con, "items") == 3


def test_row_reject_within_tolerance(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    rows = company_rows("2026-10")["sales_orders"]
    rows[0]["qty_ordered"] = "abc"  # row 2
    write_extract(landing / "2026-10", "sales_orders", rows)
    summary = load(con, landing, max_reject_rate=0.3)
    assert summary.rows_rejected == 1
    assert summary.rows_loaded["sales_orders"] == 3
    assert count(con, "sales_orders", "_source_row = 2") == 0
    assert con.execute(
        "SELECT source_file, source_row, column_name, value, reason FROM raw.rejects"
    ).fetchall() == [
        (
            "2026-10/sales_orders.csv",
            2,
            "qty_ordered",
            "abc",
            "'abc' is not a number (declared decimal mark '.')",
        )
    ]


def test_reject_rate_exceeded_loads_nothing(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    rows = company_rows("2026-10")["sales_orders"]
    rows[0]["qty_ordered"] = "abc"
    rows[1]["status"] = "lost"
    write_extract(landing / "2026-10", "sales_orders", rows)
    with pytest.raises(IngestError, match="2 of 4 rows rejected"):
        load(con, landing, max_reject_rate=0.3)  # 50% > 30%
    assert count(con, "sales_orders") == 0
    assert count(con, "rejects") == 2


def test_file_level_error_is_reported_with_the_others(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    write_extract(
        landing / "2026-10", "customers", company_rows("2026-10")["customers"], delimiter=";"
    )
    with pytest.raises(IngestError) as err:
        load(con, landing)
    assert "landing/2026-10/customers.csv: the file cannot be used as it is" in str(err.value)
    assert "declared delimiter ','" in str(err.value)
    # sales_orders reference customers that are not loaded: reported as unknown customers too
    assert "2026-10/sales_orders.csv" in err.value.rejected


def test_idempotent_reload(tmp_path, con):
    landing = write_company(tmp_path / "landing")
    load(con, landing)
    before = {t: count(con, t) for t in ("items", "sales_orders", "inventory", "_ingest_log")}
    summary = load(con, landing)
    assert summary.files_loaded == [] and len(summary.files_skipped) == 18
    assert {t: count(con, t) for t in before} == before


def test_restated_file_replaces_its_earlier_load(tmp_path, con):
    landing = write_company(tmp_path / "landing")
    load(con, landing)
    rows = company_rows("2026-09")["sales_orders"]
    rows[0]["qty_ordered"] = "7.5"
    write_extract(landing / "2026-09", "sales_orders", rows)
    summary = load(con, landing)
    assert summary.restated_files == ["2026-09/sales_orders.csv"]
    assert summary.files_loaded == ["2026-09/sales_orders.csv"]
    assert count(con, "sales_orders", "_extract_month = '2026-09'") == 4
    assert con.execute(
        "SELECT qty_ordered FROM raw.sales_orders WHERE order_id = 'SO-2026-09-1'"
    ).fetchone() == (Decimal("7.5"),)
    assert count(con, "_ingest_log", "status = 'restated'") == 1


def test_late_restatement_rows_are_counted(tmp_path, con):
    landing = write_company(tmp_path / "landing")
    rows = company_rows("2026-10")["sales_orders"]
    late = dict(company_rows("2026-09")["sales_orders"][0], status="shipped", qty_shipped="5")
    write_extract(landing / "2026-10", "sales_orders", [*rows, late])
    summary = load(con, landing)
    assert summary.restated_rows == 1
    assert summary.restated_rows_by_extract == {"sales_orders": 1}
    # both versions are kept side by side; staging lets the latest extract win
    assert count(con, "sales_orders", "order_id = 'SO-2026-09-1'") == 2


def test_decimal_precision_kept(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    rows = company_rows("2026-10")["items"]
    rows[0]["unit_cost"] = "1234.5678"
    rows[1]["unit_cost"] = "123456789012.123456"  # more digits than a float holds
    write_extract(landing / "2026-10", "items", rows)
    load(con, landing)
    got = dict(con.execute("SELECT item_id, unit_cost FROM raw.items").fetchall())
    assert got["IT-1"] == Decimal("1234.5678")
    assert got["IT-2"] == Decimal("123456789012.123456")


def test_unknown_currency(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    rows = company_rows("2026-10")["items"]
    rows[2]["currency"] = "GBP"  # row 4; fx_rates only has EUR
    write_extract(landing / "2026-10", "items", rows)
    with pytest.raises(
        IngestError, match=r"row 4, column currency, value 'GBP': currency 'GBP' is neither"
    ):
        load(con, landing)


def test_scenarios_are_validated_and_stored(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    (landing / "2026-10" / "scenarios.yaml").write_text(
        """
scenarios:
  - name: overhaul_extended
    description: the overhaul takes two more months
    levers:
      - {type: capacity_loss, work_center_id: WC-1, months: ["2026-12", "2027-01"], pct: 0.7}
      - {type: strategy, value: chase}
  - name: pump_boom
    levers:
      - {type: demand_change, family: pumps, months: ["2027-01", "2027-06"], pct: 0.15}
      - {type: supplier_delay, supplier_id: SUP-1, days: 45}
      - {type: price_change, family: valves, pct: 0.05}
"""
    )
    summary = load(con, landing)
    assert summary.scenarios_loaded == 2
    rows = con.execute(
        "SELECT name, description, levers_json FROM raw.scenarios ORDER BY name"
    ).fetchall()
    assert [r[0] for r in rows] == ["overhaul_extended", "pump_boom"]
    assert rows[1][1] is None
    assert '"days": 45' in rows[1][2]
    (landing / "2026-10" / "scenarios.yaml").write_text(
        "scenarios:\n  - name: Bad-Name\n    levers: [{type: strategy, value: chase}]\n"
    )
    with pytest.raises(
        IngestError,
        match=r"scenarios.yaml: the file cannot be used.*\n    scenario #1: name 'Bad-Name' must match",
    ):
        load(con, landing)
    # the earlier, valid scenarios stay
    assert count(con, "scenarios") == 2


def test_generated_demo_company_loads(tmp_path, con):
    company = pytest.importorskip("sop_pipeline.generator.company")
    landing = tmp_path / "landing"
    company.generate_company(landing, items=40, months=14, seed=1)
    months = sorted(p.name for p in landing.iterdir() if p.is_dir())
    summary = load(con, landing, plan_month=months[-1])
    assert summary.months == months
    assert summary.rows_rejected == 0
    assert summary.rows_loaded["sales_orders"] > 0
    # the generator writes late / restated order lines; the loader must notice them
    assert summary.restated_rows > 0
    assert summary.files_rejected == []  # the demo data meet the date and stale rules too
    # a second run is a no-op
    again = load(con, landing, plan_month=months[-1])
    assert again.files_loaded == [] and len(again.files_skipped) == len(summary.files_loaded)


# bills of material and supplier capacity (optional extracts) ------------------------------
def _bom_line(parent: str, component: str, qty: str = "2", **kw) -> dict:
    return {"parent_item_id": parent, "component_item_id": component, "qty_per": qty, **kw}


def test_valid_bom_and_supplier_capacity_load(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    write_extract(
        landing / "2026-10",
        "bom",
        [
            _bom_line("IT-1", "IT-2", scrap_pct="0.05", valid_to="2027-03-31"),
            # the same pair again from April: a new revision, no overlap
            _bom_line("IT-1", "IT-2", "3", valid_from="2027-04-01"),
            _bom_line("IT-2", "IT-3", "1.5"),
        ],
    )
    write_extract(
        landing / "2026-10",
        "supplier_capacity",
        [
            {"supplier_id": "SUP-1", "item_id": "IT-3", "month": "2026-11", "max_qty": "500"},
            {
                "supplier_id": "SUP-1",
                "family": "valves",
                "month": "2026-12",
                "max_qty": "80",
                "lead_time_days": "20",
                "unit_cost": "4.5",
            },
        ],
    )
    summary = load(con, landing)
    assert summary.rows_loaded["bom"] == 3
    assert summary.rows_loaded["supplier_capacity"] == 2
    assert con.execute("SELECT sum(qty_per) FROM raw.bom").fetchone()[0] == Decimal("6.5")


def test_absent_bom_leaves_empty_tables(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    summary = load(con, landing)
    assert "bom" not in summary.rows_loaded
    assert count(con, "bom") == 0 and count(con, "supplier_capacity") == 0


def test_bom_cycle_rejects_the_whole_file_whatever_the_reject_rate(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    write_extract(
        landing / "2026-10",
        "bom",
        [
            _bom_line("IT-1", "IT-2"),  # row 2
            _bom_line("IT-2", "IT-3"),  # row 3
            _bom_line("IT-3", "IT-1"),  # row 4: back up to the top
        ],
    )
    with pytest.raises(IngestError) as err:
        load(con, landing, max_reject_rate=0.9)
    msg = str(err.value)
    assert "landing/2026-10/bom.csv: 3 of 3 rows rejected" in msg
    assert (
        "row 4, column component_item_id, value 'IT-1': IT-3 → IT-1 closes a cycle in the BOM "
        "(items on the cycle: IT-1, IT-2, IT-3)" in msg
    )
    assert "a component cannot contain its own parent" in msg
    assert count(con, "bom") == 0


def test_bad_bom_lines_are_named_with_row_column_and_fix(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    write_extract(
        landing / "2026-10",
        "bom",
        [
            _bom_line("IT-1", "IT-2", valid_to="2027-06-30"),  # row 2
            _bom_line("IT-1", "IT-2", valid_from="2027-01-01"),  # row 3: overlaps row 2
            _bom_line("IT-1", "IT-3", "0"),  # row 4
            _bom_line("IT-2", "IT-3", scrap_pct="1"),  # row 5
            _bom_line("IT-2", "IT-99"),  # row 6: unknown component
        ],
    )
    with pytest.raises(IngestError) as err:
        load(con, landing, max_reject_rate=0.9)
    msg = str(err.value)
    assert "bom.csv: 4 of 5 rows rejected" in msg
    assert (
        "row 3, column valid_from, value '2027-01-01': the validity of IT-1 → IT-2 from "
        "2027-01-01 overlaps an earlier line of the same parent and component (row 2)" in msg
    )
    assert "row 4, column qty_per, value '0': qty_per 0 is not greater than 0" in msg
    assert "row 5, column scrap_pct, value '1': scrap_pct 1 is outside [0, 1)" in msg
    assert "row 6, column component_item_id, value 'IT-99': unknown component_item_id" in msg
    assert count(con, "bom") == 0
    assert con.execute(
        "SELECT source_row, column_name FROM raw.rejects WHERE extract = 'bom' ORDER BY 1"
    ).fetchall() == [(3, "valid_from"), (4, "qty_per"), (5, "scrap_pct"), (6, "component_item_id")]


def test_bad_supplier_capacity_rows(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    write_extract(
        landing / "2026-10",
        "supplier_capacity",
        [
            {"supplier_id": "SUP-1", "family": "gears", "month": "2026-11", "max_qty": "5"},
            {"supplier_id": "SUP-1", "month": "2026-11", "max_qty": "5"},
            {"supplier_id": "SUP-1", "item_id": "IT-1", "month": "2026-11", "max_qty": "-5"},
        ],
    )
    with pytest.raises(IngestError) as err:
        load(con, landing, max_reject_rate=0.9)
    msg = str(err.value)
    assert "row 2, column family, value 'gears': unknown family 'gears'" in msg
    assert "row 3, column item_id: neither item_id nor family is filled" in msg
    assert "row 4, column max_qty, value '-5': '-5' is below the minimum 0" in msg
    assert count(con, "supplier_capacity") == 0
