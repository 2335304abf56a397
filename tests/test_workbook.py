"""The planner's workbook: `sop export` content, and the Overrides sheet read back as an extract."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from factories.plan import ITEMS, plan_months, publish_sample, sample_settings

from sop_pipeline.cli import commands as cli
from sop_pipeline.ingest.checks import check_parsed
from sop_pipeline.ingest.contract import EXTRACTS
from sop_pipeline.ingest.dialect import Dialect
from sop_pipeline.ingest.override_import import WorkbookReadError, import_overrides
from sop_pipeline.ingest.problems import ExtractError
from sop_pipeline.ingest.reader import parse_extract
from sop_pipeline.publish.approval import approve_plan
from sop_pipeline.publish.writer import read_published
from sop_pipeline.report.workbook import OVERRIDES_SHEET, REASON_CODES, export_workbook

MONTH = "2026-01"
OVERRIDES = EXTRACTS["demand_overrides"]


@pytest.fixture
def exported(tmp_path: Path):
    settings = sample_settings(tmp_path / "home")
    publish_sample(settings)
    (settings.landing_dir / MONTH).mkdir(parents=True)
    _items_csv(settings.landing_dir / MONTH / "items.csv")
    return settings, export_workbook(settings, MONTH)


def _items_csv(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(EXTRACTS["items"].column_names)
        for item, family in ITEMS.items():
            w.writerow(
                [
                    item,
                    f"{item} pump",
                    family,
                    "pumps",
                    "EA",
                    10,
                    25,
                    "USD",
                    "active",
                    "",
                    "",
                    30,
                    1,
                ]
            )


def _fill(path: Path, rows: dict[int, tuple], target: Path | None = None) -> Path:
    """Fill Overrides rows: Excel row → (adjustment, reason_code, author[, comment])."""
    wb = openpyxl.load_workbook(path)
    ws = wb[OVERRIDES_SHEET]
    for excel_row, values in rows.items():
        for col, value in zip("FGHI", values, strict=False):
            ws[f"{col}{excel_row}"] = value
    target = target or path
    wb.save(target)
    return target


def _parse(path: Path):
    parsed = parse_extract(path, OVERRIDES, Dialect(), extract_month=MONTH)
    return parsed, check_parsed([parsed])[0]


def test_export_writes_every_sheet_with_units_formats_and_frozen_headers(exported) -> None:
    settings, path = exported
    assert path == settings.reports_dir / MONTH / f"sop_plan_{MONTH}_v1.xlsx"
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == [
        "README",
        "Overrides",
        "Demand by family",
        "Demand by item",
        "Supply & inventory",
        "Capacity",
        "Financials vs AOP",
        "KPI scorecard",
        "Exceptions",
    ]
    fam = wb["Demand by family"]
    header = [c.value for c in fam[1]]
    assert header[:3] == ["family", "month", "stat_forecast_qty (units)"]
    assert "stat_lo80_qty (units)" in header and "stat_hi95_qty (units)" in header
    assert "consensus_revenue (USD)" in header
    assert fam.freeze_panes == "A2"
    assert fam["C2"].number_format == "#,##0.0" and fam["B2"].number_format == "yyyy-mm"
    # the family sheet adds up the published item rows
    demand = read_published(settings.published_dir, "plan_demand", MONTH, 1)
    f1 = demand[(demand["family"] == "F1") & (demand["month"] == plan_months(MONTH)[0])]
    row2 = {h: c.value for h, c in zip(header, fam[2], strict=True)}
    assert row2["family"] == "F1"
    assert row2["consensus_qty (units)"] == pytest.approx(f1["consensus_qty"].sum())
    assert row2["stat_hi95_qty (units)"] == pytest.approx(f1["stat_hi95_qty"].sum())
    cap = wb["Capacity"]
    cap_header = [c.value for c in cap[1]]
    assert "utilization (ratio)" in cap_header and "available_hours (hours)" in cap_header
    assert cap.cell(2, cap_header.index("utilization (ratio)") + 1).number_format == "0.0%"
    fin_header = [c.value for c in wb["Financials vs AOP"][1]]
    assert "aop_revenue (USD)" in fin_header and "revenue_vs_aop (USD)" in fin_header
    assert wb["Exceptions"].max_row == 2 and wb["KPI scorecard"].max_row == 3
    readme = "\n".join(str(c.value) for row in wb["README"].iter_rows() for c in row if c.value)
    assert "S&OP plan 2026-01, version 1" in readme and "candidate" in readme
    assert "demand_overrides.xlsx" in readme and "sop import-overrides" in readme


def test_overrides_sheet_is_prefilled_with_items_months_and_a_reason_drop_down(exported) -> None:
    settings, path = exported
    ws = openpyxl.load_workbook(path)[OVERRIDES_SHEET]
    header = [c.value for c in ws[1]]
    assert header == [
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
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(ITEMS) * 3  # items × months of the horizon
    assert {r[0] for r in rows} == set(ITEMS) and {r[2] for r in rows} == {
        "2026-02",
        "2026-03",
        "2026-04",
    }
    assert all(r[5] is None and r[6] is None for r in rows)  # the planner's columns are empty
    demand = read_published(settings.published_dir, "plan_demand", MONTH, 1)
    i1 = demand[(demand["item_id"] == "I1") & (demand["month"] == pd.Timestamp("2026-02-01"))]
    first = rows[0]
    assert first[:3] == ("I1", "F1", "2026-02")
    assert first[3] == pytest.approx(i1["stat_forecast_qty"].sum())  # summed over locations
    assert first[4] == pytest.approx(i1["consensus_qty"].sum())
    assert ws.freeze_panes == "D2"
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert len(lists) == 1
    assert lists[0].formula1 == '"' + ",".join(REASON_CODES) + '"'
    assert "G2" in lists[0] and f"G{len(rows) + 1}" in lists[0] and "F2" not in lists[0]
    assert lists[0].showErrorMessage and lists[0].errorStyle == "stop"


def test_only_rows_with_an_adjustment_are_read_with_excel_row_numbers(exported) -> None:
    _, path = exported
    wb = openpyxl.load_workbook(path)
    ws = wb[OVERRIDES_SHEET]
    ws["F3"], ws["G3"], ws["H3"] = 120, "promotion", "a.miller"
    ws["F6"], ws["G6"], ws["H6"], ws["I6"] = -0.1, "lost_customer", "j.chen", "moved to rival"
    ws["F6"].number_format = "0%"  # Excel stores a typed -10% like this
    ws["F8"], ws["G8"], ws["H8"] = "+15%", "market_intel", "j.chen"
    ws.append(["F2", None, "2026-03", None, None, -40, "supply_issue", "s.kowalski"])  # family row
    wb["Capacity"]["A2"] = "edited but ignored"
    filled = path.with_name("demand_overrides.xlsx")
    wb.save(filled)
    parsed, result = _parse(filled)
    assert result.problems == []
    frame = result.frame
    assert frame["_source_row"].tolist() == [3, 6, 8, ws.max_row]
    assert frame["scope"].tolist() == ["I1", "I2", "I3", "F2"]
    assert [t for t in parsed.texts["adjustment"].arr.to_pylist()] == ["120", "-10%", "+15%", "-40"]
    assert frame["month"].tolist() == list(
        pd.to_datetime(["2026-03-01", "2026-03-01", "2026-02-01", "2026-03-01"])
    )
    assert frame["comment"].tolist()[1] == "moved to rival"
    assert any("edits of the other sheets" in n and "Capacity" in n for n in parsed.notes)


def test_text_in_the_adjustment_is_rejected_naming_sheet_row_and_column(
    exported, capsys, monkeypatch
) -> None:
    settings, path = exported
    _fill(path, {2: (100, "promotion", "a.miller"), 5: ("ten", "promotion", "a.miller")})
    monkeypatch.setenv("SOP_HOME", str(settings.sop_home))
    code = cli.main(["import-overrides", str(path), "--month", MONTH])
    err = capsys.readouterr().err
    assert code == 1
    assert "sheet Overrides row 5, column adjustment" in err and "'ten'" in err
    assert "quantity like 120" in err  # what to do
    assert not (settings.landing_dir / MONTH / "demand_overrides.csv").exists()  # nothing written


def test_unknown_item_and_missing_author_are_reported_and_nothing_is_written(exported) -> None:
    settings, path = exported
    wb = openpyxl.load_workbook(path)
    ws = wb[OVERRIDES_SHEET]
    ws.append(["ZZ999", None, "2026-02", None, None, 10, "promotion", "a.miller"])
    ws["F2"], ws["G2"] = 5, "promotion"  # no author
    wb.save(path)
    with pytest.raises(WorkbookReadError) as info:
        import_overrides(settings, path, MONTH)
    text = "\n".join(info.value.lines)
    assert (
        f"sheet Overrides row {ws.max_row}, column scope: 'ZZ999' is neither an item_id nor a family"
        in text
    )
    assert "sheet Overrides row 2, column author" in text
    assert not (settings.landing_dir / MONTH / "demand_overrides.csv").exists()


def test_import_writes_the_months_overrides_and_keeps_other_existing_ones(exported) -> None:
    settings, path = exported
    target = settings.landing_dir / MONTH / "demand_overrides.csv"
    target.write_text(
        "scope,month,adjustment,reason_code,author,comment\n"
        "F2,2026-04,-5%,price_change,m.rossi,kept\n"
        "I1,2026-02,999,promotion,m.rossi,replaced by the workbook\n",
        encoding="utf-8",
    )
    _fill(
        path, {2: (100, "promotion", "a.miller", "trade fair"), 7: (-20, "supply_issue", "j.chen")}
    )
    result = import_overrides(settings, path, MONTH)
    assert (result.rows, result.kept) == (2, 1)
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [(r["scope"], r["month"], r["adjustment"], r["reason_code"]) for r in rows] == [
        ("F2", "2026-04", "-5%", "price_change"),
        ("I1", "2026-02", "100", "promotion"),
        ("I2", "2026-04", "-20", "supply_issue"),
    ]
    assert rows[1]["comment"] == "trade fair"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("renamed_sheet", "no sheet named 'Overrides' \\(sheets: README, My overrides"),
        ("lower_case_sheet", "rename the sheet 'overrides' to 'Overrides'"),
        ("no_adjustment_column", "lacks the column\\(s\\) adjustment"),
        ("nothing_filled", "no row has a filled adjustment"),
        ("truncated", "not a readable .xlsx workbook"),
        ("not_a_zip", "not a readable .xlsx workbook"),
        ("encrypted", "password-protected workbook or an old .xls"),
    ],
)
def test_bad_workbooks_are_one_clear_error(exported, breakage: str, message: str) -> None:
    _, path = exported
    bad = path.with_name("demand_overrides.xlsx")
    if breakage in ("renamed_sheet", "lower_case_sheet", "no_adjustment_column"):
        wb = openpyxl.load_workbook(path)
        ws = wb[OVERRIDES_SHEET]
        ws["F2"], ws["G2"], ws["H2"] = 10, "promotion", "a.miller"
        if breakage == "renamed_sheet":
            ws.title = "My overrides"
        elif breakage == "lower_case_sheet":
            ws.title = "tmp"
            ws.title = "overrides"
        else:
            ws["F1"] = "adj"
        wb.save(bad)
    elif breakage == "nothing_filled":
        shutil.copyfile(path, bad)
    elif breakage == "truncated":
        data = path.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif breakage == "not_a_zip":
        bad.write_text("scope,month\nI1,2026-02\n", encoding="utf-8")
    else:
        bad.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    with pytest.raises(ExtractError, match=message) as info:
        _parse(bad)
    assert "demand_overrides.xlsx" in str(info.value)
    assert "; " in str(info.value)  # what is wrong; what to do


def test_a_workbook_that_cannot_be_opened_says_so(exported, monkeypatch) -> None:
    _, path = exported

    def locked(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", locked)
    with pytest.raises(
        ExtractError, match="cannot be read \\(Permission denied; locked by another"
    ):
        parse_extract(path, OVERRIDES, Dialect(), extract_month=MONTH)


def test_only_demand_overrides_may_be_a_workbook(exported) -> None:
    _, path = exported
    with pytest.raises(ExtractError, match=r"items cannot be an \.xlsx workbook"):
        parse_extract(path, EXTRACTS["items"], Dialect(), extract_month=MONTH)


def test_export_cli_and_the_status_of_an_approved_plan(exported, monkeypatch, capsys) -> None:
    settings, _ = exported
    approve_plan(settings, MONTH, by="COO", note="ok")
    monkeypatch.setenv("SOP_HOME", str(settings.sop_home))
    assert cli.main(["export", "--month", MONTH, "--version", "1"]) == 0
    assert "sop_plan_2026-01_v1.xlsx" in capsys.readouterr().out
    wb = openpyxl.load_workbook(settings.reports_dir / MONTH / "sop_plan_2026-01_v1.xlsx")
    assert wb["README"]["B2"].value.startswith("approved (approved by COO at ")
    assert cli.main(["export", "--month", MONTH, "--version", "4"]) == 2
    assert "no version 4" in capsys.readouterr().err
    assert cli.main(["export", "--month", "2030-01"]) == 2
    assert cli.main(["import-overrides", "/nonexistent.xlsx", "--month", MONTH]) == 2
