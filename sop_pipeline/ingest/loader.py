"""Load the extracts a plan month may see into DuckDB schema ``raw`` (point in time).

For plan month M the loader looks at ``landing/YYYY-MM`` folders with YYYY-MM <= M only,
checks the folder sequence and that every required extract is there, then for each file
that is new or changed since it was loaded (sha256 in ``raw._ingest_log``):

1. reads and parses it (:func:`sop_pipeline.ingest.reader.parse_extract`) and checks it
   against the extract's Great Expectations suite, one GX run per batch of files of one
   extract (:func:`sop_pipeline.ingest.checks.check_parsed`);
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

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from sop_pipeline.core.months import parse_month
from sop_pipeline.ingest.checks import check_parsed
from sop_pipeline.ingest.contract import EXTRACTS, Extract
from sop_pipeline.ingest.dialect import load_dialect
from sop_pipeline.ingest.landing import _month_files, _month_folders, _sha256
from sop_pipeline.ingest.parsing import ParsedExtract
from sop_pipeline.ingest.problems import (
    ExtractError,
    IngestError,
    LoadSummary,
    ReadResult,
    RowProblem,
)
from sop_pipeline.ingest.raw_schema import create_raw_tables
from sop_pipeline.ingest.raw_writes import (
    _FileRejects,
    _insert_rows,
    _loaded_shas,
    _log,
    _restated_rows,
    _write_rejects,
)
from sop_pipeline.ingest.reader import parse_extract
from sop_pipeline.ingest.references import _KnownValues, _reference_problems
from sop_pipeline.ingest.scenarios_file import _load_scenarios

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


Progress = Callable[[int, int, str], None]


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
            source_file += ", sheet Overrides"
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
