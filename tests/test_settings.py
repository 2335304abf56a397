"""Settings, months and partition window: the values every stage relies on."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from sop_pipeline.core.months import latest_complete_month, month_range, month_start, parse_month
from sop_pipeline.core.settings import Settings, SettingsError
from sop_pipeline.defs.partitions import plan_month_window
from sop_pipeline.storage.warehouse import check_name


def test_defaults_put_everything_under_sop_home(tmp_path: Path) -> None:
    s = Settings.from_env({"SOP_HOME": str(tmp_path)})
    assert s.horizon_months == 18
    assert s.base_currency == "USD"
    assert s.warehouse_path == tmp_path / "warehouse" / "sop.duckdb"
    assert s.landing_dir == tmp_path / "landing"
    assert s.published_dir == tmp_path / "published"
    # unserved customer orders wait (backlog); stock-out risk flagged above 20%
    assert s.unmet_demand == "backlog" and s.stockout_risk_threshold == 0.20
    assert Settings.from_env({"SOP_UNMET_DEMAND": "Lost_Sales"}).unmet_demand == "lost_sales"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SOP_HORIZON_MONTHS", "37", "between 1 and 36"),
        ("SOP_HORIZON_MONTHS", "abc", "not an integer"),
        ("SOP_BASE_CURRENCY", "dollars", "3-letter"),
        ("SOP_STRATEGY", "random", "level, chase, mixed"),
        ("SOP_PARTITION_START", "2020/01", "YYYY-MM"),
        ("SOP_SERVICE_LEVEL", "1.5", "between"),
        ("SOP_WAREHOUSE", "oracle", "duckdb, postgres"),
        ("SOP_DBT_TARGET", "snowflake", "duckdb, postgres"),
        ("SOP_PG_PORT", "70000", "between 1 and 65535"),
        ("SOP_UNMET_DEMAND", "drop", "backlog"),
        ("SOP_STOCKOUT_RISK_THRESHOLD", "2", "between"),
    ],
)
def test_bad_settings_say_which_variable_and_how_to_fix(
    name: str, value: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({name: value})
    assert name in str(exc.value)
    assert fragment in str(exc.value)


def test_warehouse_selects_the_dbt_target_and_keeps_the_password_out_of_repr() -> None:
    assert Settings.from_env({}).warehouse == "duckdb"
    assert Settings.from_env({}).dbt_target == "duckdb"
    s = Settings.from_env(
        {
            "SOP_WAREHOUSE": "Postgres",
            "SOP_PG_HOST": "db.internal",
            "SOP_PG_PORT": "6543",
            "SOP_PG_PASSWORD": " s3cret pass ",
        }
    )
    assert (s.warehouse, s.dbt_target) == ("postgres", "postgres")
    assert s.postgres_label == "sop@db.internal:6543/sop"
    assert s.pg_password == " s3cret pass "  # as given: spaces may belong to a password
    assert "s3cret" not in repr(s) and "s3cret" not in s.postgres_label
    # SOP_DBT_TARGET is the older name: read only when SOP_WAREHOUSE is unset
    assert Settings.from_env({"SOP_DBT_TARGET": "postgres"}).warehouse == "postgres"
    both = {"SOP_WAREHOUSE": "duckdb", "SOP_DBT_TARGET": "postgres"}
    assert Settings.from_env(both).warehouse == "duckdb"


def test_horizon_window_for_dbt() -> None:
    window = plan_month_window("2026-10", 18)
    assert window["actuals_end"] == "2026-11-01"
    assert window["horizon_start"] == "2026-11-01"
    assert window["horizon_end"] == "2028-04-01"  # 18th month after October 2026


def test_month_helpers() -> None:
    assert parse_month("2026-02") == date(2026, 2, 1)
    assert month_start(date(2026, 12, 31), 1) == date(2027, 1, 1)
    assert month_start(date(2026, 1, 15), -1) == date(2025, 12, 1)
    assert month_range("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert latest_complete_month(date(2026, 11, 22)) == "2026-10"
    assert latest_complete_month(date(2027, 1, 1)) == "2026-12"
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month("2026-13")


@pytest.mark.parametrize("bad", ["drop table x", "Items", "a;b", "", "x" * 70, "1abc"])
def test_sql_names_are_allow_listed(bad: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        check_name(bad)
