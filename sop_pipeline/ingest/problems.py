"""What reading an extract and running the loader report.

Reading an extract: the file-level :class:`ExtractError`, the row-level :class:`RowProblem`
and the :class:`ReadResult` of a checked file. A loader run: its :class:`LoadSummary`, or
the :class:`IngestError` that lists every rejected file.

Shared by every step of the reader (:mod:`.files`, :mod:`.parsing`, :mod:`.checks`,
:mod:`.reader`), the workbook reader and the loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sop_pipeline.errors import InvalidInputError
from sop_pipeline.ingest.contract import DIALECT_FILE


class ExtractError(InvalidInputError, ValueError):
    """A file cannot be read as its extract; ``str()`` is one sentence with the fix.

    Attributes:
        file: the file, as shown to the user (``landing/2026-10/sales_orders.csv``).
        row: file line number (header = 1), or None.
        column: column name, or None.
        problem: what is wrong.
        fix: how to fix it.
    """

    def __init__(
        self,
        file: str,
        problem: str,
        fix: str,
        *,
        row: int | None = None,
        column: str | None = None,
    ):
        self.file = file
        self.row = row
        self.column = column
        self.problem = problem
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f", column {self.column}" if self.row is not None else f" column {self.column}"
        return f"{where}: {self.problem}; {self.fix}"


@dataclass(frozen=True)
class RowProblem:
    """One bad value in one row (the row is rejected).

    Attributes:
        row: file line number (header = 1); None only for a file-level problem the loader
            records in ``raw.rejects``.
        column: the column (several joined by ``", "`` for a key), or None.
        value: the value as written in the file (None when empty).
        reason: what is wrong.
        fix: how to fix it.
    """

    row: int | None
    column: str | None
    value: str | None
    reason: str
    fix: str

    def describe(self, file: str) -> str:
        """``"<file> row 12, column qty_ordered: 'abc' is not a number; fix ..."``."""
        col = f", column {self.column}" if self.column else ""
        return f"{file} row {self.row}{col}: {self.reason}; {self.fix}"


@dataclass
class ReadResult:
    """What :func:`read_extract` returns.

    Attributes:
        frame: every data row, typed: contract columns (str → object, int → Int64,
            num → ``decimal128(18, 6)[pyarrow]`` (exact), date / month → datetime64) plus
            ``_source_row`` (file line number). Unparseable cells are null; rows with a
            problem are still present (see ``bad_rows``).
        problems: row-level problems, sorted by row then column.
        row_count: number of data rows.
        sha256: hex digest of the file's bytes.
    """

    frame: pd.DataFrame
    problems: list[RowProblem]
    row_count: int
    sha256: str
    bad_rows: set[int] = field(default_factory=set)


def display_path(path: Path) -> str:
    """``…/landing/2026-10/items.csv`` → ``landing/2026-10/items.csv`` (what users see)."""
    return "/".join(Path(path).parts[-3:])


def dialect_file_of(path: Path) -> str:
    """The dialect file of the month folder of ``path``, as users see it."""
    return f"{Path(path).parent.parent.name}/{DIALECT_FILE}"


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
