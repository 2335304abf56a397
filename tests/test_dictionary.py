"""The data dictionary: one source for the file's COMMENTs, the Parquet schema and the doc."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sop_pipeline.planning.kpis import DEFAULT_TARGETS, RENAMED_KPIS, resolve_targets
from sop_pipeline.publish import dictionary
from sop_pipeline.publish.tables import PLAN_VERSIONS_EXTRA, RECORD_TABLES, TABLES
from sop_pipeline.publish.writer import publish_plan

MONTH = "2026-06"


def test_committed_doc_is_the_generated_one() -> None:
    committed = dictionary.DOC_PATH.read_text(encoding="utf-8")
    assert committed == dictionary.render_markdown(), (
        "docs/published_tables.md is stale: run `python -m sop_pipeline.publish.dictionary`"
    )
    assert dictionary.main(["--check"]) == 0


def test_check_mode_fails_on_a_stale_doc(tmp_path: Path, capsys) -> None:
    stale = tmp_path / "published_tables.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert dictionary.main(["--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_every_stable_column_has_a_description_with_a_unit_where_it_is_a_number() -> None:
    columns = {name: spec.column_names for name, spec in TABLES.items()}
    columns["plan_versions"] += [c for c, _ in PLAN_VERSIONS_EXTRA]
    assert dictionary.missing_descriptions(columns) == []
    units = ("units", "hours", "days", "share 0-1", "ratio", "base currency", "count", "(unit of")
    for name, spec in TABLES.items():
        assert dictionary.table_description(name).endswith(spec.grain)
        for column, duck_type in spec.columns:
            text = dictionary.column_description(name, column)
            if duck_type == "DOUBLE":
                assert any(u in text for u in units), f"{name}.{column}: no unit in {text!r}"


def test_money_columns_name_the_currency_and_a_difference_is_not_called_a_ratio() -> None:
    for table, column in [
        ("plan_demand", "consensus_revenue"),
        ("plan_gaps", "gap_value"),
        ("plan_financials", "revenue"),
        ("plan_financials", "cogs"),
        ("plan_financials", "inventory_value"),
        ("plan_financials", "revenue_vs_aop"),
    ]:
        assert "base currency" in dictionary.column_description(table, column)
    assert (
        "difference" in dictionary.column_description("plan_financials", "revenue_vs_aop").lower()
    )
    # the KPI of the same name was a ratio: it has its own name now, the old one is refused
    assert "revenue_vs_aop" not in DEFAULT_TARGETS and "revenue_to_aop_ratio" in DEFAULT_TARGETS
    with pytest.raises(ValueError, match="renamed to 'revenue_to_aop_ratio'"):
        resolve_targets({"revenue_vs_aop": 1.0})
    assert RENAMED_KPIS == {"revenue_vs_aop": "revenue_to_aop_ratio"}


def _publish(tmp_path: Path) -> Path:
    """A publication with zero rows in most tables and one row with an extra column."""
    inventory = pd.DataFrame(
        {
            "item_id": ["A"],
            "location_id": ["L1"],
            "month": [pd.Timestamp("2026-07-01")],
            **{c: [1.0] for c, t in TABLES["plan_inventory"].columns[5:] if t == "DOUBLE"},
            "served_qty": [1.0],  # an extra (non-stable) column the supply stage publishes
        }
    )
    publish_plan(
        tmp_path,
        MONTH,
        {"plan_inventory": inventory},
        run_id="run-1",
        input_fingerprint="f" * 64,
        code_version="0.1.0+test",
        checks_passed=3,
        checks_failed=0,
        base_currency="EUR",
    )
    return tmp_path


def test_published_file_carries_a_comment_on_every_table_view_and_column(tmp_path: Path) -> None:
    pub = _publish(tmp_path)
    con = duckdb.connect(str(pub / "sop.duckdb"), read_only=True)
    try:
        cols = con.execute(
            "select table_name, column_name, comment from duckdb_columns() "
            "where database_name = 'sop' and schema_name = 'main'"
        ).df()
        tables = con.execute(
            "select table_name as name, comment from duckdb_tables() where database_name = 'sop' "
            "union all select view_name, comment from duckdb_views() "
            "where database_name = 'sop' and not internal"
        ).df()
        currency = con.execute("select base_currency from plan_versions").fetchall()
    finally:
        con.close()
    names = set(tables["name"])
    for table in TABLES:
        assert table in names
        if table not in RECORD_TABLES:
            assert {f"{table}_current", f"{table}_latest_versions"} <= names
    blank = cols[cols["comment"].fillna("").str.strip() == ""]
    assert blank.empty, f"columns without a comment: {blank[['table_name', 'column_name']].values}"
    assert (tables["comment"].fillna("").str.len() > 20).all()
    # view columns say the same as the table's; the view's comment says which plan it shows
    c = cols.set_index(["table_name", "column_name"])["comment"]
    assert c[("plan_inventory_current", "served_qty")] == c[("plan_inventory", "served_qty")]
    assert "served" in c[("plan_inventory", "served_qty")]
    view = tables.set_index("name")["comment"]["plan_demand_current"]
    assert "latest plan" in view and TABLES["plan_demand"].grain in view
    assert currency == [("EUR",)]


def test_parquet_schema_carries_the_same_descriptions(tmp_path: Path) -> None:
    pub = _publish(tmp_path)
    con = duckdb.connect(str(pub / "sop.duckdb"), read_only=True)
    try:
        comments = {
            (t, c): text
            for t, c, text in con.execute(
                "select table_name, column_name, comment from duckdb_columns() "
                "where database_name = 'sop'"
            ).fetchall()
        }
    finally:
        con.close()
    for table in TABLES:
        path = pub / "parquet" / table / f"plan_month={MONTH}" / "plan_version=1" / "part-0.parquet"
        schema = pq.read_schema(path)
        assert schema.metadata[b"description"].decode() == dictionary.table_description(table)
        for field in schema:
            assert field.metadata, f"{table}.{field.name}: no field metadata"
            assert field.metadata[b"description"].decode() == comments[(table, field.name)]
    # the data itself reads back as before (types and values)
    df = pd.read_parquet(
        pub / "parquet" / "plan_inventory" / f"plan_month={MONTH}" / "plan_version=1"
    )
    assert df["served_qty"].tolist() == [1.0] and df["plan_version"].tolist() == [1]
