"""Load the extracts a plan month may see into DuckDB schema ``raw`` (point in time).

For plan month M the loader looks at ``landing/YYYY-MM`` folders with YYYY-MM <= M only,
checks the folder sequence and that every required extract is there, then for each file
that is new or changed since it was loaded (sha256 in ``raw._ingest_log``):

1. reads and parses it (:func:`sop_pipeline.ingest.reader.parse_extract`) and checks it
   against the extract's Great Expectations suite, one GX run per batch of files of one
   extract (:func:`sop_pipeline.ingest.reader.check_parsed`);
2. checks foreign keys against master data of the same month or earlier, and currency
   codes against the base currency and ``fx_rates``;
3. applies the reject-rate policy: above ``max_reject_rate`` nothing of the file loads;
   otherwise the good rows load and the bad ones go to ``raw.rejects``;
4. replaces the rows of that extract month (a restated file replaces its earlier load),
   with lineage columns; a file loads completely or not at all.

A transaction or inventory file that is byte-identical to the previous month's is a stale
extract and is rejected (``docs/bad_input.md``). Rejected files do not stop the
examination of the others: every problem of the run is collected, committed to
``raw.rejects``, and one :class:`IngestError` lists them at the end.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from sop_pipeline.core import scenario_schema
from sop_pipeline.core.months import month_range, parse_month
from sop_pipeline.core.scenario_schema import ScenarioError, ScenarioSpec
from sop_pipeline.errors import InvalidInputError
from sop_pipeline.ingest.contract import (
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
    DECIMAL_TYPE,
    ExtractError,
    ParsedExtract,
    ReadResult,
    RowProblem,
    check_parsed,
    display_path,
    parse_extract,
)

#: Master data first, so the foreign keys of the same month can be checked against them.
LOAD_ORDER = (
    "locations",
    "customers",
    "fx_rates",
    "items",
    "work_centers",
    "capacity_calendar",
    "routings",
    "bom",
    "supplier_capacity",
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
#: Extracts whose rows only make sense together (a BOM is a graph): any problem rejects the
#: whole file whatever the reject-rate policy.
WHOLE_FILE_EXTRACTS = ("bom", "supplier_capacity")
#: Problems shown per file in the IngestError message.
PROBLEMS_SHOWN = 10
#: Extracts that hold the rows of their own month (or the snapshot at its close): a file
#: byte-identical to the previous month's is stale. Master and planning data may
#: legitimately stay the same from one month to the next.
STALE_CHECKED = tuple(
    name for name, e in EXTRACTS.items() if e.kind == "transaction" or name == "inventory"
)
#: Rows of one extract validated by one Great Expectations run (bounds memory; GX's cost
#: is ~0.1 s per run plus a little per row, so fewer, larger runs are faster).
GX_BATCH_ROWS = 1_000_000

_MONTH_DIR_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

Progress = Callable[[int, int, str], None]


class IngestError(InvalidInputError, RuntimeError):
    """The landing folder cannot be loaded as it is; the message lists what and where.

    Attributes:
        rejected: source file (relative to the landing folder) → its problems (empty for
            structural errors such as a missing folder).
        total_problems: number of problems over all rejected files.
        summary: what the run did load besides the rejected files (None for structural
            errors found before anything was read).
    """

    def __init__(
        self,
        message: str,
        rejected: dict[str, list[RowProblem]] | None = None,
        *,
        summary: LoadSummary | None = None,
    ):
        super().__init__(message)
        self.rejected = rejected or {}
        self.total_problems = sum(len(v) for v in self.rejected.values())
        self.summary = summary


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
        files_rejected: files of which nothing was loaded (their problems are in
            ``raw.rejects``; :class:`IngestError` is raised at the end of such a run).
        rows_in_rejected_files: rejected file → its rows with a problem (0 when the file
            as a whole is unusable).
        seconds: wall seconds per stage (plan, read, contract, references, write, other,
            total), for benchmarks and logs.
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
    files_rejected: list[str] = field(default_factory=list)
    rows_in_rejected_files: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: what was skipped on purpose (e.g. the other sheets of demand_overrides.xlsx)
    notes: list[str] = field(default_factory=list)


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


def check_landing(landing_dir: Path, plan_month: str) -> None:
    """Check the landing folder's structure for ``plan_month`` without reading a file.

    The checks the load makes first (month folder names, no gap up to the plan month, each
    month's required extracts present once): ``sop run`` calls this before a Dagster run
    starts, so a missing file does not leave a failed run behind.

    Raises:
        IngestError: what is missing or misnamed, and how to fix it.
    """
    landing_dir = Path(landing_dir)
    for month in _month_folders(landing_dir, plan_month):
        _month_files(landing_dir, month)


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
        if suffix == ".xlsx" and path.name.startswith("~$"):
            raise IngestError(
                f"{landing_dir.name}/{month}/{path.name}: Excel's lock file, so "
                f"{path.name[2:]} is open in Excel and may not be saved yet; save and close it "
                "(or delete the lock file if Excel is not running), then run again."
            )
        if suffix == ".xlsx" and path.stem == "demand_overrides":
            suffix = ".csv"  # the planner's workbook (sop export): read like the CSV
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


class _KnownValues:
    """The first extract month of every master-data value, read once per run.

    ``value known for month m`` ⇔ ``first month <= m``: the same answer as looking the
    value up in the master rows of month m or earlier, without re-reading those rows for
    every file (on a first load of 60 months that was 60 reads of each master table per
    referencing extract). An entry is dropped when its table is written.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, base_currency: str):
        self.con = con
        self.base_currency = base_currency
        self._cache: dict[tuple[str, str], pd.Series] = {}

    def _read(self, table: str, what: str, sql: str) -> pd.Series:
        key = (table, what)
        if key not in self._cache:
            df = self.con.execute(sql).df()
            self._cache[key] = pd.Series(df["m"].to_numpy(), index=df["v"].to_numpy())
        return self._cache[key]

    def column(self, extract: str, column: str) -> pd.Series:
        """value → first ``_extract_month`` of ``raw.<extract>.<column>``."""
        return self._read(
            extract,
            column,
            f"SELECT {column} AS v, min(_extract_month) AS m FROM raw.{extract} "
            f"WHERE {column} IS NOT NULL GROUP BY 1",
        )

    def currencies(self) -> pd.Series:
        """currency → first month it has an fx rate; the base currency is always known."""
        rates = self.column("fx_rates", "currency")
        rates = rates[rates.index != self.base_currency]
        return pd.concat([pd.Series([""], index=[self.base_currency]), rates])

    def scopes(self) -> pd.Series:
        """item_id or family → first month it is in the items extract."""
        return self._read(
            "items",
            "scope",
            "SELECT v, min(m) AS m FROM (SELECT item_id AS v, _extract_month AS m FROM raw.items "
            "UNION ALL SELECT family, _extract_month FROM raw.items WHERE family IS NOT NULL) "
            "GROUP BY v",
        )

    def written(self, extract: str) -> None:
        """Forget what was read of ``raw.<extract>``: rows were just written to it."""
        for key in [k for k in self._cache if k[0] == extract]:
            del self._cache[key]


def _unknown_values(
    frame: pd.DataFrame, column: str, first_month: pd.Series, month: str
) -> tuple[np.ndarray, list]:
    """Rows and values of ``frame`` whose non-null ``column`` is not known by ``month``."""
    values = frame[column]
    present = values.notna().to_numpy()
    if not present.any():
        return np.zeros(0, np.int64), []
    first = values[present].map(first_month)
    bad = (first.isna() | (first.fillna("") > month)).to_numpy()
    rows = frame["_source_row"].to_numpy()[present][bad]
    return rows, values[present][bad].tolist()


def _reference_problems(
    known: _KnownValues, extract: Extract, frame: pd.DataFrame, month: str
) -> list[RowProblem]:
    problems: list[RowProblem] = []
    for fk in extract.foreign_keys:
        if fk.column not in frame:
            continue
        rows, values = _unknown_values(
            frame, fk.column, known.column(fk.ref_extract, fk.ref_column), month
        )
        problems += [
            RowProblem(
                int(r),
                fk.column,
                str(v),
                f"unknown {fk.column} '{v}': not in {fk.ref_extract}.{fk.ref_column} of {month} or earlier",
                f"add it to the {fk.ref_extract} extract or correct the value",
            )
            for r, v in zip(rows, values, strict=True)
        ]
    currency_col = CURRENCY_COLUMNS.get(extract.name)
    if currency_col:
        rows, values = _unknown_values(frame, currency_col, known.currencies(), month)
        problems += [
            RowProblem(
                int(r),
                currency_col,
                str(v),
                f"currency '{v}' is neither the base currency {known.base_currency} nor in fx_rates of {month} or earlier",
                "add its rates to the fx_rates extract or correct the currency code",
            )
            for r, v in zip(rows, values, strict=True)
        ]
    if extract.name == "supplier_capacity" and "family" in frame:
        rows, values = _unknown_values(frame, "family", known.column("items", "family"), month)
        problems += [
            RowProblem(
                int(r),
                "family",
                str(v),
                f"unknown family '{v}': no item of items of {month} or earlier has it",
                "use a family name from the items extract, or give the item_id instead",
            )
            for r, v in zip(rows, values, strict=True)
        ]
    if extract.name == "demand_overrides":
        rows, values = _unknown_values(frame, "scope", known.scopes(), month)
        problems += [
            RowProblem(
                int(r),
                "scope",
                str(v),
                f"scope '{v}' is neither an item_id nor a family in items of {month} or earlier",
                "use an item_id or a family name from the items extract",
            )
            for r, v in zip(rows, values, strict=True)
        ]
    return problems


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


@dataclass
class _FileRejects:
    """The problems of one file, to replace its earlier entries in ``raw.rejects``."""

    month: str
    extract: str
    source_file: str
    problems: list[RowProblem]


def _write_rejects(con: duckdb.DuckDBPyConnection, files: list[_FileRejects], at: datetime) -> None:
    """Replace the rejects of each file by its problems (call inside a transaction)."""
    if not files:
        return
    con.execute(
        "DELETE FROM raw.rejects WHERE list_contains(?, source_file)",
        [[f.source_file for f in files]],
    )
    problems = [(f, p) for f in files for p in f.problems]
    if not problems:
        return
    df = pd.DataFrame(
        {
            "extract_month": [f.month for f, _ in problems],
            "extract": [f.extract for f, _ in problems],
            "source_file": [f.source_file for f, _ in problems],
            "source_row": pd.array([p.row for _, p in problems], dtype="Int64"),
            "column_name": pd.Series([p.column for _, p in problems], dtype=object),
            "value": pd.Series([p.value for _, p in problems], dtype=object),
            "reason": [p.reason for _, p in problems],
            "fix": [p.fix for _, p in problems],
        }
    )
    con.register("_rejects", pa.Table.from_pandas(df, preserve_index=False))
    try:
        con.execute(
            "INSERT INTO raw.rejects SELECT extract_month, extract, source_file, source_row, "
            "CAST(column_name AS VARCHAR), CAST(value AS VARCHAR), reason, fix, ? FROM _rejects",
            [at],
        )
    finally:
        con.unregister("_rejects")


def _log(con, entries: list[tuple[str, str, str, str, int, int, str]], at: datetime) -> None:
    """Append ``(month, extract, source_file, sha256, rows, rejected, status)`` to the log."""
    if not entries:
        return
    names = ("extract_month", "extract", "source_file", "sha256", "row_count", "rejected_rows")
    df = pd.DataFrame({n: [e[i] for e in entries] for i, n in enumerate(names)})
    df["status"] = [e[6] for e in entries]
    con.register("_log_rows", pa.Table.from_pandas(df, preserve_index=False))
    try:
        con.execute("INSERT INTO raw._ingest_log SELECT *, ? FROM _log_rows", [at])
    finally:
        con.unregister("_log_rows")


def _arrow_schema(extract: Extract) -> pa.Schema:
    """Arrow types of the typed frame's contract columns (an all-empty column stays typed)."""
    types = {
        "str": pa.string(),
        "int": pa.int64(),
        "num": DECIMAL_TYPE,
        "date": pa.timestamp("ns"),
        "month": pa.timestamp("ns"),
    }
    return pa.schema(
        [pa.field(c.name, types[c.type]) for c in extract.columns]
        + [pa.field("_source_row", pa.int64())]
    )


def _insert_rows(
    con, extract: Extract, files: list[tuple[str, str, pd.DataFrame]], at: datetime
) -> None:
    """Replace the rows of ``extract`` of each ``(month, source_file, frame)`` by the frame.

    Call inside a transaction. One DELETE and one INSERT for all the files.
    """
    if not files:
        return
    con.execute(
        f"DELETE FROM raw.{extract.name} WHERE list_contains(?, _extract_month)",
        [[month for month, _, _ in files]],
    )
    schema = _arrow_schema(extract)
    tables = []
    for month, source_file, frame in files:
        if frame.empty:
            continue
        table = pa.Table.from_pandas(
            frame[[*extract.column_names, "_source_row"]], schema=schema, preserve_index=False
        )
        n = table.num_rows
        table = table.append_column(
            "_extract_month", pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [month])
        ).append_column(
            "_source_file", pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [source_file])
        )
        tables.append(table)
    if not tables:
        return
    select = ", ".join(f"CAST({c.name} AS {SQL_TYPES[c.type]})" for c in extract.columns)
    con.register("_load", pa.concat_tables(tables).unify_dictionaries())
    try:
        con.execute(
            f"INSERT INTO raw.{extract.name} ({', '.join(extract.column_names)}, "
            "_extract_month, _source_file, _source_row, _loaded_at) "
            f"SELECT {select}, CAST(_extract_month AS VARCHAR), CAST(_source_file AS VARCHAR), "
            "_source_row, ? FROM _load",
            [at],
        )
    finally:
        con.unregister("_load")


def _restated_rows(
    con: duckdb.DuckDBPyConnection, extract: Extract, months: list[str]
) -> dict[str, int]:
    """Rows of the given extract months whose key an earlier extract month already delivered.

    Call right after those months' rows were written. A key's first extract month is
    earlier than ``m`` exactly when some earlier month delivered it, so one grouped query
    answers for every month of a batch.
    """
    if extract.kind != "transaction" or not months:
        return {}
    key = ", ".join(extract.key)
    rows = con.execute(
        f"WITH firsts AS (SELECT {key}, min(_extract_month) AS first_month "
        f"FROM raw.{extract.name} GROUP BY {key}) "
        f"SELECT f._extract_month, count(*) FROM raw.{extract.name} f JOIN firsts USING ({key}) "
        "WHERE list_contains(?, f._extract_month) AND first_month < f._extract_month GROUP BY 1",
        [months],
    ).fetchall()
    return {m: int(n) for m, n in rows}


def _loaded_shas(con) -> dict[tuple[str, str], str]:
    """(extract month, extract) → sha256 of its latest load, for every file loaded so far."""
    rows = con.execute(
        "SELECT extract_month, extract, arg_max(sha256, loaded_at) FROM raw._ingest_log "
        "WHERE status IN ('loaded', 'restated') GROUP BY 1, 2"
    ).fetchall()
    return {(m, e): sha for m, e, sha in rows}


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
        if source_file.lower().endswith(".xlsx"):
            source_file += ", sheet Overrides"  # noqa: PLW2901 (row numbers are the sheet's)
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
    base_currency: str,
    progress: Progress | None = None,
) -> LoadSummary:
    """Load every new or changed extract file of months ``<= plan_month`` into ``raw``.

    Files are processed extract by extract in ``LOAD_ORDER`` (master data first), months
    ascending within an extract: a foreign key of month M is checked against the master
    rows of month M or earlier, which are all loaded by then, so the result is the one a
    month-by-month load gives. The new files of one extract are parsed, then checked by
    one Great Expectations run per batch (``GX_BATCH_ROWS``), then written in one
    transaction per batch; every file still loads completely or not at all.

    Args:
        con: the working database (tables are created if needed).
        landing_dir: folder holding ``YYYY-MM`` month folders and ``dialect.yaml``.
        plan_month: ``YYYY-MM``; later month folders are not looked at (point in time).
        max_reject_rate: largest share of a file's rows that may be rejected while the rest
            loads (0.0: any bad row rejects the whole file).
        progress: optional ``progress(done, total, message)`` callback, called per file.
        base_currency: currency that needs no fx rate (settings ``base_currency``).

    Returns:
        What was loaded, skipped, rejected and restated.

    Raises:
        IngestError: the folder structure is wrong (not YYYY-MM, gap, missing required
            extract, .csv and .parquet of one extract), or files were rejected (their
            problems are committed to ``raw.rejects`` first; ``error.summary`` says what
            was loaded).
        DialectError: ``dialect.yaml`` is invalid.
    """
    parse_month(plan_month)
    if not 0.0 <= max_reject_rate <= 1.0:
        raise ValueError(
            f"max_reject_rate={max_reject_rate} must be between 0 and 1 (a share of rows)."
        )
    started = time.perf_counter()
    landing_dir = Path(landing_dir)
    months = _month_folders(landing_dir, plan_month)
    dialects = load_dialect(landing_dir)
    plan = [(m, *_month_files(landing_dir, m)) for m in months]
    create_raw_tables(con)
    summary = LoadSummary(plan_month=plan_month, months=months)
    run = _Run(con, landing_dir, summary, max_reject_rate, _KnownValues(con, base_currency))
    shas = {
        (month, name): _sha256(path) for month, files, _ in plan for name, path in files.items()
    }
    loaded = _loaded_shas(con)
    total = sum(len(files) + (1 if scen else 0) for _, files, scen in plan)
    done = 0
    run.seconds("plan", started)

    for name in LOAD_ORDER:
        extract = EXTRACTS[name]
        pending: list[_Pending] = []
        for i, (month, files, _) in enumerate(plan):
            if name not in files:
                continue
            path = files[name]
            source_file = path.relative_to(landing_dir).as_posix()
            done += 1
            if progress:
                progress(done, total, source_file)
            sha = shas[(month, name)]
            previous = loaded.get((month, name))
            if previous == sha:
                summary.files_skipped.append(source_file)
                continue
            item = _Pending(month, path, source_file, sha, previous)
            prev_month = plan[i - 1][0] if i else None
            if name in STALE_CHECKED and shas.get((prev_month, name)) == sha:
                run.reject_stale(item, extract, f"{prev_month}/{path.name}")
                continue
            pending.append(item)
        batch: list[tuple[_Pending, ParsedExtract]] = []
        rows = 0
        for item in pending:
            read_started = time.perf_counter()
            try:
                parsed = parse_extract(
                    item.path, extract, dialects.for_extract(name), extract_month=item.month
                )
            except ExtractError as exc:
                run.seconds("read", read_started)
                problem = RowProblem(exc.row, exc.column, None, exc.problem, exc.fix)
                run.reject_file(item, name, 0, [problem])
                continue
            run.seconds("read", read_started)
            summary.notes.extend(parsed.notes)
            batch.append((item, parsed))
            rows += parsed.row_count
            if rows >= GX_BATCH_ROWS:
                run.load_batch(extract, batch)
                batch, rows = [], 0
        if batch:
            run.load_batch(extract, batch)

    for month, _, scenarios in plan:
        if scenarios is None:
            continue
        done += 1
        source_file = scenarios.relative_to(landing_dir).as_posix()
        if progress:
            progress(done, total, source_file)
        try:
            _load_scenarios(con, landing_dir, month, scenarios, run.at, summary)
        except ExtractError as exc:
            problem = RowProblem(exc.row, exc.column, None, exc.problem, exc.fix)
            item = _Pending(month, scenarios, source_file, _sha256(scenarios), None)
            run.reject_file(item, "scenarios", 0, [problem])
    wall = time.perf_counter() - started
    summary.seconds["other"] = max(0.0, wall - sum(summary.seconds.values()))
    summary.seconds["total"] = wall

    order = {name: i for i, name in enumerate(LOAD_ORDER)}

    def file_order(source_file: str) -> tuple[str, int]:
        month, _, file_name = source_file.partition("/")
        return month, order.get(Path(file_name).stem, len(order))

    for files in (summary.files_loaded, summary.files_skipped, summary.restated_files):
        files.sort(key=file_order)
    summary.files_rejected.sort(key=file_order)
    if run.rejected:
        rejected = {k: run.rejected[k] for k in sorted(run.rejected, key=file_order)}
        raise IngestError(
            _format_error(plan_month, rejected, landing_dir.name),
            {k: v[1] for k, v in rejected.items()},
            summary=summary,
        )
    return summary


@dataclass(frozen=True)
class _Pending:
    """A file to read: new, or changed since it was loaded."""

    month: str
    path: Path
    source_file: str
    sha: str
    previous: str | None  # sha of the earlier load of this month's extract, if any


class _Run:
    """State of one :func:`load_extracts` call: the connection, the summary, the rejections."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        landing_dir: Path,
        summary: LoadSummary,
        max_reject_rate: float,
        known: _KnownValues,
    ):
        self.con = con
        self.landing_dir = landing_dir
        self.summary = summary
        self.max_reject_rate = max_reject_rate
        self.known = known
        self.at = datetime.now(UTC).replace(tzinfo=None)
        self.rejected: dict[str, tuple[int, list[RowProblem]]] = {}

    def seconds(self, stage: str, started: float) -> None:
        """Add the wall seconds since ``started`` to ``stage`` in ``summary.seconds``."""
        seconds = self.summary.seconds
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started

    def _rejected(self, item: _Pending, row_count: int, problems: list[RowProblem]) -> None:
        self.rejected[item.source_file] = (row_count, problems)
        self.summary.files_rejected.append(item.source_file)
        self.summary.rows_in_rejected_files[item.source_file] = len(
            {p.row for p in problems if p.row is not None}
        )

    def reject_file(
        self, item: _Pending, extract: str, row_count: int, problems: list[RowProblem]
    ) -> None:
        """Commit a rejection (problems in raw.rejects, a 'rejected' log entry) on its own."""
        _commit_rejection(
            self.con, item.month, extract, item.source_file, item.sha, row_count, problems, self.at
        )
        self._rejected(item, row_count, problems)

    def reject_stale(self, item: _Pending, extract: Extract, previous_file: str) -> None:
        """A transaction file byte-identical to the previous month's: the source re-sent it."""
        problem = RowProblem(
            None,
            None,
            None,
            f"stale extract: the file is byte-identical to {previous_file}, last month's "
            f"{extract.name}; a {extract.kind} extract holds the rows of its own month, so "
            "the source probably re-sent last month's file",
            f"re-export {extract.name} for {item.month} from the source system",
        )
        self.reject_file(item, extract.name, 0, [problem])

    def load_batch(self, extract: Extract, batch: list[tuple[_Pending, ParsedExtract]]) -> None:
        """Check a batch of files of one extract with one GX run and write it in one transaction."""
        started = time.perf_counter()
        results = check_parsed([parsed for _, parsed in batch])
        self.seconds("contract", started)
        started = time.perf_counter()
        loads: list[tuple[_Pending, ReadResult, list[RowProblem], set]] = []
        rejects: list[tuple[_Pending, ReadResult, list[RowProblem]]] = []
        for (item, _), result in zip(batch, results, strict=True):
            problems = result.problems + _reference_problems(
                self.known, extract, result.frame, item.month
            )
            problems.sort(key=lambda p: (p.row is None, p.row or 0))
            bad_rows = {p.row for p in problems}
            # a workbook is one planner's decision: any bad row rejects all of it; so does
            # a bad row of an extract that is only valid whole (WHOLE_FILE_EXTRACTS)
            limit = 0.0 if item.path.suffix.lower() == ".xlsx" else self.max_reject_rate
            if result.row_count and (
                len(bad_rows) / result.row_count > limit
                or (bad_rows and extract.name in WHOLE_FILE_EXTRACTS)
            ):
                rejects.append((item, result, problems))
            else:
                loads.append((item, result, problems, bad_rows))
        self.seconds("references", started)
        started = time.perf_counter()
        goods = [
            result.frame[~result.frame["_source_row"].isin(bad)] if bad else result.frame
            for _, result, _, bad in loads
        ]
        con, name = self.con, extract.name
        con.execute("BEGIN TRANSACTION")
        try:
            _insert_rows(
                con,
                extract,
                [(i.month, i.source_file, g) for (i, *_), g in zip(loads, goods, strict=True)],
                self.at,
            )
            _write_rejects(
                con,
                [_FileRejects(i.month, name, i.source_file, p) for i, _, p, _ in loads]
                + [_FileRejects(i.month, name, i.source_file, p) for i, _, p in rejects],
                self.at,
            )
            _log(
                con,
                [
                    (
                        i.month,
                        name,
                        i.source_file,
                        i.sha,
                        r.row_count,
                        len(bad),
                        "loaded" if i.previous is None else "restated",
                    )
                    for i, r, _, bad in loads
                ]
                + [
                    (
                        i.month,
                        name,
                        i.source_file,
                        i.sha,
                        r.row_count,
                        len({p.row for p in p_ if p.row is not None}),
                        "rejected",
                    )
                    for i, r, p_ in rejects
                ],
                self.at,
            )
            late = _restated_rows(con, extract, [i.month for i, *_ in loads])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        self.seconds("write", started)
        if loads:
            self.known.written(name)
        summary = self.summary
        for (item, _, _, bad), good in zip(loads, goods, strict=True):
            summary.files_loaded.append(item.source_file)
            summary.rows_loaded[name] = summary.rows_loaded.get(name, 0) + len(good)
            summary.rows_rejected += len(bad)
            if item.previous is not None:
                summary.restated_files.append(item.source_file)
            n_late = late.get(item.month, 0)
            summary.restated_rows += n_late
            if n_late:
                summary.restated_rows_by_extract[name] = (
                    summary.restated_rows_by_extract.get(name, 0) + n_late
                )
        for item, result, problems in rejects:
            self._rejected(item, result.row_count, problems)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise IngestError(
            f"{display_path(path)}: the file cannot be read ({exc.strerror or exc}; locked by "
            "another program, or not readable for this user); close it where it is open (Excel "
            "locks a workbook it has open), make it readable and run again."
        ) from None
    return digest.hexdigest()


def _record_rejection(con, month, extract, source_file, sha, row_count, problems, at) -> None:
    """Record a rejected file: its problems in raw.rejects and a 'rejected' log entry.

    Call inside a transaction (or use :func:`_commit_rejection`).
    """
    _write_rejects(con, [_FileRejects(month, extract, source_file, problems)], at)
    bad = len({p.row for p in problems if p.row is not None})
    _log(con, [(month, extract, source_file, sha, row_count, bad, "rejected")], at)


def _commit_rejection(con, month, extract, source_file, sha, row_count, problems, at) -> None:
    """:func:`_record_rejection` in its own transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        _record_rejection(con, month, extract, source_file, sha, row_count, problems, at)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
