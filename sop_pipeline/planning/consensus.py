"""Consensus demand: statistical forecast + incremental CRM pipeline + planners' overrides.

One entry point, :func:`build_consensus`; :func:`consensus_plan` adds what the plan expected by
lag (``forecast_snapshots``, scored by later months), as the ``plan_demand`` asset stores it. The rules (see ``docs/forecasting.md``):

* CRM: weighted qty = expected_qty × probability, spread over the close month and the next
  (``CRM_SPREAD``); an overdue open opportunity counts from the first planned month. Per scope
  (item or family) and month only the part above ``crm_baseline_share`` × the statistical
  forecast is added, because the forecast already carries the run-rate business that the
  pipeline also lists. Scopes without demand in the last 12 months have no run-rate: their
  pipeline counts in full. The increment is spread to the scope's item × location rows in
  proportion to the statistical forecast.
* Overrides: qty on an item spreads over its locations ∝ stat; qty on a family spreads over
  its items × locations ∝ (stat + crm); pct multiplies (stat + crm) of every row in scope.
  Several overrides on one scope and month add up. Every override × row it touched is logged
  with its reason code.
* consensus = max(0, stat + crm + override); the clipped amount is kept in ``clipped_qty``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.errors import InvalidInputError

CRM_SPREAD = (0.5, 0.5)
"""Share of an opportunity's weighted qty in its close month and in the month after."""
CRM_BASELINE_SHARE = 1.0
"""Share of the statistical forecast assumed to be pipeline-like business already."""
RUN_RATE_MONTHS = 12
PLAN_DEMAND_COLUMNS = [
    "item_id",
    "location_id",
    "family",
    "month",
    "stat_forecast_qty",
    "stat_lo80_qty",
    "stat_hi80_qty",
    "stat_lo95_qty",
    "stat_hi95_qty",
    "stat_model",
    "crm_adjustment_qty",
    "override_qty",
    "consensus_qty",
    "consensus_revenue",
]
EXTRA_COLUMNS = ["clipped_qty", "override_reason_code", "override_author"]
OVERRIDE_LOG_COLUMNS = [
    "override_id",
    "scope_type",
    "scope_id",
    "adjustment_type",
    "adjustment_value",
    "item_id",
    "location_id",
    "month",
    "qty_effect",
    "reason_code",
    "author",
    "comment",
]
#: what a plan's forecast snapshot keeps of it, before ``lag`` and ``unit_price``
SNAPSHOT_COLUMNS = [
    "item_id",
    "location_id",
    "family",
    "month",
    "naive_qty",
    "stat_qty",
    "consensus_qty",
]
_QTY_COLUMNS = [
    "stat_forecast_qty",
    "crm_adjustment_qty",
    "override_qty",
    "consensus_qty",
    "consensus_revenue",
]
# Sums of floats in different orders differ in the last bits; anything above this is a real gap.
TOTAL_TOLERANCE = 1e-6


class ConsensusInputError(InvalidInputError, ValueError):
    """An opportunity or override names something the plan does not know; the message says which."""


@dataclass
class ConsensusResult:
    """What :func:`build_consensus` returns.

    Attributes:
        plan_demand: published ``plan_demand`` columns (DESIGN §5) + ``clipped_qty``.
        override_log: one row per override × item × location × month it touched.
        crm_detail: weighted and incremental pipeline per scope × month (why CRM added what).
        ignored_overrides: overrides for months outside the horizon (kept, not applied).
        forecast_snapshots: what this plan expected by lag (:func:`forecast_snapshot`; set
            by :func:`consensus_plan`, None from :func:`build_consensus`).
    """

    plan_demand: pd.DataFrame
    override_log: pd.DataFrame
    crm_detail: pd.DataFrame
    ignored_overrides: pd.DataFrame = field(default_factory=pd.DataFrame)
    forecast_snapshots: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The plan tables of the stage: ``plan_demand`` first, then its side tables."""
        out = {"plan_demand": self.plan_demand, "override_log": self.override_log}
        if self.forecast_snapshots is not None:
            out["forecast_snapshots"] = self.forecast_snapshots
        return out

    def family_totals(self) -> pd.DataFrame:
        """Quantities and revenue per family × month, summed from the item rows."""
        return self.plan_demand.groupby(["family", "month"], as_index=False, sort=True)[
            _QTY_COLUMNS
        ].sum()

    def totals(self) -> dict[str, float]:
        """Grand totals over the horizon (for run metadata)."""
        return {c: float(self.plan_demand[c].sum()) for c in _QTY_COLUMNS}

    def check(self) -> list[str]:
        """Consistency problems (empty when the plan adds up).

        Checks that family and total levels equal the item rows, that consensus is
        stat + crm + override (+ clipped), that each qty override's log adds up to its value
        and that revenue is qty × price.

        Returns:
            Human-readable problems, one per failed identity.
        """
        pd_ = self.plan_demand
        problems = []
        fam = self.family_totals()
        for c in _QTY_COLUMNS:
            gap = abs(fam[c].sum() - pd_[c].sum())
            if gap > TOTAL_TOLERANCE * max(1.0, abs(pd_[c].sum())):
                problems.append(f"family totals of {c} differ from the item rows by {gap:.6f}")
        lhs = pd_["consensus_qty"] - pd_["clipped_qty"]
        rhs = pd_["stat_forecast_qty"] + pd_["crm_adjustment_qty"] + pd_["override_qty"]
        bad = ~np.isclose(lhs, rhs, rtol=1e-9, atol=TOTAL_TOLERANCE)
        if bad.any():
            problems.append(f"{int(bad.sum())} row(s) where consensus ≠ stat + crm + override")
        log = self.override_log
        if len(log):
            qty = log[log["adjustment_type"] == "qty"]
            by_override = qty.groupby("override_id").agg(
                effect=("qty_effect", "sum"), value=("adjustment_value", "first")
            )
            off = by_override[
                ~np.isclose(
                    by_override["effect"], by_override["value"], rtol=1e-9, atol=TOTAL_TOLERANCE
                )
            ]
            for oid, row in off.iterrows():
                problems.append(
                    f"override {oid}: applied {row['effect']:.6f} of {row['value']:.6f}"
                )
            applied = log.groupby(["item_id", "location_id", "month"])["qty_effect"].sum()
            joined = pd_.set_index(["item_id", "location_id", "month"])["override_qty"]
            diff = (joined.reindex(applied.index) - applied).abs()
            if (diff > TOTAL_TOLERANCE).any():
                problems.append("override_qty does not match the override log")
        return problems


def _require(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ConsensusInputError(f"{name} is missing column(s) {missing}.")


def _month(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.to_period("M").dt.to_timestamp()


def _allocate(
    targets: pd.DataFrame,
    key_cols: list[str],
    totals: pd.DataFrame,
    weight_col: str,
    value_col: str,
) -> pd.DataFrame:
    """Spread ``totals[value_col]`` over the matching ``targets`` rows ∝ ``weight_col``.

    Rows of a key whose weights are all zero share equally, so nothing is ever dropped.

    Returns:
        ``targets`` rows (with an ``_row`` id) joined to the totals with an ``alloc`` column.
    """
    merged = targets.merge(totals, on=key_cols, how="inner")
    merged["_w"] = merged[weight_col].clip(lower=0.0)
    group = merged.groupby("_total_id", sort=False)["_w"]
    w_sum = group.transform("sum")
    count = group.transform("size")
    share = np.where(w_sum > 0, merged["_w"] / w_sum.where(w_sum > 0, 1.0), 1.0 / count)
    merged["alloc"] = merged[value_col] * share
    return merged


def _crm_adjustment(
    plan: pd.DataFrame,
    items: pd.DataFrame,
    pipeline: pd.DataFrame,
    history: pd.DataFrame,
    months: pd.DatetimeIndex,
    baseline_share: float,
) -> tuple[pd.Series, pd.DataFrame]:
    detail_cols = [
        "scope_type",
        "scope_id",
        "month",
        "weighted_qty",
        "baseline_qty",
        "incremental_qty",
    ]
    if pipeline is None or pipeline.empty:
        return pd.Series(0.0, index=plan.index), pd.DataFrame(columns=detail_cols)
    _require(
        pipeline,
        "pipeline",
        ["opportunity_id", "item_id", "family", "expected_qty", "probability", "close_month"],
    )
    opp = pipeline.copy()
    prob = pd.to_numeric(opp["probability"], errors="coerce")
    bad = opp[prob.isna() | (prob < 0) | (prob > 1)]
    if len(bad):
        row = bad.iloc[0]
        raise ConsensusInputError(
            f"opportunity {row['opportunity_id']!r}: probability {row['probability']!r} is not a fraction "
            "between 0 and 1 (write 40% as 0.4)."
        )
    known_items = set(items["item_id"])
    has_item = opp["item_id"].notna()
    unknown = opp[has_item & ~opp["item_id"].isin(known_items)]
    if len(unknown):
        row = unknown.iloc[0]
        raise ConsensusInputError(
            f"opportunity {row['opportunity_id']!r} names item {row['item_id']!r}, which is not in dim_items; "
            "fix the item code in the CRM or add the item to the items extract."
        )
    forecast_items = set(plan["item_id"])
    unplanned = opp[has_item & ~opp["item_id"].isin(forecast_items)]
    if len(unplanned):
        row = unplanned.iloc[0]
        raise ConsensusInputError(
            f"opportunity {row['opportunity_id']!r} names item {row['item_id']!r}, which has no forecast "
            "location (no demand history and not a new item); give the item a location or move the "
            "opportunity to its family."
        )
    families = set(plan["family"])
    no_family = opp[~has_item & ~opp["family"].isin(families)]
    if len(no_family):
        row = no_family.iloc[0]
        raise ConsensusInputError(
            f"opportunity {row['opportunity_id']!r} names family {row['family']!r}, which has no item in the "
            "forecast; fix the family in the CRM or the items extract."
        )
    opp["scope_type"] = np.where(has_item, "item", "family")
    opp["scope_id"] = np.where(has_item, opp["item_id"], opp["family"])
    opp["weighted"] = pd.to_numeric(opp["expected_qty"]).clip(lower=0.0) * prob
    # An open opportunity past its close date is still expected: it counts from the first month.
    close = _month(opp["close_month"]).clip(lower=months[0])
    spread = [
        opp.assign(month=close + pd.DateOffset(months=k), weighted=opp["weighted"] * share)
        for k, share in enumerate(CRM_SPREAD)
    ]
    placed = pd.concat(spread, ignore_index=True)
    placed = placed[placed["month"].isin(months)]
    weighted = placed.groupby(["scope_type", "scope_id", "month"], as_index=False, sort=True)[
        "weighted"
    ].sum()

    item_stat = plan.groupby(["item_id", "month"], as_index=False)["stat_forecast_qty"].sum()
    fam_stat = plan.groupby(["family", "month"], as_index=False)["stat_forecast_qty"].sum()
    stat = pd.concat(
        [
            item_stat.rename(columns={"item_id": "scope_id"}).assign(scope_type="item"),
            fam_stat.rename(columns={"family": "scope_id"}).assign(scope_type="family"),
        ],
        ignore_index=True,
    )
    detail = weighted.merge(stat, on=["scope_type", "scope_id", "month"], how="left").fillna(
        {"stat_forecast_qty": 0.0}
    )
    active_items, active_families = _run_rate_scopes(history, items, months[0])
    has_run_rate = np.where(
        detail["scope_type"] == "item",
        detail["scope_id"].isin(active_items),
        detail["scope_id"].isin(active_families),
    )
    detail["weighted_qty"] = detail["weighted"]
    detail["baseline_qty"] = np.where(
        has_run_rate, baseline_share * detail["stat_forecast_qty"], 0.0
    )
    detail["incremental_qty"] = (detail["weighted_qty"] - detail["baseline_qty"]).clip(lower=0.0)
    detail = detail[detail_cols]

    totals = detail[detail["incremental_qty"] > 0].reset_index(drop=True)
    totals = totals.assign(_total_id=totals.index)
    targets = plan[["item_id", "family", "month", "stat_forecast_qty"]].assign(_row=plan.index)
    item_alloc = _allocate(
        targets.rename(columns={"item_id": "scope_id"}),
        ["scope_id", "month"],
        totals[totals["scope_type"] == "item"],
        "stat_forecast_qty",
        "incremental_qty",
    )
    fam_alloc = _allocate(
        targets.rename(columns={"family": "scope_id"}),
        ["scope_id", "month"],
        totals[totals["scope_type"] == "family"],
        "stat_forecast_qty",
        "incremental_qty",
    )
    crm = (
        pd.concat([item_alloc[["_row", "alloc"]], fam_alloc[["_row", "alloc"]]])
        .groupby("_row")["alloc"]
        .sum()
    )
    return crm.reindex(plan.index, fill_value=0.0), detail


def _run_rate_scopes(
    history: pd.DataFrame, items: pd.DataFrame, horizon_start: pd.Timestamp
) -> tuple[set, set]:
    """Items and families with demand in the 12 months before the horizon."""
    if history is None or history.empty:
        return set(), set()
    start = horizon_start - pd.DateOffset(months=RUN_RATE_MONTHS)
    h = history[(_month(history["month"]) >= start) & (pd.to_numeric(history["demand_qty"]) > 0)]
    active_items = set(h["item_id"])
    fam = items.loc[items["item_id"].isin(active_items), "family"]
    return active_items, set(fam)


def _overrides(
    plan: pd.DataFrame, overrides: pd.DataFrame, months: pd.DatetimeIndex
) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    if overrides is None or overrides.empty:
        return (
            pd.Series(0.0, index=plan.index),
            pd.DataFrame(columns=OVERRIDE_LOG_COLUMNS),
            pd.DataFrame(),
        )
    cols = [
        "scope_type",
        "scope_id",
        "month",
        "adjustment_type",
        "adjustment_value",
        "reason_code",
        "author",
        "comment",
    ]
    _require(overrides, "overrides", cols)
    ov = overrides[cols].reset_index(drop=True).copy()
    ov.insert(0, "override_id", ov.index.astype("int64"))
    ov["scope_type"] = ov["scope_type"].astype(str).str.strip().str.lower()
    ov["adjustment_type"] = ov["adjustment_type"].astype(str).str.strip().str.lower()
    ov["month"] = _month(ov["month"])
    ov["adjustment_value"] = pd.to_numeric(ov["adjustment_value"], errors="coerce")
    for _, row in ov.iterrows():
        where = f"override {row['override_id']} ({row['scope_type']} {row['scope_id']!r}, {row['month']:%Y-%m}, reason {row['reason_code']!r})"
        if row["scope_type"] not in ("item", "family"):
            raise ConsensusInputError(
                f"{where}: scope_type {row['scope_type']!r} is unknown; use item or family."
            )
        if row["adjustment_type"] not in ("qty", "pct"):
            raise ConsensusInputError(
                f"{where}: adjustment_type {row['adjustment_type']!r} is unknown; use qty or pct."
            )
        if pd.isna(row["adjustment_value"]):
            raise ConsensusInputError(f"{where}: adjustment_value is not a number.")
        known = plan["item_id"] if row["scope_type"] == "item" else plan["family"]
        if not (known == row["scope_id"]).any():
            raise ConsensusInputError(
                f"{where}: {row['scope_type']} {row['scope_id']!r} is not in the forecast (unknown "
                f"{row['scope_type']} or no forecast location); fix the scope in demand_overrides."
            )
    ignored = ov[~ov["month"].isin(months)]
    ov = ov[ov["month"].isin(months)]

    base = plan[
        ["item_id", "location_id", "family", "month", "stat_forecast_qty", "crm_adjustment_qty"]
    ].assign(_row=plan.index)
    base["stat_crm"] = base["stat_forecast_qty"] + base["crm_adjustment_qty"]
    pieces = []
    for scope_type, key, weight in (
        ("item", "item_id", "stat_forecast_qty"),
        ("family", "family", "stat_crm"),
    ):
        sub = ov[ov["scope_type"] == scope_type]
        if sub.empty:
            continue
        targets = base.rename(columns={key: "scope_id"})
        qty = sub[sub["adjustment_type"] == "qty"].assign(_total_id=lambda d: d["override_id"])
        if len(qty):
            alloc = _allocate(targets, ["scope_id", "month"], qty, weight, "adjustment_value")
            pieces.append(alloc.assign(qty_effect=alloc["alloc"]))
        pct = sub[sub["adjustment_type"] == "pct"].assign(_total_id=lambda d: d["override_id"])
        if len(pct):
            hit = targets.merge(pct, on=["scope_id", "month"], how="inner")
            pieces.append(hit.assign(qty_effect=hit["stat_crm"] * hit["adjustment_value"]))
    if not pieces:
        return pd.Series(0.0, index=plan.index), pd.DataFrame(columns=OVERRIDE_LOG_COLUMNS), ignored
    log = pd.concat(pieces, ignore_index=True)
    for col, src in (("item_id", "item_id"), ("location_id", "location_id")):
        log[col] = plan.loc[log["_row"], src].to_numpy()
    effect = log.groupby("_row")["qty_effect"].sum().reindex(plan.index, fill_value=0.0)
    log = (
        log[OVERRIDE_LOG_COLUMNS]
        .sort_values(["override_id", "item_id", "location_id", "month"])
        .reset_index(drop=True)
    )
    return effect, log, ignored


def _override_attribution(plan: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """override_reason_code and override_author of each row: its overrides' values, "; "-joined.

    Null where no override touched the row; several overrides on one row list their distinct
    values in override order, so BI can filter and group the published plan_demand by them.
    """
    keys = ["item_id", "location_id", "month"]
    out = plan.drop(columns=["override_reason_code", "override_author"], errors="ignore")
    text = {"override_reason_code": "string", "override_author": "string"}
    if log is None or log.empty:
        return out.assign(override_reason_code=None, override_author=None).astype(text)
    touched = log.sort_values("override_id", kind="stable")

    def _join(values: pd.Series) -> str | None:
        seen = [str(v) for v in dict.fromkeys(values.dropna()) if str(v)]
        return "; ".join(seen) or None

    who = touched.groupby(keys, sort=False).agg(
        override_reason_code=("reason_code", _join), override_author=("author", _join)
    )
    who = who.reset_index()
    who["month"] = _month(who["month"])
    return out.merge(who, on=keys, how="left", validate="one_to_one").astype(text)


def build_consensus(
    stat: pd.DataFrame,
    items: pd.DataFrame,
    pipeline: pd.DataFrame,
    overrides: pd.DataFrame,
    history: pd.DataFrame,
    plan_month: str,
    *,
    crm_baseline_share: float = CRM_BASELINE_SHARE,
) -> ConsensusResult:
    """The consensus demand plan: statistical forecast + CRM increment + overrides.

    Args:
        stat: the statistical forecast (``ForecastResult.forecast``): item_id, location_id,
            month, stat_forecast_qty, stat_lo80/hi80/lo95/hi95_qty, stat_model.
        items: dim_items: item_id, family, unit_price (base currency).
        pipeline: fct_crm_pipeline: opportunity_id, item_id (nullable), family, expected_qty,
            probability (0-1), close_month. May be empty.
        overrides: fct_demand_overrides: scope_type, scope_id, month, adjustment_type,
            adjustment_value, reason_code, author, comment. May be empty.
        history: demand history (item_id, location_id, month, demand_qty): which items and
            families have a run-rate the statistical forecast already carries.
        plan_month: ``YYYY-MM``.
        crm_baseline_share: share of the statistical forecast the pipeline must exceed
            before it adds volume (1.0: only deals beyond the forecast add).

    Returns:
        ConsensusResult with ``plan_demand`` (DESIGN §5 columns + clipped_qty) and the logs.

    Raises:
        ConsensusInputError: an opportunity or override names an unknown item/family, or has an
            unusable value; the message names it and says what to fix.
    """
    _require(stat, "stat", ["item_id", "location_id", "month", "stat_forecast_qty", "stat_model"])
    _require(items, "items", ["item_id", "family", "unit_price"])
    if not 0.0 <= crm_baseline_share <= 10.0:
        raise ConsensusInputError(
            f"crm_baseline_share={crm_baseline_share} is out of range; use 0 to 10."
        )
    plan = stat.drop(columns=[c for c in ("family",) if c in stat.columns]).copy()
    plan["month"] = _month(plan["month"])
    attrs = items[["item_id", "family", "unit_price"]].drop_duplicates("item_id")
    plan = plan.merge(attrs, on="item_id", how="left", validate="many_to_one")
    missing = plan.loc[plan["family"].isna(), "item_id"].unique()
    if len(missing):
        raise ConsensusInputError(
            f"forecast item(s) {sorted(missing)[:5]} are not in dim_items; pass the items of the plan month."
        )
    no_price = plan.loc[
        pd.to_numeric(plan["unit_price"], errors="coerce").isna(), "item_id"
    ].unique()
    if len(no_price):
        raise ConsensusInputError(
            f"item(s) {sorted(no_price)[:5]} have no unit_price; consensus revenue needs a price per item."
        )
    plan = plan.sort_values(["item_id", "location_id", "month"], kind="stable").reset_index(
        drop=True
    )
    start = pd.Timestamp(month_start(parse_month(plan_month), 1))
    months = pd.DatetimeIndex(sorted(plan["month"].unique()))
    if len(months) and months[0] < start:
        raise ConsensusInputError(
            f"stat has months before the horizon start {start:%Y-%m}; pass the forecast of plan month {plan_month}."
        )

    crm, crm_detail = _crm_adjustment(plan, items, pipeline, history, months, crm_baseline_share)
    plan["crm_adjustment_qty"] = crm.to_numpy()
    override, log, ignored = _overrides(plan, overrides, months)
    plan["override_qty"] = override.to_numpy()
    plan = _override_attribution(plan, log)
    raw = plan["stat_forecast_qty"] + plan["crm_adjustment_qty"] + plan["override_qty"]
    plan["consensus_qty"] = raw.clip(lower=0.0)
    plan["clipped_qty"] = plan["consensus_qty"] - raw
    plan["consensus_revenue"] = plan["consensus_qty"] * pd.to_numeric(plan["unit_price"])
    for col in ("stat_lo80_qty", "stat_hi80_qty", "stat_lo95_qty", "stat_hi95_qty"):
        if col not in plan.columns:
            plan[col] = plan["stat_forecast_qty"]
    plan_demand = plan[PLAN_DEMAND_COLUMNS + EXTRA_COLUMNS]
    return ConsensusResult(
        plan_demand=plan_demand, override_log=log, crm_detail=crm_detail, ignored_overrides=ignored
    )


def consensus_plan(
    stat: pd.DataFrame,
    items: pd.DataFrame,
    pipeline: pd.DataFrame,
    overrides: pd.DataFrame,
    history: pd.DataFrame,
    plan_month: str,
) -> ConsensusResult:
    """The demand review's consensus plan with its snapshot: :func:`build_consensus` + lags.

    Args:
        stat: the month's ``stat_forecast`` (with ``naive_forecast_qty``).
        items: ``dim_items``.
        pipeline: ``fct_crm_pipeline``.
        overrides: ``fct_demand_overrides``.
        history: ``fct_demand_history``.
        plan_month: ``YYYY-MM``.

    Returns:
        The consensus result with ``forecast_snapshots`` set.
    """
    result = build_consensus(stat, items, pipeline, overrides, history, plan_month)
    result.forecast_snapshots = forecast_snapshot(result.plan_demand, stat, items, plan_month)
    return result


def forecast_snapshot(
    plan_demand: pd.DataFrame, stat: pd.DataFrame, items: pd.DataFrame, plan_month: str
) -> pd.DataFrame:
    """What this plan month expected, by lag, so later months can score it.

    Args:
        plan_demand: the consensus plan (``ConsensusResult.plan_demand``).
        stat: the statistical forecast it was made from (``naive_forecast_qty`` included).
        items: ``dim_items`` (the unit price of the snapshot's items).
        plan_month: ``YYYY-MM``.

    Returns:
        One row per item × location × horizon month: family, naive_qty, stat_qty,
        consensus_qty, lag and unit_price.
    """
    from sop_pipeline.planning.forecast import snapshot_rows

    snap = plan_demand.merge(
        stat[["item_id", "location_id", "month", "naive_forecast_qty"]],
        on=["item_id", "location_id", "month"],
        how="left",
    ).rename(columns={"naive_forecast_qty": "naive_qty", "stat_forecast_qty": "stat_qty"})
    snap = snapshot_rows(snap[SNAPSHOT_COLUMNS], plan_month)
    snap["unit_price"] = snap["item_id"].map(items.set_index("item_id")["unit_price"])
    return snap
