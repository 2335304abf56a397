"""The data of the pack's "Plan status" section.

Candidate or approved (by whom, when), and for a candidate what changed against the last
approved plan (consensus by family). ``templates/status.html.j2`` shows it.

The comparison plan is the approved version of the same plan month when there is one
(e.g. v3 candidate after v2 was approved), otherwise the latest approved plan of an earlier
month, compared over the months both cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sop_pipeline.publish.writer import PublishError, read_published


@dataclass(frozen=True)
class ApprovedReference:
    """The last approved plan a candidate is compared with.

    Attributes:
        plan_month: its plan month.
        plan_version: its version.
        approved_by: who approved it.
        approved_at: when (UTC).
        by_family: family × month consensus_qty and consensus_revenue of that plan.
    """

    plan_month: str
    plan_version: int
    approved_by: str | None
    approved_at: object
    by_family: pd.DataFrame


def _family_totals(demand: pd.DataFrame) -> pd.DataFrame:
    out = demand.groupby(["family", "month"], as_index=False, sort=True)[
        ["consensus_qty", "consensus_revenue"]
    ].sum()
    out["month"] = pd.to_datetime(out["month"])
    return out


def load_approved_reference(
    published_dir: Path, month: str, version: int
) -> ApprovedReference | None:
    """The approved plan to compare version ``version`` of ``month`` with, or None."""
    try:
        versions = read_published(published_dir, "plan_versions")
    except PublishError:
        return None
    if "status" not in versions.columns:
        return None
    approved = versions[(versions["status"] == "approved") & (versions["plan_month"] <= month)]
    approved = approved[
        ~((approved["plan_month"] == month) & (approved["plan_version"] == int(version)))
    ]
    if approved.empty:
        return None
    ref = approved.sort_values(["plan_month", "plan_version"]).iloc[-1]
    demand = read_published(
        published_dir,
        "plan_demand",
        plan_month=str(ref["plan_month"]),
        version=int(ref["plan_version"]),
    )
    return ApprovedReference(
        plan_month=str(ref["plan_month"]),
        plan_version=int(ref["plan_version"]),
        approved_by=None if pd.isna(ref["approved_by"]) else str(ref["approved_by"]),
        approved_at=ref["approved_at"],
        by_family=_family_totals(demand),
    )


def change_vs_approved(demand: pd.DataFrame, ref: ApprovedReference) -> pd.DataFrame:
    """Consensus qty and revenue per family of this plan vs the approved one.

    Over the months both plans cover. Returns family, months, qty, approved_qty, delta_qty,
    revenue, approved_revenue, delta_revenue (a family only one plan has counts as 0 in
    the other).
    """
    mine = _family_totals(demand)
    common = sorted(set(mine["month"]) & set(ref.by_family["month"]))
    a = (
        mine[mine["month"].isin(common)]
        .groupby("family")[["consensus_qty", "consensus_revenue"]]
        .sum()
    )
    b = (
        ref.by_family[ref.by_family["month"].isin(common)]
        .groupby("family")[["consensus_qty", "consensus_revenue"]]
        .sum()
    )
    both = a.join(b, how="outer", lsuffix="", rsuffix="_approved").fillna(0.0)
    out = pd.DataFrame(
        {
            "family": both.index,
            "months": len(common),
            "qty": both["consensus_qty"].to_numpy(),
            "approved_qty": both["consensus_qty_approved"].to_numpy(),
            "revenue": both["consensus_revenue"].to_numpy(),
            "approved_revenue": both["consensus_revenue_approved"].to_numpy(),
        }
    )
    out["delta_qty"] = out["qty"] - out["approved_qty"]
    out["delta_revenue"] = out["revenue"] - out["approved_revenue"]
    return out.sort_values("family").reset_index(drop=True)


def status(data) -> dict:
    """The data of the status section (``templates/status.html.j2``) for a ``PackData``.

    Returns:
        status (candidate, approved, superseded or rejected), who approved it and when, the
        chosen scenario and the decision note; for a version that is not the approved one,
        ``change``: the last approved plan and the family rows of :func:`change_vs_approved`.
    """
    v = data.version_row
    state = v.get("status")
    state = "candidate" if state is None or pd.isna(state) else str(state)
    when = v.get("approved_at")
    note = v.get("decision_note")
    scenario = v.get("chosen_scenario")
    out = {
        "status": state,
        "plan_month": data.plan_month,
        "plan_version": data.plan_version,
        "approved_by": v.get("approved_by"),
        "when": "" if when is None or pd.isna(when) else f"{pd.Timestamp(when):%Y-%m-%d %H:%M} UTC",
        "note": None if note is None or pd.isna(note) else note,
        "scenario": None if scenario is None or pd.isna(scenario) else scenario,
        "change": None,
        "has_reference": getattr(data, "approved", None) is not None,
    }
    ref = getattr(data, "approved", None)
    if state == "approved" or ref is None:
        return out
    change = change_vs_approved(data.table("plan_demand"), ref)
    out["change"] = {
        "ref": ref,
        "rows": change.to_dict("records"),
        "total": change[["approved_qty", "qty", "delta_qty", "delta_revenue"]].sum().to_dict(),
        "months": int(change["months"].iloc[0]) if len(change) else 0,
        "cur": data.base_currency,
    }
    return out
