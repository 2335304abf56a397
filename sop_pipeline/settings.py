"""One settings object: every environment variable is read here, once, with a default.

Nothing else in the project reads ``os.environ`` for a setting (``planning/engines.py`` only sets
the two variables the Spark launcher reads while it starts). See ``.env.example`` for the list.

A ``.env`` file in the working directory (``cp .env.example .env``) is read first, the way
``dagster dev`` reads it: its variables are added to the process environment unless the
environment already sets them (a real environment variable always wins), so dbt and the other
tools the pipeline starts see the same values.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

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


class SettingsError(ValueError):
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
    forecast_n_jobs: int = 1
    # dbt nodes built at once (SOP_DBT_THREADS); results do not depend on it
    dbt_threads: int = 2
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
        return self.sop_home / "landing"

    @property
    def warehouse_dir(self) -> Path:
        return self.sop_home / "warehouse"

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse_dir / "sop.duckdb"

    @property
    def published_dir(self) -> Path:
        return self.sop_home / "published"

    @property
    def reports_dir(self) -> Path:
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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
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
            forecast_n_jobs=_int(env, "SOP_FORECAST_N_JOBS", 1, -1, 64),
            dbt_threads=_int(env, "SOP_DBT_THREADS", 2, 1, 16),
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


def get_settings() -> Settings:
    """Settings from the current environment (read on each call so tests can monkeypatch)."""
    return Settings.from_env()
