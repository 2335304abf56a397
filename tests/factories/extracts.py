"""A tiny company written as contract extracts, and helpers to load it.

Two months, every extract, a few rows: for the reader, loader and ingest fault tests.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

from sop_pipeline.ingest.contract import EXTRACTS

# --------------------------------------------------------------------------------------
# fixture company
# --------------------------------------------------------------------------------------
from sop_pipeline.ingest.loader import load_extracts


def company_rows(month: str) -> dict[str, list[dict]]:
    """Rows of every required extract (+ fx_rates) for one extract month, all valid."""
    first = f"{month}-01"
    items = [
        {
            "item_id": f"IT-{i}",
            "description": f"Pump {i}",
            "family": "pumps" if i < 3 else "valves",
            "category": "finished",
            "uom": "EA",
            "unit_cost": "10.5",
            "unit_price": "20.25",
            "currency": "USD" if i != 2 else "EUR",
            "lifecycle_status": "active",
            "launch_date": "2020-01-15",
            "eol_date": "",
            "lead_time_days": "30",
            "min_lot_qty": "10",
        }
        for i in (1, 2, 3)
    ]
    return {
        "items": items,
        "locations": [
            {"location_id": "PL-1", "name": "Plant", "type": "plant", "region": "EU"},
            {"location_id": "DC-1", "name": "Hub", "type": "dc", "region": "EU"},
        ],
        "customers": [
            {
                "customer_id": f"CU-{i}",
                "name": f"Customer {i}",
                "segment": "retail",
                "region": "EU",
                "channel": "direct",
            }
            for i in (1, 2)
        ],
        "sales_orders": [
            {
                "order_id": f"SO-{month}-{i}",
                "line_no": "1",
                "order_date": first,
                "requested_date": first,
                "ship_date": "",
                "customer_id": "CU-1",
                "item_id": f"IT-{i}",
                "location_id": "DC-1",
                "qty_ordered": f"{i * 5}",
                "qty_shipped": "",
                "unit_price": "20.25",
                "currency": "USD",
                "status": "open",
            }
            for i in (1, 2, 3)
        ]
        + [
            {
                "order_id": f"SO-{month}-R",
                "line_no": "1",
                "order_date": first,
                "requested_date": first,
                "ship_date": first,
                "customer_id": "CU-2",
                "item_id": "IT-1",
                "location_id": "DC-1",
                "qty_ordered": "-2",
                "qty_shipped": "-2",
                "unit_price": "20.25",
                "currency": "EUR",
                "status": "returned",
            },
        ],
        "inventory": [
            {
                "snapshot_date": first,
                "item_id": f"IT-{i}",
                "location_id": "PL-1",
                "lot_id": "L1",
                "receipt_date": "2026-01-10",
                "qty_on_hand": "100",
            }
            for i in (1, 2, 3)
        ],
        "work_centers": [
            {
                "work_center_id": "WC-1",
                "location_id": "PL-1",
                "name": "Assembly",
                "hours_per_day": "16",
                "efficiency": "0.9",
            }
        ],
        "capacity_calendar": [{"work_center_id": "WC-1", "month": month, "available_hours": "300"}],
        "routings": [
            {"item_id": f"IT-{i}", "work_center_id": "WC-1", "hours_per_unit": "0.25"}
            for i in (1, 2, 3)
        ],
        "fx_rates": [{"currency": "EUR", "month": month, "rate_to_base": "1.08"}],
    }


def write_extract(
    folder: Path,
    name: str,
    rows: list[dict],
    *,
    columns: list[str] | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    decimal: str = ".",
    date_format: str | None = None,
    bom: bool = False,
) -> Path:
    """Write ``rows`` as ``folder/<name>.csv`` in the given dialect (values given in ISO/dot form)."""
    extract = EXTRACTS[name]
    columns = columns or extract.column_names
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = []
        for c in columns:
            v = row.get(c, "")
            col = extract.column(c) if c in extract.column_names else None
            if v and col is not None and col.type == "num" and decimal != ".":
                v = v.replace(".", decimal)
            if v and col is not None and col.type == "date" and date_format:
                v = datetime.strptime(v, "%Y-%m-%d").strftime(date_format)
            values.append(v)
        writer.writerow(values)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode(encoding))
    return path


def write_company(landing: Path, months=("2026-09", "2026-10")) -> Path:
    """A valid landing folder: every required extract + fx_rates for each month."""
    for month in months:
        for name, rows in company_rows(month).items():
            write_extract(landing / month, name, rows)
    return landing


def load(con, landing: Path, plan_month: str = "2026-10", **kw):
    return load_extracts(con, landing, plan_month, base_currency="USD", **kw)


def count(con, table: str, where: str = "TRUE") -> int:
    return con.execute(f"SELECT count(*) FROM raw.{table} WHERE {where}").fetchone()[0]
