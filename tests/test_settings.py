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
    # the forecast and the scenarios on two worker processes each
    assert (s.forecast_n_jobs, s.scenario_n_jobs) == (2, 2)


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


# --- one settings object, carried by the run's `sop` resource ------------------------------


def _every_setting_changed(home: Path) -> dict[str, str]:
    return {
        "SOP_HOME": str(home),
        "SOP_BASE_CURRENCY": "EUR",
        "SOP_HORIZON_MONTHS": "12",
        "SOP_PARTITION_START": "2021-03",
        "SOP_STRATEGY": "chase",
        "SOP_SERVICE_LEVEL": "0.9",
        "SOP_MAX_REJECT_RATE": "0.05",
        "SOP_FORECAST_ENGINE": "dask",
        "SOP_FORECAST_N_JOBS": "-1",
        "SOP_DASK_ADDRESS": "tcp://scheduler:8786",
        "SOP_SPARK_MASTER": "local[4]",
        "SOP_BACKTEST_WINDOWS": "2",
        "SOP_COVER_LIMIT_DAYS": "90",
        "SOP_OVERTIME_SHARE": "0.15",
        "SOP_WAREHOUSE": "postgres",
        "SOP_PG_HOST": "db.internal",
        "SOP_PG_PORT": "6543",
        "SOP_PG_USER": "planner",
        "SOP_PG_DBNAME": "plans",
        "SOP_PG_PASSWORD": "s3cret",
        "DAGSTER_HOME": str(home / "dh"),
        "SOP_RUN_LOCK_TIMEOUT": "60",
        "SOP_UNMET_DEMAND": "lost_sales",
        "SOP_STOCKOUT_RISK_THRESHOLD": "0.3",
        "SOP_DBT_THREADS": "3",
        "SOP_SCENARIO_N_JOBS": "3",
    }


def test_the_sop_resource_carries_every_setting_and_gives_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from sop_pipeline.core.settings import ENV_VARS, SECRETS
    from sop_pipeline.defs.resources import SopResource

    env = _every_setting_changed(tmp_path)
    assert set(env) == set(ENV_VARS.values())  # the test changes every setting
    settings = Settings.from_env(env)
    defaults = Settings.from_env({"SOP_HOME": str(tmp_path)})
    changed = [f.name for f in dataclasses.fields(Settings)]
    assert all(getattr(settings, n) != getattr(defaults, n) for n in changed if n != "sop_home")
    monkeypatch.setenv("SOP_PG_PASSWORD", "s3cret")
    resource = SopResource.from_settings(settings)
    # the run's config is every setting but the password, which the Dagster UI would show
    config = resource.model_dump()
    assert set(config) == set(ENV_VARS) - set(SECRETS)
    assert "s3cret" not in str(config)
    assert resource.settings == settings


def test_settings_changed_in_the_run_config_are_validated_like_the_environment(
    tmp_path: Path,
) -> None:
    from sop_pipeline.defs.resources import SopResource

    resource = SopResource(sop_home=str(tmp_path), horizon_months=40)
    with pytest.raises(SettingsError, match="SOP_HORIZON_MONTHS=40 is out of range"):
        _ = resource.settings


def test_partition_start_is_the_first_month_a_run_plans(tmp_path: Path) -> None:
    from sop_pipeline.core.settings import EARLIEST_PLAN_MONTH
    from sop_pipeline.defs.partitions import plan_month_partitions

    assert plan_month_partitions.get_first_partition_key() == EARLIEST_PLAN_MONTH
    with pytest.raises(SettingsError, match="before 2000-01"):
        Settings.from_env({"SOP_PARTITION_START": "1999-12"})
    settings = Settings.from_env({"SOP_HOME": str(tmp_path), "SOP_PARTITION_START": "2024-01"})
    settings.check_plan_month("2024-01")
    with pytest.raises(SettingsError, match="2023-12 is before SOP_PARTITION_START=2024-01"):
        settings.check_plan_month("2023-12")


def test_importing_the_definitions_reads_no_setting(tmp_path: Path) -> None:
    import subprocess
    import sys

    # a bad value in the environment must not break `import`: settings are read when the
    # Dagster code location is loaded (the @dg.definitions function), not at import time
    code = (
        "import sop_pipeline.definitions as d, sop_pipeline.defs.clean.assets;"
        "import dagster as dg;"
        "from sop_pipeline.core.settings import SettingsError\n"
        "try:\n    d.defs()\nexcept SettingsError as e:\n    print('refused:', e)\n"
    )
    env = {"PATH": "", "SOP_HOME": str(tmp_path), "SOP_HORIZON_MONTHS": "99"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused: SOP_HORIZON_MONTHS=99 is out of range" in out.stdout


def test_env_example_lists_every_setting() -> None:
    from sop_pipeline.core.settings import ENV_VARS

    text = (Path(__file__).resolve().parents[1] / ".env.example").read_text(encoding="utf-8")
    missing = [var for var in ENV_VARS.values() if f"{var}=" not in text]
    assert not missing, f".env.example does not list {missing}"
