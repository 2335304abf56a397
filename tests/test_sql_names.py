"""Names from configuration never reach SQL unchecked.

Where a name comes from outside the code and what stops a hostile one (each tested here):

- extract file names (``landing/YYYY-MM/<name>.csv``): must be an extract of the contract;
- columns of an extract file: matched against the contract, never used as SQL names;
- ``dialect.yaml``: extract names must be extracts of the contract, keys are a fixed set;
- scenario names (``scenarios.yaml``): ``^[a-z][a-z0-9_]{0,62}$`` and stored as values;
- plan tables and their columns, mart names: ``warehouse.check_name``
  (``^[a-z_][a-z0-9_]{0,62}$``) before any SQL;
- settings that reach SQL or dbt (base currency, plan month, dbt target): patterns in
  ``settings.py``; paths (``SOP_HOME``) are quoted as string literals.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from factories.extracts import write_company
from factories.plan import sample_tables

from sop_pipeline.core.settings import Settings, SettingsError
from sop_pipeline.ingest.dialect import DialectError, load_dialect
from sop_pipeline.ingest.loader import load_extracts
from sop_pipeline.ingest.problems import ExtractError, IngestError
from sop_pipeline.ingest.scenarios_file import parse_scenarios
from sop_pipeline.storage.warehouse import read_mart, read_plan, replace_plan_rows

INJECTIONS = [
    "promo'; DROP TABLE raw.items; --",
    'x"; DELETE FROM plan.plan_demand; --',
    "a b",
    "Promo",
    "../../etc/passwd",
]


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL"
    ).fetchall()


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_hostile_scenario_name_is_refused_with_the_file_and_the_rule(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "landing" / "2026-10" / "scenarios.yaml"
    path.parent.mkdir(parents=True)
    quoted = name.replace("'", "''")
    path.write_text(
        "scenarios:\n"
        "  - name: ok_scenario\n"
        "    levers: [{type: strategy, value: chase}]\n"
        f"  - name: '{quoted}'\n"
        "    levers: [{type: strategy, value: level}]\n"
    )
    with pytest.raises(ExtractError) as caught:
        parse_scenarios(path)
    text = str(caught.value)
    assert "2026-10/scenarios.yaml" in text
    assert "scenario #2" in text and repr(name) in text
    assert "^[a-z][a-z0-9_]{0,62}$" in text


@pytest.mark.parametrize(
    "file_name",
    ["items;DROP TABLE raw.items.csv", "sales_orders' OR '1'='1.csv", "Items.csv"],
)
def test_a_file_that_is_not_an_extract_of_the_contract_stops_ingest_before_any_sql(
    tmp_path: Path, file_name: str
) -> None:
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    (landing / "2026-10" / file_name).write_text("item_id\nIT-1\n")
    con = duckdb.connect(":memory:")
    try:
        with pytest.raises(IngestError) as caught:
            load_extracts(con, landing, "2026-10", base_currency="USD")
        assert _tables(con) == []  # nothing was created or loaded
    finally:
        con.close()
    text = str(caught.value)
    assert f"landing/2026-10/{file_name}: not an extract of the contract" in text
    assert "rename or remove the file" in text


def test_a_hostile_column_in_an_extract_header_is_reported_not_used(tmp_path: Path) -> None:
    landing = write_company(tmp_path / "landing", months=("2026-10",))
    path = landing / "2026-10" / "items.csv"
    hostile = 'x"); DROP TABLE raw.sales_orders; --'
    lines = path.read_text().splitlines()
    path.write_text(
        "\n".join(
            [lines[0] + f',"{hostile.replace(chr(34), chr(34) * 2)}"']
            + [line + ",1" for line in lines[1:]]
        )
        + "\n"
    )
    con = duckdb.connect(":memory:")
    try:
        with pytest.raises(IngestError) as caught:
            load_extracts(con, landing, "2026-10", base_currency="USD")
        assert con.execute("SELECT count(*) FROM raw.items").fetchone()[0] == 0
        assert ("raw", "sales_orders") in _tables(con)  # still there
    finally:
        con.close()
    assert f"unexpected column(s) {hostile!r}" in str(caught.value)


def test_a_hostile_extract_name_in_dialect_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dialect.yaml").write_text(
        "extracts:\n  \"items; DROP TABLE raw.items\":\n    delimiter: ';'\n"
    )
    with pytest.raises(DialectError, match=r"items; DROP TABLE raw\.items"):
        load_dialect(tmp_path)


@pytest.mark.parametrize("name", INJECTIONS)
def test_plan_tables_columns_and_marts_are_checked_before_sql(name: str) -> None:
    con = duckdb.connect(":memory:")
    try:
        con.execute("CREATE SCHEMA plan; CREATE SCHEMA marts")
        replace_plan_rows(con, "plan_demand", pd.DataFrame({"qty": [1.0]}), "2026-10")
        before = _tables(con)
        with pytest.raises(ValueError, match=r"table .* is not allowed.*\^\[a-z_\]"):
            replace_plan_rows(con, name, pd.DataFrame({"qty": [1.0]}), "2026-10")
        with pytest.raises(ValueError, match=r"column .* is not allowed"):
            replace_plan_rows(con, "plan_demand", pd.DataFrame({name: [1.0]}), "2026-10")
        with pytest.raises(ValueError, match=r"table .* is not allowed"):
            read_plan(con, name, "2026-10")
        with pytest.raises(ValueError, match=r"mart .* is not allowed"):
            read_mart(con, name)
        assert _tables(con) == before
        assert read_plan(con, "plan_demand", "2026-10")["qty"].tolist() == [1.0]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SOP_BASE_CURRENCY", "US'D"),
        ("SOP_PARTITION_START", "2020-01' OR 1=1"),
        ("SOP_DBT_TARGET", "duckdb --vars {}"),
        ("SOP_DBT_TARGET", "../duckdb"),
    ],
)
def test_settings_that_reach_sql_or_dbt_are_pattern_checked(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert variable in str(caught.value)


def test_a_sop_home_with_quotes_is_only_ever_a_quoted_path(tmp_path: Path) -> None:
    """Paths reach SQL as string literals (ATTACH, COPY, read_parquet), quotes doubled."""
    from sop_pipeline.publish.writer import publish_plan, read_published

    pub = tmp_path / "it's'; DROP TABLE x; --" / "published"
    publish_plan(
        pub,
        "2026-10",
        sample_tables(),
        run_id="quotes",
        input_fingerprint="fp",
        code_version="test",
        checks_passed=1,
        checks_failed=0,
    )
    assert read_published(pub, "plan_versions")["run_id"].tolist() == ["quotes"]
