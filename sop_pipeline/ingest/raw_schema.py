"""DDL of the ``raw`` schema: one table per extract, contract columns plus lineage columns.

Raw tables keep every extract month side by side (``_extract_month``); dbt staging picks the
rows a plan month may see (``_extract_month <= plan_month``) and lets the latest extract win.
"""

from __future__ import annotations

import duckdb

from sop_pipeline.ingest.contract import EXTRACTS, Extract

SQL_TYPES = {
    "str": "VARCHAR",
    "int": "BIGINT",
    # decimal-safe: quantities and money keep the precision of the extract
    "num": "DECIMAL(18,6)",
    "date": "DATE",
    "month": "DATE",
}


def raw_table_ddl(extract: Extract) -> str:
    """``CREATE TABLE IF NOT EXISTS raw.<extract>`` with contract and lineage columns."""
    cols = [f"{c.name} {SQL_TYPES[c.type]}" for c in extract.columns]
    cols += [
        "_extract_month VARCHAR NOT NULL",
        "_source_file VARCHAR NOT NULL",
        "_source_row BIGINT NOT NULL",
        "_loaded_at TIMESTAMP NOT NULL",
    ]
    return f"CREATE TABLE IF NOT EXISTS raw.{extract.name} (\n  " + ",\n  ".join(cols) + "\n)"


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema ``raw``, every extract table, the scenarios, the ingest log and the rejects table."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for extract in EXTRACTS.values():
        con.execute(raw_table_ddl(extract))
    # a column the contract added later (an optional one) joins a table created before it
    existing = set(
        con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'raw'"
        ).fetchall()
    )
    for extract in EXTRACTS.values():
        for col in extract.columns:
            if (extract.name, col.name) not in existing:
                con.execute(
                    f"ALTER TABLE raw.{extract.name} ADD COLUMN {col.name} {SQL_TYPES[col.type]}"
                )
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS raw._ingest_log (
          extract_month VARCHAR NOT NULL,
          extract VARCHAR NOT NULL,
          source_file VARCHAR NOT NULL,
          sha256 VARCHAR NOT NULL,
          row_count BIGINT NOT NULL,
          rejected_rows BIGINT NOT NULL,
          status VARCHAR NOT NULL,
          loaded_at TIMESTAMP NOT NULL
        )
        """
    )
    # scenarios.yaml of each month folder, one row per scenario (levers kept as JSON text)
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS raw.scenarios (
          extract_month VARCHAR NOT NULL,
          name VARCHAR NOT NULL,
          description VARCHAR,
          levers_json VARCHAR NOT NULL,
          _source_file VARCHAR NOT NULL,
          _loaded_at TIMESTAMP NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS raw.rejects (
          extract_month VARCHAR NOT NULL,
          extract VARCHAR NOT NULL,
          source_file VARCHAR NOT NULL,
          source_row BIGINT,
          column_name VARCHAR,
          value VARCHAR,
          reason VARCHAR NOT NULL,
          fix VARCHAR NOT NULL,
          rejected_at TIMESTAMP NOT NULL
        )
        """
    )
