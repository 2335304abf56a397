"""Plan a scenario and compare it with the base: the ``scenario_comparison`` rows.

:func:`plan_from_inputs` is the one call sequence of base and scenarios (safety stock →
``plan_supply`` → gaps → financials); :func:`run_scenarios` plans every scenario of the
month and :func:`compare` turns two plans into published rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import duckdb
import pandas as pd

from sop_pipeline.core.months import parse_month
from sop_pipeline.core.scenario_schema import (
    MIX_SHIFT_REL_TOL,
    WORSENING_LEVERS,
    Lever,
    ScenarioError,
    check_scenario_name,
)
from sop_pipeline.planning.finance import financials, gaps
from sop_pipeline.planning.inventory import as_month_start
from sop_pipeline.planning.materials import plan_supply_review
from sop_pipeline.planning.processes import process_pool, worker_count
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
from sop_pipeline.storage.warehouse import read_plan, table_exists


# Planning ---------------------------------------------------------------------------------
def family_capacity_utilization(
    plan_capacity: pd.DataFrame,
    plan_demand: pd.DataFrame,
    routings: pd.DataFrame,
    items: pd.DataFrame,
) -> pd.DataFrame:
    """Utilization of the work centers a family loads, weighted by the family's hours there.

    ``Σ_w required_hours[f, w, t] × utilization[w, t] / Σ_w required_hours[f, w, t]`` where
    required hours are the family's consensus × hours_per_unit (the load it asks of each
    work center) and utilization is ``plan_capacity.utilization`` (planned / available).
    Work centers with no hours that month (utilization null) are left out. Families of
    purchased items only have no row.

    Args:
        plan_capacity: work_center_id, month, utilization.
        plan_demand: item_id, month, consensus_qty (family optional).
        routings: item_id, work_center_id, hours_per_unit.
        items: item_id, family.

    Returns:
        family, month, capacity_utilization, required_hours.
    """
    columns = ["family", "month", "capacity_utilization", "required_hours"]
    demand = plan_demand[["item_id", "month", "consensus_qty"]].copy()
    demand["item_id"] = demand["item_id"].astype(str)
    demand["month"] = as_month_start(demand["month"])
    family_of = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id")
    demand["family"] = demand["item_id"].map(family_of.set_index("item_id")["family"])
    if "family" in plan_demand:
        demand["family"] = plan_demand["family"].to_numpy()
    routes = routings.assign(
        item_id=routings["item_id"].astype(str),
        work_center_id=routings["work_center_id"].astype(str),
    )
    load = demand.merge(routes[["item_id", "work_center_id", "hours_per_unit"]], on="item_id")
    if load.empty:
        return pd.DataFrame(columns=columns).astype({"month": "datetime64[ns]"})
    load["required_hours"] = load["consensus_qty"] * load["hours_per_unit"]
    load = load.groupby(["family", "work_center_id", "month"], as_index=False)[
        "required_hours"
    ].sum()
    cap = plan_capacity[["work_center_id", "month", "utilization"]].copy()
    cap["work_center_id"] = cap["work_center_id"].astype(str)
    cap["month"] = as_month_start(cap["month"])
    load = load.merge(cap, on=["work_center_id", "month"], how="left")
    load = load[load["utilization"].notna() & (load["required_hours"] > 0)]
    load["weighted"] = load["required_hours"] * load["utilization"]
    out = load.groupby(["family", "month"], as_index=False)[["weighted", "required_hours"]].sum()
    out["capacity_utilization"] = out["weighted"] / out["required_hours"]
    out["month"] = out["month"].astype("datetime64[ns]")
    return out[columns].sort_values(["family", "month"]).reset_index(drop=True)


def plan_from_inputs(inputs: ScenarioInputs) -> ScenarioOutputs:
    """Plan supply and finance from the inputs: the one call sequence of base and scenarios.

    ``plan_supply_review`` (safety stock → supply plan with materials) → ``gaps`` →
    ``financials``, with the inputs' strategy, service level and overtime share, exactly as
    the supply and finance assets plan the base.

    Args:
        inputs: base or scenario inputs.

    Returns:
        The plan's tables (see :class:`ScenarioOutputs`).
    """
    demand = inputs.plan_demand
    supply = plan_supply_review(
        demand,
        inputs.items,
        inputs.routings,
        inputs.capacity,
        inputs.inventory_position,
        inputs.open_supply,
        service_level=inputs.service_level,
        strategy=inputs.strategy,
        overtime_share=inputs.overtime_share,
        unmet_demand=inputs.unmet_demand,
        bom_exploded=inputs.bom_exploded,
        supplier_capacity=inputs.supplier_capacity,
    )
    inv = supply.plan_inventory
    return ScenarioOutputs(
        plan_demand=demand,
        safety_stock=supply.safety_stock,
        supply=supply,
        plan_gaps=gaps(demand, inv, inputs.items),
        plan_financials=financials(demand, inv, inputs.items, inputs.aop),
        family_utilization=family_capacity_utilization(
            supply.plan_capacity, demand, inputs.routings, inputs.items
        ),
        notes=inputs.notes,
    )


def run_scenario(inputs: ScenarioInputs, levers: Sequence[Lever] = ()) -> ScenarioOutputs:
    """Apply the levers (if any) and plan the result with :func:`plan_from_inputs`.

    Args:
        inputs: the base plan's inputs (or already modified ones, with no levers).
        levers: parsed levers to apply first.

    Returns:
        The scenario's plan.
    """
    return plan_from_inputs(apply_levers(inputs, levers) if levers else inputs)


# Comparison -------------------------------------------------------------------------------
def family_metrics(outputs: ScenarioOutputs) -> pd.DataFrame:
    """The compared metrics of one plan, long: family, month, metric, value.

    Args:
        outputs: a plan from :func:`plan_from_inputs`.

    Returns:
        One row per family × month × metric of :data:`METRICS` (capacity_utilization only
        for families with a routing).
    """
    return plan_metrics(outputs.plan_gaps, outputs.plan_financials, outputs.family_utilization)


def plan_metrics(
    plan_gaps: pd.DataFrame, plan_financials: pd.DataFrame, family_utilization: pd.DataFrame
) -> pd.DataFrame:
    """The compared metrics of a plan's gaps, financials and family utilization, long.

    Args:
        plan_gaps: family × month gaps (``finance.gaps`` or the stored ``plan_gaps``).
        plan_financials: family × month financials.
        family_utilization: :func:`family_capacity_utilization` of the plan.

    Returns:
        family, month, metric, value (see :func:`family_metrics`).
    """
    parts = []
    g = plan_gaps
    for metric, col in (
        ("demand_qty", "demand_qty"),
        ("supply_qty", "supply_qty"),
        ("gap_qty", "gap_qty"),
        ("gap_value", "gap_value"),
    ):
        parts.append(g[["family", "month"]].assign(metric=metric, value=g[col].astype(float)))
    fin = plan_financials
    for metric in ("revenue", "gross_margin", "inventory_value"):
        parts.append(
            fin[["family", "month"]].assign(metric=metric, value=fin[metric].astype(float))
        )
    util = family_utilization
    parts.append(
        util[["family", "month"]].assign(
            metric="capacity_utilization", value=util["capacity_utilization"].astype(float)
        )
    )
    out = pd.concat(parts, ignore_index=True)
    out["family"] = out["family"].astype(str)
    out["month"] = as_month_start(out["month"])
    return out


def compare(
    base: ScenarioOutputs | pd.DataFrame, scen: ScenarioOutputs, scenario: str
) -> pd.DataFrame:
    """The published ``scenario_comparison`` rows of one scenario against the base.

    Args:
        base: the base plan, or its :func:`plan_metrics` (read from the stored base tables).
        scen: the scenario's plan.
        scenario: scenario name.

    Returns:
        scenario, family, month, metric, base_value, scenario_value, delta (scenario −
        base), one row per family × month × metric of either plan. A family-month only one
        plan has counts 0 in the other (utilization stays null).
    """
    keys = ["family", "month", "metric"]
    base_metrics = base if isinstance(base, pd.DataFrame) else family_metrics(base)
    both = base_metrics.merge(
        family_metrics(scen), on=keys, how="outer", suffixes=("_base", "_scen")
    )
    additive = both["metric"] != "capacity_utilization"
    for col in ("value_base", "value_scen"):
        both.loc[additive, col] = both.loc[additive, col].fillna(0.0)
    order = {m: i for i, m in enumerate(METRICS)}
    both = (
        both.assign(_order=both["metric"].map(order))
        .sort_values(["family", "month", "_order"])
        .reset_index(drop=True)
    )
    out = pd.DataFrame(
        {
            "scenario": scenario,
            "family": both["family"],
            "month": both["month"].astype("datetime64[ns]"),
            "metric": both["metric"],
            "base_value": both["value_base"].astype(float),
            "scenario_value": both["value_scen"].astype(float),
        }
    )
    out["delta"] = out["scenario_value"] - out["base_value"]
    return out[SCENARIO_COMPARISON_COLUMNS]


def _loss_gap_deltas(rows: pd.DataFrame, kinds: str) -> tuple[float, float, float, float] | None:
    """A loss scenario's gap change over the horizon: (Δ units, Δ value, their tolerances).

    Δ = scenario − base; the tolerances are ``MIX_SHIFT_REL_TOL`` of the base's values.
    None for a scenario with any lever that is not a capacity loss or supplier delay, or
    without gap rows.
    """
    if not kinds or not set(kinds.split(",")) <= WORSENING_LEVERS:
        return None
    total = rows.groupby("metric")[["base_value", "scenario_value"]].sum()
    if not {"gap_qty", "gap_value"} <= set(total.index):
        return None
    qty, value = total.loc["gap_qty"], total.loc["gap_value"]
    return (
        float(qty["scenario_value"] - qty["base_value"]),
        float(value["scenario_value"] - value["base_value"]),
        MIX_SHIFT_REL_TOL * max(1.0, abs(qty["base_value"])),
        MIX_SHIFT_REL_TOL * max(1.0, abs(value["base_value"])),
    )


def _mix_shift_note(rows: pd.DataFrame, kinds: str) -> list[str]:
    """A capacity loss or supplier delay whose gap is smaller in units or in value, not both.

    A plan with less capacity can move which items are short: fewer but dearer units (the
    LP minimizes the value short, so it gives the hours left to the items worth most per
    hour), or more but cheaper ones (planned in aggregate, a family group's shortage is
    split over its items by urgency). Either is a mix shift, not a better plan; say so.
    """
    deltas = _loss_gap_deltas(rows, kinds)
    if deltas is None:
        return []
    d_qty, d_value, tol_qty, tol_value = deltas
    if d_qty < -tol_qty and d_value > tol_value:
        return [
            f"The gap is {_units(-d_qty)} units smaller than the base's but worth {d_value:,.0f} "
            "more: with less capacity the plan moves the shortage onto fewer, dearer units "
            "(supply minimizes the value short first), so it may also serve more units; "
            "service by value is worse and revenue no higher."
        ]
    if d_value < -tol_value and d_qty > tol_qty:
        return [
            f"The gap is worth {-d_value:,.0f} less than the base's but is {_units(d_qty)} units "
            "larger: the plan moves the shortage within families onto more, cheaper units "
            "(which items of a family are short moves with the re-plan and its min lots); "
            "service in units is worse and revenue no higher."
        ]
    return []


def _units(qty: float) -> str:
    """A quantity for a note: one decimal, or two significant digits below 0.1 (0.012)."""
    return f"{qty:,.1f}" if abs(qty) >= 0.1 else f"{qty:.2g}"


def _scenario_levers(spec: Mapping[str, Any], position: int) -> tuple[str, list[Lever]]:
    name = check_scenario_name(spec.get("name"), position)
    levers = spec.get("levers", spec.get("levers_json"))
    if levers is None:
        raise ScenarioError(f"scenario {name}: needs levers (a list, or levers_json text).")
    return name, parse_levers(levers, scenario=name)


def _gaps_both_smaller(rows: pd.DataFrame, kinds: str) -> tuple[float, float] | None:
    """A loss scenario's gap smaller than the base's in units *and* value: the two amounts."""
    deltas = _loss_gap_deltas(rows, kinds)
    if deltas is None:
        return None
    d_qty, d_value, tol_qty, tol_value = deltas
    if d_qty < -tol_qty and d_value < -tol_value:
        return -d_qty, -d_value
    return None


def _split_note(
    inputs: ScenarioInputs, scen: ScenarioOutputs, rows: pd.DataFrame, kinds: str
) -> tuple[float, list[str]]:
    """Whether the supply model itself plans a loss scenario as short as the base.

    A capacity loss or supplier delay whose published gap is smaller than the base's in
    units and in value contradicts the plan, unless the supply model (the LP: what it
    minimizes first is the shortage cost, penalty × price of every unit short) plans the
    scenario no less short than the base: then the difference is how the re-timed
    production of a family group (series planned in aggregate) splits over its items, not
    a better plan. Only then is the base planned again here, to read its shortage cost.

    Returns:
        (scenario − base shortage cost, or NaN when the gap is not smaller in both; the note).
    """
    smaller = _gaps_both_smaller(rows, kinds)
    if smaller is None:
        return float("nan"), []
    base = plan_from_inputs(inputs)
    cost_scen = float(scen.supply.objective.get("shortage_cost", float("nan")))
    cost_base = float(base.supply.objective.get("shortage_cost", float("nan")))
    delta = cost_scen - cost_base
    tol = MIX_SHIFT_REL_TOL * max(1.0, abs(cost_base))  # the LP's own precision
    if not delta >= -tol:
        return delta, []  # the model says the loss serves more: the gate blocks it
    delta = max(delta, 0.0)  # equal within the solver's tolerance
    d_qty, d_value = smaller
    return delta, [
        f"The gap is {_units(d_qty)} units and {d_value:,.0f} smaller than the base's, yet the "
        f"supply model plans this scenario as short as the base (shortage cost "
        f"{cost_scen:,.0f} vs {cost_base:,.0f}): series planned in aggregate get their family "
        "group's production split over the items, and the re-timed production of this "
        "scenario happens to split so that fewer units are short. It is not a better plan: "
        "the base could be re-timed the same way."
    ]


def _plan_and_compare(
    inputs: ScenarioInputs, name: str, levers: list[Lever], base_metrics: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """One scenario's comparison rows and notes (run in a worker process when parallel)."""
    scen = run_scenario(inputs, levers)
    rows = compare(base_metrics, scen, name)
    kinds = lever_kinds(levers)
    delta, split = _split_note(inputs, scen, rows, kinds)
    rows = rows.assign(shortage_cost_vs_base=delta)
    return rows, [*scen.notes, *_mix_shift_note(rows, kinds), *split]


def _planned(
    inputs: ScenarioInputs,
    parsed: Sequence[tuple[str, list[Lever]]],
    base_metrics: pd.DataFrame,
    n_jobs: int,
) -> Iterator[tuple[pd.DataFrame, list[str]]]:
    """:func:`_plan_and_compare` of each scenario, in the given order.

    With ``n_jobs`` > 1 the scenarios are planned in that many worker processes (each
    re-plan is single-threaded, so two cores plan two scenarios at once), started by the
    fork server of :mod:`sop_pipeline.planning.processes`, not forked from this process and
    its threads. Every scenario is planned from the same inputs (pickled to the worker) by
    the same code either way, so the rows are the same bit for bit; an error in a worker is
    raised here, as in process.
    """
    workers = min(worker_count(n_jobs), len(parsed))
    if workers <= 1:
        for name, levers in parsed:
            yield _plan_and_compare(inputs, name, levers, base_metrics)
        return
    with process_pool(workers) as pool:
        futures = [
            pool.submit(_plan_and_compare, inputs, name, levers, base_metrics)
            for name, levers in parsed
        ]
        for future in futures:
            yield future.result()


def run_scenarios(
    inputs: ScenarioInputs,
    scenarios: Sequence[Mapping[str, Any]],
    *,
    base: ScenarioOutputs | pd.DataFrame | None = None,
    n_jobs: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
) -> pd.DataFrame:
    """Plan every scenario and compare it with the base plan.

    All scenarios are validated before anything is planned, so a typo in the last one
    fails fast. The base inputs are never changed.

    Args:
        inputs: the base plan's inputs.
        scenarios: ``{name, levers}`` (scenarios.yaml) or ``{name, levers_json}``
            (``raw.scenarios`` rows) mappings; names must be unique.
        base: the base plan, if already made from ``inputs`` by :func:`plan_from_inputs`,
            or its :func:`plan_metrics` (:func:`stored_base_metrics`: the base the supply
            and finance assets stored, so it is not planned again).
        n_jobs: scenarios planned at once, one process each (1: in this process).
        progress: called ``(done, total, name)`` after each scenario is planned (the CLI's
            progress bar).

    Returns:
        ``scenario_comparison`` rows of all scenarios, in the given order, then lever_kinds
        (:func:`lever_kinds`), note (what the levers did not change or model, e.g.
        price elasticity) and shortage_cost_vs_base (the supply model's shortage cost of the
        scenario − the base's, computed only for a loss scenario whose gap is smaller in
        units and value, else NaN: :func:`_split_note`); ``attrs["notes"]`` maps scenario
        names to those notes.

    Raises:
        ScenarioError: a malformed scenario or lever, a duplicate name, or an unknown
            family / item / work center / supplier.
    """
    parsed: list[tuple[str, list[Lever]]] = []
    for i, spec in enumerate(scenarios):
        name, levers = _scenario_levers(spec, i + 1)
        if any(name == seen for seen, _ in parsed):
            raise ScenarioError(f"scenario {name}: the name is used twice; names must be unique.")
        check_references(levers, inputs)
        parsed.append((name, levers))
    if not parsed:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="object" if c in ("scenario", "family", "metric") else "float64")
                for c in SCENARIO_COMPARISON_COLUMNS
            }
        ).astype({"month": "datetime64[ns]"})
    if base is None:
        base = plan_from_inputs(inputs)
    base_metrics = base if isinstance(base, pd.DataFrame) else family_metrics(base)
    frames, notes = [], {}
    planned = _planned(inputs, parsed, base_metrics, n_jobs)
    for done, ((name, levers), (rows, said)) in enumerate(
        zip(parsed, planned, strict=True), start=1
    ):
        if said:
            notes[name] = said
        frames.append(rows.assign(lever_kinds=lever_kinds(levers), note=" ".join(said) or None))
        if progress is not None:
            progress(done, len(parsed), name)
    out = pd.concat(frames, ignore_index=True)
    out = out[[*SCENARIO_COMPARISON_COLUMNS, "lever_kinds", "note", "shortage_cost_vs_base"]]
    out.attrs["notes"] = notes
    return out


def stored_base_metrics(
    con: duckdb.DuckDBPyConnection, plan_month: str, inputs: ScenarioInputs
) -> pd.DataFrame:
    """The base plan's :func:`plan_metrics` from the tables the supply and finance assets stored.

    The same numbers :func:`plan_from_inputs` would compute from ``inputs`` (the assets make
    the base by that call sequence, and DuckDB keeps every double), without planning the
    base again.

    Args:
        con: working database connection.
        plan_month: ``YYYY-MM``.
        inputs: the base plan's inputs (demand, routings and items weight the utilization).

    Returns:
        family, month, metric, value.
    """
    capacity = read_plan(con, "plan_capacity", plan_month)
    return plan_metrics(
        read_plan(con, "plan_gaps", plan_month),
        read_plan(con, "plan_financials", plan_month),
        family_capacity_utilization(capacity, inputs.plan_demand, inputs.routings, inputs.items),
    )


def read_scenarios(con: duckdb.DuckDBPyConnection, plan_month: str) -> list[dict[str, Any]]:
    """The scenarios of a plan month: ``raw.scenarios`` of the latest extract ≤ the month.

    Planning inputs are snapshots: the newest scenarios file at or before the plan month
    is the one planners meant (point in time, like the other planning extracts).

    Args:
        con: working database connection.
        plan_month: ``YYYY-MM``.

    Returns:
        ``{name, description, levers_json}`` dicts in name order; empty without scenarios.
    """
    parse_month(plan_month)
    if not table_exists(con, "raw", "scenarios"):
        return []
    rows = con.execute(
        "select name, description, levers_json from raw.scenarios "
        "where extract_month = (select max(extract_month) from raw.scenarios "
        "where extract_month <= ?) order by name",
        [plan_month],
    ).fetchall()
    return [{"name": n, "description": d, "levers_json": j} for n, d, j in rows]
