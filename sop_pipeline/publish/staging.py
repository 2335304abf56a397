"""Steps 2-4 of write-audit-publish (:mod:`sop_pipeline.publish.writer`).

Build the new database in the staging folder (the old file's rows plus the new version,
sorted by the grain, with views and column comments), write the new version's Parquet
files, and audit the staged result against what was written.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sop_pipeline.publish import dictionary
from sop_pipeline.publish.published_file import (
    PARQUET_DIR,
    STORAGE_VERSION,
    AuditError,
    _fsync_path,
    _lit,
    _q,
    create_approved_view,
)
from sop_pipeline.publish.tables import PLAN_TABLES, PLAN_VERSIONS_EXTRA, TABLES, TableSpec


def _select_new(spec: TableSpec, view: str, extras: list[str], types: dict[str, str]) -> str:
    """SELECT of a registered frame with stable columns cast to their published types."""
    cols = [f"CAST({_q(c)} AS {t}) AS {_q(c)}" for c, t in spec.columns]
    cols += [f"CAST({_q(c)} AS {types[c]}) AS {_q(c)}" if c in types else _q(c) for c in extras]
    return f"SELECT {', '.join(cols)} FROM {view}"


def _create_views(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """``<table>_current`` and ``<table>_latest_versions``, resolved via ``plan_versions``.

    Versions come from ``plan_versions`` (not the table) so a version that published zero
    rows for a table shows as empty rather than falling back to an older version.
    """
    t = _q(table)
    con.execute(
        f"""
        CREATE VIEW {_q(table + "_current")} AS
        SELECT * FROM {t}
        WHERE plan_month = (SELECT max(plan_month) FROM plan_versions)
          AND plan_version = (
            SELECT max(plan_version) FROM plan_versions
            WHERE plan_month = (SELECT max(plan_month) FROM plan_versions))
        """
    )
    con.execute(
        f"""
        CREATE VIEW {_q(table + "_latest_versions")} AS
        SELECT t.* FROM {t} AS t
        JOIN (SELECT plan_month, max(plan_version) AS plan_version
              FROM plan_versions GROUP BY plan_month) AS l
          ON t.plan_month = l.plan_month AND t.plan_version = l.plan_version
        """
    )
    create_approved_view(con, table)


def _comment_columns(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> None:
    """``COMMENT ON`` a table or view and each of its columns, from the data dictionary.

    A column without a description is left without a comment (``tests/test_dictionary.py``
    names it); the publication does not fail for a missing text.
    """
    base = dictionary.base_table(name)
    text = dictionary.table_description(base) if base == name else dictionary.view_description(name)
    con.execute(f"COMMENT ON {kind} {_q(name)} IS {_lit(text)}")
    columns = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = $t ORDER BY column_index",
        {"t": name},
    ).fetchall()
    for (column,) in columns:
        described = dictionary.column_description(base, column)
        if described:
            con.execute(f"COMMENT ON COLUMN {_q(name)}.{_q(column)} IS {_lit(described)}")


def _build(
    stage_db: Path,
    old_db: Path | None,
    frames: dict[str, pd.DataFrame],
) -> dict[str, tuple[int, int]]:
    """Build the staged database; return per table (rows of the new version, total rows)."""
    con = duckdb.connect()
    counts: dict[str, tuple[int, int]] = {}
    try:
        if old_db is not None:
            con.execute(f"ATTACH {_lit(str(old_db))} AS old (READ_ONLY)")
            old_tables = set(
                con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'old'")
                .fetchnumpy()["table_name"]
                .tolist()
            )
        else:
            old_tables = set()
        con.execute(
            f"ATTACH {_lit(str(stage_db))} AS pub (STORAGE_VERSION {_lit(STORAGE_VERSION)})"
        )
        for name, spec in TABLES.items():
            df = frames[name]
            view = f"new_{name}"
            con.register(view, df)
            extras = [c for c in df.columns if c not in spec.types]
            extra_types = dict(PLAN_VERSIONS_EXTRA) if name == "plan_versions" else {}
            new_sql = _select_new(spec, view, extras, extra_types)
            order = ", ".join(_q(c) for c in spec.sort_key)
            if name in old_tables:
                # BY NAME: an older publication may lack extra columns added since
                source = f"SELECT * FROM old.main.{_q(name)} UNION ALL BY NAME {new_sql}"
            else:
                source = new_sql
            con.execute(
                f"CREATE TABLE pub.main.{_q(name)} AS SELECT * FROM ({source}) ORDER BY {order}"
            )
            con.unregister(view)
            total = con.execute(f"SELECT count(*) FROM pub.main.{_q(name)}").fetchone()[0]
            counts[name] = (len(df), int(total))
        con.execute("USE pub")  # views bind names in the file's own catalog
        for name in TABLES:
            _comment_columns(con, name, "TABLE")
        for name in PLAN_TABLES:
            _create_views(con, name)
        # every view of a published table (_current, _latest_versions, _approved, ...)
        for (view,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = 'pub' AND NOT internal"
        ).fetchall():
            if dictionary.base_table(view) in TABLES:
                _comment_columns(con, view, "VIEW")
        con.execute("USE memory")
        if old_db is not None:
            con.execute("DETACH old")
        con.execute("CHECKPOINT pub")
        con.execute("DETACH pub")
    finally:
        con.close()
    return counts


def _write_parquet(
    stage_db: Path, stage_dir: Path, plan_month: str, plan_version: int
) -> dict[str, Path]:
    """Write the new version of every table as Parquet under the staging folder."""
    con = duckdb.connect()
    written: dict[str, Path] = {}
    try:
        con.execute(f"ATTACH {_lit(str(stage_db))} AS pub (READ_ONLY)")
        for name, spec in TABLES.items():
            rel = (
                Path(PARQUET_DIR)
                / name
                / f"plan_month={plan_month}"
                / f"plan_version={plan_version}"
            )
            target = stage_dir / rel
            target.mkdir(parents=True)
            order = ", ".join(_q(c) for c in spec.sort_key)
            table = con.execute(
                f"SELECT * FROM pub.main.{_q(name)} WHERE plan_month = {_lit(plan_month)} "
                f"AND plan_version = {int(plan_version)} ORDER BY {order}"
            ).to_arrow_table()
            pq.write_table(
                _with_descriptions(name, table), target / "part-0.parquet", compression="zstd"
            )
            _fsync_path(target / "part-0.parquet")
            written[name] = rel
    finally:
        con.close()
    return written


def _with_descriptions(name: str, table: pa.Table) -> pa.Table:
    """The table with the dictionary's texts as Parquet schema metadata.

    Each field carries ``description`` (what pyarrow, pandas and Spark show as the field's
    metadata); the file carries ``description`` (the table's purpose and grain) and
    ``sop_table``.
    """
    fields = []
    for field_ in table.schema:
        text = dictionary.column_description(name, field_.name)
        fields.append(field_.with_metadata({"description": text}) if text else field_)
    schema = pa.schema(
        fields,
        metadata={"description": dictionary.table_description(name), "sop_table": name},
    )
    return pa.Table.from_arrays(table.columns, schema=schema)


def _audit(
    stage_db: Path,
    stage_dir: Path,
    parquet: dict[str, Path],
    counts: dict[str, tuple[int, int]],
    plan_month: str,
    plan_version: int,
) -> None:
    """Reopen the staged file read-only and check it holds exactly what was written."""
    con = duckdb.connect()
    problems: list[str] = []
    try:
        con.execute(f"ATTACH {_lit(str(stage_db))} AS pub (READ_ONLY)")
        tag = con.execute(
            "SELECT tags FROM duckdb_databases() WHERE database_name = 'pub'"
        ).fetchone()[0]
        if not str(tag.get("storage_version", "")).startswith(STORAGE_VERSION):
            problems.append(
                f"storage version is {tag.get('storage_version')}, expected {STORAGE_VERSION}"
            )
        for name, (new_rows, total_rows) in counts.items():
            found_new, found_total = con.execute(
                f"SELECT count(*) FILTER (WHERE plan_month = $m AND plan_version = $v), count(*) "
                f"FROM pub.main.{_q(name)}",
                {"m": plan_month, "v": plan_version},
            ).fetchone()
            if (found_new, found_total) != (new_rows, total_rows):
                problems.append(
                    f"{name}: {found_new} rows of version {plan_version} and {found_total} in total, "
                    f"expected {new_rows} and {total_rows}"
                )
            path = stage_dir / parquet[name] / "part-0.parquet"
            in_parquet = con.execute(
                f"SELECT count(*) FROM read_parquet({_lit(str(path))})"
            ).fetchone()[0]
            if in_parquet != new_rows:
                problems.append(f"{name}: Parquet holds {in_parquet} rows, expected {new_rows}")
        for name in PLAN_TABLES:
            con.execute(f"SELECT count(*) FROM pub.main.{_q(name + '_current')}").fetchone()
        current = con.execute(
            "SELECT count(*) FROM pub.main.plan_versions WHERE plan_month = $m AND plan_version = $v",
            {"m": plan_month, "v": plan_version},
        ).fetchone()[0]
        if current != 1:
            problems.append(
                f"plan_versions holds {current} rows for {plan_month} v{plan_version}, expected 1"
            )
    except duckdb.Error as exc:
        problems.append(f"cannot read the staged file: {exc}")
    finally:
        con.close()
    if problems:
        raise AuditError(
            f"audit of the staged publication {stage_db} failed: {'; '.join(problems)}. Nothing "
            f"was published; the previous publication is unchanged."
        )
