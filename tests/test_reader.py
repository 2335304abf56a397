"""Reader and dialect: one test per contract rule, each message names file, row and column.

``company_rows`` / ``write_company`` build a tiny valid company (3 items, 2 months) from the
contract; ``tests/test_loader.py`` imports them.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories.extracts import company_rows, write_company, write_extract

from sop_pipeline.ingest.contract import EXTRACTS, REQUIRED_EXTRACTS
from sop_pipeline.ingest.dialect import Dialect, DialectError, load_dialect
from sop_pipeline.ingest.problems import ExtractError
from sop_pipeline.ingest.reader import read_extract

# --------------------------------------------------------------------------------------
# fixture company
# --------------------------------------------------------------------------------------


def read(path: Path, name: str, dialect: Dialect | None = None, month: str = "2026-10"):
    return read_extract(path, EXTRACTS[name], dialect or Dialect(), extract_month=month)


def one_problem(result, column: str):
    found = [p for p in result.problems if p.column == column]
    assert found, f"no problem on column {column}: {result.problems}"
    return found[0]


@pytest.fixture
def month_dir(tmp_path) -> Path:
    return tmp_path / "landing" / "2026-10"


def test_fixture_company_reads_without_problems(tmp_path):
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    for name in (*REQUIRED_EXTRACTS, "fx_rates"):
        result = read(landing / "2026-10" / f"{name}.csv", name)
        assert result.problems == [], name
        assert result.row_count == len(company_rows("2026-10")[name])
        assert list(result.frame.columns) == [*EXTRACTS[name].column_names, "_source_row"]


# --------------------------------------------------------------------------------------
# file-level errors
# --------------------------------------------------------------------------------------


def test_missing_column_names_file_and_column(month_dir):
    cols = [c for c in EXTRACTS["items"].column_names if c != "unit_cost"]
    path = write_extract(month_dir, "items", company_rows("2026-10")["items"], columns=cols)
    with pytest.raises(ExtractError) as err:
        read(path, "items")
    assert err.value.column == "unit_cost"
    assert "landing/2026-10/items.csv row 1, column unit_cost" in str(err.value)
    assert "missing" in str(err.value)


def test_extra_column_is_rejected(month_dir):
    rows = [dict(r, colour="red") for r in company_rows("2026-10")["locations"]]
    cols = [*EXTRACTS["locations"].column_names, "colour"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r[c] for c in cols])
    month_dir.mkdir(parents=True)
    path = month_dir / "locations.csv"
    path.write_text(out.getvalue())
    with pytest.raises(ExtractError) as err:
        read(path, "locations")
    assert err.value.column == "colour"
    assert "locations.csv row 1, column colour" in str(err.value)
    assert "contract" in str(err.value)


def test_duplicated_header_name(month_dir):
    month_dir.mkdir(parents=True)
    path = month_dir / "locations.csv"
    path.write_text("location_id,name,type,region,region\nPL-1,Plant,plant,EU,EU\n")
    with pytest.raises(ExtractError, match=r"locations.csv row 1, column region: .*more than once"):
        read(path, "locations")


def test_reordered_columns_load_by_name(month_dir):
    cols = list(reversed(EXTRACTS["items"].column_names))
    path = write_extract(month_dir, "items", company_rows("2026-10")["items"], columns=cols)
    result = read(path, "items")
    assert result.problems == []
    assert list(result.frame["item_id"]) == ["IT-1", "IT-2", "IT-3"]
    assert result.frame["unit_price"].iloc[0] == Decimal("20.25")
    assert list(result.frame.columns[:2]) == ["item_id", "description"]


def test_wrong_delimiter_says_what_was_declared(month_dir):
    path = write_extract(
        month_dir, "sales_orders", company_rows("2026-10")["sales_orders"], delimiter=";"
    )
    with pytest.raises(ExtractError) as err:
        read(path, "sales_orders")
    msg = str(err.value)
    assert "sales_orders.csv row 1" in msg
    assert "declared delimiter ','" in msg
    assert "order_id;line_no" in msg  # what the header looks like
    assert "dialect.yaml" in msg


def test_wrong_encoding_for_declared_dialect_gives_row_and_column(month_dir):
    rows = company_rows("2026-10")["customers"]
    rows[1]["name"] = "Müller GmbH"  # row 3 of the file
    path = write_extract(month_dir, "customers", rows, encoding="cp1252")
    with pytest.raises(ExtractError) as err:
        read(path, "customers")
    assert err.value.row == 3
    assert err.value.column == "name"
    assert "customers.csv row 3, column name" in str(err.value)
    assert "utf-8" in str(err.value) and "dialect.yaml" in str(err.value)
    # declared correctly, the same bytes read fine and keep the umlaut
    result = read(path, "customers", Dialect(encoding="cp1252"))
    assert result.frame["name"].iloc[1] == "Müller GmbH"


def test_bom_is_tolerated(month_dir):
    path = write_extract(month_dir, "locations", company_rows("2026-10")["locations"], bom=True)
    result = read(path, "locations")
    assert result.problems == []
    assert list(result.frame["location_id"]) == ["PL-1", "DC-1"]


def test_truncated_last_line(month_dir):
    path = write_extract(month_dir, "sales_orders", company_rows("2026-10")["sales_orders"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # cut the last line mid-row
    with pytest.raises(ExtractError) as err:
        read(path, "sales_orders")
    assert err.value.row == 5  # header + 4 rows, the 4th is cut
    assert "truncated" in str(err.value)
    assert "sales_orders.csv row 5" in str(err.value)


def test_empty_file_and_header_only(month_dir):
    month_dir.mkdir(parents=True)
    path = month_dir / "locations.csv"
    path.write_bytes(b"")
    with pytest.raises(ExtractError, match=r"locations.csv: the file is empty"):
        read(path, "locations")
    path.write_text("location_id,name,type,region\n")
    with pytest.raises(
        ExtractError, match=r"locations.csv: the file has a header but no data rows"
    ):
        read(path, "locations")


# --------------------------------------------------------------------------------------
# row-level problems
# --------------------------------------------------------------------------------------


def test_wrong_type_abc_in_a_number(month_dir):
    rows = company_rows("2026-10")["sales_orders"]
    rows[2]["qty_ordered"] = "abc"  # file row 4
    result = read(write_extract(month_dir, "sales_orders", rows), "sales_orders")
    p = one_problem(result, "qty_ordered")
    assert (p.row, p.value) == (4, "abc")
    text = p.describe("landing/2026-10/sales_orders.csv")
    assert text.startswith(
        "landing/2026-10/sales_orders.csv row 4, column qty_ordered: 'abc' is not a number"
    )
    assert "decimal mark" in text
    assert result.bad_rows == {4}


def test_duplicate_key_names_key_and_first_row(month_dir):
    rows = company_rows("2026-10")["sales_orders"]
    rows.append(dict(rows[0]))  # same order_id / line_no as row 2, becomes row 6
    result = read(write_extract(month_dir, "sales_orders", rows), "sales_orders")
    p = one_problem(result, "order_id, line_no")
    assert p.row == 6
    assert "duplicate key (order_id, line_no)" in p.reason
    assert "row 2" in p.reason
    assert result.bad_rows == {6}  # the first row of the group is kept


def test_unknown_status(month_dir):
    rows = company_rows("2026-10")["sales_orders"]
    rows[0]["status"] = "lost"
    result = read(write_extract(month_dir, "sales_orders", rows), "sales_orders")
    p = one_problem(result, "status")
    assert (p.row, p.value) == (2, "lost")
    assert "'lost' is not an allowed status" in p.reason and "returned" in p.reason


def test_bad_date(month_dir):
    rows = company_rows("2026-10")["sales_orders"]
    rows[1]["order_date"] = "2026-02-30"
    result = read(write_extract(month_dir, "sales_orders", rows), "sales_orders")
    p = one_problem(result, "order_date")
    assert (p.row, p.value) == (3, "2026-02-30")
    assert "not a date in the declared format %Y-%m-%d" in p.reason


def test_implausible_dates(month_dir):
    rows = company_rows("2026-10")["sales_orders"]
    rows[0]["order_date"] = "1985-01-01"
    rows[1]["requested_date"] = "2033-01-01"  # > 5 years after 2026-10
    result = read(write_extract(month_dir, "sales_orders", rows), "sales_orders")
    assert one_problem(result, "order_date").row == 2
    assert one_problem(result, "requested_date").row == 3
    assert "plausible" in one_problem(result, "requested_date").reason


def test_required_value_empty(month_dir):
    rows = company_rows("2026-10")["sales_orders"]
    rows[3]["customer_id"] = "  "
    result = read(write_extract(month_dir, "sales_orders", rows), "sales_orders")
    p = one_problem(result, "customer_id")
    assert p.row == 5 and "required" in p.reason


def test_number_out_of_range(month_dir):
    rows = company_rows("2026-10")["work_centers"]
    rows[0]["hours_per_day"] = "25"
    result = read(write_extract(month_dir, "work_centers", rows), "work_centers")
    p = one_problem(result, "hours_per_day")
    assert p.row == 2 and "above the maximum 24" in p.reason


def test_negative_qty_only_on_returns(month_dir):
    rows = company_rows("2026-10")["sales_orders"]
    rows[0]["qty_ordered"] = "-5"  # status open: a problem
    result = read(write_extract(month_dir, "sales_orders", rows), "sales_orders")
    p = one_problem(result, "qty_ordered")
    assert p.row == 2 and "negative quantity -5" in p.reason and "'open'" in p.reason
    # the fixture's returned line (row 5) has negative quantities and is fine
    assert 5 not in result.bad_rows


def test_opportunity_needs_item_or_family(month_dir):
    rows = [
        {
            "opportunity_id": "OP-1",
            "customer_id": "CU-1",
            "item_id": "IT-1",
            "family": "",
            "expected_qty": "10",
            "amount": "100",
            "currency": "USD",
            "stage": "proposal",
            "probability": "0.5",
            "expected_close_date": "2026-12-01",
        },
        {
            "opportunity_id": "OP-2",
            "customer_id": "CU-1",
            "item_id": "",
            "family": "",
            "expected_qty": "10",
            "amount": "100",
            "currency": "USD",
            "stage": "proposal",
            "probability": "0.5",
            "expected_close_date": "2026-12-01",
        },
    ]
    result = read(write_extract(month_dir, "opportunities", rows), "opportunities")
    assert result.bad_rows == {3}
    assert "neither item_id nor family" in one_problem(result, "item_id").reason


def test_demand_override_adjustment_pattern(month_dir):
    base = {"month": "2026-11", "reason_code": "promo", "author": "ana", "comment": ""}
    rows = [
        dict(base, scope=f"IT-{i}", adjustment=a)
        for i, a in enumerate(["120", "-40", "+15%", "-10%", "ten"])
    ]
    result = read(write_extract(month_dir, "demand_overrides", rows), "demand_overrides")
    p = one_problem(result, "adjustment")
    assert result.bad_rows == {6}
    assert p.value == "ten" and "percent" in p.reason


def test_month_column_forms(month_dir):
    rows = [
        {"work_center_id": "WC-1", "month": "2026-10", "available_hours": "1"},
        {"work_center_id": "WC-2", "month": "2026-11-01", "available_hours": "1"},
        {"work_center_id": "WC-3", "month": "2026-11-15", "available_hours": "1"},
        {"work_center_id": "WC-4", "month": "Nov 2026", "available_hours": "1"},
    ]
    result = read(write_extract(month_dir, "capacity_calendar", rows), "capacity_calendar")
    assert result.frame["month"].iloc[0] == pd.Timestamp("2026-10-01")
    assert result.frame["month"].iloc[1] == pd.Timestamp("2026-11-01")
    assert result.bad_rows == {4, 5}
    assert "not the first day" in next(p for p in result.problems if p.row == 4).reason


# --------------------------------------------------------------------------------------
# dialect
# --------------------------------------------------------------------------------------


def test_non_iso_date_format_and_decimal_comma_declared_load_exactly(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "dialect.yaml").write_text(
        "extracts:\n  sales_orders: {encoding: cp1252, delimiter: ';', decimal: ',', date_format: '%d.%m.%Y'}\n"
    )
    rows = company_rows("2026-10")["sales_orders"]
    rows[0]["unit_price"] = "1234.5678"
    rows[0]["order_date"] = "2026-09-28"
    path = write_extract(
        landing / "2026-10",
        "sales_orders",
        rows,
        delimiter=";",
        decimal=",",
        date_format="%d.%m.%Y",
        encoding="cp1252",
    )
    assert "28.09.2026" in path.read_text(encoding="cp1252")
    assert "1234,5678" in path.read_text(encoding="cp1252")
    dialect = load_dialect(landing).for_extract("sales_orders")
    result = read(path, "sales_orders", dialect)
    assert result.problems == []
    assert result.frame["unit_price"].iloc[0] == Decimal("1234.5678")
    assert result.frame["order_date"].iloc[0] == pd.Timestamp("2026-09-28")
    # the same file read with the default dialect is rejected, not guessed
    with pytest.raises(ExtractError, match="delimiter"):
        read(path, "sales_orders", Dialect(encoding="cp1252"))


def test_dialect_defaults_and_validation(tmp_path):
    assert load_dialect(tmp_path).for_extract("items") == Dialect("utf-8", ",", ".", "%Y-%m-%d")
    (tmp_path / "dialect.yaml").write_text("encoding: utf-8\nseparator: ';'\n")
    with pytest.raises(DialectError, match=r"dialect.yaml: unknown key\(s\) separator"):
        load_dialect(tmp_path)
    (tmp_path / "dialect.yaml").write_text("encoding: klingon-8\n")
    with pytest.raises(
        DialectError, match=r"dialect.yaml: encoding 'klingon-8' is not a known encoding"
    ):
        load_dialect(tmp_path)
    (tmp_path / "dialect.yaml").write_text("extracts:\n  sales_order: {delimiter: ';'}\n")
    with pytest.raises(DialectError, match="sales_order is not an extract"):
        load_dialect(tmp_path)
    (tmp_path / "dialect.yaml").write_text("delimiter: ','\ndecimal: ','\n")
    with pytest.raises(DialectError, match="must differ"):
        load_dialect(tmp_path)


def test_parquet_is_read_with_its_types(month_dir):
    month_dir.mkdir(parents=True)
    table = pa.table(
        {
            "work_center_id": ["WC-1", "WC-1"],
            "month": pa.array(
                [pd.Timestamp("2026-10-01").date(), pd.Timestamp("2026-11-01").date()]
            ),
            "available_hours": pa.array([Decimal("300.125"), Decimal("-1")], pa.decimal128(10, 3)),
        }
    )
    pq.write_table(table, month_dir / "capacity_calendar.parquet")
    result = read(month_dir / "capacity_calendar.parquet", "capacity_calendar")
    assert result.frame["available_hours"].iloc[0] == Decimal("300.125")
    assert result.frame["month"].iloc[1] == pd.Timestamp("2026-11-01")
    assert result.bad_rows == {3}  # negative hours


def test_reader_is_vectorised_on_100k_rows(month_dir):
    import time

    n = 100_000
    base = company_rows("2026-10")["sales_orders"][0]
    df = pd.DataFrame([base] * n)
    df["order_id"] = [f"SO-{i}" for i in range(n)]
    df.loc[77, "qty_ordered"] = "x"
    month_dir.mkdir(parents=True)
    path = month_dir / "sales_orders.csv"
    df[EXTRACTS["sales_orders"].column_names].to_csv(path, index=False)
    start = time.perf_counter()
    result = read(path, "sales_orders")
    elapsed = time.perf_counter() - start
    assert result.row_count == n
    assert result.bad_rows == {79}
    assert elapsed < 10, f"reading 100k rows took {elapsed:.1f}s"


# --------------------------------------------------------------------------------------
# one GX run for several files (the loader's batches)
# --------------------------------------------------------------------------------------


def test_one_gx_run_over_several_files_gives_each_file_its_own_problems(tmp_path):
    from sop_pipeline.ingest.checks import check_parsed
    from sop_pipeline.ingest.reader import parse_extract

    landing = tmp_path / "landing"
    paths = []
    for month in ("2026-10", "2026-11", "2026-12"):
        rows = company_rows("2026-10")["sales_orders"]  # the same keys in every file
        if month == "2026-11":
            rows.append(dict(rows[0]))  # row 6 repeats row 2's key: a duplicate in this file
            rows[2]["status"] = "lost"  # row 4
        if month == "2026-12":
            # rows 6 and 7 have an empty key: required values, not duplicates of each other
            rows += [dict(rows[1], order_id="", line_no=""), dict(rows[2], order_id="", line_no="")]
        paths.append(write_extract(landing / month, "sales_orders", rows))
    months = ("2026-10", "2026-11", "2026-12")
    parsed = [
        parse_extract(p, EXTRACTS["sales_orders"], Dialect(), extract_month=m)
        for p, m in zip(paths, months, strict=True)
    ]
    together = check_parsed(parsed)
    alone = [read(p, "sales_orders", month=m) for p, m in zip(paths, months, strict=True)]
    for t, a in zip(together, alone, strict=True):
        assert t.problems == a.problems
        pd.testing.assert_frame_equal(t.frame, a.frame)
    assert together[0].problems == []  # keys repeated across files are not duplicates
    assert together[1].bad_rows == {4, 6}
    assert (
        "duplicate key (order_id, line_no)" in one_problem(together[1], "order_id, line_no").reason
    )
    assert together[2].bad_rows == {6, 7}
    assert {(p.row, p.column) for p in together[2].problems} == {
        (6, "order_id"),
        (6, "line_no"),
        (7, "order_id"),
        (7, "line_no"),
    }
