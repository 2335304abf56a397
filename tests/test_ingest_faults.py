"""Bad input, end to end through the loader (issue "hardening"; rules in docs/bad_input.md).

Every case checks what a user sees: the message names the file, the row, the column and
the fix; row-level problems are in ``raw.rejects`` and counted in the summary; nothing of
a broken file is in ``raw`` (strict default); nothing crashes. Cases the reader tests
already cover row by row (``tests/test_reader.py``) are not repeated here.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories.extracts import company_rows, count, load, write_company, write_extract

from sop_pipeline.ingest.contract import EXTRACTS
from sop_pipeline.ingest.problems import IngestError


def rejects(con, source_file: str) -> list[tuple]:
    return con.execute(
        "SELECT source_row, column_name, value, reason, fix FROM raw.rejects "
        "WHERE source_file = ? ORDER BY source_row NULLS FIRST, column_name",
        [source_file],
    ).fetchall()


def rejected_load(con, landing: Path, **kw) -> IngestError:
    with pytest.raises(IngestError) as err:
        load(con, landing, **kw)
    return err.value


# --------------------------------------------------------------------------------------
# a broken file: named in the message, recorded in raw.rejects, nothing of it loaded
# --------------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])


def _drop_column(path: Path) -> None:
    rows = company_rows("2026-10")["sales_orders"]
    cols = [c for c in EXTRACTS["sales_orders"].column_names if c != "unit_price"]
    write_extract(path.parent, "sales_orders", rows, columns=cols)


def _add_column(path: Path) -> None:
    lines = path.read_text().splitlines()
    out = [lines[0] + ",discount"] + [line + ",0" for line in lines[1:]]
    path.write_text("\n".join(out) + "\n")


def _wrong_encoding(path: Path) -> None:
    rows = company_rows("2026-10")["sales_orders"]
    rows[2]["customer_id"] = "CU-ü"
    write_extract(path.parent, "sales_orders", rows, encoding="cp1252")


def _open_quote(path: Path) -> None:
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",CU-1,", ',"CU-1,', 1)  # row 3: a quote that never closes
    path.write_text("\n".join(lines) + "\n")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _utf16(path: Path) -> None:
    path.write_bytes(path.read_text().encode("utf-16"))


BROKEN_FILES = {
    # fault: (make it, what the message must say, row, column)
    "truncated last line": (_truncate, "the last line is truncated", 5, None),
    "column missing": (_drop_column, "required column(s) unit_price missing", 1, "unit_price"),
    "column added": (_add_column, "unexpected column(s) 'discount'", 1, "discount"),
    "wrong encoding": (_wrong_encoding, "cannot be decoded as utf-8", 4, "customer_id"),
    "empty file": (_empty, "the file is empty", None, None),
    "unbalanced quote": (_open_quote, "a quote opened in this row is not closed", 3, None),
    "UTF-16 file, UTF-8 declared": (_utf16, "UTF-16 byte order mark", 1, None),
}


@pytest.mark.parametrize("fault", sorted(BROKEN_FILES))
def test_broken_file_loads_nothing_and_says_where_and_what_to_do(tmp_path, con, fault):
    make, says, row, column = BROKEN_FILES[fault]
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    make(landing / "2026-10" / "sales_orders.csv")
    err = rejected_load(con, landing)
    msg = str(err)
    assert "landing/2026-10/sales_orders.csv: the file cannot be used as it is" in msg
    assert says in msg
    assert list(err.rejected) == ["2026-10/sales_orders.csv"]
    problem = err.rejected["2026-10/sales_orders.csv"][0]
    assert (problem.row, problem.column) == (row, column)
    assert problem.fix  # every message says what to do
    assert count(con, "sales_orders") == 0
    recorded = rejects(con, "2026-10/sales_orders.csv")
    assert len(recorded) == 1 and recorded[0][0] == row and says in recorded[0][3]
    # the rest of the month loaded, and the summary attached to the error says so
    assert count(con, "items") == 3
    assert err.summary.files_rejected == ["2026-10/sales_orders.csv"]
    assert "2026-10/items.csv" in err.summary.files_loaded


def test_reordered_columns_load_by_name_not_position(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    cols = list(reversed(EXTRACTS["sales_orders"].column_names))
    write_extract(
        landing / "2026-10", "sales_orders", company_rows("2026-10")["sales_orders"], columns=cols
    )
    load(con, landing)
    assert con.execute(
        "SELECT order_id, qty_ordered, status FROM raw.sales_orders WHERE _source_row = 3"
    ).fetchone() == ("SO-2026-10-2", Decimal("10"), "open")


def test_bom_with_a_non_utf8_declared_encoding(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    (landing / "dialect.yaml").write_text("extracts:\n  customers: {encoding: cp1252}\n")
    rows = company_rows("2026-10")["customers"]
    # a BOM on plain ASCII text is harmless whatever the declared encoding
    write_extract(landing / "2026-10", "customers", rows, bom=True)
    load(con, landing)
    assert count(con, "customers") == 2
    # with non-ASCII text the BOM says UTF-8, and decoding as cp1252 would garble it
    rows[0]["name"] = "Müller GmbH"
    write_extract(landing / "2026-10", "customers", rows, bom=True)
    err = rejected_load(con, landing)
    assert "customers.csv: the file cannot be used" in str(err)
    assert "UTF-8 byte order mark but the declared encoding is cp1252" in str(err)
    assert "declare encoding: utf-8 for customers in landing/dialect.yaml" in str(err)
    assert con.execute("SELECT DISTINCT name FROM raw.customers ORDER BY 1").fetchall() == [
        ("Customer 1",),
        ("Customer 2",),
    ]  # the earlier load stays


# --------------------------------------------------------------------------------------
# numbers: decimal marks and precision
# --------------------------------------------------------------------------------------


def test_undeclared_decimal_comma_is_a_clear_error(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    (landing / "dialect.yaml").write_text("extracts:\n  items: {delimiter: ';'}\n")
    write_extract(
        landing / "2026-10", "items", company_rows("2026-10")["items"], delimiter=";", decimal=","
    )
    err = rejected_load(con, landing)
    msg = str(err)
    assert "landing/2026-10/items.csv: 3 of 3 rows rejected" in msg
    assert (
        "row 2, column unit_cost, value '10,5': '10,5' is not a number with the declared "
        "decimal mark '.' (it looks like a decimal comma)"
    ) in msg
    assert "declare the file's decimal mark in landing/dialect.yaml" in msg
    assert count(con, "items") == 0
    assert err.summary.rows_in_rejected_files["2026-10/items.csv"] == 3
    # files that reference the missing items are rejected too, each with its own rows
    assert "unknown item_id 'IT-1': not in items.item_id of 2026-10 or earlier" in msg


def test_declared_decimal_comma_and_precision_round_trip_exactly(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    (landing / "dialect.yaml").write_text("extracts:\n  items: {delimiter: ';', decimal: ','}\n")
    rows = company_rows("2026-10")["items"]
    rows[0]["unit_cost"] = "1234.5678"
    rows[1]["unit_cost"] = "0.000001"
    rows[2]["unit_cost"] = "999999999999.999999"  # the largest DECIMAL(18,6)
    write_extract(landing / "2026-10", "items", rows, delimiter=";", decimal=",")
    assert "1234,5678" in (landing / "2026-10" / "items.csv").read_text()
    load(con, landing)
    got = dict(con.execute("SELECT item_id, unit_cost FROM raw.items").fetchall())
    assert got == {
        "IT-1": Decimal("1234.5678"),
        "IT-2": Decimal("0.000001"),
        "IT-3": Decimal("999999999999.999999"),
    }


def test_more_than_six_decimals_is_rejected_not_rounded(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    rows = company_rows("2026-10")["items"]
    rows[1]["unit_cost"] = "1.1234567"  # row 3
    rows[2]["unit_price"] = "1234567890123"  # row 4: 13 digits
    write_extract(landing / "2026-10", "items", rows)
    err = rejected_load(con, landing)
    msg = str(err)
    assert (
        "row 3, column unit_cost, value '1.1234567': '1.1234567' has more than 6 decimal places"
    ) in msg
    assert "round the value to at most 6 decimals in the source system" in msg
    assert "row 4, column unit_price, value '1234567890123': '1234567890123' does not fit" in msg
    assert count(con, "items") == 0
    # within a tolerance the good row loads and the two others are counted and recorded
    summary = load(con, landing, max_reject_rate=0.7)
    assert summary.rows_loaded["items"] == 1
    assert summary.rows_rejected >= 2  # + order lines etc. of the two rejected items
    assert [r[:2] for r in rejects(con, "2026-10/items.csv")] == [
        (3, "unit_cost"),
        (4, "unit_price"),
    ]


# --------------------------------------------------------------------------------------
# master data references
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("customer_id", "CU-9", "unknown customer_id 'CU-9': not in customers.customer_id"),
        ("location_id", "DC-9", "unknown location_id 'DC-9': not in locations.location_id"),
        ("currency", "CHF", "currency 'CHF' is neither the base currency USD nor in fx_rates"),
    ],
)
def test_unknown_reference_in_sales_orders(tmp_path, con, column, value, reason):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    rows = company_rows("2026-10")["sales_orders"]
    rows[3][column] = value  # row 5
    write_extract(landing / "2026-10", "sales_orders", rows)
    err = rejected_load(con, landing)
    assert f"row 5, column {column}, value '{value}': {reason}" in str(err)
    assert rejects(con, "2026-10/sales_orders.csv")[0][:3] == (5, column, value)
    assert count(con, "sales_orders") == 0


def test_unknown_unit_of_measure(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    rows = company_rows("2026-10")["items"]
    rows[0]["uom"] = "PCS"
    write_extract(landing / "2026-10", "items", rows)
    err = rejected_load(con, landing)
    assert "row 2, column uom, value 'PCS': 'PCS' is not an allowed uom (allowed: EA, KG" in str(
        err
    )
    assert "use one of the allowed codes" in str(err)


def test_reference_known_only_from_a_later_month_is_unknown(tmp_path, con):
    """Point in time: an item first listed in November is unknown to October's orders."""
    landing = write_company(tmp_path / "landing", months=("2026-10", "2026-11"))
    items = company_rows("2026-11")["items"]
    items.append(dict(items[0], item_id="IT-NEW"))
    write_extract(landing / "2026-11", "items", items)
    orders = company_rows("2026-10")["sales_orders"]
    orders[0]["item_id"] = "IT-NEW"
    write_extract(landing / "2026-10", "sales_orders", orders)
    err = rejected_load(con, landing, plan_month="2026-11")
    assert list(err.rejected) == ["2026-10/sales_orders.csv"]
    assert "unknown item_id 'IT-NEW': not in items.item_id of 2026-10 or earlier" in str(err)
    # November's orders may use it
    orders = company_rows("2026-11")["sales_orders"]
    orders[0]["item_id"] = "IT-NEW"
    write_extract(landing / "2026-11", "sales_orders", orders)
    assert (
        "2026-11/sales_orders.csv" not in rejected_load(con, landing, plan_month="2026-11").rejected
    )


# --------------------------------------------------------------------------------------
# dates: future, boundaries, stale snapshots
# --------------------------------------------------------------------------------------


def test_order_dates_at_the_month_boundary(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10", "2026-11"))
    rows = company_rows("2026-10")["sales_orders"]
    rows[0]["order_date"] = "2026-10-31"
    rows[1]["order_date"] = "2026-10-31 23:59"
    rows[2]["order_date"] = "2026-10-31T23:59:59"
    write_extract(landing / "2026-10", "sales_orders", rows)
    load(con, landing)
    got = con.execute(
        "SELECT order_id, order_date, month(order_date) FROM raw.sales_orders "
        "WHERE _extract_month = '2026-10' ORDER BY _source_row LIMIT 3"
    ).fetchall()
    assert [(str(d), m) for _, d, m in got] == [("2026-10-31", 10)] * 3


def test_order_date_after_the_extract_month_is_rejected(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10", "2026-11"))
    rows = company_rows("2026-10")["sales_orders"]
    rows[1]["order_date"] = "2026-11-01"  # row 3: in the future of the October extract
    write_extract(landing / "2026-10", "sales_orders", rows)
    nov = company_rows("2026-11")["sales_orders"]
    nov[0]["order_date"] = "2026-11-01"  # the same date is fine in November's extract
    write_extract(landing / "2026-11", "sales_orders", nov)
    err = rejected_load(con, landing, plan_month="2026-11")
    assert list(err.rejected) == ["2026-10/sales_orders.csv"]
    assert (
        "row 3, column order_date, value '2026-11-01': '2026-11-01' is after the end of the "
        "extract month 2026-10"
    ) in str(err)
    assert "correct the date in the source system" in str(err)
    assert count(con, "sales_orders", "_extract_month = '2026-10'") == 0
    assert (
        str(
            con.execute(
                "SELECT order_date FROM raw.sales_orders WHERE _extract_month = '2026-11' "
                "AND _source_row = 2"
            ).fetchone()[0]
        )
        == "2026-11-01"
    )


def test_stale_inventory_snapshot(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-09", "2026-10"))
    rows = company_rows("2026-10")["inventory"]
    for r in rows:
        r["snapshot_date"] = "2026-09-30"  # September's snapshot delivered as October's
    write_extract(landing / "2026-10", "inventory", rows)
    err = rejected_load(con, landing)
    assert list(err.rejected) == ["2026-10/inventory.csv"]
    problems = err.rejected["2026-10/inventory.csv"]
    assert [p.row for p in problems] == [2, 3, 4]
    assert all(p.column == "snapshot_date" and "stale extract" in p.reason for p in problems)
    assert "re-export inventory with the snapshot of 2026-10's close" in str(err)
    assert count(con, "inventory", "_extract_month = '2026-10'") == 0


def test_byte_identical_transaction_file_is_a_stale_extract(tmp_path, con):
    landing = write_company(tmp_path / "landing")
    shutil.copy(landing / "2026-09" / "sales_orders.csv", landing / "2026-10" / "sales_orders.csv")
    err = rejected_load(con, landing)
    assert list(err.rejected) == ["2026-10/sales_orders.csv"]
    msg = str(err)
    assert "stale extract: the file is byte-identical to 2026-09/sales_orders.csv" in msg
    assert "re-export sales_orders for 2026-10 from the source system" in msg
    assert count(con, "sales_orders", "_extract_month = '2026-10'") == 0
    assert rejects(con, "2026-10/sales_orders.csv")[0][0] is None  # a file-level problem
    # master data may stay the same from month to month: locations are identical here
    assert (landing / "2026-09" / "locations.csv").read_bytes() == (
        landing / "2026-10" / "locations.csv"
    ).read_bytes()
    assert count(con, "locations", "_extract_month = '2026-10'") == 2


# --------------------------------------------------------------------------------------
# Parquet and folder-level faults
# --------------------------------------------------------------------------------------


def test_parquet_column_of_an_unusable_type(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    (landing / "2026-10" / "locations.csv").unlink()
    table = pa.table(
        {
            "location_id": ["PL-1", "DC-1"],
            "name": ["Plant", "Hub"],
            "type": ["plant", "dc"],
            "region": pa.array([["EU"], ["EU"]]),  # a list, not a value
        }
    )
    pq.write_table(table, landing / "2026-10" / "locations.parquet")
    err = rejected_load(con, landing)
    assert "landing/2026-10/locations.parquet: the file cannot be used" in str(err)
    problem = err.rejected["2026-10/locations.parquet"][0]
    assert (problem.row, problem.column) == (1, "region")
    assert "list" in problem.reason and "write the column as text" in problem.fix


def test_empty_optional_file_and_missing_required_file(tmp_path, con):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    (landing / "2026-10" / "fx_rates.csv").write_text("currency,month,rate_to_base\n")
    err = rejected_load(con, landing)
    assert "fx_rates.csv: the file cannot be used as it is" in str(err)
    assert "an optional extract with no rows should be left out of the folder" in str(err)
    (landing / "2026-10" / "fx_rates.csv").unlink()
    (landing / "2026-10" / "inventory.csv").unlink()
    with pytest.raises(IngestError, match=r"required extract\(s\) inventory missing.*add the file"):
        load(con, landing)
