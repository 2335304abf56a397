"""The extract contract (DESIGN §4) as data: files, columns, types, keys, allowed values.

This module is the single description of the input. The demo generator writes it, the
reader checks it, the Great Expectations suites in ``data_quality/`` are built from it and
the dbt sources mirror it. No Dagster import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["str", "int", "num", "date", "month"]

#: Units of measure the pipeline knows.
UOMS = ("EA", "KG", "L", "M", "BOX", "SET")
LIFECYCLE_STATUSES = ("new", "active", "eol")
LOCATION_TYPES = ("plant", "dc")
ORDER_STATUSES = ("open", "shipped", "cancelled", "returned")
PRODUCTION_STATUSES = ("planned", "released", "completed", "cancelled")
PURCHASE_STATUSES = ("open", "received", "cancelled")
OPPORTUNITY_STAGES = (
    "prospecting",
    "qualification",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
)
#: Reason codes of demand overrides the planner's workbook offers in its drop-down
#: (``report/workbook.py``); the extract itself accepts any non-empty code.
OVERRIDE_REASON_CODES = (
    "promotion",
    "new_customer",
    "lost_customer",
    "price_change",
    "supply_issue",
    "market_intel",
)


@dataclass(frozen=True)
class Column:
    """One column of an extract.

    Attributes:
        name: column name in the file header (exact, lowercase).
        type: ``str``, ``int``, ``num`` (decimal), ``date`` (ISO or the dialect's format)
            or ``month`` (``YYYY-MM`` or the first day of the month).
        required: the value may not be empty.
        allowed: the value must be one of these (for status codes).
        min_value: smallest allowed number (None: no bound).
        max_value: largest allowed number (None: no bound).
        optional_column: the column itself may be absent from the file.
    """

    name: str
    type: ColumnType = "str"
    required: bool = True
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    optional_column: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """``column`` must exist in ``ref_extract.ref_column`` (same or earlier extract month)."""

    column: str
    ref_extract: str
    ref_column: str


@dataclass(frozen=True)
class Extract:
    """One extract file of the contract.

    Attributes:
        name: file stem (``sales_orders`` → ``sales_orders.csv`` / ``.parquet``).
        source: ``erp``, ``crm`` or ``planning``.
        kind: ``master`` (full snapshot each month), ``transaction`` (the month's rows plus
            late or restated rows of earlier months; the latest extract wins per key) or
            ``planning`` (kept by planners, full snapshot like master data).
        required: must be present in every month folder.
        columns: the contract columns in their documented order.
        key: columns that identify a row (unique within a file).
        foreign_keys: references to master data.
    """

    name: str
    source: Literal["erp", "crm", "planning"]
    kind: Literal["master", "transaction", "planning"]
    required: bool
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        """The contract column names in their documented order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """The contract column called ``name`` (KeyError if there is none)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def _c(name: str, type_: ColumnType = "str", **kw) -> Column:
    return Column(name, type_, **kw)


_NONNEG = {"min_value": 0.0}

EXTRACTS: dict[str, Extract] = {
    e.name: e
    for e in (
        Extract(
            "items",
            "erp",
            "master",
            True,
            (
                _c("item_id"),
                _c("description"),
                _c("family"),
                _c("category"),
                _c("uom", allowed=UOMS),
                _c("unit_cost", "num", **_NONNEG),
                _c("unit_price", "num", **_NONNEG),
                _c("currency"),
                _c("lifecycle_status", allowed=LIFECYCLE_STATUSES),
                _c("launch_date", "date", required=False),
                _c("eol_date", "date", required=False),
                _c("lead_time_days", "int", **_NONNEG, max_value=730),
                _c("min_lot_qty", "num", **_NONNEG),
            ),
            ("item_id",),
        ),
        Extract(
            "locations",
            "erp",
            "master",
            True,
            (
                _c("location_id"),
                _c("name"),
                _c("type", allowed=LOCATION_TYPES),
                _c("region"),
            ),
            ("location_id",),
        ),
        Extract(
            "customers",
            "crm",
            "master",
            True,
            (
                _c("customer_id"),
                _c("name"),
                _c("segment"),
                _c("region"),
                _c("channel"),
            ),
            ("customer_id",),
        ),
        Extract(
            "sales_orders",
            "erp",
            "transaction",
            True,
            (
                _c("order_id"),
                _c("line_no", "int", min_value=1),
                _c("order_date", "date"),
                _c("requested_date", "date"),
                _c("ship_date", "date", required=False),
                _c("customer_id"),
                _c("item_id"),
                _c("location_id"),
                # negative quantities are allowed only on returns (checked by the reader)
                _c("qty_ordered", "num"),
                _c("qty_shipped", "num", required=False),
                _c("unit_price", "num", **_NONNEG),
                _c("currency"),
                _c("status", allowed=ORDER_STATUSES),
            ),
            ("order_id", "line_no"),
            (
                ForeignKey("customer_id", "customers", "customer_id"),
                ForeignKey("item_id", "items", "item_id"),
                ForeignKey("location_id", "locations", "location_id"),
            ),
        ),
        Extract(
            "inventory",
            "erp",
            "master",
            True,
            (
                _c("snapshot_date", "date"),
                _c("item_id"),
                _c("location_id"),
                _c("lot_id"),
                _c("receipt_date", "date"),
                _c("qty_on_hand", "num", **_NONNEG),
            ),
            ("snapshot_date", "item_id", "location_id", "lot_id"),
            (
                ForeignKey("item_id", "items", "item_id"),
                ForeignKey("location_id", "locations", "location_id"),
            ),
        ),
        Extract(
            "production_orders",
            "erp",
            "transaction",
            False,
            (
                _c("order_id"),
                _c("item_id"),
                _c("location_id"),
                _c("work_center_id"),
                _c("qty_planned", "num", **_NONNEG),
                _c("qty_completed", "num", required=False, **_NONNEG),
                _c("start_date", "date"),
                _c("due_date", "date"),
                _c("completed_date", "date", required=False),
                _c("status", allowed=PRODUCTION_STATUSES),
            ),
            ("order_id",),
            (
                ForeignKey("item_id", "items", "item_id"),
                ForeignKey("location_id", "locations", "location_id"),
                ForeignKey("work_center_id", "work_centers", "work_center_id"),
            ),
        ),
        Extract(
            "purchase_orders",
            "erp",
            "transaction",
            False,
            (
                _c("po_id"),
                _c("item_id"),
                _c("location_id"),
                _c("supplier_id"),
                _c("qty_ordered", "num", **_NONNEG),
                _c("qty_received", "num", required=False, **_NONNEG),
                _c("order_date", "date"),
                _c("due_date", "date"),
                _c("received_date", "date", required=False),
                _c("status", allowed=PURCHASE_STATUSES),
            ),
            ("po_id",),
            (
                ForeignKey("item_id", "items", "item_id"),
                ForeignKey("location_id", "locations", "location_id"),
            ),
        ),
        Extract(
            "work_centers",
            "erp",
            "master",
            True,
            (
                _c("work_center_id"),
                _c("location_id"),
                _c("name"),
                _c("hours_per_day", "num", min_value=0.0, max_value=24.0),
                _c("efficiency", "num", min_value=0.01, max_value=2.0),
            ),
            ("work_center_id",),
            (ForeignKey("location_id", "locations", "location_id"),),
        ),
        Extract(
            "capacity_calendar",
            "erp",
            "master",
            True,
            (
                _c("work_center_id"),
                _c("month", "month"),
                _c("available_hours", "num", **_NONNEG),
                # people: the hours the crew can staff that month (optional; caps the hours)
                _c("crew_hours", "num", required=False, optional_column=True, **_NONNEG),
            ),
            ("work_center_id", "month"),
            (ForeignKey("work_center_id", "work_centers", "work_center_id"),),
        ),
        Extract(
            "routings",
            "erp",
            "master",
            True,
            (
                _c("item_id"),
                _c("work_center_id"),
                _c("hours_per_unit", "num", min_value=0.0),
            ),
            ("item_id", "work_center_id"),
            (
                ForeignKey("item_id", "items", "item_id"),
                ForeignKey("work_center_id", "work_centers", "work_center_id"),
            ),
        ),
        Extract(
            "fx_rates",
            "erp",
            "master",
            False,
            (
                _c("currency"),
                _c("month", "month"),
                _c("rate_to_base", "num", min_value=1e-9),
            ),
            ("currency", "month"),
        ),
        Extract(
            "bom",
            "erp",
            "master",
            False,
            (
                _c("parent_item_id"),
                _c("component_item_id"),
                # qty_per > 0 and 0 <= scrap_pct < 1, cycles and overlapping validity are
                # checked by the reader (GX bounds are inclusive)
                _c("qty_per", "num"),
                _c("scrap_pct", "num", required=False),
                _c("valid_from", "date", required=False),
                _c("valid_to", "date", required=False),
            ),
            ("parent_item_id", "component_item_id", "valid_from"),
            (
                ForeignKey("parent_item_id", "items", "item_id"),
                ForeignKey("component_item_id", "items", "item_id"),
            ),
        ),
        Extract(
            "supplier_capacity",
            "erp",
            "master",
            False,
            (
                _c("supplier_id"),
                # one of item_id / family is filled per row (checked by the reader)
                _c("item_id", required=False, optional_column=True),
                _c("family", required=False, optional_column=True),
                _c("month", "month"),
                _c("max_qty", "num", **_NONNEG),
                _c("lead_time_days", "int", required=False, **_NONNEG, max_value=730),
                _c("unit_cost", "num", required=False, **_NONNEG),
            ),
            ("supplier_id", "item_id", "family", "month"),
            (ForeignKey("item_id", "items", "item_id"),),
        ),
        Extract(
            "opportunities",
            "crm",
            "transaction",
            False,
            (
                _c("opportunity_id"),
                _c("customer_id"),
                # one of item_id / family is filled per row (checked by the reader)
                _c("item_id", required=False, optional_column=True),
                _c("family", required=False, optional_column=True),
                _c("expected_qty", "num", **_NONNEG),
                _c("amount", "num", **_NONNEG),
                _c("currency"),
                _c("stage", allowed=OPPORTUNITY_STAGES),
                _c("probability", "num", min_value=0.0, max_value=1.0),
                _c("expected_close_date", "date"),
            ),
            ("opportunity_id",),
            (
                ForeignKey("customer_id", "customers", "customer_id"),
                ForeignKey("item_id", "items", "item_id"),
            ),
        ),
        Extract(
            "demand_overrides",
            "planning",
            "planning",
            False,
            (
                # scope: an item_id or a family name
                _c("scope"),
                _c("month", "month"),
                # adjustment: a quantity ("120", "-40") or a percent ("-10%", "+5%")
                _c("adjustment"),
                _c("reason_code"),
                _c("author"),
                _c("comment", required=False),
            ),
            ("scope", "month", "reason_code"),
        ),
        Extract(
            "aop_targets",
            "planning",
            "planning",
            False,
            (
                _c("family"),
                _c("month", "month"),
                _c("revenue_target", "num", **_NONNEG),
                _c("volume_target", "num", **_NONNEG),
                _c("inventory_value_target", "num", **_NONNEG),
            ),
            ("family", "month"),
        ),
    )
}

#: Extracts every month folder must hold.
REQUIRED_EXTRACTS = tuple(name for name, e in EXTRACTS.items() if e.required)
#: Extracts a month folder may hold (absent means none).
OPTIONAL_EXTRACTS = tuple(name for name, e in EXTRACTS.items() if not e.required)
#: The scenarios file (YAML, not a table) of the planning inputs.
SCENARIOS_FILE = "scenarios.yaml"
#: The dialect file that sits next to the month folders (``landing/dialect.yaml``).
DIALECT_FILE = "dialect.yaml"
#: Optional completeness marker a source drops when a month folder is fully written.
COMPLETE_MARKER = "_COMPLETE"

#: Lineage columns added to every ``raw`` table.
LINEAGE_COLUMNS = ("_extract_month", "_source_file", "_source_row", "_loaded_at")
