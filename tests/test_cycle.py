"""The S&OP cycle on a small demo company: run → export → fill overrides → re-plan → approve.

One module-scoped cycle (a plan, the planner's workbook filled in and imported, the
re-plan) feeds the assertions: the consensus of the re-plan moves by exactly the workbook's
overrides, with their reason codes in the override log.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import openpyxl
import pandas as pd
import pytest

from sop_pipeline.core.settings import Settings
from sop_pipeline.generator.company import generate_company
from sop_pipeline.ingest.loader import load_extracts
from sop_pipeline.ingest.override_import import import_overrides
from sop_pipeline.ingest.problems import IngestError
from sop_pipeline.publish.approval import approve_plan
from sop_pipeline.publish.writer import read_published
from sop_pipeline.report.workbook import OVERRIDES_SHEET, export_workbook
from sop_pipeline.runtime.runner import run_plan_month

#: two pipeline runs (about 2 CPU minutes, several wall minutes on a busy machine)
pytestmark = pytest.mark.slow

MONTH = "2026-06"
KEY = ["item_id", "location_id", "month"]


@dataclass
class Cycle:
    settings: Settings
    workbook: Path
    filled: Path
    #: (scope, month, adjustment, reason_code) the planner typed, with their Excel rows
    typed: list[tuple[str, str, str, str, int]]
    v1: pd.DataFrame
    v2: pd.DataFrame
    override_log: pd.DataFrame


def _pick_rows(ws) -> tuple[int, int]:
    """Two Overrides rows of different items with a large consensus (no clipping at 0)."""
    rows = [
        (r, ws.cell(r, 1).value, ws.cell(r, 5).value)
        for r in range(2, ws.max_row + 1)
        if (ws.cell(r, 5).value or 0) > 50
    ]
    first = rows[0]
    second = next(r for r in rows if r[1] != first[1])
    return first[0], second[0]


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> Cycle:
    home = tmp_path_factory.mktemp("sop_cycle")
    settings = Settings.from_env({"SOP_HOME": str(home), "SOP_HORIZON_MONTHS": "6"})
    settings.ensure_dirs()
    generate_company(settings.landing_dir, items=20, months=30, seed=11, end=MONTH)
    outcome = run_plan_month(settings, MONTH)
    assert outcome.success, outcome.errors
    workbook = export_workbook(settings, MONTH)
    wb = openpyxl.load_workbook(workbook)
    ws = wb[OVERRIDES_SHEET]
    r1, r2 = _pick_rows(ws)
    ws.cell(r1, 6).value = 40
    ws.cell(r1, 7).value = "promotion"
    ws.cell(r1, 8).value = "a.miller"
    ws.cell(r1, 9).value = "trade fair order"
    ws.cell(r2, 6).value = -0.1
    ws.cell(r2, 6).number_format = "0%"
    ws.cell(r2, 7).value = "lost_customer"
    ws.cell(r2, 8).value = "j.chen"
    typed = [
        (ws.cell(r1, 1).value, ws.cell(r1, 3).value, "40", "promotion", r1),
        (ws.cell(r2, 1).value, ws.cell(r2, 3).value, "-10%", "lost_customer", r2),
    ]
    filled = home / "filled.xlsx"
    wb.save(filled)
    imported = import_overrides(settings, filled, MONTH)
    assert imported.rows == 2
    outcome = run_plan_month(settings, MONTH)
    assert outcome.success, outcome.errors
    v1 = read_published(settings.published_dir, "plan_demand", MONTH, 1)
    v2 = read_published(settings.published_dir, "plan_demand", MONTH, 2)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        log = con.execute("select * from plan.override_log where plan_month = ?", [MONTH]).df()
    finally:
        con.close()
    return Cycle(settings, workbook, filled, typed, v1, v2, log)


def test_the_replan_moves_consensus_by_exactly_the_workbook_overrides(cycle: Cycle) -> None:
    both = cycle.v1.merge(cycle.v2, on=KEY, suffixes=("_1", "_2"))
    assert len(both) == len(cycle.v1) == len(cycle.v2)
    # the statistical forecast and the CRM pipeline did not change: only the overrides did
    assert (both["stat_forecast_qty_1"] - both["stat_forecast_qty_2"]).abs().max() < 1e-9
    assert (both["crm_adjustment_qty_1"] - both["crm_adjustment_qty_2"]).abs().max() < 1e-9
    both["delta"] = both["consensus_qty_2"] - both["consensus_qty_1"]
    both["ym"] = pd.to_datetime(both["month"]).dt.strftime("%Y-%m")
    (item1, month1, *_), (item2, month2, *_) = cycle.typed
    touched1 = (both["item_id"] == item1) & (both["ym"] == month1)
    touched2 = (both["item_id"] == item2) & (both["ym"] == month2)
    assert both.loc[touched1, "delta"].sum() == pytest.approx(40.0, abs=1e-6)
    base2 = both.loc[touched2, "stat_forecast_qty_1"] + both.loc[touched2, "crm_adjustment_qty_1"]
    assert both.loc[touched2, "delta"].sum() == pytest.approx(-0.1 * base2.sum(), abs=1e-6)
    untouched = both[~(touched1 | touched2)]
    assert untouched["delta"].abs().max() < 1e-9
    # the family view of the re-plan shows the same move
    gaps = read_published(cycle.settings.published_dir, "plan_gaps", MONTH, 2)
    assert gaps["demand_qty"].sum() == pytest.approx(cycle.v2["consensus_qty"].sum(), rel=1e-9)


def test_the_reason_codes_reach_the_override_log(cycle: Cycle) -> None:
    log = cycle.override_log
    log["ym"] = pd.to_datetime(log["month"]).dt.strftime("%Y-%m")
    for scope, month, adjustment, reason, _row in cycle.typed:
        mine = log[
            (log["scope_id"] == scope) & (log["ym"] == month) & (log["reason_code"] == reason)
        ]
        assert len(mine) >= 1, (scope, month, reason)
        assert set(mine["author"]) == {"a.miller" if reason == "promotion" else "j.chen"}
        if adjustment == "40":
            assert mine["qty_effect"].sum() == pytest.approx(40.0)
            assert set(mine["comment"]) == {"trade fair order"}
        else:
            assert set(mine["adjustment_type"]) == {"pct"}


def test_approving_the_replan_makes_it_the_official_plan(cycle: Cycle) -> None:
    s = cycle.settings
    approve_plan(s, MONTH, by="COO", note="re-plan with the trade fair order")
    approved = read_published(s.published_dir, "plan_demand_approved")
    assert set(approved["plan_version"]) == {2}
    assert approved["consensus_qty"].sum() == pytest.approx(cycle.v2["consensus_qty"].sum())
    path = export_workbook(s, MONTH)
    assert path.name == f"sop_plan_{MONTH}_v2.xlsx"
    assert openpyxl.load_workbook(path)["README"]["B2"].value.startswith(
        "approved (approved by COO"
    )


def _copy_home(cycle: Cycle, tmp_path: Path) -> tuple[Path, Path]:
    landing = tmp_path / "landing"
    shutil.copytree(cycle.settings.landing_dir, landing)
    db = tmp_path / "sop.duckdb"
    shutil.copyfile(cycle.settings.warehouse_path, db)
    return landing, db


def test_a_workbook_in_the_landing_folder_loads_like_the_csv(cycle: Cycle, tmp_path: Path) -> None:
    landing, db = _copy_home(cycle, tmp_path)
    (landing / MONTH / "demand_overrides.csv").unlink()
    shutil.copyfile(cycle.filled, landing / MONTH / "demand_overrides.xlsx")
    con = duckdb.connect(str(db))
    try:
        summary = load_extracts(con, landing, MONTH, base_currency=cycle.settings.base_currency)
        assert f"{MONTH}/demand_overrides.xlsx" in summary.files_loaded
        assert any("only the Overrides sheet is read" in n for n in summary.notes)
        rows = con.execute(
            "select scope, adjustment, reason_code, _source_row from raw.demand_overrides "
            "where _extract_month = ? order by _source_row",
            [MONTH],
        ).fetchall()
    finally:
        con.close()
    assert [(s, a, r, n) for s, _m, a, r, n in cycle.typed] == rows


def test_a_bad_workbook_in_the_landing_folder_loads_nothing(cycle: Cycle, tmp_path: Path) -> None:
    landing, db = _copy_home(cycle, tmp_path)
    (landing / MONTH / "demand_overrides.csv").unlink()
    wb = openpyxl.load_workbook(cycle.filled)
    ws = wb[OVERRIDES_SHEET]
    row = cycle.typed[0][4]
    ws.cell(row, 6).value = "forty"
    ws.append(["NOPE-1", None, cycle.typed[0][1], None, None, 5, "promotion", "a.miller"])
    wb.save(landing / MONTH / "demand_overrides.xlsx")
    con = duckdb.connect(str(db))
    try:
        before = con.execute(
            "select count(*) from raw.demand_overrides where _extract_month = ?", [MONTH]
        ).fetchone()[0]
        with pytest.raises(IngestError) as info:
            load_extracts(con, landing, MONTH, max_reject_rate=0.5, base_currency="USD")
        after = con.execute(
            "select count(*) from raw.demand_overrides where _extract_month = ?", [MONTH]
        ).fetchone()[0]
    finally:
        con.close()
    text = str(info.value)
    assert f"{MONTH}/demand_overrides.xlsx, sheet Overrides" in text
    assert f"row {row}, column adjustment, value 'forty'" in text
    assert "scope 'NOPE-1' is neither an item_id nor a family" in text
    # a workbook is all or nothing, whatever SOP_MAX_REJECT_RATE allows for other files
    assert after == before


def test_excels_lock_file_stops_the_load_with_what_to_do(cycle: Cycle, tmp_path: Path) -> None:
    landing, db = _copy_home(cycle, tmp_path)
    (landing / MONTH / "~$demand_overrides.xlsx").write_bytes(b"owner")
    con = duckdb.connect(str(db))
    try:
        with pytest.raises(IngestError, match="open in Excel"):
            load_extracts(con, landing, MONTH, base_currency="USD")
    finally:
        con.close()
