"""What-if scenarios: re-plan supply and finance with levers applied, compare with the base.

A scenario is a list of levers (``scenarios.yaml`` of the landing month, loaded into
``raw.scenarios``). Each lever changes a copy of the base plan's inputs; the changed inputs
are planned by :func:`plan_from_inputs` (safety stock → ``plan_supply`` → gaps →
financials, the same calls the supply and finance assets make) and :func:`compare` turns the
two plans into the published ``scenario_comparison`` rows (scenario × family × month ×
metric). Demand is *not* re-forecast: a scenario starts from the consensus plan.

Levers (months are ``[first, last]`` inclusive, ``pct`` a fraction: 0.15 = +15%):

- ``capacity_loss`` (work_center_id, months, pct): available hours × (1 − pct);
- ``demand_change`` (family or item_id, months (optional: the whole horizon), pct): consensus
  qty and revenue × (1 + pct);
- ``supplier_delay`` (supplier_id, days): + days on the lead time of the supplier's items
  (``dim_items.supplier_id``) and of its rows in ``fct_supplier_capacity`` (the months it
  can no longer deliver in time are lost capacity for the BOM's materials), and its open
  purchase orders due ``ceil(days / 30)`` months later (orders pushed past the horizon
  drop out);
- ``price_change`` (family or item_id, pct, optional elasticity): unit price and consensus
  revenue × (1 + pct); with ``elasticity`` ε (e.g. −1.2) the volume responds, consensus qty ×
  (1 + pct)^ε; without it the volume is unchanged and the scenario notes that price
  elasticity is not modelled;
- ``strategy`` (value): plan with ``chase``, ``level`` or ``mixed``.

The file's schema (lever types, fields, months, pct) is ``core.scenario_schema``, which ingest
checks the file with too. See ``docs/scenarios.md``.

Modules: ``inputs`` (ScenarioInputs, ScenarioOutputs, the compared metrics), ``levers``
(parse, check and apply levers), ``plan`` (plan, compare, run, read the month's scenarios).
"""

from sop_pipeline.core.scenario_schema import Lever, ScenarioError
from sop_pipeline.planning.scenarios.inputs import (
    METRICS,
    SCENARIO_COMPARISON_COLUMNS,
    ScenarioInputs,
    ScenarioOutputs,
)
from sop_pipeline.planning.scenarios.levers import (
    apply_levers,
    check_references,
    lever_kinds,
    parse_levers,
)
from sop_pipeline.planning.scenarios.plan import (
    compare,
    family_capacity_utilization,
    family_metrics,
    plan_from_inputs,
    plan_metrics,
    read_scenarios,
    run_scenario,
    run_scenarios,
    stored_base_metrics,
)

__all__ = [
    "METRICS",
    "SCENARIO_COMPARISON_COLUMNS",
    "Lever",
    "ScenarioError",
    "ScenarioInputs",
    "ScenarioOutputs",
    "apply_levers",
    "check_references",
    "compare",
    "family_capacity_utilization",
    "family_metrics",
    "lever_kinds",
    "parse_levers",
    "plan_from_inputs",
    "plan_metrics",
    "read_scenarios",
    "run_scenario",
    "run_scenarios",
    "stored_base_metrics",
]
