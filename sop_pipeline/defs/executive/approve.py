"""The ``sop_approve`` job: executives approve or reject a published plan from the launchpad.

Launch it in the Dagster UI (Jobs → sop_approve → Launchpad) with, for example::

    ops:
      decide_plan:
        config: {month: "2026-06", decision: approve, by: "COO", version: 2,
                 scenario: "demand_up_10", note: "approved in the executive S&OP"}

It calls the same function as ``sop approve`` / ``sop reject``
(:mod:`sop_pipeline.publish.approval`), under the same run lock.
"""

import dagster as dg

from sop_pipeline.defs.resources import SopResource


class DecisionConfig(dg.Config):
    """What the executives decided about one published plan version."""

    month: str
    by: str
    decision: str = "approve"
    version: int | None = None
    scenario: str | None = None
    note: str | None = None


@dg.op(
    description="Approve (or reject) a published plan version: plan_decisions + plan_versions.status.",
    tags={"sop_step": "approve"},
)
def decide_plan(context: dg.OpExecutionContext, config: DecisionConfig, sop: SopResource) -> None:
    """Record the decision in the published file and report it as an observation of ``sop_plan``."""
    from sop_pipeline.publish.approval import approve_plan, reject_plan
    from sop_pipeline.publish.decision_log import ApprovalError

    if config.decision not in ("approve", "reject"):
        raise dg.Failure(f"decision must be 'approve' or 'reject', not {config.decision!r}.")
    try:
        if config.decision == "approve":
            result = approve_plan(
                sop.settings,
                config.month,
                by=config.by,
                version=config.version,
                scenario=config.scenario,
                note=config.note,
                on_wait=context.log.warning,
            )
        else:
            if config.version is None or not config.note:
                raise dg.Failure("a rejection names the version and a note (why).")
            result = reject_plan(
                sop.settings,
                config.month,
                version=config.version,
                by=config.by,
                note=config.note,
                on_wait=context.log.warning,
            )
    except ApprovalError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey(["published", "sop_plan"]),
            partition=result.plan_month,
            metadata={
                "decision": result.decision,
                "plan_version": result.plan_version,
                "decided_by": result.decided_by,
                "decided_at": str(result.decided_at),
                "superseded_version": result.superseded_version or 0,
            },
        )
    )
    context.log.info(
        f"plan {result.plan_month} v{result.plan_version} {result.decision} by {result.decided_by}"
    )


@dg.job(
    description="Executive decision on a published plan (approve / reject); see sop approve.",
    tags={"sop_step": "approve"},
)
def sop_approve():
    """The one-op job that records an executive decision."""
    decide_plan()
