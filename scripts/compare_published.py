"""Compare two published files table by table: are the published numbers bit-identical?

    .venv/bin/python scripts/compare_published.py OLD_SOP_HOME NEW_SOP_HOME

Every table and view of ``published/sop.duckdb`` is read in a fixed row order and compared
with ``pandas.testing.assert_frame_equal(check_exact=True)``. Columns that record *when* or
*with which code* a plan was made (timestamps, run ids, the release version, file paths) are
left out: they differ between any two runs. Exit 0 when everything else is identical, 1 with
the tables that differ otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pandas as pd

#: columns that differ between two runs of the same plan by design
VOLATILE = {
    "published_at",
    "created_at",
    "computed_at",
    "approved_at",
    "decided_at",
    "loaded_at",
    "_loaded_at",
    "run_id",
    "code_version",
    "input_fingerprint",
    "duration_s",
    "seconds",
    "path",
    "source_path",
}


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = 'main' order by 1"
    ).fetchall()
    return [r[0] for r in rows]


def _frame(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    cols = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'main' and table_name = ? order by ordinal_position",
            [table],
        ).fetchall()
        if r[0] not in VOLATILE
    ]
    if not cols:
        return pd.DataFrame()
    select = ", ".join(f'"{c}"' for c in cols)
    return con.execute(f'select {select} from "{table}" order by all').df()


def compare(old_home: Path, new_home: Path) -> list[str]:
    """The tables whose non-volatile content differs (empty: bit-identical)."""
    problems = []
    with (
        duckdb.connect(str(old_home / "published" / "sop.duckdb"), read_only=True) as old,
        duckdb.connect(str(new_home / "published" / "sop.duckdb"), read_only=True) as new,
    ):
        old_tables, new_tables = _tables(old), _tables(new)
        for missing in sorted(set(old_tables) ^ set(new_tables)):
            problems.append(f"{missing}: only in {'old' if missing in old_tables else 'new'}")
        for table in sorted(set(old_tables) & set(new_tables)):
            a, b = _frame(old, table), _frame(new, table)
            try:
                pd.testing.assert_frame_equal(a, b, check_exact=True)
            except AssertionError as exc:
                problems.append(f"{table}: {str(exc).splitlines()[0]} ({len(a)} vs {len(b)} rows)")
            else:
                print(f"identical  {table:<32} {len(a):>8} rows")
    return problems


def main(argv: list[str]) -> int:
    """Compare the published files of two SOP_HOMEs; print what differs."""
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    problems = compare(Path(argv[0]), Path(argv[1]))
    for p in problems:
        print(f"DIFFERENT  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
