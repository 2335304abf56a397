"""The schema of ``scenarios.yaml``: one validator for ingest and planning.

``landing/<YYYY-MM>/scenarios.yaml`` is checked by ingest when it is loaded
(``ingest/loader.py``: a bad file is rejected with the file named) and its levers are parsed
again by planning from ``raw.scenarios`` (``planning/scenarios/levers.py``); both call the functions
here, so a file that loads is a file the scenario step can plan. The shape (docs/scenarios.md)::

    scenarios:
      - name: pumps_upside            # ^[a-z][a-z0-9_]{0,62}$, unique in the file
        description: optional text
        levers:                       # a non-empty list, applied in order
          - {type: demand_change, family: pumps, months: ["2027-01", "2027-06"], pct: 0.15}

Lever types and their fields are :data:`LEVER_FIELDS` (required, optional); ``months`` is
``[first, last]`` inclusive or ``[month]`` as ``YYYY-MM`` text and is optional for
``demand_change`` (absent: the whole horizon). Whether a family, item, work center or supplier
exists is not a question of the file: planning checks it against the plan's inputs
(``planning.scenarios.check_references``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sop_pipeline.core.months import parse_month
from sop_pipeline.core.settings import STRATEGIES
from sop_pipeline.errors import InvalidInputError

#: What a scenario name may be: it is stored as a value and shown in BI and the pack.
SCENARIO_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_SCENARIO_NAME_RE = re.compile(SCENARIO_NAME_PATTERN)

# Fields a lever may carry, per type: (required, optional). Anything else is a typo.
LEVER_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "capacity_loss": (("work_center_id", "months", "pct"), ()),
    "demand_change": (("pct",), ("family", "item_id", "months")),
    "supplier_delay": (("supplier_id", "days"), ()),
    "price_change": (("pct",), ("family", "item_id", "elasticity")),
    "strategy": (("value",), ()),
}
#: lever kinds (``planning.scenarios.lever_kinds``) that can only make a plan worse: the supply
#: LP's feasible set only shrinks, so its first objective, the value short, cannot fall (the
#: gate's ``scenario_monotonic`` check, the scenario's mix-shift note)
WORSENING_LEVERS = frozenset({"capacity_loss", "supplier_delay"})
#: Relative tolerance for "the other measure of the gap got worse" in a mix shift (a loss
#: whose gap is smaller in units or in value): floating-point noise of a sum, not the gate's
#: 1e-6. A real trade can be small: after a one-unit override the demo's ``overhaul_extended``
#: left 0.012 units more short, worth 4,887 less (min lots moved which pumps are short).
MIX_SHIFT_REL_TOL = 1e-9
# A pct above this is almost surely written in percent (15 for 15%), not as a fraction.
MAX_ABS_PCT = 5.0


class ScenarioError(InvalidInputError, ValueError):
    """A scenario or lever is malformed or names something the plan does not know."""


@dataclass(frozen=True)
class Lever:
    """One parsed, validated lever of a scenario.

    Attributes:
        type: capacity_loss / demand_change / supplier_delay / price_change / strategy.
        family: family scope (demand_change, price_change).
        item_id: item scope instead of a family (demand_change, price_change).
        work_center_id: capacity_loss work center.
        supplier_id: supplier_delay supplier.
        first_month: first month the lever applies to (None: the whole horizon).
        last_month: last month, inclusive.
        pct: change as a fraction (0.15 = +15%; capacity_loss: share of hours lost).
        days: supplier delay in days.
        value: strategy name.
        scenario: name of the scenario (for messages).
        position: 1-based position of the lever in the scenario (for messages).
    """

    type: str
    family: str | None = None
    item_id: str | None = None
    work_center_id: str | None = None
    supplier_id: str | None = None
    first_month: pd.Timestamp | None = None
    last_month: pd.Timestamp | None = None
    pct: float | None = None
    days: int | None = None
    value: str | None = None
    elasticity: float | None = None
    scenario: str = ""
    position: int = 0

    @property
    def where(self) -> str:
        """``scenario X, lever #2 (supplier_delay)``: where a message points to."""
        return f"scenario {self.scenario or '(unnamed)'}, lever #{self.position} ({self.type})"

    @property
    def months_text(self) -> str:
        """``2027-02..2027-04`` or ``the whole horizon``."""
        if self.first_month is None:
            return "the whole horizon"
        return f"{self.first_month:%Y-%m}..{self.last_month:%Y-%m}"


def _month(value: Any, where: str) -> pd.Timestamp:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return pd.Timestamp(parse_month(value))
    except ValueError:
        raise ScenarioError(
            f"{where}: month {value!r} is not a month; write YYYY-MM, e.g. "
            'months: ["2027-02", "2027-04"].'
        ) from None


def _months(value: Any, where: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | tuple) or not 1 <= len(values) <= 2:
        raise ScenarioError(
            f"{where}: months must be [first, last] (inclusive) or [month], e.g. "
            f'["2027-02", "2027-04"]; got {value!r}.'
        )
    first, last = _month(values[0], where), _month(values[-1], where)
    if last < first:
        raise ScenarioError(
            f"{where}: months {first:%Y-%m}..{last:%Y-%m} end before they start; "
            "write [first, last]."
        )
    return first, last


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{where}: {name} must be a number; got {value!r}.")
    return float(value)


def _text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise ScenarioError(f"{where}: {name} must be a non-empty id; got {value!r}.")
    return str(value).strip()


def _parse_lever(raw: Any, scenario: str, position: int) -> Lever:
    where = f"scenario {scenario or '(unnamed)'}, lever #{position}"
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: a lever must be a mapping with a type; got {raw!r}.")
    kind = raw.get("type")
    if kind not in LEVER_FIELDS:
        raise ScenarioError(
            f"{where}: lever type {kind!r} is unknown; use one of {', '.join(LEVER_FIELDS)}."
        )
    where = f"{where} ({kind})"
    required, optional = LEVER_FIELDS[kind]
    missing = [f for f in required if raw.get(f) is None]
    if missing:
        raise ScenarioError(f"{where}: needs {', '.join(missing)}.")
    unknown = sorted(set(raw) - {"type", *required, *optional})
    if unknown:
        hint = (
            " A price change applies to the whole horizon (prices are per item, not per month)."
            if kind == "price_change" and "months" in unknown
            else ""
        )
        raise ScenarioError(
            f"{where}: unknown field(s) {', '.join(unknown)}; a {kind} lever takes "
            f"{', '.join((*required, *optional))}.{hint}"
        )
    args: dict[str, Any] = {"type": kind, "scenario": scenario, "position": position}
    if raw.get("months") is not None:
        args["first_month"], args["last_month"] = _months(raw["months"], where)
    if "pct" in required:
        pct = _number(raw["pct"], "pct", where)
        if abs(pct) > MAX_ABS_PCT:
            raise ScenarioError(
                f"{where}: pct {pct:g} is a fraction (0.15 = +15%); write {pct / 100:g} for "
                f"{pct:g}%."
            )
        if kind == "capacity_loss" and not 0.0 <= pct <= 1.0:
            raise ScenarioError(
                f"{where}: pct {pct:g} is the share of hours lost and must be in [0, 1] "
                "(0.7 = 70% of the hours are lost)."
            )
        if kind != "capacity_loss" and pct <= -1.0:
            raise ScenarioError(f"{where}: pct {pct:g} would make it zero or negative; use > -1.")
        args["pct"] = pct
    if kind in ("demand_change", "price_change"):
        has_family, has_item = raw.get("family") is not None, raw.get("item_id") is not None
        if has_family == has_item:
            raise ScenarioError(f"{where}: name exactly one of family or item_id.")
        if has_family:
            args["family"] = _text(raw["family"], "family", where)
        else:
            args["item_id"] = _text(raw["item_id"], "item_id", where)
    if kind == "capacity_loss":
        args["work_center_id"] = _text(raw["work_center_id"], "work_center_id", where)
    if kind == "supplier_delay":
        args["supplier_id"] = _text(raw["supplier_id"], "supplier_id", where)
        days = raw["days"]
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ScenarioError(f"{where}: days must be a whole number ≥ 0; got {days!r}.")
        args["days"] = int(days)
    if kind == "price_change" and raw.get("elasticity") is not None:
        elasticity = _number(raw["elasticity"], "elasticity", where)
        if not -10.0 <= elasticity <= 10.0:
            raise ScenarioError(
                f"{where}: elasticity {elasticity:g} is not plausible; price elasticities of "
                "demand are typically between -5 and 0 (e.g. -1.2)."
            )
        args["elasticity"] = elasticity
    if kind == "strategy":
        if raw["value"] not in STRATEGIES:
            raise ScenarioError(
                f"{where}: strategy {raw['value']!r} is unknown; use one of {', '.join(STRATEGIES)}."
            )
        args["value"] = str(raw["value"])
    return Lever(**args)


def parse_levers(
    levers_json: str | Sequence[Mapping[str, Any]],
    *,
    scenario: str = "",
) -> list[Lever]:
    """Parse and validate the levers of one scenario.

    Args:
        levers_json: the ``levers`` list of ``scenarios.yaml`` or its JSON text
            (``raw.scenarios.levers_json``).
        scenario: scenario name, used in error messages.

    Returns:
        The levers, in file order.

    Raises:
        ScenarioError: not a list, an unknown type or field, a missing field, a bad month or
            number; the message names the scenario and the lever.
    """
    raw = levers_json
    if isinstance(levers_json, str):
        try:
            raw = json.loads(levers_json)
        except json.JSONDecodeError as exc:
            raise ScenarioError(
                f"scenario {scenario or '(unnamed)'}: levers_json is not valid JSON ({exc.msg} "
                f"at character {exc.pos}); reload scenarios.yaml."
            ) from None
    if not isinstance(raw, list | tuple) or not raw:
        raise ScenarioError(
            f"scenario {scenario or '(unnamed)'}: levers must be a non-empty list of "
            "{type: ..., ...} mappings (see docs/scenarios.md)."
        )
    return [_parse_lever(lever, scenario, i + 1) for i, lever in enumerate(raw)]


@dataclass(frozen=True)
class ScenarioSpec:
    """One validated scenario of the file.

    Attributes:
        name: the scenario's name.
        description: its description, or None.
        levers: the parsed levers, in file order.
        raw_levers: the levers as written (ingest stores them as ``raw.scenarios.levers_json``).
    """

    name: str
    description: str | None
    levers: tuple[Lever, ...]
    raw_levers: list[Any]


def check_scenario_name(name: Any, position: int) -> str:
    """The name of the ``position``-th scenario (1-based), if it is a valid one.

    Raises:
        ScenarioError: not text, or not of :data:`SCENARIO_NAME_PATTERN`.
    """
    if not isinstance(name, str) or not _SCENARIO_NAME_RE.match(name):
        raise ScenarioError(
            f"scenario #{position}: name {name!r} must match {SCENARIO_NAME_PATTERN} "
            "(lowercase letters, digits, underscores)."
        )
    return name


def parse_scenarios(entries: Any) -> list[ScenarioSpec]:
    """Validate the ``scenarios:`` list of ``scenarios.yaml``.

    Args:
        entries: the value of the file's top-level ``scenarios`` key.

    Returns:
        The scenarios in file order.

    Raises:
        ScenarioError: not a list, a scenario that is not a mapping, a bad or repeated
            name, a description that is not text, no levers, or a bad lever (see
            :func:`parse_levers`); the message names the scenario (and the lever).
    """
    if not isinstance(entries, list):
        raise ScenarioError("expected a top-level 'scenarios:' list.")
    out: list[ScenarioSpec] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ScenarioError(
                f"scenario #{i + 1}: each scenario must be a mapping with name and levers."
            )
        name = check_scenario_name(entry.get("name"), i + 1)
        if any(spec.name == name for spec in out):
            raise ScenarioError(f"scenario {name}: the name is used twice; names must be unique.")
        description = entry.get("description")
        if description is not None and not isinstance(description, str):
            raise ScenarioError(f"scenario {name}: description must be text.")
        raw = entry.get("levers")
        if not isinstance(raw, list) or not raw:
            raise ScenarioError(f"scenario {name}: levers must be a non-empty list.")
        levers = parse_levers(raw, scenario=name)
        out.append(ScenarioSpec(name, description, tuple(levers), list(raw)))
    return out
