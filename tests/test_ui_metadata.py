"""What the Dagster UI shows for every asset: description, kinds, owners, column schema.

The asset graph is read over Dagster's GraphQL API (the one the UI uses), against the code
location of ``workspace.yaml`` loaded in a code server of its own, for every asset, not a
sample. The metadata helpers are checked on their own: typed, rounded, with units.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sop_pipeline.defs import metadata as _meta
from sop_pipeline.publish.tables import TABLES

REPO = Path(__file__).resolve().parents[1]

ASSET_NODES = """
{
  assetNodes {
    assetKey { path }
    description
    kinds
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    metadataEntries {
      label
      ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
      ... on UrlMetadataEntry { url }
    }
  }
}
"""
#: assets that are not tables: a file of many tables and an HTML report
NOT_TABLES = {"report/executive_pack"}
STAGE_KINDS = {
    "raw": {"duckdb"},
    "staging": {"dbt", "duckdb"},
    "intermediate": {"dbt", "duckdb"},
    "marts": {"dbt", "duckdb"},
    "gate": {"great_expectations"},
}


@pytest.fixture(scope="module")
def asset_nodes(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from sop_pipeline.defs.clean.project import ensure_manifest

    ensure_manifest()
    home = tmp_path_factory.mktemp("sop_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOP_HOME", str(home))
        mp.chdir(REPO)
        with (
            dg.instance_for_test() as instance,
            define_out_of_process_context(str(REPO / "workspace.yaml"), None, instance) as ctx,
        ):
            result = execute_dagster_graphql(ctx, ASSET_NODES)
    assert not result.errors, result.errors
    return result.data["assetNodes"]


def _path(node: dict) -> str:
    return "/".join(node["assetKey"]["path"])


def test_every_asset_has_a_description_naming_its_grain_kinds_and_owners(asset_nodes) -> None:
    assert len(asset_nodes) >= 60  # raw extracts, dbt models, plan tables, gate, publish, report
    for node in asset_nodes:
        name = _path(node)
        text = (node["description"] or "").lower()
        assert text, f"{name}: no description"
        if name not in NOT_TABLES:
            assert "one row per" in text or "row per" in text, (
                f"{name}: grain not named: {text[:80]}"
            )
        assert node["kinds"], f"{name}: no kinds"
        assert STAGE_KINDS.get(name.split("/")[0], set()) <= set(node["kinds"]), name
        assert node["owners"], f"{name}: no owners"
    kinds = {k for node in asset_nodes for k in node["kinds"]}
    assert {"duckdb", "dbt", "statsforecast", "highs", "great_expectations"} <= kinds


def test_every_table_asset_shows_its_column_schema_with_descriptions(asset_nodes) -> None:
    for node in asset_nodes:
        name = _path(node)
        if name in NOT_TABLES:
            continue
        schemas = [e for e in node["metadataEntries"] if e["label"] == "dagster/column_schema"]
        if name.split("/")[0] in ("staging", "intermediate", "marts"):
            # dbt models: the documented columns here, the whole schema with each build
            # (test_dbt.py::test_column_metadata_of_every_model_after_the_build)
            urls = [e["url"] for e in node["metadataEntries"] if e["label"] == "dbt_docs"]
            assert urls and urls[0].endswith("#!/model/model.sop." + name.split("/")[1]), (
                f"{name}: no link to its dbt docs page"
            )
            continue
        assert schemas, f"{name}: no dagster/column_schema"
        columns = schemas[0]["schema"]["columns"]
        assert columns and all(c["description"] for c in columns), f"{name}: undocumented columns"
    plan = {_path(n): n for n in asset_nodes}["plan/plan_demand"]
    columns = next(e for e in plan["metadataEntries"] if e["label"] == "dagster/column_schema")
    names = [c["name"] for c in columns["schema"]["columns"]]
    assert names[: len(TABLES["plan_demand"].column_names)] == TABLES["plan_demand"].column_names
    by_name = {c["name"]: c for c in columns["schema"]["columns"]}
    assert "base currency" in by_name["consensus_revenue"]["description"]
    assert by_name["month"]["type"] == "date"


def test_numbers_are_rounded_with_units_and_money_formatted() -> None:
    assert _meta.money(54915524.81350158, "USD").value == "54,915,524.81 USD"
    assert _meta.money(float("nan")).value == "n/a"
    assert _meta.qty(1234.56789).value == 1234.6
    assert _meta.share(0.973149).value == 0.9731
    assert isinstance(_meta.qty(float("inf")), type(dg.MetadataValue.null()))


def test_counts_and_previews_are_tables_not_dict_text() -> None:
    counts = _meta.count_table({"AutoETS": 12, "CrostonSBA": 30}, "model", "series")
    assert isinstance(counts, dg.TableMetadataValue)
    assert [r.data for r in counts.records] == [
        {"model": "CrostonSBA", "series": 30},
        {"model": "AutoETS", "series": 12},
    ]
    frame = pd.DataFrame(
        {
            "family": ["Pumps"],
            "month": [pd.Timestamp("2026-07-01")],
            "consensus_revenue": [12345.678901],
            "stat_model": [None],
        }
    )
    shown = _meta.preview(frame, table="plan_demand")
    assert isinstance(shown, dg.TableMetadataValue)
    assert shown.records[0].data == {
        "family": "Pumps",
        "month": "2026-07-01",
        "consensus_revenue": 12345.68,
        "stat_model": None,
    }
    described = {c.name: c.description for c in shown.schema.columns}
    assert "base currency" in described["consensus_revenue"]


def test_raw_schema_lists_contract_and_lineage_columns() -> None:
    from sop_pipeline.ingest.contract import EXTRACTS, LINEAGE_COLUMNS

    schema = _meta.raw_schema(EXTRACTS["sales_orders"])
    names = [c.name for c in schema.columns]
    assert names == [*EXTRACTS["sales_orders"].column_names, *LINEAGE_COLUMNS]
    source_row = next(c for c in schema.columns if c.name == "_source_row")
    assert "line number" in source_row.description.lower()
