"""Quantities and money keep their precision: CSV → raw → dbt marts → Python → published.

The path of a number, and what it keeps (docs/bad_input.md, "Precision"):

- extract text → ``raw`` ``DECIMAL(18,6)``: exact (more than 6 decimals or 12 integer digits
  is refused, never rounded);
- ``raw`` → dbt marts ``DOUBLE``: sums of quantities are exact DECIMAL sums, cast once; a
  value of up to 15 significant digits comes out as the double nearest to it, whose
  shortest text is the value as written (``123456789.123456``, ``0.000001``);
- marts → pandas → ``plan`` tables → published DuckDB and Parquet: DOUBLE all the way,
  bit for bit.

Arithmetic of the plan itself (forecasts, fx conversion, ratios) is floating point; the
published plan is reproducible bit for bit (tests/test_pipeline.py) but not decimal.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dbt_inprocess import invoke_dbt
from factories.plan import sample_tables

from sop_pipeline.generator.company import generate_company
from sop_pipeline.ingest.loader import load_extracts
from sop_pipeline.publish.published_file import bi_connect
from sop_pipeline.publish.writer import publish_plan
from sop_pipeline.storage.warehouse import read_mart, read_plan, replace_plan_rows

PLAN = "2026-06"
LARGE, TINY = "123456789.123456", "0.000001"
BIG_PRICE, ODD_PRICE, ODD_QTY = "999999999.999999", "4.100001", "98765.432109"


def _rewrite(path: Path, change) -> list[dict[str, str]]:
    """Rewrite a CSV extract: ``change(rows)`` edits the rows (dicts of text) in place."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    change(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return rows


def _plant(month_dir: Path) -> dict[str, object]:
    """Put large, tiny and 6-decimal values into the month's extracts; say where."""
    where: dict[str, object] = {}

    def inventory(rows: list[dict[str, str]]) -> None:
        lots: dict[tuple[str, str], list[dict[str, str]]] = {}
        for row in rows:
            lots.setdefault((row["item_id"], row["location_id"]), []).append(row)
        multi = [key for key, group in lots.items() if len(group) >= 2]
        # two lots that add up exactly in decimal, not in binary floating point
        for key, values, total in (
            (multi[0], [LARGE, TINY], "123456789.123457"),
            (multi[1], ["0.1", "0.2"], "0.3"),
        ):
            for row, value in zip(lots[key], values + ["0"] * len(lots[key]), strict=False):
                row["qty_on_hand"] = value
            where.setdefault("on_hand", {})[key] = total  # type: ignore[union-attr]
        where["lot"] = (multi[0], lots[multi[0]][0]["lot_id"])

    def items(rows: list[dict[str, str]]) -> None:
        row = next(r for r in rows if r["currency"] == "USD")
        row["unit_cost"], row["unit_price"] = TINY, BIG_PRICE
        where["item"] = row["item_id"]

    def sales_orders(rows: list[dict[str, str]]) -> None:
        row = next(r for r in rows if r["currency"] == "USD" and r["status"] == "open")
        row["qty_ordered"], row["unit_price"] = ODD_QTY, ODD_PRICE
        where["line"] = (row["order_id"], int(row["line_no"]))

    _rewrite(month_dir / "inventory.csv", inventory)
    _rewrite(month_dir / "items.csv", items)
    _rewrite(month_dir / "sales_orders.csv", sales_orders)
    return where


def _shortest(value: float) -> Decimal:
    """The shortest decimal text that reads back as this double (Python's repr)."""
    return Decimal(repr(float(value)))


@pytest.fixture(scope="module")
def marts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """A small company with planted values, loaded by the loader and built by dbt."""
    work = tmp_path_factory.mktemp("precision")
    landing = work / "landing"
    generate_company(landing, items=40, months=13, seed=7, end=PLAN)
    where = _plant(landing / PLAN)
    db = work / "sop.duckdb"
    con = duckdb.connect(str(db))
    try:
        load_extracts(con, landing, PLAN, base_currency="USD")
    finally:
        con.close()
    result = invoke_dbt(
        db,
        work,
        PLAN,
        12,
        "run",
        "--select",
        "+dim_items +fct_inventory_position +fct_order_lines +fct_demand_history",
    )
    assert result.success, result.exception
    return db, where


def test_raw_keeps_the_extract_text_exactly(marts: tuple[Path, dict[str, object]]) -> None:
    db, where = marts
    (item, location), lot = where["lot"]  # type: ignore[misc]
    con = duckdb.connect(str(db), read_only=True)
    try:
        qty = con.execute(
            "SELECT typeof(qty_on_hand), CAST(qty_on_hand AS VARCHAR) FROM raw.inventory "
            "WHERE _extract_month = ? AND item_id = ? AND location_id = ? AND lot_id = ?",
            [PLAN, item, location, lot],
        ).fetchone()
        cost, price = con.execute(
            "SELECT CAST(unit_cost AS VARCHAR), CAST(unit_price AS VARCHAR) FROM raw.items "
            "WHERE _extract_month = ? AND item_id = ?",
            [PLAN, where["item"]],
        ).fetchone()
    finally:
        con.close()
    assert qty == ("DECIMAL(18,6)", LARGE)
    assert (cost, price) == (TINY, BIG_PRICE)


def test_marts_hold_the_nearest_double_and_exact_sums(
    marts: tuple[Path, dict[str, object]],
) -> None:
    db, where = marts
    con = duckdb.connect(str(db), read_only=True)
    try:
        position = read_mart(con, "fct_inventory_position")
        items = read_mart(con, "dim_items")
        lines = read_mart(con, "fct_order_lines")
    finally:
        con.close()
    on_hand = position.set_index(["item_id", "location_id"])["on_hand_qty"]
    for key, total in where["on_hand"].items():  # type: ignore[union-attr]
        # lots summed exactly, then one rounding to DOUBLE: 0.1 + 0.2 is 0.3 here
        assert _shortest(on_hand[key]) == Decimal(total), key
    item = items.set_index("item_id").loc[where["item"]]
    assert _shortest(item["unit_cost"]) == Decimal(TINY)
    assert _shortest(item["unit_price"]) == Decimal(BIG_PRICE)
    order_id, line_no = where["line"]  # type: ignore[misc]
    line = lines[(lines["order_id"] == order_id) & (lines["line_no"] == line_no)].iloc[0]
    assert _shortest(line["qty_ordered"]) == Decimal(ODD_QTY)
    assert _shortest(line["unit_price_base"]) == Decimal(ODD_PRICE)


def test_python_stages_and_publication_keep_every_bit(
    marts: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    db, where = marts
    (item, location), _lot = where["lot"]  # type: ignore[misc]
    con = duckdb.connect(str(db))
    try:
        position = read_mart(con, "fct_inventory_position")
        items = read_mart(con, "dim_items").set_index("item_id")
        on_hand = position.set_index(["item_id", "location_id"]).loc[
            (item, location), "on_hand_qty"
        ]
        cost = items.loc[where["item"], "unit_cost"]
        price = items.loc[where["item"], "unit_price"]
        # a stage writes its frame to plan.<table> and the next stage reads it back
        probe = pd.DataFrame(
            {"item_id": [item], "qty": [on_hand], "cost": [cost], "price": [price]}
        )
        replace_plan_rows(con, "precision_probe", probe, PLAN)
        stored = read_plan(con, "precision_probe", PLAN).iloc[0]
    finally:
        con.close()
    assert (stored["qty"], stored["cost"], stored["price"]) == (on_hand, cost, price)

    tables = sample_tables()
    tables["plan_inventory"].loc[0, "opening_qty"] = stored["qty"]
    tables["plan_financials"].loc[0, "cogs"] = stored["cost"]
    tables["plan_demand"].loc[0, "consensus_revenue"] = stored["price"]
    pub = tmp_path / "published"
    publish_plan(
        pub,
        PLAN,
        tables,
        run_id="precision",
        input_fingerprint="fp",
        code_version="test",
        checks_passed=1,
        checks_failed=0,
    )
    queries = {
        "opening_qty": "SELECT opening_qty FROM {src} ORDER BY item_id, location_id, month LIMIT 1",
        "cogs": "SELECT cogs FROM {src} ORDER BY family, month LIMIT 1",
        "consensus_revenue": "SELECT consensus_revenue FROM {src} ORDER BY item_id, location_id, month LIMIT 1",
    }
    tables_of = {
        "opening_qty": "plan_inventory",
        "cogs": "plan_financials",
        "consensus_revenue": "plan_demand",
    }
    expected = {
        "opening_qty": ("123456789.123457", stored["qty"]),
        "cogs": (TINY, stored["cost"]),
        "consensus_revenue": (BIG_PRICE, stored["price"]),
    }
    con = bi_connect(pub / "sop.duckdb")
    try:
        for column, sql in queries.items():
            table = tables_of[column]
            parquet = f"read_parquet('{pub}/parquet/{table}/*/*/part-0.parquet')"
            in_duckdb = con.execute(sql.format(src=table)).fetchone()[0]
            in_parquet = duckdb.sql(sql.format(src=parquet)).fetchone()[0]
            text, value = expected[column]
            assert in_duckdb == value and in_parquet == value, column  # bit for bit
            assert _shortest(in_duckdb) == Decimal(text), column  # and reads as written
    finally:
        con.close()
