"""How dbt nodes become Dagster assets: keys, group, owners, tags and links to the dbt docs."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator

from sop_pipeline.defs.clean.project import (
    dbt_project,
)


class SopDbtTranslator(DagsterDbtTranslator):
    """dbt sources are the ``raw`` assets of the ingest stage; models form the ``clean`` group."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        """The dbt node's asset spec with the project's keys, group, owners and docs link."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["sources"].get(unique_id) or manifest["nodes"].get(unique_id) or {}
        if node.get("resource_type") == "source":
            return spec.replace_attributes(key=dg.AssetKey(["raw", node["name"]]))
        return spec.replace_attributes(
            group_name="clean", owners=["team:data-engineering"]
        ).merge_attributes(
            tags={"sop_step": "data_gathering"},
            kinds={"dbt", "duckdb"},
            metadata=dbt_docs_metadata(unique_id),
        )


#: Where ``make dbt-docs`` serves ``dbt docs generate``'s site (dbt_project/target/).
DBT_DOCS_URL = "http://127.0.0.1:8580"


def dbt_docs_metadata(unique_id: str) -> dict[str, dg.MetadataValue]:
    """Links to the model's page in the dbt docs site and to the generated files."""
    return {
        "dbt_docs": dg.MetadataValue.url(f"{DBT_DOCS_URL}/#!/model/{unique_id}"),
        "dbt_docs_files": dg.MetadataValue.path(
            str(dbt_project.project_dir / "target" / "index.html")
        ),
    }
