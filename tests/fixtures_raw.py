"""A tiny, deterministic company in the ``raw`` schema, for tests of the dbt project.

Three extract months: 2026-02 (the first extract, carrying history), 2026-03 (the plan
month used by the tests) and 2026-04 (a later extract the 2026-03 plan must not see).

- items: A100 (made, Widgets, launched 2025-01), B200 (made, Widgets, launched mid
  2025-11, with a pre-order requested in 2025-10), C300 (bought in: no routing, EUR prices)
- locations P1 (plant), D1 (dc); customers CU1, CU2; work centres WC1, WC2 at P1
- A100 @ D1 demand by requested month: 2025-10 10, 2025-11 12, 2025-12 none (a zero-filled
  gap), 2026-01 8 (EUR order at 1.08), 2026-02 14 ordered - 2 returned = 12 (SO4/1 was
  first extracted as 15 and restated to 14 in 2026-03), 2026-03 9
- extract 2026-04 restates SO4/1 to 999 and adds SO9/1 and item X900: invisible in 2026-03

The expected numbers the tests assert are kept next to the data (``EXPECTED``).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from sop_pipeline.ingest.contract import EXTRACTS
from sop_pipeline.ingest.raw_schema import create_raw_tables

PLAN_MONTH = "2026-03"
HORIZON_MONTHS = 6
LOADED_AT = datetime(2026, 4, 2, 6, 0, 0)

EXPECTED = {
    # (item, location, month) -> (ordered, cancelled, returned, demand)
    ("A100", "D1", date(2025, 10, 1)): (10.0, 0.0, 0.0, 10.0),
    ("A100", "D1", date(2025, 11, 1)): (12.0, 0.0, 0.0, 12.0),
    ("A100", "D1", date(2025, 12, 1)): (0.0, 0.0, 0.0, 0.0),
    ("A100", "D1", date(2026, 1, 1)): (8.0, 0.0, 0.0, 8.0),
    ("A100", "D1", date(2026, 2, 1)): (14.0, 0.0, 2.0, 12.0),
    ("A100", "D1", date(2026, 3, 1)): (9.0, 0.0, 0.0, 9.0),
    ("B200", "D1", date(2025, 11, 1)): (3.0, 0.0, 0.0, 3.0),
    ("B200", "D1", date(2026, 1, 1)): (5.0, 5.0, 0.0, 0.0),
}
EUR_RATE_2026_01 = 1.08


def _d(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _items(month: str) -> list[dict[str, Any]]:
    rows = [
        {
            "item_id": "A100",
            "description": "Widget classic",
            "family": "Widgets",
            "category": "finished",
            "uom": "EA",
            "unit_cost": 12,
            "unit_price": 20,
            "currency": "USD",
            "lifecycle_status": "active",
            "launch_date": _d("2025-01-10"),
            "lead_time_days": 10,
            "min_lot_qty": 10,
        },
        {
            "item_id": "B200",
            "description": "Widget pro",
            "family": "Widgets",
            "category": "finished",
            "uom": "EA",
            "unit_cost": 30,
            "unit_price": 55,
            "currency": "USD",
            "lifecycle_status": "new",
            "launch_date": _d("2025-11-15"),
            "lead_time_days": 15,
            "min_lot_qty": 5,
        },
        {
            "item_id": "C300",
            "description": "Spare part",
            "family": "Parts",
            "category": "spare",
            "uom": "EA",
            "unit_cost": 2,
            "unit_price": 5,
            "currency": "EUR",
            "lifecycle_status": "active",
            "launch_date": _d("2024-06-01"),
            "lead_time_days": 30,
            "min_lot_qty": 50,
        },
    ]
    if month == "2026-04":
        rows.append({**rows[0], "item_id": "X900", "description": "Not yet known in March"})
    return rows


def _order(
    order_id: str,
    line_no: int,
    order_date: str,
    requested_date: str,
    item_id: str,
    location_id: str,
    qty: float,
    status: str,
    *,
    shipped: float | None = None,
    price: float = 20,
    currency: str = "USD",
    customer_id: str = "CU1",
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "line_no": line_no,
        "order_date": _d(order_date),
        "requested_date": _d(requested_date),
        "ship_date": _d(requested_date) if status == "shipped" else None,
        "customer_id": customer_id,
        "item_id": item_id,
        "location_id": location_id,
        "qty_ordered": qty,
        "qty_shipped": shipped,
        "unit_price": price,
        "currency": currency,
        "status": status,
    }


SALES_ORDERS = {
    "2026-02": [
        _order("SO1", 1, "2025-10-03", "2025-10-20", "A100", "D1", 10, "shipped", shipped=10),
        _order("SO2", 1, "2025-11-05", "2025-11-25", "A100", "D1", 12, "shipped", shipped=12),
        # pre-order before B200's launch (2025-11-15): counts in the launch month
        _order(
            "SO5", 1, "2025-10-15", "2025-10-30", "B200", "D1", 3, "shipped", shipped=3, price=55
        ),
        _order(
            "SO3",
            1,
            "2026-01-10",
            "2026-01-28",
            "A100",
            "D1",
            8,
            "shipped",
            shipped=8,
            price=10,
            currency="EUR",
            customer_id="CU2",
        ),
        _order("SO3", 2, "2026-01-10", "2026-01-28", "B200", "D1", 5, "cancelled", price=55),
        _order("SO4", 1, "2026-02-02", "2026-02-20", "A100", "D1", 15, "shipped", shipped=15),
        # a return: negative quantity in the extract
        _order("SO6", 1, "2026-02-10", "2026-02-12", "A100", "D1", -2, "returned"),
    ],
    "2026-03": [
        # restatement of SO4/1: 15 -> 14
        _order("SO4", 1, "2026-02-02", "2026-02-20", "A100", "D1", 14, "shipped", shipped=14),
        _order("SO7", 1, "2026-03-05", "2026-03-25", "A100", "D1", 9, "open"),
        _order(
            "SO8",
            1,
            "2026-03-01",
            "2026-03-20",
            "C300",
            "P1",
            6,
            "shipped",
            shipped=6,
            price=5,
            currency="EUR",
        ),
        # requested after the plan month: order book, not history
        _order(
            "SO8", 2, "2026-03-01", "2026-04-15", "C300", "P1", 4, "open", price=5, currency="EUR"
        ),
    ],
    "2026-04": [
        _order("SO4", 1, "2026-02-02", "2026-02-20", "A100", "D1", 999, "shipped", shipped=999),
        _order("SO9", 1, "2026-04-02", "2026-04-10", "A100", "D1", 50, "open"),
    ],
}


def _inventory(month: str) -> list[dict[str, Any]]:
    snapshot = {"2026-02": "2026-02-28", "2026-03": "2026-03-31", "2026-04": "2026-04-30"}[month]
    qty_a = {"2026-02": 40, "2026-03": 30, "2026-04": 1}[month]
    return [
        {
            "snapshot_date": _d(snapshot),
            "item_id": "A100",
            "location_id": "D1",
            "lot_id": "L1",
            "receipt_date": _d("2026-01-15"),
            "qty_on_hand": qty_a,
        },
        {
            "snapshot_date": _d(snapshot),
            "item_id": "A100",
            "location_id": "D1",
            "lot_id": "L2",
            "receipt_date": _d("2026-02-28"),
            "qty_on_hand": 10,
        },
        {
            "snapshot_date": _d(snapshot),
            "item_id": "C300",
            "location_id": "P1",
            "lot_id": "L3",
            "receipt_date": _d("2025-12-01"),
            "qty_on_hand": 100,
        },
    ]


def _per_month(month: str) -> dict[str, list[dict[str, Any]]]:
    """Every extract of one month folder."""
    masters: dict[str, list[dict[str, Any]]] = {
        "items": _items(month),
        "locations": [
            {"location_id": "P1", "name": "Plant One", "type": "plant", "region": "EU"},
            {"location_id": "D1", "name": "DC One", "type": "dc", "region": "NA"},
        ],
        "customers": [
            {
                "customer_id": "CU1",
                "name": "Acme",
                "segment": "key",
                "region": "NA",
                "channel": "direct",
            },
            {
                "customer_id": "CU2",
                "name": "Bravo",
                "segment": "smb",
                "region": "EU",
                "channel": "distributor",
            },
        ],
        "sales_orders": SALES_ORDERS[month],
        "inventory": _inventory(month),
        "work_centers": [
            {
                "work_center_id": "WC1",
                "location_id": "P1",
                "name": "Assembly",
                "hours_per_day": 16,
                "efficiency": 0.9,
            },
            {
                "work_center_id": "WC2",
                "location_id": "P1",
                "name": "Paint",
                "hours_per_day": 8,
                "efficiency": 1.0,
            },
        ],
        "capacity_calendar": [
            {"work_center_id": "WC1", "month": _d("2026-04-01"), "available_hours": 300},
            # overhaul
            {"work_center_id": "WC1", "month": _d("2026-05-01"), "available_hours": 100},
            {"work_center_id": "WC1", "month": _d("2026-06-01"), "available_hours": 290},
            {"work_center_id": "WC2", "month": _d("2026-04-01"), "available_hours": 160},
        ],
        "routings": [
            {"item_id": "A100", "work_center_id": "WC1", "hours_per_unit": 0.5},
            {"item_id": "B200", "work_center_id": "WC1", "hours_per_unit": 0.25},
            {"item_id": "B200", "work_center_id": "WC2", "hours_per_unit": 0.1},
        ],
        "fx_rates": [
            {"currency": "EUR", "month": _d(m), "rate_to_base": r}
            for m, r in (
                ("2025-10-01", 1.05),
                ("2025-11-01", 1.06),
                ("2025-12-01", 1.07),
                ("2026-01-01", EUR_RATE_2026_01),
                ("2026-02-01", 1.10),
            )
        ],
        "aop_targets": [
            {
                "family": "Widgets",
                "month": _d("2026-04-01"),
                "revenue_target": 5000,
                "volume_target": 250,
                "inventory_value_target": 3000,
            },
            {
                "family": "Parts",
                "month": _d("2026-04-01"),
                "revenue_target": 400,
                "volume_target": 80,
                "inventory_value_target": 500,
            },
        ],
    }
    if month != "2026-03":
        return masters
    masters["production_orders"] = [
        {
            "order_id": "MO1",
            "item_id": "A100",
            "location_id": "P1",
            "work_center_id": "WC1",
            "qty_planned": 100,
            "qty_completed": 0,
            "start_date": _d("2026-02-01"),
            "due_date": _d("2026-02-15"),
            "status": "released",
        },
        {
            "order_id": "MO2",
            "item_id": "B200",
            "location_id": "P1",
            "work_center_id": "WC1",
            "qty_planned": 50,
            "qty_completed": 50,
            "start_date": _d("2026-02-01"),
            "due_date": _d("2026-03-10"),
            "completed_date": _d("2026-03-09"),
            "status": "completed",
        },
    ]
    masters["purchase_orders"] = [
        {
            "po_id": "PO1",
            "item_id": "C300",
            "location_id": "P1",
            "supplier_id": "SUP1",
            "qty_ordered": 20,
            "qty_received": 5,
            "order_date": _d("2026-03-02"),
            "due_date": _d("2026-05-10"),
            "status": "open",
        }
    ]
    masters["opportunities"] = [
        {
            "opportunity_id": "OP1",
            "customer_id": "CU1",
            "item_id": "A100",
            "expected_qty": 50,
            "amount": 1000,
            "currency": "EUR",
            "stage": "proposal",
            "probability": 0.5,
            "expected_close_date": _d("2026-05-20"),
        },
        {
            "opportunity_id": "OP2",
            "customer_id": "CU2",
            "family": "Parts",
            "expected_qty": 10,
            "amount": 50,
            "currency": "USD",
            "stage": "closed_won",
            "probability": 1,
            "expected_close_date": _d("2026-03-20"),
        },
        {
            "opportunity_id": "OP3",
            "customer_id": "CU2",
            "family": "Widgets",
            "expected_qty": 30,
            "amount": 600,
            "currency": "USD",
            "stage": "negotiation",
            "probability": 0.7,
            "expected_close_date": _d("2026-06-05"),
        },
    ]
    masters["demand_overrides"] = [
        {
            "scope": "A100",
            "month": _d("2026-04-01"),
            "adjustment": "120",
            "reason_code": "PROMO",
            "author": "ann",
        },
        {
            "scope": "B200",
            "month": _d("2026-04-01"),
            "adjustment": "-40",
            "reason_code": "EOL",
            "author": "dan",
        },
        {
            "scope": "Widgets",
            "month": _d("2026-05-01"),
            "adjustment": "-10%",
            "reason_code": "MKT",
            "author": "bob",
        },
        {
            "scope": "C300",
            "month": _d("2026-06-01"),
            "adjustment": "+15%",
            "reason_code": "TENDER",
            "author": "cy",
            "comment": "big tender",
        },
    ]
    return masters


def insert_rows(
    con: duckdb.DuckDBPyConnection, extract: str, month: str, rows: list[dict[str, Any]]
) -> None:
    """Append ``rows`` to ``raw.<extract>`` as the extract of ``month`` (lineage filled in)."""
    columns = EXTRACTS[extract].column_names
    names = [*columns, "_extract_month", "_source_file", "_source_row", "_loaded_at"]
    placeholders = ", ".join("?" for _ in names)
    values = [
        [*(row.get(c) for c in columns), month, f"landing/{month}/{extract}.csv", i + 2, LOADED_AT]
        for i, row in enumerate(rows)
    ]
    if values:
        con.executemany(
            f"insert into raw.{extract} ({', '.join(names)}) values ({placeholders})", values
        )


#: Bad rows the dbt tests must catch, by name (see ``build_raw``).
BREAKAGES = ("duplicate_item", "unknown_scope")


def build_raw(con: duckdb.DuckDBPyConnection, *, broken: tuple[str, ...] = ()) -> None:
    """Create the ``raw`` schema and load the tiny company.

    Args:
        con: an open DuckDB connection (the warehouse).
        broken: bad rows to add: ``duplicate_item`` (A100 twice in the 2026-03 items
            snapshot), ``unknown_scope`` (an override whose scope is neither an item nor a
            family).
    """
    unknown = set(broken) - set(BREAKAGES)
    if unknown:
        raise ValueError(f"unknown breakage {sorted(unknown)}; use {BREAKAGES}")
    create_raw_tables(con)
    for month in ("2026-02", "2026-03", "2026-04"):
        for extract, rows in _per_month(month).items():
            insert_rows(con, extract, month, rows)
    if "duplicate_item" in broken:
        insert_rows(con, "items", "2026-03", [_items("2026-03")[0]])
    if "unknown_scope" in broken:
        insert_rows(
            con,
            "demand_overrides",
            "2026-03",
            [
                {
                    "scope": "Gizmos",
                    "month": _d("2026-04-01"),
                    "adjustment": "5",
                    "reason_code": "TYPO",
                    "author": "eve",
                }
            ],
        )


def build_raw_warehouse(path: Path, *, broken: tuple[str, ...] = ()) -> Path:
    """Write the tiny company into a new DuckDB file at ``path`` and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        build_raw(con, broken=broken)
    finally:
        con.close()
    return path


def bom_rows() -> dict[str, list[dict[str, Any]]]:
    """A two-level BOM (B200 > A100 > C300) and C300's supplier capacity, for 2026-03.

    Not part of :func:`build_raw` (the tiny company has no BOM: its marts must be empty);
    tests add them with :func:`insert_rows`.
    """
    return {
        "bom": [
            {"parent_item_id": "B200", "component_item_id": "A100", "qty_per": 1, "scrap_pct": 0.2},
            {"parent_item_id": "A100", "component_item_id": "C300", "qty_per": 2},
        ],
        "supplier_capacity": [
            {"supplier_id": "SUP1", "family": "Parts", "month": _d("2026-04-01"), "max_qty": 30},
            {
                "supplier_id": "SUP1",
                "item_id": "C300",
                "month": _d("2026-05-01"),
                "max_qty": 5,
                "lead_time_days": 40,
            },
        ],
    }
