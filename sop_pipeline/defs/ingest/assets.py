"""Stage 1, data gathering: the month's ERP/CRM extracts checked against the contract into ``raw``."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from sop_pipeline.defs.metadata import raw_schema, schema_metadata
from sop_pipeline.defs.partitions import MONTHLY_RUNS, plan_month_partitions
from sop_pipeline.defs.resources import SopResource
from sop_pipeline.defs.retry import no_retry_on_validation
from sop_pipeline.ingest.contract import EXTRACTS

RAW_SPECS = [
    dg.AssetSpec(
        key=dg.AssetKey(["raw", name]),
        group_name="ingest",
        description=(
            f"Raw `{name}` extract ({extract.source.upper()}, {extract.kind}): every extract month "
            f"<= the plan month, one row per file row, key {', '.join(extract.key)}, with lineage columns."
        ),
        kinds={"duckdb", "python"},
        owners=["team:data-engineering"],
        metadata={**schema_metadata(raw_schema(extract)), "table": f"raw.{name}"},
        tags={"sop_step": "data_gathering"},
    )
    for name, extract in EXTRACTS.items()
]


@dg.multi_asset(
    specs=RAW_SPECS,
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    can_subset=False,
    pool="sop_warehouse",
)
@no_retry_on_validation()
def raw_extracts(context: dg.AssetExecutionContext, sop: SopResource, warehouse: DuckDBResource):
    """Load the landing folders up to the plan month into ``raw``; bad files stop the run."""
    from sop_pipeline.ingest.loader import load_extracts
    from sop_pipeline.ingest.raw_schema import create_raw_tables

    settings = sop.settings
    plan_month = context.partition_key
    settings.check_plan_month(plan_month)  # the partitions start earlier (defs/partitions.py)
    with warehouse.get_connection() as con:
        create_raw_tables(con)
        summary = load_extracts(
            con,
            settings.landing_dir,
            plan_month,
            max_reject_rate=settings.max_reject_rate,
            base_currency=settings.base_currency,
        )
        counts = {
            name: con.execute(
                f"select count(*) from raw.{name} where _extract_month <= ?", [plan_month]
            ).fetchone()[0]
            for name in EXTRACTS
        }
        rejected = con.execute(
            "select extract, count(*) from raw.rejects group by extract"
        ).fetchall()
    rejected_by_extract = dict(rejected)
    context.log.info(
        f"{plan_month}: {len(summary.files_loaded)} files loaded, {len(summary.files_skipped)} unchanged, "
        f"{summary.rows_rejected} rows rejected, {len(summary.restated_files)} restated files"
    )
    for note in summary.notes:
        context.log.info(note)
    for name in EXTRACTS:
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey(["raw", name]),
            metadata={
                "dagster/row_count": dg.MetadataValue.int(int(counts[name])),
                "rows_loaded_this_run": dg.MetadataValue.int(int(summary.rows_loaded.get(name, 0))),
                "rows_rejected_total": dg.MetadataValue.int(int(rejected_by_extract.get(name, 0))),
                "restated_rows_this_run": dg.MetadataValue.int(
                    int(summary.restated_rows_by_extract.get(name, 0))
                ),
            },
        )
