"""One settings object: every environment variable is read here, once, with a default.

Nothing else in the project calls ``os.environ``. See ``.env.example`` for the list.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_DBT_TARGET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

STRATEGIES = ("level", "chase", "mixed")
FORECAST_ENGINES = ("local", "dask", "spark")


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot use; the message says which and how to fix it."""


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
    backtest_windows: int = 3
    cover_limit_days: float = 120.0
    overtime_share: float = 0.10
    dbt_target: str = "duckdb"
    dagster_home_dir: Path | None = None
    run_lock_timeout: float = 7200.0

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
            env: mapping to read instead of ``os.environ`` (tests pass their own).

        Returns:
            The validated settings.

        Raises:
            SettingsError: a variable has an unusable value; the message names it.
        """
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
        dbt_target = _get(env, "SOP_DBT_TARGET", "duckdb")
        if not _DBT_TARGET_RE.match(dbt_target):
            raise SettingsError(
                f"SOP_DBT_TARGET={dbt_target!r} is not a target name; use the name of an output "
                "in dbt_project/profiles.yml (letters, digits, underscores), e.g. duckdb."
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
            backtest_windows=_int(env, "SOP_BACKTEST_WINDOWS", 3, 1, 12),
            cover_limit_days=_float(env, "SOP_COVER_LIMIT_DAYS", 120.0, 1.0, 3650.0),
            overtime_share=_float(env, "SOP_OVERTIME_SHARE", 0.10, 0.0, 1.0),
            dbt_target=dbt_target,
            run_lock_timeout=_float(env, "SOP_RUN_LOCK_TIMEOUT", 7200.0, 0.0, 7 * 86400.0),
            dagster_home_dir=(
                Path(env["DAGSTER_HOME"]).expanduser().resolve()
                if env.get("DAGSTER_HOME", "").strip()
                else None
            ),
        )


def get_settings() -> Settings:
    """Settings from the current environment (read on each call so tests can monkeypatch)."""
    return Settings.from_env()
