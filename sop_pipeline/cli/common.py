"""What every ``sop`` verb shares: the two consoles, the exit codes, the settings and month checks."""

from __future__ import annotations

import argparse

from sop_pipeline.cli.preflight import require_home
from sop_pipeline.core.months import parse_month
from sop_pipeline.core.settings import Settings
from sop_pipeline.runtime.output import make_console
from sop_pipeline.runtime.runner import write_dagster_yaml

# the terminal's width on a terminal, no wrapping when piped or in CI
console = make_console()
err = make_console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def settings_or_exit(*, create: bool = False) -> Settings:
    """The settings, with SOP_HOME checked: only ``create`` (generate, demo, --init) makes it."""
    settings = Settings.from_env()
    require_home(settings, create=create)
    settings.ensure_dirs()
    # Dagster keeps run history under SOP_HOME so `dagster dev` sees the CLI's runs
    write_dagster_yaml(settings.dagster_home)
    return settings


def month_arg(value: str) -> str:
    """The argparse type for a ``YYYY-MM`` month: a bad one is a usage error naming the value."""
    try:
        parse_month(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value
