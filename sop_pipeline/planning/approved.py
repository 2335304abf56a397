"""Earlier plans as approved: the forecasts that forecast accuracy and the KPIs score.

The working database keeps one forecast snapshot per plan month: that of the month's
latest run. Once executives approve a version (``plan_versions.status = 'approved'``), the
official plan of that month is the approved one, which can differ from the latest run (a
re-plan that was never approved, or an approval of an earlier version). Accuracy and the
"sales vs forecast" KPIs measure the plan the business ran on, so for every plan month with
an approved version its statistical and consensus quantities replace the snapshot's.
Months without an approved version keep the latest run's snapshot (docs/kpis.md).
"""

from __future__ import annotations

import pandas as pd

KEY = ["plan_month", "item_id", "location_id", "month"]


def prefer_approved(snapshots: pd.DataFrame, approved: pd.DataFrame | None) -> pd.DataFrame:
    """The snapshots with each approved plan's ``stat_qty`` and ``consensus_qty``.

    Args:
        snapshots: earlier plans' snapshots (``plan_month``, ``item_id``, ``location_id``,
            ``month``, ``stat_qty``, ``consensus_qty``, ...), one per plan month.
        approved: published ``plan_demand`` rows of the approved version of some plan
            months (``plan_month``, ``item_id``, ``location_id``, ``month``,
            ``stat_forecast_qty``, ``consensus_qty``), or None.

    Returns:
        A copy of ``snapshots``, same rows and columns. In the plan months ``approved``
        covers, a series the approved plan did not forecast gets 0 (as the accuracy
        definitions treat a missing forecast). ``attrs["approved_months"]`` lists them.
    """
    out = snapshots.copy()
    out.attrs["approved_months"] = []
    if approved is None or approved.empty or snapshots.empty:
        return out
    appr = approved[[*KEY, "stat_forecast_qty", "consensus_qty"]].copy()
    appr["plan_month"] = appr["plan_month"].astype(str)
    appr["month"] = pd.to_datetime(appr["month"])
    months = sorted(set(appr["plan_month"]) & set(out["plan_month"].astype(str)))
    if not months:
        return out
    keyed = out[KEY].copy()
    keyed["plan_month"] = keyed["plan_month"].astype(str)
    keyed["month"] = pd.to_datetime(keyed["month"])
    joined = keyed.merge(appr, on=KEY, how="left", validate="many_to_one")
    use = keyed["plan_month"].isin(months).to_numpy()
    out.loc[use, "consensus_qty"] = joined.loc[use, "consensus_qty"].fillna(0.0).to_numpy()
    if "stat_qty" in out.columns:
        out.loc[use, "stat_qty"] = joined.loc[use, "stat_forecast_qty"].fillna(0.0).to_numpy()
    out.attrs["approved_months"] = months
    return out
