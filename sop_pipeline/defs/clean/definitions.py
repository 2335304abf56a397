"""Clean: the dbt project as assets (one per model), its tests as checks."""

import dagster as dg

from sop_pipeline.defs.clean.assets import sop_dbt_models

defs = dg.Definitions(
    assets=[sop_dbt_models],
)
