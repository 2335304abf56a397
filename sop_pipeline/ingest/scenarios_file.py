"""``landing/<YYYY-MM>/scenarios.yaml``: the planner's scenarios.

Checked against the one scenarios schema and stored in ``raw.scenarios`` by the loader.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import yaml

from sop_pipeline.core import scenario_schema
from sop_pipeline.core.scenario_schema import ScenarioError, ScenarioSpec
from sop_pipeline.ingest.landing import _sha256
from sop_pipeline.ingest.problems import ExtractError, LoadSummary, display_path
from sop_pipeline.ingest.raw_writes import _loaded_sha, _log


def parse_scenarios(path: Path) -> list[ScenarioSpec]:
    """Read ``scenarios.yaml`` and check it against the scenarios schema.

    The schema is :mod:`sop_pipeline.core.scenario_schema`, the one the scenario step parses
    ``raw.scenarios`` with, so a file that loads can be planned (docs/scenarios.md): a
    top-level ``scenarios:`` list of ``{name, description?, levers: [...]}``.

    Args:
        path: the ``scenarios.yaml`` file.

    Returns:
        The validated scenarios (``name``, ``description``, ``levers``, ``raw_levers``).

    Raises:
        ExtractError: the file is not YAML or does not follow the schema; the message says
            which scenario and lever.
    """
    shown = display_path(path)

    def fail(problem: str) -> ExtractError:
        return ExtractError(
            shown,
            problem,
            "fix the file; see the scenarios shape in docs/scenarios.md (scenarios: [{name, description, levers: [...]}])",
        )

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise fail(f"not valid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise fail("not UTF-8 text") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise fail("expected a top-level 'scenarios:' list")
    try:
        return scenario_schema.parse_scenarios(data["scenarios"])
    except ScenarioError as exc:
        raise fail(str(exc).rstrip(".")) from None


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
            "name": [s.name for s in scenarios],
            "description": pd.Series([s.description for s in scenarios], dtype=object),
            "levers_json": [json.dumps(s.raw_levers, sort_keys=True) for s in scenarios],
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
