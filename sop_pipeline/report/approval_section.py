"""The pack's "Plan status" section: candidate or approved (by whom, when), and for a
candidate what changed against the last approved plan (consensus by family).

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


def status_section(data) -> str:
    """HTML of the status section for a ``PackData``."""
    from sop_pipeline.report.pack import _esc, _num, fmt_money, fmt_qty

    v = data.version_row
    status = v.get("status")
    status = "candidate" if status is None or pd.isna(status) else str(status)
    when = v.get("approved_at")
    when_text = "" if when is None or pd.isna(when) else f"{pd.Timestamp(when):%Y-%m-%d %H:%M} UTC"
    note = v.get("decision_note")
    note_html = "" if note is None or pd.isna(note) else f" — “{_esc(note)}”"
    scenario = v.get("chosen_scenario")
    scen_html = (
        ""
        if scenario is None or pd.isna(scenario)
        else f"; chosen scenario <b>{_esc(scenario)}</b>"
    )
    if status == "approved":
        head = (
            f"<p class='ok' data-field='status'>Approved by <b>{_esc(v.get('approved_by'))}</b> "
            f"at {_esc(when_text)}{scen_html}{note_html}. This is the official plan of "
            f"{_esc(data.plan_month)} (the <code>_approved</code> views).</p>"
        )
    elif status == "superseded":
        head = (
            f"<p class='nodata' data-field='status'>Superseded: approved by "
            f"{_esc(v.get('approved_by'))} at {_esc(when_text)}, then another version of "
            f"{_esc(data.plan_month)} was approved.</p>"
        )
    elif status == "rejected":
        head = f"<p class='nodata' data-field='status'>Rejected{note_html}.</p>"
    else:
        head = (
            "<p class='nodata' data-field='status'>Candidate: awaiting the executives' decision "
            f"(<code>sop approve --month {_esc(data.plan_month)} --version {data.plan_version} "
            "--by NAME</code>).</p>"
        )
    ref = getattr(data, "approved", None)
    if status == "approved" or ref is None:
        if ref is None and status != "approved":
            head += "<p class='muted'>No approved plan to compare with yet.</p>"
        return head
    change = change_vs_approved(data.table("plan_demand"), ref)
    cur = data.base_currency
    by = f" (approved by {_esc(ref.approved_by)})" if ref.approved_by else ""
    rows = "".join(
        f"<tr><td>{_esc(r.family)}</td>"
        f"<td class='r'>{_num(r.approved_qty, fmt_qty(r.approved_qty))}</td>"
        f"<td class='r'>{_num(r.qty, fmt_qty(r.qty))}</td>"
        f"<td class='r {'neg' if r.delta_qty < 0 else 'pos'}'>{_num(r.delta_qty, fmt_qty(r.delta_qty))}</td>"
        f"<td class='r {'neg' if r.delta_revenue < 0 else 'pos'}'>"
        f"{_num(r.delta_revenue, fmt_money(r.delta_revenue, cur))}</td></tr>"
        for r in change.itertuples(index=False)
    )
    total = change[["approved_qty", "qty", "delta_qty", "delta_revenue"]].sum()
    rows += (
        "<tr class='total'><td>Total</td>"
        f"<td class='r'>{fmt_qty(total['approved_qty'])}</td><td class='r'>{fmt_qty(total['qty'])}</td>"
        f"<td class='r'>{fmt_qty(total['delta_qty'])}</td>"
        f"<td class='r'>{fmt_money(total['delta_revenue'], cur)}</td></tr>"
    )
    months = int(change["months"].iloc[0]) if len(change) else 0
    return (
        head
        + f"<h3>Change against the last approved plan: {_esc(ref.plan_month)} v{ref.plan_version}{by}</h3>"
        + f"<p class='muted'>Consensus demand over the {months} month(s) both plans cover.</p>"
        + "<table class='approval-delta'><thead><tr><th>family</th><th class='r'>approved qty</th>"
        + "<th class='r'>this plan qty</th><th class='r'>Δ qty</th>"
        + f"<th class='r'>Δ revenue ({_esc(cur)})</th></tr></thead><tbody>{rows}</tbody></table>"
    )
