"""The second warehouse: the same dbt project and planning stages against a real PostgreSQL server.

A throwaway PostgreSQL cluster (``pg_server.py``; Debian's server binaries, installed by
``scripts/install_postgres.sh``, which ``make test`` runs) is started for this module. A small
demo company is planned for one month by the real Dagster job with SOP_WAREHOUSE=postgres:
every dbt model, unit test and data test must pass on PostgreSQL and the plan is published.
Its DuckDB twin (the same raw rows; marts built by dbt on DuckDB; the same planning stages)
must give the same marts, the same frames through the stages' mart reader, and the same plan.

Missing server binaries fail this module (they are part of the test set-up), they do not
skip it.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import psycopg2  # the postgres extra, which `make setup` installs: no skip without it
import pytest
from dbt_inprocess import invoke_dbt
from fixtures_raw import build_raw_warehouse
from pg_server import PostgresNotAvailable, PostgresServer

from sop_pipeline.core.settings import Settings
from sop_pipeline.defs.resources import MartsResource
from sop_pipeline.generator.company import generate_company
from sop_pipeline.ingest.contract import EXTRACTS
from sop_pipeline.runtime.runner import run_plan_month
from sop_pipeline.storage.warehouse import DuckDBMarts

MONTH = "2026-06"
MARTS = sorted(
    p.stem for p in (Path(__file__).parent.parent / "dbt_project/models/marts").glob("*.sql")
)
# float sums may add up in another order in PostgreSQL: the last bits may differ
RTOL = 1e-9


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start()
    except PostgresNotAvailable as exc:
        pytest.fail(f"no PostgreSQL server for the second-warehouse tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def _items_in_landing(settings: Settings) -> int:
    """Items of the generated company's latest items extract (sold items and BOM materials)."""
    return len(pd.read_csv(settings.landing_dir / MONTH / "items.csv"))


def _pg_connect(pg: PostgresServer):
    return psycopg2.connect(
        host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password, dbname=pg.dbname
    )


def _assert_frames_match(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    """Same columns, dtypes and rows; floats equal up to RTOL."""
    assert list(a.columns) == list(b.columns), what
    assert a.dtypes.to_dict() == b.dtypes.to_dict(), what
    assert len(a) == len(b), f"{what}: {len(a)} rows in DuckDB, {len(b)} in PostgreSQL"
    pd.testing.assert_frame_equal(
        a.reset_index(drop=True),
        b.reset_index(drop=True),
        check_exact=False,
        rtol=RTOL,
        atol=1e-6,
        obj=what,
    )


# --- the mart reader: PostgreSQL gives the frame DuckDB gives ---------------------------------


def test_postgres_mart_reader_returns_duckdbs_frame_bit_for_bit(pg: PostgresServer) -> None:
    from sop_pipeline.storage.postgres import PostgresMarts, PostgresTarget, connect

    rows = [
        ("b", 1.0 / 3.0, 2**62, 7, "2026-01-01", True),
        ("", 0.1, -1, None, None, False),
        (None, None, None, 3, "2025-12-01", None),
        ('quote " comma , newline \n end', 1e-300, 0, -5, "1999-02-28", True),
        ("ünïcödé €", -123456789.125, 42, 0, "2026-06-01", False),
        ("a", 2.5, 1, 1, "2026-01-01", True),
    ]
    ddl = (
        "create table marts.t_types (name varchar, x double precision, big bigint, "
        "small integer, day date, flag boolean)"
    )
    duck = duckdb.connect()
    duck.execute("create schema marts")
    duck.execute(ddl)
    duck.executemany("insert into marts.t_types values (?, ?, ?, ?, ?, ?)", rows)
    admin = _pg_connect(pg)
    try:
        with admin.cursor() as cur:
            cur.execute("create schema if not exists marts")
            cur.execute(ddl)
            cur.executemany("insert into marts.t_types values (%s, %s, %s, %s, %s, %s)", rows)
        admin.commit()
        target = PostgresTarget("127.0.0.1", pg.port, pg.user, pg.dbname, pg.password)
        con = connect(target)
        try:
            reader = PostgresMarts(con, target.label)
            got = reader.read_mart("t_types")
            assert reader.count_rows("t_types") == len(rows)
            assert reader.has_mart("t_types") and not reader.has_mart("no_such_mart")
            with pytest.raises(LookupError, match="build the dbt models"):
                reader.read_mart("no_such_mart")
        finally:
            con.close()
    finally:
        with admin.cursor() as cur:
            cur.execute("drop table marts.t_types")
        admin.commit()
        admin.close()
    expected = DuckDBMarts(duck).read_mart("t_types")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # NULL and '' stay apart, and the rows come sorted as DuckDB sorts them
    names = got["name"].tolist()
    assert names[:5] == ["", "a", "b", 'quote " comma , newline \n end', "ünïcödé €"]
    assert names[5] is None


def test_password_never_shows_in_settings_or_resource_config(pg: PostgresServer) -> None:
    settings = Settings.from_env({**pg.env(), "SOP_WAREHOUSE": "postgres"})
    assert settings.pg_password == pg.password
    assert pg.password not in repr(settings)
    marts = MartsResource.from_settings(settings)
    assert pg.password not in repr(marts)
    assert pg.password not in str(marts.model_dump())
    assert pg.password not in marts.location


def test_wrong_password_says_which_settings_to_check(pg: PostgresServer) -> None:
    from sop_pipeline.storage.postgres import PostgresTarget, WarehouseError, connect

    with pytest.raises(WarehouseError) as exc:
        connect(PostgresTarget("127.0.0.1", pg.port, pg.user, pg.dbname, "wrong-password"))
    message = str(exc.value)
    assert "SOP_PG_PASSWORD" in message and f"{pg.user}@127.0.0.1:{pg.port}" in message
    assert "wrong-password" not in message


# --- raw: the working file's extract tables, copied --------------------------------------------


def test_sync_raw_copies_changed_months_only_and_follows_the_working_file(
    pg: PostgresServer, tmp_path: Path
) -> None:
    from sop_pipeline.storage.postgres import PostgresTarget, connect, sync_raw

    build_raw_warehouse(tmp_path / "sop.duckdb")
    duck = duckdb.connect(str(tmp_path / "sop.duckdb"))
    target = PostgresTarget("127.0.0.1", pg.port, pg.user, pg.dbname, pg.password)
    tables = list(EXTRACTS)

    def pg_rows(table: str) -> list[tuple]:
        con = _pg_connect(pg)
        try:
            with con.cursor() as cur:
                cur.execute(
                    f"select * from raw.{table} order by _extract_month, _source_file, _source_row"
                )
                return cur.fetchall()
        finally:
            con.close()

    def duck_rows(table: str) -> list[tuple]:
        return duck.execute(
            f"select * from raw.{table} order by _extract_month, _source_file, _source_row"
        ).fetchall()

    con = connect(target)
    try:
        first = sync_raw(duck, con, tables)
        for table in tables:
            assert first[table] == len(duck_rows(table)), table
            assert pg_rows(table) == duck_rows(table), table
        # nothing changed: nothing copied
        assert set(sync_raw(duck, con, tables).values()) == {0}

        # the loader reloads a month (new load time) and another month disappears
        months = [
            m
            for (m,) in duck.execute(
                "select distinct _extract_month from raw.sales_orders order by 1"
            ).fetchall()
        ]
        assert len(months) >= 2, "the fixture needs two extract months of sales orders"
        duck.execute(
            "update raw.sales_orders set _loaded_at = _loaded_at + interval 1 second, "
            "qty_ordered = qty_ordered + 1 where _extract_month = ?",
            [months[-1]],
        )
        duck.execute("delete from raw.sales_orders where _extract_month = ?", [months[0]])
        reloaded = duck.execute(
            "select count(*) from raw.sales_orders where _extract_month = ?", [months[-1]]
        ).fetchone()[0]
        again = sync_raw(duck, con, tables)
        assert again["sales_orders"] == reloaded
        assert sum(again.values()) == reloaded
        assert pg_rows("sales_orders") == duck_rows("sales_orders")
    finally:
        con.close()
        duck.close()


# --- a whole plan month in postgres mode, against DuckDB ---------------------------------------


@dataclass
class Homes:
    postgres: Settings  # planned by the real job with SOP_WAREHOUSE=postgres
    duckdb: Settings  # the same raw data, marts and plan built with SOP_WAREHOUSE=duckdb
    run_id: str  # of the postgres run, in the postgres home's DAGSTER_HOME
    seconds: dict[str, float]


def _run_dbt_models_on_duckdb(settings: Settings, work: Path) -> None:
    """``dbt run`` (models only: the dbt tests of DuckDB are test_dbt's) into ``settings``' file."""
    result = invoke_dbt(
        settings.warehouse_path,
        work,
        MONTH,
        settings.horizon_months,
        "run",
        "--target",
        "duckdb",
        base_currency=settings.base_currency,
    )
    assert result.success, f"dbt run on DuckDB failed: {result.exception}"


@pytest.fixture(scope="module")
def homes(pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Homes:
    """One plan month through the real job in postgres mode, and its DuckDB twin.

    The twin starts from a copy of the postgres home's working file (the same raw rows, as
    ingest loaded them), builds the marts with dbt on DuckDB and runs the planning assets
    on them: the two plans differ only in the warehouse the stages read.
    """
    from sop_pipeline.defs.demand import assets as demand
    from sop_pipeline.defs.executive import assets as executive
    from sop_pipeline.defs.finance import assets as finance
    from sop_pipeline.defs.resources import build_resources
    from sop_pipeline.defs.supply import assets as supply

    # the Python stages of the job: everything between dbt and the gate
    planning = [
        demand.stat_forecast,
        demand.plan_demand,
        supply.supply_plan,
        supply.plan_gaps,
        supply.plan_exceptions,
        finance.plan_financials,
        finance.forecast_accuracy,
        finance.kpi_scorecard,
        executive.scenario_comparison,
        executive.plan_waterfall,
    ]

    seconds: dict[str, float] = {}
    pg_home = tmp_path_factory.mktemp("sop_postgres")
    env = {
        "SOP_HOME": str(pg_home),
        "SOP_HORIZON_MONTHS": "6",
        "SOP_WAREHOUSE": "postgres",
        **pg.env(),
    }
    on_postgres = Settings.from_env(env)
    on_postgres.ensure_dirs()
    generate_company(on_postgres.landing_dir, items=20, months=24, seed=11, end=MONTH)
    # the stages read SOP_* from the environment at run time (SopResource, the password)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SOP_DBT_TARGET", raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        started = time.perf_counter()
        outcome = run_plan_month(on_postgres, MONTH)
        seconds["job on postgres"] = time.perf_counter() - started
    # every dbt model, unit test and data test passed on PostgreSQL, and the plan was published
    assert outcome.success, outcome.errors

    twin_home = tmp_path_factory.mktemp("sop_duckdb")
    on_duckdb = Settings.from_env({"SOP_HOME": str(twin_home), "SOP_HORIZON_MONTHS": "6"})
    on_duckdb.ensure_dirs()
    shutil.copyfile(on_postgres.warehouse_path, on_duckdb.warehouse_path)
    con = duckdb.connect(str(on_duckdb.warehouse_path))
    try:
        con.execute("drop schema plan cascade")
    finally:
        con.close()
    with pytest.MonkeyPatch.context() as mp:
        for name in ("SOP_WAREHOUSE", "SOP_DBT_TARGET"):
            mp.delenv(name, raising=False)
        started = time.perf_counter()
        _run_dbt_models_on_duckdb(on_duckdb, tmp_path_factory.mktemp("dbt_duckdb"))
        seconds["dbt run on duckdb"] = time.perf_counter() - started
        started = time.perf_counter()
        # the marts dbt just built, as sources the IO manager reads for the planning stages
        marts = sorted(
            {k for a in planning for k in a.keys_by_input_name.values() if k.path[0] == "marts"}
        )
        sources = [dg.SourceAsset(key=k) for k in marts]
        result = dg.materialize(
            planning + sources, partition_key=MONTH, resources=build_resources(on_duckdb)
        )
        seconds["planning stages on duckdb"] = time.perf_counter() - started
    assert result.success
    print(f"\nseconds: {seconds}")
    return Homes(postgres=on_postgres, duckdb=on_duckdb, run_id=outcome.run_id, seconds=seconds)


def _marts_in_postgres(pg: PostgresServer) -> list[str]:
    con = _pg_connect(pg)
    try:
        with con.cursor() as cur:
            cur.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'marts' and table_type = 'BASE TABLE' order by 1"
            )
            return [r[0] for r in cur.fetchall()]
    finally:
        con.close()


def test_postgres_run_builds_every_mart_in_postgres_not_in_the_working_file(
    homes: Homes, pg: PostgresServer
) -> None:
    assert _marts_in_postgres(pg) == MARTS
    con = duckdb.connect(str(homes.postgres.warehouse_path), read_only=True)
    try:
        schemas = {
            r[0]
            for r in con.execute("select schema_name from information_schema.schemata").fetchall()
        }
        rejects = con.execute("select count(*) from raw.rejects").fetchone()[0]
    finally:
        con.close()
    # the working file keeps the audited raw store and the candidate plan, nothing of dbt's
    assert {"raw", "plan"} <= schemas
    assert not schemas & {"staging", "intermediate", "marts"}
    assert rejects == 0


def test_postgres_run_records_row_counts_and_never_the_password(
    homes: Homes, pg: PostgresServer
) -> None:
    instance = dg.DagsterInstance.from_config(str(homes.postgres.dagster_home))
    try:
        event = instance.get_latest_materialization_event(dg.AssetKey(["marts", "dim_items"]))
        assert event is not None
        metadata = event.asset_materialization.metadata
        assert metadata["dagster/row_count"].value == _items_in_landing(homes.postgres)
        logs = instance.all_logs(homes.run_id)
        assert len(logs) > 100
        # the password reached dbt and the stages through the environment only
        assert all(pg.password not in str(entry) for entry in logs)
        assert any("raw extracts copied to PostgreSQL" in str(entry) for entry in logs)
    finally:
        instance.dispose()
    log_dir = homes.postgres.dagster_home / "logs"
    for path in log_dir.rglob("*"):
        if path.is_file():
            assert pg.password not in path.read_text(errors="replace"), path


def test_stages_read_the_same_marts_from_both_warehouses(
    homes: Homes, pg: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOP_PG_PASSWORD", pg.password)
    from_duckdb = MartsResource.from_settings(homes.duckdb)
    from_postgres = MartsResource.from_settings(homes.postgres)
    assert from_postgres.location == f"PostgreSQL {pg.user}@127.0.0.1:{pg.port}/{pg.dbname}"
    with from_duckdb.reader() as a, from_postgres.reader() as b:
        assert a.location != b.location
        for name in MARTS:
            frame_a, frame_b = a.read_mart(name), b.read_mart(name)
            _assert_frames_match(frame_a, frame_b, f"marts.{name}")
            assert b.count_rows(name) == len(frame_b)
        # the tiny company still fills the marts the planning stages live on
        for name in ("dim_items", "fct_demand_history", "fct_capacity", "fct_open_supply"):
            assert a.count_rows(name) > 0, name


def test_plan_from_postgres_marts_is_the_plan_from_duckdb_marts(homes: Homes) -> None:
    from sop_pipeline.storage.warehouse import read_plan

    a = duckdb.connect(str(homes.duckdb.warehouse_path), read_only=True)
    b = duckdb.connect(str(homes.postgres.warehouse_path), read_only=True)
    try:
        # every table the planning stages wrote (the postgres run's gate wrote one more);
        # _stage_versions is bookkeeping (run ids differ by nature)
        tables = sorted(
            r[0]
            for r in a.execute(
                "select table_name from information_schema.tables where table_schema = 'plan'"
            ).fetchall()
            if not r[0].startswith("_")
        )
        assert {"plan_demand", "plan_inventory", "plan_financials", "kpi_scorecard"} <= set(tables)
        for table in tables:
            _assert_frames_match(
                read_plan(a, table, MONTH), read_plan(b, table, MONTH), f"plan.{table}"
            )
        demand = read_plan(b, "plan_demand", MONTH)
    finally:
        a.close()
        b.close()
    assert demand["month"].nunique() == 6 and demand["consensus_qty"].sum() > 0
    # and the postgres run published it, with the summary naming the published file
    published = duckdb.connect(str(homes.postgres.published_dir / "sop.duckdb"), read_only=True)
    try:
        versions = published.execute(
            "select plan_version, checks_failed from plan_versions where plan_month = ?", [MONTH]
        ).fetchall()
    finally:
        published.close()
    assert versions == [(1, 0)]


def test_cli_summary_and_pack_read_the_history_from_postgres(homes: Homes, tmp_path: Path) -> None:
    from sop_pipeline.report.pack import WorkingInputs, read_postgres_history, read_working_inputs
    from sop_pipeline.runtime.summary import run_summary

    from_postgres = WorkingInputs()
    read_postgres_history(homes.postgres, MONTH, from_postgres)
    from_duckdb = read_working_inputs(homes.duckdb.warehouse_path, MONTH)
    assert from_postgres.notes == [] and from_duckdb.notes == []
    assert from_postgres.history is not None and len(from_postgres.history) > 0
    _assert_frames_match(from_duckdb.history, from_postgres.history, "pack demand history")

    # nothing published in this home: the summary counts the marts, in PostgreSQL
    unpublished = dataclasses.replace(homes.postgres, sop_home=tmp_path)
    lines = run_summary(unpublished, MONTH).splitlines()
    assert f"PostgreSQL {homes.postgres.postgres_label}" in lines[0]
    assert f"  marts.dim_items: {_items_in_landing(homes.postgres)} rows" in lines
    assert len(lines) == 5

    # a server that refuses the login: the pack says so and leaves the history out
    refused = WorkingInputs()
    read_postgres_history(dataclasses.replace(homes.postgres, pg_password="wrong"), MONTH, refused)
    assert refused.history is None
    assert "SOP_PG_PASSWORD" in refused.notes[0] and "history left out" in refused.notes[0]
