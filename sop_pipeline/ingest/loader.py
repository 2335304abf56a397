"""Load the extracts a plan month may see into DuckDB schema ``raw`` (point in time).

For plan month M the loader looks at ``landing/YYYY-MM`` folders with YYYY-MM <= M only,
checks the folder sequence and that every required extract is there, then for each file
that is new or changed since it was loaded (sha256 in ``raw._ingest_log``):

1. reads and checks it (:func:`sop_pipeline.ingest.reader.read_extract`);
2. checks foreign keys against master data of the same month or earlier, and currency
   codes against the base currency and ``fx_rates``;
3. applies the reject-rate policy: above ``max_reject_rate`` nothing of the file loads;
   otherwise the good rows load and the bad ones go to ``raw.rejects``;
4. replaces the rows of that extract month in one transaction (a restated file replaces
   its earlier load), with lineage columns.

Rejected files do not stop the examination of the others: every problem of the run is
collected, committed to ``raw.rejects``, and one :class:`IngestError` lists them at the end.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import yaml

from sop_pipeline.contract import (
    COMPLETE_MARKER,
    DIALECT_FILE,
    EXTRACTS,
    REQUIRED_EXTRACTS,
    SCENARIOS_FILE,
    Extract,
)
from sop_pipeline.ingest.dialect import load_dialect
from sop_pipeline.ingest.raw_schema import SQL_TYPES, create_raw_tables
from sop_pipeline.ingest.reader import (
    ExtractError,
    ReadResult,
    RowProblem,
    display_path,
    read_extract,
)
from sop_pipeline.months import month_range, parse_month
from sop_pipeline.settings import STRATEGIES

#: Master data first, so the foreign keys of the same month can be checked against them.
LOAD_ORDER = (
    "locations",
    "customers",
    "fx_rates",
    "items",
    "work_centers",
    "capacity_calendar",
    "routings",
    "inventory",
    "sales_orders",
    "production_orders",
    "purchase_orders",
    "opportunities",
    "demand_overrides",
    "aop_targets",
)
assert set(LOAD_ORDER) == set(EXTRACTS), "LOAD_ORDER must list every extract of the contract"

#: Columns whose currency code must be the base currency or have an fx rate.
CURRENCY_COLUMNS = {"items": "currency", "sales_orders": "currency", "opportunities": "currency"}
#: Problems shown per file in the IngestError message.
PROBLEMS_SHOWN = 10

_MONTH_DIR_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_SCENARIO_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_YM_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

Progress = Callable[[int, int, str], None]


class IngestError(RuntimeError):
    """The landing folder cannot be loaded as it is; the message lists what and where.

    Attributes:
        rejected: source file (relative to the landing folder) → its problems (empty for
            structural errors such as a missing folder).
        total_problems: number of problems over all rejected files.
    """

    def __init__(self, message: str, rejected: dict[str, list[RowProblem]] | None = None):
        super().__init__(message)
        self.rejected = rejected or {}
        self.total_problems = sum(len(v) for v in self.rejected.values())


@dataclass
class LoadSummary:
    """What one :func:`load_extracts` call did.

    Attributes:
        plan_month: the plan month (``YYYY-MM``).
        months: the month folders considered (``<= plan_month``), ascending.
        files_loaded: files read and loaded this time (paths relative to the landing folder).
        files_skipped: files already loaded with the same content (sha256).
        rows_loaded: extract → rows inserted this time.
        rows_rejected: rows of loaded files that went to ``raw.rejects`` (within tolerance).
        restated_files: files whose content changed since they were loaded (replaced).
        restated_rows: rows of newly loaded transaction files whose key already exists from
            an earlier extract month (late restatements; the latest extract wins downstream).
        restated_rows_by_extract: the same, per extract.
        scenarios_loaded: scenario rows stored this time.
    """

    plan_month: str
    months: list[str] = field(default_factory=list)
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    rows_loaded: dict[str, int] = field(default_factory=dict)
    rows_rejected: int = 0
    restated_files: list[str] = field(default_factory=list)
    restated_rows: int = 0
    restated_rows_by_extract: dict[str, int] = field(default_factory=dict)
    scenarios_loaded: int = 0


# --------------------------------------------------------------------------------------
# landing folder structure
# --------------------------------------------------------------------------------------


def _month_folders(landing_dir: Path, plan_month: str) -> list[str]:
    """Month folders ``<= plan_month``; bad names, gaps or a missing plan month raise."""
    if not landing_dir.is_dir():
        raise IngestError(
            f"{landing_dir}: the landing folder does not exist; run `sop generate` or point "
            "SOP_HOME at the folder holding landing/."
        )
    names = sorted(
        p.name for p in landing_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )
    bad = [n for n in names if not _MONTH_DIR_RE.match(n)]
    if bad:
        raise IngestError(
            f"{landing_dir.name}/{bad[0]}: folder name is not a month; the landing folder holds one "
            "folder per extract month named YYYY-MM (e.g. 2026-10); rename or move it."
        )
    months = [n for n in names if n <= plan_month]
    if not months:
        raise IngestError(
            f"{landing_dir.name}/: no month folder at or before the plan month {plan_month}; "
            f"add {landing_dir.name}/{plan_month}/ with that month's extracts."
        )
    expected = month_range(months[0], plan_month)
    missing = sorted(set(expected) - set(months))
    if missing:
        what = (
            "the plan month's folder" if missing == [plan_month] else "a gap in the month folders"
        )
        raise IngestError(
            f"{landing_dir.name}/{missing[0]}: missing ({what}: folders run from {months[0]} to "
            f"{months[-1]} but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} absent); "
            "add the missing month's extracts (point in time needs every month)."
        )
    return months


def _month_files(landing_dir: Path, month: str) -> tuple[dict[str, Path], Path | None]:
    """Extract → file of one month folder (+ scenarios.yaml); missing/doubled files raise."""
    folder = landing_dir / month
    found: dict[str, list[Path]] = {}
    scenarios = None
    for path in sorted(folder.iterdir()):
        if (
            path.name.startswith(".")
            or path.name in (COMPLETE_MARKER, DIALECT_FILE)
            or path.is_dir()
        ):
            continue
        if path.name == SCENARIOS_FILE:
            scenarios = path
            continue
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            continue  # notes, READMEs: not ours to judge
        if path.stem not in EXTRACTS:
            raise IngestError(
                f"{landing_dir.name}/{month}/{path.name}: not an extract of the contract; expected "
                f"one of {', '.join(EXTRACTS)} (.csv or .parquet); rename or remove the file."
            )
        found.setdefault(path.stem, []).append(path)
    for name, paths in found.items():
        if len(paths) > 1:
            raise IngestError(
                f"{landing_dir.name}/{month}: {name} is there as both "
                f"{' and '.join(p.name for p in paths)}; keep one of them."
            )
    missing = [n for n in REQUIRED_EXTRACTS if n not in found]
    if missing:
        raise IngestError(
            f"{landing_dir.name}/{month}: required extract(s) {', '.join(missing)} missing "
            f"(expected {missing[0]}.csv or {missing[0]}.parquet); add the file(s) from the source system."
        )
    return {n: p[0] for n, p in found.items()}, scenarios


# --------------------------------------------------------------------------------------
# checks against the database (foreign keys, currencies)
# --------------------------------------------------------------------------------------


def _unknown_values(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, column: str, known_sql: str, params: list
) -> pd.DataFrame:
    """Rows of ``frame`` whose non-null ``column`` is not in the values ``known_sql`` returns."""
    sub = frame.loc[frame[column].notna(), ["_source_row", column]]
    if sub.empty:
        return pd.DataFrame(
            {"_source_row": pd.Series(dtype="int64"), "value": pd.Series(dtype=object)}
        )
    con.register("_fk_frame", pa.Table.from_pandas(sub, preserve_index=False))
    try:
        return con.execute(
            f"SELECT f._source_row, f.{column} AS value FROM _fk_frame f "
            f"WHERE f.{column} NOT IN ({known_sql}) ORDER BY f._source_row",
            params,
        ).df()
    finally:
        con.unregister("_fk_frame")


def _reference_problems(
    con: duckdb.DuckDBPyConnection,
    extract: Extract,
    frame: pd.DataFrame,
    month: str,
    base_currency: str,
) -> list[RowProblem]:
    problems: list[RowProblem] = []
    for fk in extract.foreign_keys:
        if fk.column not in frame:
            continue
        bad = _unknown_values(
            con,
            frame,
            fk.column,
            f"SELECT {fk.ref_column} FROM raw.{fk.ref_extract} WHERE _extract_month <= ? AND {fk.ref_column} IS NOT NULL",
            [month],
        )
        problems += [
            RowProblem(
                int(r),
                fk.column,
                str(v),
                f"unknown {fk.column} '{v}': not in {fk.ref_extract}.{fk.ref_column} of {month} or earlier",
                f"add it to the {fk.ref_extract} extract or correct the value",
            )
            for r, v in zip(bad["_source_row"], bad["value"], strict=True)
        ]
    currency_col = CURRENCY_COLUMNS.get(extract.name)
    if currency_col:
        bad = _unknown_values(
            con,
            frame,
            currency_col,
            "SELECT ? UNION SELECT currency FROM raw.fx_rates WHERE _extract_month <= ? AND currency IS NOT NULL",
            [base_currency, month],
        )
        problems += [
            RowProblem(
                int(r),
                currency_col,
                str(v),
                f"currency '{v}' is neither the base currency {base_currency} nor in fx_rates of {month} or earlier",
                "add its rates to the fx_rates extract or correct the currency code",
            )
            for r, v in zip(bad["_source_row"], bad["value"], strict=True)
        ]
    if extract.name == "demand_overrides":
        bad = _unknown_values(
            con,
            frame,
            "scope",
            "SELECT item_id FROM raw.items WHERE _extract_month <= ? "
            "UNION SELECT family FROM raw.items WHERE _extract_month <= ? AND family IS NOT NULL",
            [month, month],
        )
        problems += [
            RowProblem(
                int(r),
                "scope",
                str(v),
                f"scope '{v}' is neither an item_id nor a family in items of {month} or earlier",
                "use an item_id or a family name from the items extract",
            )
            for r, v in zip(bad["_source_row"], bad["value"], strict=True)
        ]
    return problems


def _restated_rows(
    con: duckdb.DuckDBPyConnection, extract: Extract, frame: pd.DataFrame, month: str
) -> int:
    """Rows whose key was already delivered by an earlier extract month."""
    if extract.kind != "transaction" or frame.empty:
        return 0
    key = list(extract.key)
    con.register("_key_frame", pa.Table.from_pandas(frame[key], preserve_index=False))
    try:
        cond = " AND ".join(f"r.{k} = f.{k}" for k in key)
        return int(
            con.execute(
                f"SELECT count(*) FROM _key_frame f WHERE EXISTS "
                f"(SELECT 1 FROM raw.{extract.name} r WHERE r._extract_month < ? AND {cond})",
                [month],
            ).fetchone()[0]
        )
    finally:
        con.unregister("_key_frame")


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


def _write_rejects(
    con: duckdb.DuckDBPyConnection,
    month: str,
    extract: str,
    source_file: str,
    problems: list[RowProblem],
    at: datetime,
) -> None:
    """Replace the rejects of ``source_file`` by ``problems`` (call inside a transaction)."""
    con.execute("DELETE FROM raw.rejects WHERE source_file = ?", [source_file])
    if not problems:
        return
    df = pd.DataFrame(
        {
            "source_row": pd.array([p.row for p in problems], dtype="Int64"),
            "column_name": [p.column for p in problems],
            "value": [p.value for p in problems],
            "reason": [p.reason for p in problems],
            "fix": [p.fix for p in problems],
        }
    )
    con.register("_rejects", pa.Table.from_pandas(df, preserve_index=False))
    try:
        con.execute(
            "INSERT INTO raw.rejects SELECT ?, ?, ?, source_row, CAST(column_name AS VARCHAR), "
            "CAST(value AS VARCHAR), reason, fix, ? FROM _rejects",
            [month, extract, source_file, at],
        )
    finally:
        con.unregister("_rejects")


def _log(
    con,
    month: str,
    extract: str,
    source_file: str,
    sha: str,
    rows: int,
    rejected: int,
    status: str,
    at,
) -> None:
    con.execute(
        "INSERT INTO raw._ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [month, extract, source_file, sha, rows, rejected, status, at],
    )


def _insert_rows(
    con, extract: Extract, frame: pd.DataFrame, month: str, source_file: str, at: datetime
) -> None:
    """Replace the rows of ``extract`` for ``month`` by ``frame`` (call inside a transaction)."""
    con.execute(f"DELETE FROM raw.{extract.name} WHERE _extract_month = ?", [month])
    if frame.empty:
        return
    table = pa.Table.from_pandas(
        frame[[*extract.column_names, "_source_row"]], preserve_index=False
    )

    select = ", ".join(f"CAST({c.name} AS {SQL_TYPES[c.type]})" for c in extract.columns)
    con.register("_load", table)
    try:
        con.execute(
            f"INSERT INTO raw.{extract.name} ({', '.join(extract.column_names)}, "
            "_extract_month, _source_file, _source_row, _loaded_at) "
            f"SELECT {select}, ?, ?, _source_row, ? FROM _load",
            [month, source_file, at],
        )
    finally:
        con.unregister("_load")


def _loaded_sha(con, month: str, extract: str) -> str | None:
    row = con.execute(
        "SELECT sha256 FROM raw._ingest_log WHERE extract_month = ? AND extract = ? "
        "AND status IN ('loaded', 'restated') ORDER BY loaded_at DESC LIMIT 1",
        [month, extract],
    ).fetchone()
    return row[0] if row else None


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
        _log(
            con,
            month,
            "scenarios",
            source_file,
            sha,
            len(df),
            0,
            "restated" if restated else "loaded",
            at,
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    summary.files_loaded.append(source_file)
    summary.scenarios_loaded += len(df)
    if restated:
        summary.restated_files.append(source_file)


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------


def _format_error(
    plan_month: str, rejected: dict[str, tuple[int, list[RowProblem]]], landing_name: str
) -> str:
    lines = [
        f"ingest for plan month {plan_month} stopped: {len(rejected)} file(s) rejected, nothing of them was loaded"
    ]
    total = 0
    for source_file, (row_count, problems) in rejected.items():
        total += len(problems)
        bad_rows = len({p.row for p in problems})
        if row_count:
            lines.append(f"- {landing_name}/{source_file}: {bad_rows} of {row_count} rows rejected")
        else:
            lines.append(f"- {landing_name}/{source_file}: the file cannot be used as it is")
        for p in problems[:PROBLEMS_SHOWN]:
            where = ", ".join(
                part
                for part in (
                    f"row {p.row}" if p.row is not None else "",
                    f"column {p.column}" if p.column else "",
                    f"value {p.value!r}" if p.value is not None else "",
                )
                if part
            )
            lines.append(f"    {where + ': ' if where else ''}{p.reason}; {p.fix}")
        if len(problems) > PROBLEMS_SHOWN:
            lines.append(f"    … and {len(problems) - PROBLEMS_SHOWN} more")
    lines.append(f"{total} problem(s) in total; see table raw.rejects for all of them.")
    return "\n".join(lines)


def load_extracts(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    plan_month: str,
    *,
    max_reject_rate: float = 0.0,
    progress: Progress | None = None,
    base_currency: str | None = None,
) -> LoadSummary:
    """Load every new or changed extract file of months ``<= plan_month`` into ``raw``.

    Args:
        con: the working database (tables are created if needed).
        landing_dir: folder holding ``YYYY-MM`` month folders and ``dialect.yaml``.
        plan_month: ``YYYY-MM``; later month folders are not looked at (point in time).
        max_reject_rate: largest share of a file's rows that may be rejected while the rest
            loads (0.0: any bad row rejects the whole file).
        progress: optional ``progress(done, total, message)`` callback, called per file.
        base_currency: currency that needs no fx rate (default: ``SOP_BASE_CURRENCY``).

    Returns:
        What was loaded, skipped, rejected and restated.

    Raises:
        IngestError: the folder structure is wrong (not YYYY-MM, gap, missing required
            extract, .csv and .parquet of one extract), or files were rejected (their
            problems are committed to ``raw.rejects`` first).
        DialectError: ``dialect.yaml`` is invalid.
    """
    parse_month(plan_month)
    if not 0.0 <= max_reject_rate <= 1.0:
        raise ValueError(
            f"max_reject_rate={max_reject_rate} must be between 0 and 1 (a share of rows)."
        )
    if base_currency is None:
        from sop_pipeline.settings import get_settings

        base_currency = get_settings().base_currency
    landing_dir = Path(landing_dir)
    months = _month_folders(landing_dir, plan_month)
    dialects = load_dialect(landing_dir)
    plan = [(m, *_month_files(landing_dir, m)) for m in months]
    create_raw_tables(con)
    summary = LoadSummary(plan_month=plan_month, months=months)
    rejected: dict[str, tuple[int, list[RowProblem]]] = {}
    at = datetime.now(UTC).replace(tzinfo=None)
    total = sum(len(files) + (1 if scen else 0) for _, files, scen in plan)
    done = 0

    for month, files, scenarios in plan:
        for name in LOAD_ORDER:
            if name not in files:
                continue
            path = files[name]
            extract = EXTRACTS[name]
            source_file = path.relative_to(landing_dir).as_posix()
            done += 1
            if progress:
                progress(done, total, f"{source_file}")
            previous = _loaded_sha(con, month, name)
            sha = _sha256(path)
            if previous == sha:
                summary.files_skipped.append(source_file)
                continue
            try:
                result: ReadResult = read_extract(
                    path, extract, dialects.for_extract(name), extract_month=month
                )
            except ExtractError as exc:
                problem = RowProblem(exc.row, exc.column, None, exc.problem, exc.fix)
                _commit_rejection(con, month, name, source_file, sha, 0, [problem], at)
                rejected[source_file] = (0, [problem])
                continue
            problems = result.problems + _reference_problems(
                con, extract, result.frame, month, base_currency
            )
            problems.sort(key=lambda p: (p.row is None, p.row or 0))
            bad_rows = {p.row for p in problems}
            if result.row_count and len(bad_rows) / result.row_count > max_reject_rate:
                _commit_rejection(
                    con, month, name, source_file, sha, result.row_count, problems, at
                )
                rejected[source_file] = (result.row_count, problems)
                continue
            good = (
                result.frame[~result.frame["_source_row"].isin(bad_rows)]
                if bad_rows
                else result.frame
            )
            late = _restated_rows(con, extract, good, month)
            summary.restated_rows += late
            if late:
                summary.restated_rows_by_extract[name] = (
                    summary.restated_rows_by_extract.get(name, 0) + late
                )
            con.execute("BEGIN TRANSACTION")
            try:
                _insert_rows(con, extract, good, month, source_file, at)
                _write_rejects(con, month, name, source_file, problems, at)
                status = "restated" if previous is not None else "loaded"
                _log(
                    con, month, name, source_file, sha, result.row_count, len(bad_rows), status, at
                )
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            summary.files_loaded.append(source_file)
            summary.rows_loaded[name] = summary.rows_loaded.get(name, 0) + len(good)
            summary.rows_rejected += len(bad_rows)
            if previous is not None:
                summary.restated_files.append(source_file)
        if scenarios is not None:
            done += 1
            if progress:
                progress(done, total, scenarios.relative_to(landing_dir).as_posix())
            source_file = scenarios.relative_to(landing_dir).as_posix()
            try:
                _load_scenarios(con, landing_dir, month, scenarios, at, summary)
            except ExtractError as exc:
                problem = RowProblem(exc.row, exc.column, None, exc.problem, exc.fix)
                _commit_rejection(
                    con, month, "scenarios", source_file, _sha256(scenarios), 0, [problem], at
                )
                rejected[source_file] = (0, [problem])

    if rejected:
        raise IngestError(
            _format_error(plan_month, rejected, landing_dir.name),
            {k: v[1] for k, v in rejected.items()},
        )
    return summary


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _commit_rejection(con, month, extract, source_file, sha, row_count, problems, at) -> None:
    """Record a rejected file: its problems in raw.rejects and a 'rejected' log entry."""
    con.execute("BEGIN TRANSACTION")
    try:
        _write_rejects(con, month, extract, source_file, problems, at)
        bad = len({p.row for p in problems if p.row is not None})
        _log(con, month, extract, source_file, sha, row_count, bad, "rejected", at)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
