"""The IO manager stores plan tables by plan month and hands the month's rows to downstream assets."""

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

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
