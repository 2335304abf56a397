"""The KPI scorecard (the ``kpi_scorecard`` table): S&OP metrics with targets and status.

Each KPI is one function in :mod:`sop_pipeline.planning.kpi_formulas`; its docstring is its
definition, the ``definition`` column repeats it and docs/kpis.md explains it. Past KPIs measure the plan month itself
(``month`` = the plan month); forward KPIs are about horizon months (``month`` = the month
they concern, or the first month of the window they summarise).

Scopes: ``total`` and ``family:<family>`` where a KPI is meaningful per family.

Status, from the KPI's direction, its target and its at-risk band:

- ``higher``: on_track if value ≥ target, at_risk if value ≥ target − band, else off_track
- ``lower``: on_track if value ≤ target, at_risk if value ≤ target + band, else off_track
- ``closer``: on_track if |value − target| ≤ band, at_risk if ≤ 2 × band, else off_track

A KPI that cannot be computed (no earlier plan snapshot yet, no AOP, no orders due) is
left out of the frame and listed with the reason in ``result.attrs["missing"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.planning.kpi_formulas import KPIS, KpiInputs, MissingKpi, _Window, definition

STATUSES = ("on_track", "at_risk", "off_track")
DIRECTIONS = ("higher", "lower", "closer")
COLUMNS = ["kpi", "scope", "month", "value", "target", "status", "unit", "direction", "definition"]


@dataclass(frozen=True)
class KpiTarget:
    """Target of one KPI: value, at-risk band and which way is better."""

    target: float
    band: float
    direction: str
    unit: str


#: Default targets; a planner overrides any of them with ``{kpi: {"target": x, "band": y}}``
#: (or ``{kpi: x}`` for the target only).
DEFAULT_TARGETS: dict[str, KpiTarget] = {
    "forecast_accuracy": KpiTarget(0.70, 0.05, "higher", "ratio"),
    "forecast_bias": KpiTarget(0.0, 0.05, "closer", "ratio"),
    "revenue_forecast_accuracy": KpiTarget(0.75, 0.05, "higher", "ratio"),
    "total_sales_vs_forecast": KpiTarget(1.0, 0.05, "closer", "ratio"),
    "inventory_turns": KpiTarget(6.0, 1.0, "higher", "turns per year"),
    "inventory_aging": KpiTarget(0.10, 0.05, "lower", "share of value"),
    "capacity_utilization": KpiTarget(0.85, 0.10, "closer", "ratio"),
    "production_schedule_attainment": KpiTarget(0.90, 0.05, "higher", "ratio"),
    "on_time_delivery": KpiTarget(0.95, 0.03, "higher", "ratio"),
    "order_fill_rate": KpiTarget(0.98, 0.02, "higher", "ratio"),
    "backorder_rate": KpiTarget(0.05, 0.03, "lower", "ratio"),
    "gross_margin_pct": KpiTarget(0.35, 0.02, "higher", "ratio"),
    "revenue_to_aop_ratio": KpiTarget(1.0, 0.05, "higher", "ratio"),
    "working_capital_vs_plan": KpiTarget(1.0, 0.10, "lower", "ratio"),
    # forward, from the plan's inventory projection (docs/supply_and_finance.md); the
    # pipeline sets the service-level target to SOP_SERVICE_LEVEL
    "projected_service_level": KpiTarget(0.95, 0.03, "higher", "ratio"),
    "unmet_demand_rate": KpiTarget(0.02, 0.03, "lower", "ratio"),
}

INF = float("inf")
#: The range every KPI value lies in by definition (docs/kpis.md); the gate's consistency
#: suite fails a scorecard with a value outside it.
KPI_RANGES: dict[str, tuple[float, float]] = {
    "forecast_accuracy": (0.0, 1.0),
    "forecast_bias": (-1.0, INF),
    "revenue_forecast_accuracy": (0.0, 1.0),
    "total_sales_vs_forecast": (0.0, INF),
    "inventory_turns": (0.0, INF),
    "inventory_aging": (0.0, 1.0),
    "capacity_utilization": (0.0, INF),
    "production_schedule_attainment": (0.0, 1.0),
    "on_time_delivery": (0.0, 1.0),
    "order_fill_rate": (0.0, 1.0),
    "backorder_rate": (0.0, 1.0),
    "gross_margin_pct": (-INF, 1.0),
    "revenue_to_aop_ratio": (0.0, INF),
    "working_capital_vs_plan": (0.0, INF),
    "projected_service_level": (0.0, 1.0),
    "unmet_demand_rate": (0.0, 1.0),
}


#: Old KPI name → new one (README "Migration notes"): a name means one thing in the file.
RENAMED_KPIS = {"revenue_vs_aop": "revenue_to_aop_ratio"}


def resolve_targets(targets: dict | None) -> dict[str, KpiTarget]:
    """Defaults overridden by ``{kpi: {"target": x, "band": y}}`` or ``{kpi: x}``.

    Raises:
        ValueError: an unknown KPI name, key or a non-numeric value (the message names it).
    """
    resolved = dict(DEFAULT_TARGETS)
    for kpi, spec in (targets or {}).items():
        if kpi in RENAMED_KPIS:
            raise ValueError(
                f"KPI {kpi!r} was renamed to {RENAMED_KPIS[kpi]!r} (plan_financials.{kpi} is a "
                f"difference in money; the KPI is a ratio); use the new name."
            )
        if kpi not in resolved:
            raise ValueError(
                f"KPI target {kpi!r} is unknown; use one of {', '.join(DEFAULT_TARGETS)}."
            )
        base = resolved[kpi]
        spec = {"target": spec} if not isinstance(spec, dict) else spec
        unknown = set(spec) - {"target", "band"}
        if unknown:
            raise ValueError(
                f"KPI target {kpi}: unknown key(s) {', '.join(sorted(unknown))}; use target and band."
            )
        try:
            resolved[kpi] = KpiTarget(
                float(spec.get("target", base.target)),
                float(spec.get("band", base.band)),
                base.direction,
                base.unit,
            )
        except (TypeError, ValueError):
            raise ValueError(f"KPI target {kpi}: {spec} must hold numbers.") from None
        if resolved[kpi].band < 0:
            raise ValueError(f"KPI target {kpi}: band must be ≥ 0, not {resolved[kpi].band}.")
    return resolved


def status(value: float, target: KpiTarget) -> str:
    """on_track / at_risk / off_track of a value against its target, band and direction."""
    if target.direction == "higher":
        gap = target.target - value
    elif target.direction == "lower":
        gap = value - target.target
    else:
        gap = abs(value - target.target) - target.band
    if gap <= 1e-12:
        return "on_track"
    return "at_risk" if gap <= target.band + 1e-12 else "off_track"


def kpi_scorecard(inputs: KpiInputs, plan_month: str, targets: dict | None = None) -> pd.DataFrame:
    """Compute every KPI for a plan month and score it against its target.

    Args:
        inputs: the marts and candidate plan tables (see ``KpiInputs``).
        plan_month: ``YYYY-MM``.
        targets: overrides of ``DEFAULT_TARGETS``, ``{kpi: {"target": x, "band": y}}``.

    Returns:
        One row per kpi × scope × month: kpi, scope, month, value, target, status, unit,
        direction, definition. KPIs without data are left out and listed as
        ``{kpi: reason}`` in ``result.attrs["missing"]``.

    Raises:
        ValueError: a bad target override or an input frame lacking required columns.
    """
    start = pd.Timestamp(parse_month(plan_month))
    w = _Window(plan_month, start, pd.Timestamp(month_start(start.date(), 1)))
    resolved = resolve_targets(targets)
    rows: list[dict] = []
    missing: dict[str, str] = {}
    for kpi, fn in KPIS.items():
        try:
            values = fn(inputs, w)
        except MissingKpi as exc:
            missing[kpi] = str(exc)
            continue
        values = [(s, m, v) for s, m, v in values if v is not None and np.isfinite(v)]
        if not values:
            missing[kpi] = "no scope with data (zero denominators)"
            continue
        t = resolved[kpi]
        for scope, month, value in values:
            rows.append(
                {
                    "kpi": kpi,
                    "scope": scope,
                    "month": pd.Timestamp(month),
                    "value": float(value),
                    "target": t.target,
                    "status": status(float(value), t),
                    "unit": t.unit,
                    "direction": t.direction,
                    "definition": definition(kpi),
                }
            )
    out = pd.DataFrame(rows, columns=COLUMNS)
    if not out.empty:
        order = {k: i for i, k in enumerate(KPIS)}
        keys = {
            "kpi": lambda s: s.map(order),
            "scope": lambda s: s.map(lambda x: ("0" if x == "total" else "1") + x),
        }
        out = out.sort_values(
            ["kpi", "scope", "month"], key=lambda s: keys.get(s.name, lambda v: v)(s)
        )
        out = out.reset_index(drop=True)
    out["month"] = pd.to_datetime(out["month"])
    out.attrs["missing"] = missing
    return out
