"""The planner's workbook: ``sop export`` writes a published plan version as an ``.xlsx``.

``reports/<M>/sop_plan_<M>_v<N>.xlsx`` holds a README sheet, the plan (consensus demand by
family and by item with the 80/95 ranges, supply and inventory, capacity, financials vs
AOP, the KPI scorecard, exceptions) and an **Overrides** sheet: one row per item × month of
the horizon with the statistical and consensus quantities beside an empty ``adjustment``
column and a drop-down list of reason codes. Filled in and saved as
``landing/<month>/demand_overrides.xlsx`` (or passed to ``sop import-overrides``), the
Overrides sheet is read under the ``demand_overrides`` contract
(:mod:`sop_pipeline.ingest.workbook`).

Every data sheet has a frozen header row, units in the headers and number formats.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from sop_pipeline.errors import OperationalError
from sop_pipeline.ingest.contract import OVERRIDE_REASON_CODES
from sop_pipeline.publish.published_file import PublishError
from sop_pipeline.publish.writer import read_published

#: The sheet the reader takes overrides from, and its contract columns (header row 1).
OVERRIDES_SHEET = "Overrides"
OVERRIDE_COLUMNS = ("scope", "month", "adjustment", "reason_code", "author", "comment")
#: Reference columns of the Overrides sheet (read-only information for the planner).
OVERRIDE_REFERENCE = ("family", "stat_forecast_qty (units)", "consensus_qty (units)")
#: Reason codes offered in the drop-down (the codes the demo planners' overrides use; the
#: contract itself accepts any code, see docs/forecasting.md).
REASON_CODES: tuple[str, ...] = OVERRIDE_REASON_CODES

_QTY = "#,##0.0"
_MONEY = "#,##0"
_RATIO = "0.0%"
_HEADER_FILL = PatternFill("solid", fgColor="1F3864")
_INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")
_HEADER_FONT = Font(bold=True, color="FFFFFF")


class WorkbookError(OperationalError, RuntimeError):
    """The workbook cannot be written; ``exit_code`` 2 for an unknown month / version."""

    exit_code = 1


def _unit(column: str, currency: str) -> tuple[str, str | None]:
    """Header text with its unit, and the number format of a column."""
    if column in ("utilization",) or column.endswith(("_rate", "_probability")):
        return f"{column} (ratio)", _RATIO
    if column in ("revenue_vs_aop",):
        return f"{column} ({currency})", _MONEY
    if column.endswith("_hours"):
        return f"{column} (hours)", _QTY
    if column.endswith(("_revenue", "_value")) or column in (
        "revenue",
        "cogs",
        "gross_margin",
        "aop_revenue",
    ):
        return f"{column} ({currency})", _MONEY
    if column.endswith("_qty"):
        return f"{column} (units)", _QTY
    if column == "days_of_cover":
        return f"{column} (days)", "0.0"
    if column == "month":
        return "month", "yyyy-mm"
    return column, None


def _style_header(ws, n_cols: int) -> None:
    for c in range(1, n_cols + 1):
        cell = ws.cell(row=1, column=c)
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.row_dimensions[1].height = 32


def _write_frame(ws, df: pd.DataFrame, currency: str, freeze: str = "A2") -> None:
    """One table per sheet: header row 1 (with units), values, formats, frozen header."""
    headers, formats = (
        zip(*(_unit(c, currency) for c in df.columns), strict=True) if len(df.columns) else ((), ())
    )
    ws.append(list(headers))
    for row in df.itertuples(index=False):
        ws.append([_cell(v) for v in row])
    for i, (header, fmt) in enumerate(zip(headers, formats, strict=True), start=1):
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = max(12, min(40, len(header) + 2))
        if fmt:
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = fmt
    _style_header(ws, len(headers))
    ws.freeze_panes = freeze
    if len(df):
        ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{len(df) + 1}"


def _cell(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _plan(
    published_dir: Path, month: str, version: int | None
) -> tuple[int, dict[str, pd.DataFrame]]:
    versions = read_published(published_dir, "plan_versions", plan_month=month)
    if versions.empty:
        all_months = sorted(set(read_published(published_dir, "plan_versions")["plan_month"]))
        err = WorkbookError(
            f"plan month {month} is not published (published months: "
            f"{', '.join(all_months[-6:]) or 'none'}); run `sop run --month {month}` first."
        )
        err.exit_code = 2
        raise err
    numbers = sorted(int(v) for v in versions["plan_version"])
    version = numbers[-1] if version is None else int(version)
    if version not in numbers:
        err = WorkbookError(
            f"plan {month} has no version {version} (published versions: "
            f"{', '.join(map(str, numbers))})."
        )
        err.exit_code = 2
        raise err
    tables = {}
    for name in (
        "plan_demand",
        "plan_supply",
        "plan_inventory",
        "plan_capacity",
        "plan_financials",
        "kpi_scorecard",
        "plan_exceptions",
    ):
        df = read_published(published_dir, name, plan_month=month, version=version)
        tables[name] = df.drop(columns=["plan_month", "plan_version"])
    tables["plan_versions"] = versions[versions["plan_version"] == version]
    return version, tables


def _demand_by_family(demand: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "stat_forecast_qty",
        "stat_lo80_qty",
        "stat_hi80_qty",
        "stat_lo95_qty",
        "stat_hi95_qty",
        "crm_adjustment_qty",
        "override_qty",
        "consensus_qty",
        "consensus_revenue",
    ]
    return demand.groupby(["family", "month"], as_index=False, sort=True)[cols].sum()


def _overrides_sheet(ws, demand: pd.DataFrame) -> int:
    """Item × month rows with stat and consensus beside the empty input columns."""
    per_item = demand.groupby(["item_id", "family", "month"], as_index=False, sort=True)[
        ["stat_forecast_qty", "consensus_qty"]
    ].sum()
    header = [
        "scope",
        "family",
        "month",
        "stat_forecast_qty (units)",
        "consensus_qty (units)",
        "adjustment",
        "reason_code",
        "author",
        "comment",
    ]
    ws.append(header)
    for r in per_item.itertuples(index=False):
        ws.append(
            [
                r.item_id,
                r.family,
                pd.Timestamp(r.month).strftime("%Y-%m"),
                float(r.stat_forecast_qty),
                float(r.consensus_qty),
                None,
                None,
                None,
                None,
            ]
        )
    n = len(per_item)
    widths = (14, 12, 10, 16, 16, 14, 16, 14, 40)
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w
    for row in ws.iter_rows(min_row=2, max_row=n + 1):
        row[3].number_format = _QTY
        row[4].number_format = _QTY
        for cell in row[5:]:
            cell.fill = _INPUT_FILL
    _style_header(ws, len(header))
    ws.freeze_panes = "D2"
    if n:
        ws.auto_filter.ref = f"A1:I{n + 1}"
        last = max(n + 1, 2)
        codes = DataValidation(
            type="list",
            formula1='"' + ",".join(REASON_CODES) + '"',
            allow_blank=True,
            showErrorMessage=True,
            showInputMessage=True,
            errorStyle="stop",
            errorTitle="reason_code",
            error=f"Pick one of the reason codes: {', '.join(REASON_CODES)}.",
            promptTitle="reason_code",
            prompt="Why the adjustment: pick a reason code.",
        )
        codes.add(f"G2:G{last + 200}")  # room for family rows the planner adds below
        ws.add_data_validation(codes)
        hint = DataValidation(
            allow_blank=True,
            showInputMessage=True,
            promptTitle="adjustment",
            prompt="A quantity (120, -40) added to the forecast, or a percent (+15%, -10%).",
        )
        hint.add(f"F2:F{last + 200}")
        ws.add_data_validation(hint)
    return n


def _readme(ws, month: str, version: int, versions: pd.DataFrame, currency: str, sheets) -> None:
    v = versions.iloc[0]
    status = v.get("status") if "status" in versions.columns else None
    status = "candidate" if status is None or pd.isna(status) else str(status)
    if status in ("approved", "superseded") and not pd.isna(v.get("approved_by")):
        status += f" (approved by {v['approved_by']} at {pd.Timestamp(v['approved_at']):%Y-%m-%d %H:%M} UTC)"
    lines = [
        (f"S&OP plan {month}, version {version}", None),
        ("status", status),
        ("published at (UTC)", f"{pd.Timestamp(v['published_at']):%Y-%m-%d %H:%M:%S}"),
        ("run id", str(v["run_id"])),
        ("money", f"{currency} (the base currency); quantities in units of measure"),
        ("", None),
        ("Sheets", None),
        *sheets,
        ("", None),
        ("How to send overrides back", None),
        (
            "1",
            "In the Overrides sheet fill 'adjustment' (a quantity like 120 or -40, or a percent "
            "like +15% or -10%), pick a reason_code, and write your name in 'author'.",
        ),
        ("2", "Only rows with an adjustment count; leave the other rows empty."),
        (
            "3",
            "For a whole family, add a row with the family name as scope (e.g. under the last row).",
        ),
        (
            "4",
            "Save as landing/<plan month>/demand_overrides.xlsx, or run "
            "`sop import-overrides <this file> --month <plan month>`; then `sop run --month <plan month>`.",
        ),
        ("5", "Edits of the other sheets are not read back."),
        ("", None),
        ("Reason codes", ", ".join(REASON_CODES)),
        (
            "Ranges",
            "The 80/95 ranges of a family are the sums of its items' ranges (wider than the "
            "family's own range; a conservative view).",
        ),
    ]
    for a, b in lines:
        ws.append([a, b])
    ws["A1"].font = Font(bold=True, size=14)
    for cell in ("A7", "A" + str(8 + len(sheets) + 1)):
        ws[cell].font = Font(bold=True)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 110


def export_workbook(settings, plan_month: str, *, version: int | None = None) -> Path:
    """Write ``reports/<M>/sop_plan_<M>_v<N>.xlsx`` from the published plan.

    Args:
        settings: ``Settings`` (``published_dir``, ``reports_dir``, ``base_currency``).
        plan_month: ``YYYY-MM``.
        version: the published version (default: the month's latest).

    Returns:
        The workbook's path.

    Raises:
        WorkbookError: the month or version is not published (``exit_code`` 2) or the
            file cannot be written.
        PublishError: nothing is published yet.
    """
    published_dir = Path(settings.published_dir)
    try:
        version, t = _plan(published_dir, plan_month, version)
    except PublishError as exc:
        err = WorkbookError(str(exc))
        err.exit_code = 2
        raise err from None
    currency = settings.base_currency
    demand = t["plan_demand"]
    supply_inv = t["plan_supply"].merge(
        t["plan_inventory"], on=["item_id", "location_id", "month"], how="outer"
    )
    wb = Workbook()
    readme = wb.active
    readme.title = "README"
    sheets = [
        (
            "Demand by family",
            "consensus demand per family × month, with the 80/95 ranges",
            _demand_by_family(demand),
        ),
        ("Demand by item", "consensus demand per item × location × month (plan_demand)", demand),
        (
            "Supply & inventory",
            "plan_supply and plan_inventory per item × location × month",
            supply_inv,
        ),
        ("Capacity", "plan_capacity per work center × month", t["plan_capacity"]),
        ("Financials vs AOP", "plan_financials per family × month", t["plan_financials"]),
        ("KPI scorecard", "kpi_scorecard per KPI × scope × month", t["kpi_scorecard"]),
        ("Exceptions", "plan_exceptions: what planners must act on", t["plan_exceptions"]),
    ]
    for title, _, df in sheets:
        ws = wb.create_sheet(title)
        _write_frame(ws, df.reset_index(drop=True), currency)
    ws = wb.create_sheet(OVERRIDES_SHEET)
    n = _overrides_sheet(ws, demand)
    described = [(title, what) for title, what, _ in sheets]
    described.append(
        (OVERRIDES_SHEET, f"{n} item × month rows: stat and consensus, your adjustments (yellow)")
    )
    _readme(readme, plan_month, version, t["plan_versions"], currency, described)
    wb.move_sheet(OVERRIDES_SHEET, offset=-(len(wb.sheetnames) - 2))  # right after README
    folder = Path(settings.reports_dir) / plan_month
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sop_plan_{plan_month}_v{version}.xlsx"
    tmp = folder / f".{path.name}.tmp"
    try:
        wb.save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WorkbookError(
            f"cannot write {path} ({exc.strerror or exc}); if it is open in Excel, close it and "
            "run `sop export` again."
        ) from None
    return path
