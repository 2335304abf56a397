"""The whole graph on a small demo company: ingest → dbt → demand → supply → finance → gate → publish.

One module-scoped run of the real Dagster job (the same one `sop run` and the UI launch) feeds
the assertions; a few tests then change one thing and run part of the graph again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from sop_pipeline.core.settings import Settings
from sop_pipeline.generator.company import generate_company
from sop_pipeline.publish.tables import RECORD_TABLES, TABLES
from sop_pipeline.runtime.runner import run_plan_month
from sop_pipeline.storage import incremental

PREVIOUS = "2026-05"
MONTH = "2026-06"
#: Planted in the environment of the module's runs: it must not appear in any output.
PLANTED_SECRET = "planted-Secret-4b1d-do-not-echo"  # pragma: allowlist secret
SECRET_VARS = ("SOP_PG_PASSWORD", "SOP_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "DBT_ENV_SECRET_KEY")


def _settings(home: Path) -> Settings:
    return Settings.from_env({"SOP_HOME": str(home), "SOP_HORIZON_MONTHS": "12"})


def _hash_tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".publish.lock" not in p.name
    }


def _published(settings: Settings, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(settings.published_dir / "sop.duckdb"), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("sop_home")
    settings = _settings(home)
    settings.ensure_dirs()
    generate_company(settings.landing_dir, items=40, months=36, seed=7, end=MONTH)
    # two months in order, so the second plan can score the first plan's forecast
    with pytest.MonkeyPatch.context() as mp:
        for name in SECRET_VARS:
            mp.setenv(name, PLANTED_SECRET)
        for month in (PREVIOUS, MONTH):
            outcome = run_plan_month(settings, month)
            assert outcome.success, outcome.errors
            assert PLANTED_SECRET not in outcome.summary + " ".join(outcome.errors)
    return settings


def test_every_published_table_has_its_stable_columns(planned: Settings) -> None:
    con = duckdb.connect(str(planned.published_dir / "sop.duckdb"), read_only=True)
    try:
        for table, spec in TABLES.items():
            cols = [r[0] for r in con.execute(f"describe {table}").fetchall()]
            stable = spec.column_names
            assert cols[: len(stable)] == stable, table
            # exceptions may legitimately be none; everything else must have rows
            if table not in ("plan_exceptions", "plan_decisions"):
                n = con.execute(
                    f"select count(*) from {table} where plan_month = ?", [MONTH]
                ).fetchone()[0]
                assert n > 0, f"{table} is empty"
            if table not in RECORD_TABLES:
                con.execute(f"select * from {table}_current limit 1").fetchall()
    finally:
        con.close()


def test_every_published_column_of_a_real_plan_is_described_in_the_file(planned: Settings) -> None:
    """The data dictionary covers what the stages really publish (extras included)."""
    from sop_pipeline.publish.dictionary import PUBLISHED_EXTRAS

    cols = _published(
        planned,
        "select table_name, column_name, comment from duckdb_columns() "
        "where database_name = 'sop' and schema_name = 'main'",
    )
    blank = cols[cols["comment"].fillna("").str.strip() == ""]
    assert blank.empty, f"no comment: {blank[['table_name', 'column_name']].values.tolist()}"
    for table, spec in TABLES.items():
        published = cols.loc[cols["table_name"] == table, "column_name"].tolist()
        extras = [c for c in published if c not in spec.types]
        assert extras == list(PUBLISHED_EXTRAS.get(table, ())), (
            f"{table}: update PUBLISHED_EXTRAS in publish/dictionary.py and regenerate the doc"
        )


def test_plan_covers_the_horizon_and_adds_up(planned: Settings) -> None:
    demand = _published(planned, "select * from plan_demand_current")
    months = sorted(demand["month"].unique())
    assert len(months) == 12
    assert pd.Timestamp(months[0]) == pd.Timestamp("2026-07-01")
    per_series = demand.groupby(["item_id", "location_id"])["month"].nunique()
    assert (per_series == 12).all()
    assert (demand["consensus_qty"] >= 0).all()
    assert (demand["stat_lo95_qty"] <= demand["stat_lo80_qty"] + 1e-9).all()
    assert (demand["stat_hi80_qty"] <= demand["stat_hi95_qty"] + 1e-9).all()
    gaps = _published(planned, "select family, month, demand_qty from plan_gaps_current")
    by_family = demand.groupby(["family", "month"], as_index=False)["consensus_qty"].sum()
    merged = gaps.merge(by_family, on=["family", "month"])
    assert len(merged) == len(gaps)
    assert (merged["demand_qty"] - merged["consensus_qty"]).abs().max() < 1e-6


def test_inventory_balance_and_capacity_in_published_plan(planned: Settings) -> None:
    inv = _published(planned, "select * from plan_inventory_current")
    lhs = inv["opening_qty"] + inv["receipts_qty"] - inv["served_qty"]
    assert (lhs - inv["closing_qty"]).abs().max() < 1e-6
    assert (inv["closing_qty"] >= -1e-9).all()
    # one unmet-demand figure (backlog by default): Σ demand − Σ served in both tables
    assert (inv["unmet_demand"] == planned.unmet_demand).all()
    gaps = _published(planned, "select * from plan_gaps_current")
    unmet = inv["demand_qty"].sum() - inv["served_qty"].sum()
    assert unmet == pytest.approx(gaps["demand_qty"].sum() - gaps["supply_qty"].sum(), abs=1e-3)
    assert inv["stockout_probability"].between(0, 1).all()
    cap = _published(planned, "select * from plan_capacity_current")
    # firm (open production order) hours use the calendar and the overtime first: the plan's
    # own hours never exceed available + overtime; firm hours above it are flagged
    ceiling = cap["available_hours"] * (1 + planned.overtime_share)
    allowed = np.maximum(ceiling, cap["firm_hours"]) + 1e-6
    assert (cap["planned_hours"] <= allowed).all()
    over = cap["firm_hours"] > ceiling + 1e-6
    assert (cap.loc[over, "lp_hours"].abs() < 1e-6).all()
    assert (cap.loc[over, "firm_excess_hours"] > 0).all()


def test_forecast_accuracy_scores_the_previous_plan(planned: Settings) -> None:
    acc = _published(planned, f"select * from forecast_accuracy where plan_month = '{MONTH}'")
    lag1 = acc[(acc["lag"] == 1) & (acc["month"] == pd.Timestamp(MONTH + "-01"))]
    assert set(lag1["forecast_kind"]) == {"naive", "statistical", "consensus"}
    assert set(lag1["level"]) == {"item", "family", "total"}
    assert lag1["wape"].notna().all() and (lag1["wape"] >= 0).all()


def test_tournament_beats_seasonal_naive_on_the_demo_backtest(planned: Settings) -> None:
    con = duckdb.connect(str(planned.warehouse_path), read_only=True)
    try:
        bt = con.execute(
            "select chosen_error, naive_error from plan.backtest_results "
            "where plan_month = ? and chosen_error is not null and naive_error is not null",
            [MONTH],
        ).df()
    finally:
        con.close()
    assert len(bt) > 20
    assert bt["chosen_error"].median() < bt["naive_error"].median()
    assert bt["chosen_error"].mean() < bt["naive_error"].mean()


def test_overhaul_shows_as_prebuild_or_gap(planned: Settings) -> None:
    cap = _published(planned, "select * from plan_capacity_current order by work_center_id, month")
    cap["normal"] = cap.groupby("work_center_id")["available_hours"].transform("median")
    cap["ratio"] = cap["available_hours"] / cap["normal"]
    overhaul = cap.loc[cap["ratio"].idxmin()]
    assert overhaul["ratio"] < 0.5, "the demo calendar has an overhaul in the horizon"
    wc = cap[cap["work_center_id"] == overhaul["work_center_id"]].reset_index(drop=True)
    at = wc.index[wc["month"] == overhaul["month"]][0]
    before = wc.iloc[:at]
    prebuild = (before["planned_hours"] - before["required_hours"]).clip(lower=0).sum()
    short_in_overhaul = overhaul["required_hours"] > overhaul["available_hours"] * (
        1 + planned.overtime_share
    )
    assert prebuild > 0 or short_in_overhaul
    assert (
        overhaul["planned_hours"]
        <= overhaul["available_hours"] * (1 + planned.overtime_share) + 1e-6
    )


def test_plan_versions_records_the_run(planned: Settings) -> None:
    versions = _published(planned, "select * from plan_versions")
    row = versions[versions["plan_month"] == MONTH].iloc[0]
    assert row["plan_version"] == 1
    assert len(row["input_fingerprint"]) == 64
    assert row["checks_failed"] == 0 and row["checks_passed"] > 0
    assert row["run_id"]


def test_gate_failure_blocks_publication_and_keeps_published_files(planned: Settings) -> None:
    from sop_pipeline.defs.publish import assets as publish
    from sop_pipeline.defs.resources import build_resources

    before = _hash_tree(planned.published_dir)
    con = duckdb.connect(str(planned.warehouse_path))
    try:
        # a broken candidate: a negative consensus quantity
        con.execute(
            "update plan.plan_demand set consensus_qty = -5 where plan_month = ? "
            "and rowid = (select min(rowid) from plan.plan_demand where plan_month = ?)",
            [MONTH, MONTH],
        )
    finally:
        con.close()
    result = dg.materialize(
        [publish.candidate_plan, publish.published_plan],
        partition_key=MONTH,
        resources=build_resources(planned),
        raise_on_error=False,
    )
    assert not result.success
    failed = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    assert any(f.check_name == "gx_plan_demand" for f in failed)
    assert "consensus_qty" in " ".join((f.description or "") for f in failed)
    assert _hash_tree(planned.published_dir) == before


def test_bad_extract_stops_the_run_and_names_file_row_column(
    planned: Settings, tmp_path: Path
) -> None:
    before = _hash_tree(planned.published_dir)
    path = planned.landing_dir / MONTH / "sales_orders.csv"
    original = path.read_bytes()
    lines = original.decode().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("qty_ordered")] = "abc"
    lines[1] = ",".join(row)
    try:
        path.write_text("\n".join(lines) + "\n")
        outcome = run_plan_month(planned, MONTH)
    finally:
        path.write_bytes(original)
    assert not outcome.success
    text = " ".join(outcome.errors)
    assert "sales_orders.csv" in text
    assert "row 2" in text
    assert "qty_ordered" in text
    assert _hash_tree(planned.published_dir) == before


def test_rerun_with_same_inputs_publishes_version_2_with_identical_numbers(
    planned: Settings,
) -> None:
    con = duckdb.connect(str(planned.warehouse_path), read_only=True)
    try:
        first = incremental.stage_history(con, MONTH).set_index("stage")
    finally:
        con.close()
    outcome = run_plan_month(planned, MONTH)
    assert outcome.success, outcome.errors
    # nothing the forecast reads changed: the rerun reused it and said so
    instance = dg.DagsterInstance.from_config(str(planned.dagster_home))
    events = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["plan", "stat_forecast"])), limit=1
    ).records
    meta = events[0].asset_materialization.metadata
    assert events[0].run_id == outcome.run_id
    assert meta["reused"].value is True
    assert meta["reused_from_run"].value == first.loc["stat_forecast", "run_id"]
    assert "stat_forecast" in outcome.summary and "reused" in outcome.summary
    for table in (
        "plan_demand",
        "plan_supply",
        "plan_inventory",
        "plan_financials",
        "kpi_scorecard",
    ):
        spec = TABLES[table]
        cols = [c for c in spec.column_names if c != "plan_version"]
        order = ", ".join(spec.key)
        v1 = _published(
            planned,
            f"select {', '.join(cols)} from {table} where plan_month = '{MONTH}' and plan_version = 1 order by {order}",
        )
        v2 = _published(
            planned,
            f"select {', '.join(cols)} from {table} where plan_month = '{MONTH}' and plan_version = 2 order by {order}",
        )
        pd.testing.assert_frame_equal(v1, v2, check_exact=True, obj=table)
    versions = _published(planned, "select plan_version from plan_demand_current group by 1")
    assert versions["plan_version"].tolist() == [2]


def test_unchanged_month_skips_dbt_and_forecast_and_says_so(planned: Settings) -> None:
    """Run the month again with nothing changed since the previous test's run."""
    outcome = run_plan_month(planned, MONTH)
    assert outcome.success, outcome.errors
    reused = outcome.summary.split("reused, inputs and code unchanged:")[-1]
    assert "sop_dbt_models" in reused and "plan__stat_forecast" in reused
    con = duckdb.connect(str(planned.warehouse_path), read_only=True)
    try:
        stages = incremental.stage_history(con, "current").set_index("stage")
    finally:
        con.close()
    # the record still names the run that really built the marts, not this one
    assert stages.loc["dbt_build", "run_id"] != outcome.run_id
    spec = TABLES["plan_demand"]
    cols = ", ".join(c for c in spec.column_names if c != "plan_version")
    v2, v3 = (
        _published(
            planned,
            f"select {cols} from plan_demand where plan_month = '{MONTH}' "
            f"and plan_version = {v} order by {', '.join(spec.key)}",
        )
        for v in (2, 3)
    )
    pd.testing.assert_frame_equal(v2, v3, check_exact=True)


def test_backfill_is_point_in_time_and_reproduces_the_original_publication(
    planned: Settings,
) -> None:
    """A late row in a later extract must not change an earlier month's plan when it is re-planned."""
    path = planned.landing_dir / MONTH / "sales_orders.csv"
    original = path.read_bytes()
    lines = original.decode().splitlines()
    header = lines[0].split(",")
    late = lines[1].split(",")
    late[header.index("order_id")] = "SO-LATE-0001"
    late[header.index("line_no")] = "1"
    late[header.index("qty_ordered")] = "999"
    late[header.index("requested_date")] = PREVIOUS + "-15"
    late[header.index("order_date")] = PREVIOUS + "-01"
    late[header.index("status")] = "open"
    late[header.index("ship_date")] = ""
    late[header.index("qty_shipped")] = "0"
    try:
        path.write_text("\n".join([*lines, ",".join(late)]) + "\n")
        outcome = run_plan_month(planned, PREVIOUS, is_backfill=True)
    finally:
        path.write_bytes(original)
    assert outcome.success, outcome.errors
    versions = _published(
        planned,
        f"select plan_version, is_backfill from plan_versions where plan_month = '{PREVIOUS}' order by 1",
    )
    assert versions["plan_version"].tolist() == [1, 2]
    assert versions["is_backfill"].tolist() == [False, True]
    for table in (
        "plan_demand",
        "plan_supply",
        "plan_inventory",
        "plan_capacity",
        "plan_gaps",
        "plan_financials",
        "kpi_scorecard",
    ):
        spec = TABLES[table]
        cols = ", ".join(c for c in spec.column_names if c != "plan_version")
        order = ", ".join(spec.key)
        v1, v2 = (
            _published(
                planned,
                f"select {cols} from {table} where plan_month = '{PREVIOUS}' and plan_version = {v} order by {order}",
            )
            for v in (1, 2)
        )
        pd.testing.assert_frame_equal(v1, v2, check_exact=True, obj=table)


def test_no_secret_from_the_environment_in_logs_run_history_or_published_data(
    planned: Settings,
) -> None:
    """Settings with secrets come from the environment; nothing echoes them anywhere."""
    import dagster as dg

    from sop_pipeline.defs.clean.project import DBT_PROJECT_DIR
    from sop_pipeline.runtime.summary import run_summary, status

    secret = PLANTED_SECRET.encode()
    # every file the runs wrote: CLI/dbt logs, Dagster run and event storage, compute logs,
    # the executive pack; dbt's own log folder
    scanned = 0
    for root in (planned.sop_home, DBT_PROJECT_DIR / "logs"):
        for path in root.rglob("*"):
            if path.is_file() and path.suffix != ".duckdb":
                assert secret not in path.read_bytes(), path
                scanned += 1
    assert scanned > 10
    # what the Dagster UI shows: event messages and materialization metadata of every run
    instance = dg.DagsterInstance.from_config(str(planned.dagster_home))
    runs = instance.get_runs()
    assert len(runs) >= 2
    for run in runs:
        assert PLANTED_SECRET not in repr(run.tags)
        for entry in instance.all_logs(run.run_id):
            assert PLANTED_SECRET not in entry.user_message
            event = entry.dagster_event
            if event is not None:
                assert PLANTED_SECRET not in repr(event.event_specific_data)
    # the text columns of both databases (DuckDB compresses strings: scan with SQL)
    for db in (planned.warehouse_path, planned.published_dir / "sop.duckdb"):
        con = duckdb.connect(str(db), read_only=True)
        try:
            text_columns = con.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                "WHERE data_type = 'VARCHAR' AND table_name NOT LIKE '%_current' "
                "AND table_name NOT LIKE '%_latest_versions'"
            ).fetchall()
            assert text_columns
            for schema, table, column in text_columns:
                hits = con.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{column}", ?)',
                    [PLANTED_SECRET],
                ).fetchone()[0]
                assert hits == 0, f"{db}: {schema}.{table}.{column}"
        finally:
            con.close()
    assert PLANTED_SECRET not in run_summary(planned, MONTH) + "\n".join(status(planned))


def test_demo_material_constraint_reaches_exceptions_and_the_pack(planned: Settings) -> None:
    # the demo's copper supplier (SUP-RM1) has a capacity dip early in the horizon
    materials = _published(
        planned,
        f"select * from plan_materials where plan_month = '{MONTH}' and plan_version = 1",
    )
    copper = materials[materials["component_item_id"] == "RM-1001"]
    assert copper["dependent_demand_qty"].sum() > 0
    assert copper["shortage_qty"].sum() > 0, "the copper dip binds"
    grouped = materials.groupby(["component_item_id", "month"])
    bought = grouped["planned_purchase_qty"].sum()
    limit = grouped["supplier_capacity_qty"].first()
    assert (bought <= limit * (1 + 1e-6) + 1e-6)[limit.notna()].all()
    exceptions = _published(
        planned,
        f"select * from plan_exceptions where plan_month = '{MONTH}' and plan_version = 1 "
        "and exception_type = 'material_short'",
    )
    assert exceptions["scope_id"].str.startswith("RM-1001@").any()
    assert exceptions["binding_constraint"].str.contains("supplier SUP-RM1 capacity").any()
    shortages_explained = _published(
        planned,
        f"select binding_constraint from plan_inventory where plan_month = '{MONTH}' "
        "and plan_version = 1 and binding_constraint like 'material RM-1001%'",
    )
    assert len(shortages_explained) > 0
    pack = (planned.reports_dir / MONTH / f"sop_pack_{MONTH}_v1.html").read_text("utf-8")
    assert "Top material constraints" in pack and "<td>RM-1001</td>" in pack
