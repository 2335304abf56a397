"""The IO manager stores plan tables by plan month and hands the month's rows to downstream assets."""

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from sop_pipeline.defs.resources import MartsResource, PlanTablesIOManager, WarehouseResource

MONTHS = dg.StaticPartitionsDefinition(["2026-09", "2026-10"])
DIM_ITEMS = dg.AssetKey(["marts", "dim_items"])


@dg.asset(key=dg.AssetKey(["plan", "toy_demand"]), partitions_def=MONTHS)
def toy_demand(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Demand that doubles from September to October."""
    scale = 1.0 if context.partition_key == "2026-09" else 2.0
    return pd.DataFrame({"item_id": ["B", "A"], "qty": [20.0 * scale, 10.0 * scale]})


@dg.asset(
    key=dg.AssetKey(["plan", "toy_value"]),
    partitions_def=MONTHS,
    ins={
        "toy_demand": dg.AssetIn(key=dg.AssetKey(["plan", "toy_demand"])),
        "dim_items": dg.AssetIn(key=DIM_ITEMS),
    },
)
def toy_value(toy_demand: pd.DataFrame, dim_items: pd.DataFrame) -> dg.Output:
    """Demand × price: one plan table read, one mart read, one plan table written."""
    out = toy_demand.merge(dim_items, on="item_id")
    out["value"] = out["qty"] * out["unit_price"]
    return dg.Output(out[["item_id", "value"]], metadata={"total": float(out["value"].sum())})


# stands for the dbt model: built in the database by dbt, read through the marts reader
dim_items = dg.SourceAsset(key=DIM_ITEMS, io_manager_key="io_manager")


def _run(db: Path, month: str) -> dg.ExecuteInProcessResult:
    working = WarehouseResource(database=str(db))
    io = PlanTablesIOManager(warehouse=working, marts=MartsResource(working=working))
    result = dg.materialize(
        [toy_demand, toy_value, dim_items], partition_key=month, resources={"io_manager": io}
    )
    assert result.success
    return result


def _query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db)) as con:
        return con.execute(sql).fetchall()


def test_plan_tables_are_stored_by_month_and_downstream_assets_get_that_month(tmp_path: Path):
    db = tmp_path / "sop.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.dim_items as "
            "select * from (values ('A', 3.0), ('B', 5.0)) t(item_id, unit_price)"
        )
    _run(db, "2026-09")
    _run(db, "2026-10")
    # plan_month added by the IO manager; the downstream asset saw only its month's demand
    assert _query(db, "select plan_month, item_id, value from plan.toy_value order by all") == [
        ("2026-09", "A", 30.0),
        ("2026-09", "B", 100.0),
        ("2026-10", "A", 60.0),
        ("2026-10", "B", 200.0),
    ]
    # a re-run of one month replaces that month's rows and keeps the other month's
    result = _run(db, "2026-09")
    counts = "select plan_month, count(*) from plan.toy_value group by all order by 1"
    assert _query(db, counts) == [("2026-09", 2), ("2026-10", 2)]
    mat = result.asset_materializations_for_node("plan__toy_value")[0]
    assert mat.metadata["dagster/row_count"].value == 2
    assert mat.metadata["total"].value == 130.0


def test_a_text_column_that_starts_empty_takes_text_in_a_later_month(tmp_path: Path):
    """A first month whose text column holds only nulls must not make it a number column."""
    from sop_pipeline.storage.warehouse import read_plan, replace_plan_rows

    with duckdb.connect(str(tmp_path / "sop.duckdb")) as con:
        first = pd.DataFrame({"item_id": ["A"], "error_metric": pd.Series([None], dtype=object)})
        replace_plan_rows(con, "backtest", first, "2026-09")
        later = pd.DataFrame({"item_id": ["A"], "error_metric": ["mase"]})
        replace_plan_rows(con, "backtest", later, "2026-10")
        assert read_plan(con, "backtest", "2026-10")["error_metric"].tolist() == ["mase"]
        assert read_plan(con, "backtest", "2026-09")["error_metric"].isna().all()


@dg.asset(key=dg.AssetKey(["plan", "toy_forecast"]), partitions_def=MONTHS)
def toy_forecast(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """A stage with side tables: its forecast, a backtest and a log, and its stage record."""
    from sop_pipeline.storage.plan_tables import PlanTables, StageRecord

    month = context.partition_key
    n = 1 if month == "2026-09" else 2
    log_rows = int(context.run.tags.get("log_rows", n)) if context.run else n
    tables = {
        "toy_forecast": pd.DataFrame({"item_id": ["A"] * n, "qty": [1.0] * n}),
        "toy_backtest": pd.DataFrame({"item_id": ["A"] * (n + 1), "error": [0.5] * (n + 1)}),
        "toy_log": pd.DataFrame({"note": [f"{month} #{i}" for i in range(log_rows)]}),
    }
    record = StageRecord("toy_forecast", f"fp-{month}", "code1", {"series": n})
    return dg.MaterializeResult(value=PlanTables(tables, record=record), metadata={"series": n})


def _run_forecast(db: Path, month: str, tags: dict[str, str] | None = None):
    working = WarehouseResource(database=str(db))
    io = PlanTablesIOManager(warehouse=working, marts=MartsResource(working=working))
    return dg.materialize(
        [toy_forecast],
        partition_key=month,
        resources={"io_manager": io},
        tags=tags or {},
        raise_on_error=False,
    )


def test_side_tables_are_stored_by_month_with_the_stage_record_last(tmp_path: Path):
    from sop_pipeline.storage import incremental

    db = tmp_path / "sop.duckdb"
    assert _run_forecast(db, "2026-09").success
    assert _run_forecast(db, "2026-10").success
    by_month = "select plan_month, count(*) from plan.{} group by all order by 1"
    assert _query(db, by_month.format("toy_forecast")) == [("2026-09", 1), ("2026-10", 2)]
    assert _query(db, by_month.format("toy_backtest")) == [("2026-09", 2), ("2026-10", 3)]
    assert _query(db, by_month.format("toy_log")) == [("2026-09", 1), ("2026-10", 2)]
    # a re-run of September replaces September's side rows (here: a log of 3 rows, then none)
    # and leaves October's as they were
    assert _run_forecast(db, "2026-09", {"log_rows": "3"}).success
    assert _query(db, by_month.format("toy_log")) == [("2026-09", 3), ("2026-10", 2)]
    result = _run_forecast(db, "2026-09", {"log_rows": "0"})
    assert _query(db, by_month.format("toy_log")) == [("2026-10", 2)]
    assert _query(db, "select note from plan.toy_log order by 1") == [
        ("2026-10 #0",),
        ("2026-10 #1",),
    ]
    # the asset's row count is its own table's; its other metadata is kept
    mat = result.asset_materializations_for_node("plan__toy_forecast")[0]
    assert mat.metadata["dagster/row_count"].value == 1
    assert mat.metadata["series"].value == 1
    # the record names every table with the rows written, so a reuse can check them all
    with duckdb.connect(str(db)) as con:
        reuse = incremental.find_reusable(con, "toy_forecast", "2026-09", "fp-2026-09")
        assert reuse is not None
        assert reuse.run_id == result.run_id
        assert reuse.tables == {"toy_forecast": 1, "toy_backtest": 2, "toy_log": 0}
        assert reuse.metadata == {"series": 1}


def test_a_write_that_fails_half_way_leaves_no_stage_record(tmp_path: Path):
    """The record is forgotten before the tables are rewritten: no reuse of half a result."""
    from sop_pipeline.storage import incremental
    from sop_pipeline.storage.plan_tables import PlanTables, StageRecord, write_plan_tables

    db = tmp_path / "sop.duckdb"
    assert _run_forecast(db, "2026-09").success
    broken = PlanTables(
        {
            "toy_forecast": pd.DataFrame({"item_id": ["B"], "qty": [2.0]}),
            "Not A Table": pd.DataFrame({"x": [1]}),
        },
        record=StageRecord("toy_forecast", "fp-2026-09", "code1"),
    )
    with duckdb.connect(str(db)) as con:
        with pytest.raises(ValueError, match="not allowed"):
            write_plan_tables(con, broken, "2026-09", "run-2")
        assert incremental.find_record(con, "toy_forecast", "2026-09") is None


def test_plan_tables_without_the_assets_own_table_are_refused(tmp_path: Path):
    from sop_pipeline.storage.plan_tables import PlanTables

    @dg.asset(key=dg.AssetKey(["plan", "toy_orphan"]), partitions_def=MONTHS)
    def toy_orphan() -> dg.Output:
        return dg.Output(PlanTables({"toy_other": pd.DataFrame({"x": [1.0]})}))

    working = WarehouseResource(database=str(tmp_path / "sop.duckdb"))
    io = PlanTablesIOManager(warehouse=working, marts=MartsResource(working=working))
    result = dg.materialize(
        [toy_orphan], partition_key="2026-09", resources={"io_manager": io}, raise_on_error=False
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "PlanTables hold no plan.toy_orphan" in error.to_string()
    assert not _query(tmp_path / "sop.duckdb", "select * from information_schema.tables")
