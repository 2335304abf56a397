"""One settings object: every environment variable is read here, once, with a default.

Nothing else in the project reads ``os.environ`` for a setting (``planning/engines.py`` only sets
the two variables the Spark launcher reads while it starts). See ``.env.example`` for the list.
Nothing reads the settings at import time: the CLI reads them once per command and passes them
on; the Dagster code location reads them when Dagster loads it (``definitions.py``) and puts them
into the ``sop`` resource's config (``defs/resources.py``), so a run's config says how it ran.

A ``.env`` file in the working directory (``cp .env.example .env``) is read first, the way
``dagster dev`` reads it: its variables are added to the process environment unless the
environment already sets them (a real environment variable always wins), so dbt and the other
tools the pipeline starts see the same values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sop_pipeline.errors import InvalidInputError

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_HOST_PORT = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):\d{1,5}"
_DASK_ADDRESS_RE = re.compile(rf"^((tcp|tls)://)?{_HOST_PORT}$")
_SPARK_MASTER_RE = re.compile(
    rf"^(local(\[(\*|[1-9]\d*)(,\d+)?\])?|spark://{_HOST_PORT}(,{_HOST_PORT})*|yarn|k8s://\S+)$"
)

STRATEGIES = ("level", "chase", "mixed")
# what happens to demand the plan cannot serve in its month (docs/supply_and_finance.md)
UNMET_DEMAND_POLICIES = ("backlog", "lost_sales")
FORECAST_ENGINES = ("local", "dask", "spark")
# where dbt builds staging/intermediate/marts (a target of dbt_project/profiles.yml of the
# same name) and where the Python stages read the marts
WAREHOUSES = ("duckdb", "postgres")
# the PostgreSQL password is read from this variable only (never from a file in the repo);
# dbt's profile reads the same variable
PG_PASSWORD_VAR = "SOP_PG_PASSWORD"  # pragma: allowlist secret: the variable's name, not a value


#: The first month of the Dagster plan-month partitions (``defs/partitions.py``), fixed in code:
#: ``SOP_PARTITION_START`` (validated to be at or after it) is the first month a run may plan.
EARLIEST_PLAN_MONTH = "2000-01"

#: The environment variable of each setting (:meth:`Settings.from_env` reads them,
#: :meth:`Settings.from_config` reads a Dagster run's config through them).
ENV_VARS: dict[str, str] = {
    "sop_home": "SOP_HOME",
    "base_currency": "SOP_BASE_CURRENCY",
    "horizon_months": "SOP_HORIZON_MONTHS",
    "partition_start": "SOP_PARTITION_START",
    "strategy": "SOP_STRATEGY",
    "service_level": "SOP_SERVICE_LEVEL",
    "max_reject_rate": "SOP_MAX_REJECT_RATE",
    "forecast_engine": "SOP_FORECAST_ENGINE",
    "forecast_n_jobs": "SOP_FORECAST_N_JOBS",
    "dask_address": "SOP_DASK_ADDRESS",
    "spark_master": "SOP_SPARK_MASTER",
    "backtest_windows": "SOP_BACKTEST_WINDOWS",
    "cover_limit_days": "SOP_COVER_LIMIT_DAYS",
    "overtime_share": "SOP_OVERTIME_SHARE",
    "warehouse": "SOP_WAREHOUSE",
    "pg_host": "SOP_PG_HOST",
    "pg_port": "SOP_PG_PORT",
    "pg_user": "SOP_PG_USER",
    "pg_dbname": "SOP_PG_DBNAME",
    "pg_password": PG_PASSWORD_VAR,
    "dagster_home_dir": "DAGSTER_HOME",
    "run_lock_timeout": "SOP_RUN_LOCK_TIMEOUT",
    "unmet_demand": "SOP_UNMET_DEMAND",
    "stockout_risk_threshold": "SOP_STOCKOUT_RISK_THRESHOLD",
    "dbt_threads": "SOP_DBT_THREADS",
    "scenario_n_jobs": "SOP_SCENARIO_N_JOBS",
}
#: Settings never put in a Dagster run's config (the UI shows it): read from the environment.
SECRETS: tuple[str, ...] = ("pg_password",)


def read_secret(name: str = PG_PASSWORD_VAR) -> str:
    """A secret from the environment, as it is (spaces may belong to a password).

    Secrets are the one kind of setting read where they are used (when connecting) rather than
    carried in a run's config, which the Dagster UI shows.
    """
    return os.environ.get(name, "")


class SettingsError(InvalidInputError, ValueError):
    """A setting has a value the pipeline cannot use; the message says which and how to fix it."""


#: the file of variables read from the working directory (python-dotenv syntax)
ENV_FILE = ".env"


def load_env_file(path: Path | None = None) -> Path | None:
    """Add the variables of ``.env`` (working directory) to ``os.environ``; set ones win.

    Args:
        path: the file to read instead of ``./.env``.

    Returns:
        The file read, or None when there is none.
    """
    from dotenv import load_dotenv

    path = Path(path) if path is not None else Path.cwd() / ENV_FILE
    if not path.is_file():
        return None
    load_dotenv(path, override=False, encoding="utf-8")
    return path


def debug_requested(env: dict[str, str] | None = None) -> bool:
    """``SOP_DEBUG=1``: the CLI prints the full traceback of an unexpected error."""
    env = os.environ if env is None else env
    return env.get("SOP_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _get(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name, "")
    return value.strip() if value.strip() else default


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = _get(env, name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not an integer; set a whole number between {lo} and {hi}."
        ) from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is out of range; set a value between {lo} and {hi}.")
    return value


def _float(env: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = _get(env, name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not a number; set a number between {lo} and {hi}."
        ) from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is out of range; set a value between {lo} and {hi}.")
    return value


@dataclass(frozen=True)
class Settings:
    """Pipeline settings, read from the environment once (see ``.env.example``)."""

    sop_home: Path
    base_currency: str = "USD"
    horizon_months: int = 18
    partition_start: str = "2020-01"
    strategy: str = "mixed"
    service_level: float = 0.95
    max_reject_rate: float = 0.0
    forecast_engine: str = "local"
    # forecast worker processes (SOP_FORECAST_N_JOBS; -1 = one per core), started by a fork
    # server, never forked from the run's threads (planning/processes.py); results do not
    # depend on it
    forecast_n_jobs: int = 2
    # dbt nodes built at once (SOP_DBT_THREADS); results do not depend on it
    dbt_threads: int = 2
    # scenarios re-planned at once, one process each, started like the forecast's
    # (SOP_SCENARIO_N_JOBS); results do not depend on it
    scenario_n_jobs: int = 2
    dask_address: str = ""
    spark_master: str = "local[2]"
    backtest_windows: int = 3
    cover_limit_days: float = 120.0
    overtime_share: float = 0.10
    warehouse: str = "duckdb"
    pg_host: str = "localhost"
    pg_port: int = 5432
    pg_user: str = "sop"
    pg_dbname: str = "sop"
    # repr=False: settings are printed in logs and errors, the password never is
    pg_password: str = field(default="", repr=False)
    dagster_home_dir: Path | None = None
    run_lock_timeout: float = 7200.0
    unmet_demand: str = "backlog"
    stockout_risk_threshold: float = 0.20

    @property
    def dbt_target(self) -> str:
        """The target of ``dbt_project/profiles.yml``: named after the warehouse."""
        return self.warehouse

    @property
    def postgres_label(self) -> str:
        """``user@host:port/dbname`` of the PostgreSQL warehouse, for messages (no password)."""
        return f"{self.pg_user}@{self.pg_host}:{self.pg_port}/{self.pg_dbname}"

    # Paths (DESIGN §3) -------------------------------------------------------------
    @property
    def landing_dir(self) -> Path:
        """``SOP_HOME/landing``: one folder of extracts per month."""
        return self.sop_home / "landing"

    @property
    def warehouse_dir(self) -> Path:
        """``SOP_HOME/warehouse``: the pipeline's own working database lives here."""
        return self.sop_home / "warehouse"

    @property
    def warehouse_path(self) -> Path:
        """The working DuckDB file (``SOP_WAREHOUSE_PATH``; BI never opens it)."""
        return self.warehouse_dir / "sop.duckdb"

    @property
    def published_dir(self) -> Path:
        """``SOP_HOME/published``: what BI reads."""
        return self.sop_home / "published"

    @property
    def reports_dir(self) -> Path:
        """``SOP_HOME/reports``: the executive packs and workbooks."""
        return self.sop_home / "reports"

    @property
    def dagster_home(self) -> Path:
        """DAGSTER_HOME when set, else ``$SOP_HOME/dagster``."""
        return self.dagster_home_dir or self.sop_home / "dagster"

    def ensure_dirs(self) -> None:
        """Create the folders of ``SOP_HOME`` that the pipeline writes to."""
        for path in (
            self.landing_dir,
            self.warehouse_dir,
            self.published_dir,
            self.reports_dir,
            self.dagster_home,
        ):
            path.mkdir(parents=True, exist_ok=True)

    def config_values(self) -> dict[str, str | int | float]:
        """Every setting but the secrets, as plain values: a Dagster resource's config."""
        out: dict[str, str | int | float] = {}
        for name in ENV_VARS:
            if name in SECRETS:
                continue
            value = getattr(self, name)
            out[name] = "" if value is None else str(value) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from :meth:`config_values` (a run's config), validated like the environment.

        Args:
            values: setting name → value; missing names take their defaults.

        Returns:
            The settings, with the secrets read from the environment (:func:`read_secret`).

        Raises:
            SettingsError: a value is unusable; the message names its variable.
        """
        unknown = sorted(set(values) - set(ENV_VARS))
        if unknown:
            raise SettingsError(f"unknown setting(s) {', '.join(unknown)}.")
        env = {ENV_VARS[name]: str(value) for name, value in values.items() if value is not None}
        env.update({ENV_VARS[name]: read_secret(ENV_VARS[name]) for name in SECRETS})
        return cls.from_env(env)

    def check_plan_month(self, month: str) -> None:
        """Refuse a plan month before ``SOP_PARTITION_START`` (the partitions start earlier).

        Raises:
            SettingsError: ``month`` is before ``partition_start``.
        """
        if month < self.partition_start:
            raise SettingsError(
                f"plan month {month} is before SOP_PARTITION_START={self.partition_start}, the "
                "first month this pipeline plans; plan a later month or lower SOP_PARTITION_START."
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every ``SOP_*`` variable.

        Args:
            env: mapping to read instead of ``os.environ`` (tests pass their own). Without
                one, ``./.env`` is read first (:func:`load_env_file`).

        Returns:
            The validated settings.

        Raises:
            SettingsError: a variable has an unusable value; the message names it.
        """
        if env is None:
            load_env_file()
        env = dict(os.environ if env is None else env)
        home = Path(_get(env, "SOP_HOME", str(Path.cwd() / ".sop"))).expanduser().resolve()
        base = _get(env, "SOP_BASE_CURRENCY", "USD").upper()
        if not _CURRENCY_RE.match(base):
            raise SettingsError(
                f"SOP_BASE_CURRENCY={base!r} is not a 3-letter ISO currency code (e.g. USD, EUR)."
            )
        start = _get(env, "SOP_PARTITION_START", "2020-01")
        if not _MONTH_RE.match(start):
            raise SettingsError(
                f"SOP_PARTITION_START={start!r} is not a month; use YYYY-MM, e.g. 2020-01."
            )
        if start < EARLIEST_PLAN_MONTH:
            raise SettingsError(
                f"SOP_PARTITION_START={start} is before {EARLIEST_PLAN_MONTH}, the first month "
                "of the plan-month partitions; set it to that month or later."
            )
        strategy = _get(env, "SOP_STRATEGY", "mixed").lower()
        if strategy not in STRATEGIES:
            raise SettingsError(
                f"SOP_STRATEGY={strategy!r} is unknown; use one of {', '.join(STRATEGIES)}."
            )
        engine = _get(env, "SOP_FORECAST_ENGINE", "local").lower()
        if engine not in FORECAST_ENGINES:
            raise SettingsError(
                f"SOP_FORECAST_ENGINE={engine!r} is unknown; use one of {', '.join(FORECAST_ENGINES)}."
            )
        dask_address = _get(env, "SOP_DASK_ADDRESS", "")
        if dask_address and not _DASK_ADDRESS_RE.match(dask_address):
            raise SettingsError(
                f"SOP_DASK_ADDRESS={dask_address!r} is not a Dask scheduler address; use "
                "tcp://host:port (e.g. tcp://scheduler:8786), or leave it empty to start a local "
                "Dask cluster for each run."
            )
        spark_master = _get(env, "SOP_SPARK_MASTER", "local[2]")
        if not _SPARK_MASTER_RE.match(spark_master):
            raise SettingsError(
                f"SOP_SPARK_MASTER={spark_master!r} is not a Spark master URL; use local[N] "
                "(Spark on this machine with N cores), spark://host:7077, yarn or k8s://https://host:port."
            )
        # SOP_DBT_TARGET is the older name of SOP_WAREHOUSE (read when SOP_WAREHOUSE is unset)
        warehouse_var = "SOP_WAREHOUSE" if _get(env, "SOP_WAREHOUSE", "") else "SOP_DBT_TARGET"
        warehouse = _get(env, warehouse_var, "duckdb").lower()
        if warehouse not in WAREHOUSES:
            raise SettingsError(
                f"{warehouse_var}={warehouse!r} is unknown; use one of {', '.join(WAREHOUSES)} "
                "(postgres also needs SOP_PG_HOST, SOP_PG_PORT, SOP_PG_USER, SOP_PG_DBNAME and "
                f"{PG_PASSWORD_VAR}; see .env.example)."
            )
        unmet = _get(env, "SOP_UNMET_DEMAND", "backlog").lower()
        if unmet not in UNMET_DEMAND_POLICIES:
            raise SettingsError(
                f"SOP_UNMET_DEMAND={unmet!r} is unknown; use backlog (unserved demand waits for "
                "the next receipts) or lost_sales (it is lost in its month)."
            )
        return cls(
            sop_home=home,
            base_currency=base,
            horizon_months=_int(env, "SOP_HORIZON_MONTHS", 18, 1, 36),
            partition_start=start,
            strategy=strategy,
            service_level=_float(env, "SOP_SERVICE_LEVEL", 0.95, 0.5, 0.999),
            max_reject_rate=_float(env, "SOP_MAX_REJECT_RATE", 0.0, 0.0, 1.0),
            forecast_engine=engine,
            forecast_n_jobs=_int(env, "SOP_FORECAST_N_JOBS", 2, -1, 64),
            dbt_threads=_int(env, "SOP_DBT_THREADS", 2, 1, 16),
            scenario_n_jobs=_int(env, "SOP_SCENARIO_N_JOBS", 2, 1, 64),
            dask_address=dask_address,
            spark_master=spark_master,
            backtest_windows=_int(env, "SOP_BACKTEST_WINDOWS", 3, 1, 12),
            cover_limit_days=_float(env, "SOP_COVER_LIMIT_DAYS", 120.0, 1.0, 3650.0),
            overtime_share=_float(env, "SOP_OVERTIME_SHARE", 0.10, 0.0, 1.0),
            warehouse=warehouse,
            pg_host=_get(env, "SOP_PG_HOST", "localhost"),
            pg_port=_int(env, "SOP_PG_PORT", 5432, 1, 65535),
            pg_user=_get(env, "SOP_PG_USER", "sop"),
            pg_dbname=_get(env, "SOP_PG_DBNAME", "sop"),
            # taken as it is: spaces may be part of a password
            pg_password=env.get(PG_PASSWORD_VAR, ""),
            run_lock_timeout=_float(env, "SOP_RUN_LOCK_TIMEOUT", 7200.0, 0.0, 7 * 86400.0),
            unmet_demand=unmet,
            stockout_risk_threshold=_float(env, "SOP_STOCKOUT_RISK_THRESHOLD", 0.20, 0.0, 1.0),
            dagster_home_dir=(
                Path(env["DAGSTER_HOME"]).expanduser().resolve()
                if env.get("DAGSTER_HOME", "").strip()
                else None
            ),
        )
