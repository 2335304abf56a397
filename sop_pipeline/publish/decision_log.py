"""The rules of executive decisions on published plan versions, on DataFrames.

The status of every version derived from the ``plan_decisions`` log
(:func:`version_statuses`), which version a decision targets and whether it may be taken
(``_resolve``), and the checks of the free-text fields.
:mod:`sop_pipeline.publish.approval` applies them to the published file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from sop_pipeline.errors import OperationalError

STATUSES = ("candidate", "approved", "rejected", "superseded")

DECISIONS = ("approved", "rejected")

STATUS_COLUMNS = ("status", "approved_by", "approved_at", "decision_note", "chosen_scenario")

MAX_TEXT = 2000


class ApprovalError(OperationalError, RuntimeError):
    """The decision was refused; nothing changed. ``exit_code``: 1 refused, 2 unknown input."""

    exit_code = 1


class UnknownPlanError(ApprovalError):
    """The month, version or scenario named does not exist in ``published/``."""

    exit_code = 2


def version_statuses(versions: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """The status columns of ``plan_versions``, replayed from the decision log.

    Args:
        versions: ``plan_month``, ``plan_version`` (one row per published version).
        decisions: ``plan_decisions`` rows (``decision_id`` gives the order).

    Returns:
        ``plan_month``, ``plan_version`` and :data:`STATUS_COLUMNS`, one row per version.
        ``approved_by`` / ``approved_at`` are those of the version's latest approval (kept
        when it is superseded); ``decision_note`` / ``chosen_scenario`` of its latest decision.
    """
    state: dict[tuple[str, int], dict[str, object]] = {
        (str(m), int(v)): {
            "status": "candidate",
            "approved_by": None,
            "approved_at": pd.NaT,
            "decision_note": None,
            "chosen_scenario": None,
        }
        for m, v in zip(versions["plan_month"], versions["plan_version"], strict=True)
    }
    approved: dict[str, int] = {}
    for d in decisions.sort_values("decision_id").itertuples(index=False):
        key = (str(d.plan_month), int(d.plan_version))
        if key not in state:
            continue
        row = state[key]
        row["decision_note"] = None if pd.isna(d.note) else d.note
        row["chosen_scenario"] = None if pd.isna(d.chosen_scenario) else d.chosen_scenario
        if d.decision == "approved":
            previous = approved.get(key[0])
            if previous is not None and previous != key[1]:
                state[(key[0], previous)]["status"] = "superseded"
            approved[key[0]] = key[1]
            row.update(status="approved", approved_by=d.decided_by, approved_at=d.decided_at)
        else:
            row["status"] = "rejected"
            if approved.get(key[0]) == key[1]:
                del approved[key[0]]
    out = pd.DataFrame(
        [{"plan_month": m, "plan_version": v, **row} for (m, v), row in state.items()],
        columns=["plan_month", "plan_version", *STATUS_COLUMNS],
    )
    out["approved_at"] = pd.to_datetime(out["approved_at"]).astype("datetime64[ns]")
    return out


def _check_text(value: str | None, what: str, *, required: bool) -> str | None:
    if value is None or not str(value).strip():
        if required:
            raise UnknownPlanError(f"{what} is required (a non-empty text).")
        return None
    value = str(value).strip()
    if len(value) > MAX_TEXT:
        raise UnknownPlanError(f"{what} is {len(value)} characters; keep it under {MAX_TEXT}.")
    return value


def pick_version(
    versions: Iterable[Any], version: int | None, plan_month: str, error: type[Exception]
) -> int:
    """The version asked for (the latest when None) among a month's published versions.

    Args:
        versions: the month's published version numbers (any iterable of ints).
        version: the version asked for, or None for the latest.
        plan_month: ``YYYY-MM``, for the message.
        error: the exception to raise (the caller's own error type).

    Raises:
        error: ``version`` is not one of them; the message lists the published ones.
    """
    numbers = sorted(int(v) for v in versions)
    if version is None:
        return numbers[-1]
    if int(version) not in numbers:
        raise error(
            f"plan {plan_month} has no version {version} (published versions: "
            f"{', '.join(map(str, numbers))})."
        )
    return int(version)


def _resolve(
    versions: pd.DataFrame,
    statuses: pd.DataFrame,
    scenarios: pd.DataFrame,
    plan_month: str,
    version: int | None,
    decision: str,
    scenario: str | None,
) -> tuple[int, int | None]:
    """Check the decision against the rules; return (version, version it supersedes)."""
    published = sorted(set(versions["plan_month"].astype(str)))
    if plan_month not in published:
        shown = ", ".join(published[-6:]) or "none"
        raise UnknownPlanError(
            f"plan month {plan_month} is not published (published months: {shown}); "
            f"run `sop run --month {plan_month}` first."
        )
    month_rows = versions[versions["plan_month"] == plan_month]
    version = pick_version(month_rows["plan_version"], version, plan_month, UnknownPlanError)
    row = month_rows[month_rows["plan_version"] == version].iloc[0]
    st = statuses[(statuses["plan_month"] == plan_month) & (statuses["plan_version"] == version)]
    status = st["status"].iloc[0]
    approved_now = statuses[
        (statuses["plan_month"] == plan_month) & (statuses["status"] == "approved")
    ]["plan_version"]
    current = int(approved_now.iloc[0]) if len(approved_now) else None
    if decision == "approved":
        failed, passed = int(row["checks_failed"] or 0), int(row["checks_passed"] or 0)
        if failed or not passed:
            raise ApprovalError(
                f"plan {plan_month} v{version} did not pass the gate ({failed} check(s) failed, "
                f"{passed} passed); only a gated version can be approved. Fix what the gate "
                f"reported and publish a new version with `sop run --month {plan_month}`."
            )
        if status == "approved":
            raise ApprovalError(f"plan {plan_month} v{version} is already the approved plan.")
        if scenario is not None:
            names = sorted(
                scenarios[
                    (scenarios["plan_month"] == plan_month) & (scenarios["plan_version"] == version)
                ]["scenario"].astype(str)
            )
            if scenario not in names:
                raise UnknownPlanError(
                    f"scenario {scenario!r} is not in scenario_comparison of plan {plan_month} "
                    f"v{version} (scenarios: {', '.join(names) or 'none'})."
                )
        return version, current
    if status == "approved":
        raise ApprovalError(
            f"plan {plan_month} v{version} is the approved plan; to replace it, approve another "
            f"version (it supersedes v{version}) rather than rejecting it."
        )
    if status == "rejected":
        raise ApprovalError(f"plan {plan_month} v{version} is already rejected.")
    return version, None
