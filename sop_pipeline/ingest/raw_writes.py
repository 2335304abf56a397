"""What the loader writes into schema ``raw``, and what it reads back from it.

It writes the rows of a file (with lineage columns), its rejected rows (``raw.rejects``) and
the ingest log (``raw._ingest_log``); it reads back restated keys and the sha256 of files
already loaded.

Internal to the loader (:mod:`sop_pipeline.ingest.loader`); the tables are created by
:mod:`sop_pipeline.ingest.raw_schema`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from sop_pipeline.ingest.contract import Extract
from sop_pipeline.ingest.parsing import DECIMAL_TYPE
from sop_pipeline.ingest.problems import RowProblem
from sop_pipeline.ingest.raw_schema import SQL_TYPES

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
