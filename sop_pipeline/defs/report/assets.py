"""Report: the executive S&OP pack, rendered from the published tables after publication."""

import dagster as dg

from sop_pipeline.defs.partitions import MONTHLY_RUNS, plan_month_partitions
from sop_pipeline.defs.resources import SopResource


@dg.asset(
    key=dg.AssetKey(["report", "executive_pack"]),
    group_name="report",
    partitions_def=plan_month_partitions,
    backfill_policy=MONTHLY_RUNS,
    deps=[dg.AssetKey(["published", "sop_plan"])],
    description="The executive S&OP pack of the published plan: one self-contained HTML file per plan version.",
    owners=["team:sop-process"],
    tags={"sop_step": "report"},
    kinds={"html", "plotly"},
    metadata={"format": dg.MetadataValue.text("one self-contained HTML file per plan version")},
    pool="sop_warehouse",
)
def executive_pack(context: dg.AssetExecutionContext, sop: SopResource):
    """Charts, KPI traffic lights, exceptions and decisions, from the published tables."""
    from sop_pipeline.report.pack import write_pack_from_published

    path = write_pack_from_published(sop.settings, context.partition_key)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size_kb": dg.MetadataValue.int(path.stat().st_size // 1024),
        }
    )
