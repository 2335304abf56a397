"""``landing/<YYYY-MM>/scenarios.yaml``: the planner's scenarios, checked and stored in
``raw.scenarios`` by the loader.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import yaml

from sop_pipeline.core.settings import STRATEGIES
from sop_pipeline.ingest.landing import _sha256
from sop_pipeline.ingest.problems import ExtractError, LoadSummary, display_path
from sop_pipeline.ingest.raw_writes import _loaded_sha, _log

_SCENARIO_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

_YM_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


# --------------------------------------------------------------------------------------
# scenarios.yaml
# --------------------------------------------------------------------------------------

_LEVER_FIELDS: dict[str, tuple[str, ...]] = {
    "capacity_loss": ("work_center_id", "months", "pct"),
    "demand_change": ("months", "pct"),
    "supplier_delay": ("supplier_id", "days"),
    "price_change": ("pct",),
    "strategy": ("value",),
}


def parse_scenarios(path: Path) -> list[dict]:
    """Read and check ``scenarios.yaml``.

    Shape: ``scenarios:`` a list of ``{name, description?, levers: [...]}``; a lever has a
    ``type`` (capacity_loss, demand_change, supplier_delay, price_change, strategy) and the
    fields of that type (``months`` as ``YYYY-MM`` strings, ``pct`` a number, ``days`` a
    whole number, ``value`` a strategy). Demand and price changes name a ``family`` or an
    ``item_id``.

    Args:
        path: the ``scenarios.yaml`` file.

    Returns:
        The scenarios as dicts (``name``, ``description``, ``levers``).

    Raises:
        ExtractError: the file is not YAML or not of that shape; the message says where.
    """
    shown = display_path(path)

    def fail(problem: str, where: str = "") -> ExtractError:
        return ExtractError(
            shown,
            f"{where}: {problem}" if where else problem,
            "fix the file; see the scenarios shape in DESIGN.md §4 (scenarios: [{name, description, levers: [...]}])",
        )

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise fail(f"not valid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise fail("not UTF-8 text") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise fail("expected a top-level 'scenarios:' list")
    out: list[dict] = []
    seen: set[str] = set()
    for i, sc in enumerate(data["scenarios"]):
        where = f"scenario #{i + 1}"
        if not isinstance(sc, dict):
            raise fail("each scenario must be a mapping with name and levers", where)
        name = sc.get("name")
        if not isinstance(name, str) or not _SCENARIO_NAME_RE.match(name):
            raise fail(
                f"name {name!r} must match ^[a-z][a-z0-9_]{{0,62}}$ (lowercase letters, digits, underscores)",
                where,
            )
        where = f"scenario {name}"
        if name in seen:
            raise fail("the name is used twice; scenario names must be unique", where)
        seen.add(name)
        desc = sc.get("description")
        if desc is not None and not isinstance(desc, str):
            raise fail("description must be text", where)
        levers = sc.get("levers")
        if not isinstance(levers, list) or not levers:
            raise fail("levers must be a non-empty list", where)
        for j, lever in enumerate(levers):
            lw = f"{where}, lever #{j + 1}"
            _check_lever(lever, lw, fail)
        out.append({"name": name, "description": desc, "levers": levers})
    return out


def _check_lever(lever, where: str, fail) -> None:
    if not isinstance(lever, dict) or lever.get("type") not in _LEVER_FIELDS:
        raise fail(f"lever type must be one of {', '.join(_LEVER_FIELDS)}", where)
    kind = lever["type"]
    missing = [f for f in _LEVER_FIELDS[kind] if f not in lever]
    if missing:
        raise fail(f"a {kind} lever needs {', '.join(missing)}", where)
    if kind in ("demand_change", "price_change") and not (
        lever.get("family") or lever.get("item_id")
    ):
        raise fail(f"a {kind} lever needs a family or an item_id", where)
    if "months" in lever:
        months = lever["months"]
        if (
            not isinstance(months, list)
            or not months
            or not all(isinstance(m, str) and _YM_RE.match(m) for m in months)
        ):
            raise fail(
                'months must be a list of YYYY-MM strings, e.g. ["2026-12", "2027-01"]', where
            )
    if "pct" in lever and (
        isinstance(lever["pct"], bool) or not isinstance(lever["pct"], int | float)
    ):
        raise fail("pct must be a number (a fraction: 0.15 = +15%)", where)
    if "days" in lever and (
        isinstance(lever["days"], bool) or not isinstance(lever["days"], int) or lever["days"] < 0
    ):
        raise fail("days must be a whole number of days >= 0", where)
    if kind == "strategy" and lever["value"] not in STRATEGIES:
        raise fail(f"strategy value must be one of {', '.join(STRATEGIES)}", where)


def _load_scenarios(
    con, landing_dir: Path, month: str, path: Path, at: datetime, summary: LoadSummary
) -> None:
    source_file = path.relative_to(landing_dir).as_posix()
    sha = _sha256(path)
    if _loaded_sha(con, month, "scenarios") == sha:
        summary.files_skipped.append(source_file)
        return
    scenarios = parse_scenarios(path)
    df = pd.DataFrame(
        {
            "name": [s["name"] for s in scenarios],
            "description": pd.Series([s["description"] for s in scenarios], dtype=object),
            "levers_json": [json.dumps(s["levers"], sort_keys=True) for s in scenarios],
        }
    )
    restated = _loaded_sha(con, month, "scenarios") is not None
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM raw.scenarios WHERE extract_month = ?", [month])
        if len(df):
            con.register("_scen", pa.Table.from_pandas(df, preserve_index=False))
            con.execute(
                "INSERT INTO raw.scenarios SELECT ?, name, CAST(description AS VARCHAR), levers_json, ?, ? FROM _scen",
                [month, source_file, at],
            )
            con.unregister("_scen")
        status = "restated" if restated else "loaded"
        _log(con, [(month, "scenarios", source_file, sha, len(df), 0, status)], at)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    summary.files_loaded.append(source_file)
    summary.scenarios_loaded += len(df)
    if restated:
        summary.restated_files.append(source_file)
