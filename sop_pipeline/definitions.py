"""The single ``Definitions`` of the project: one ``definitions.py`` per S&OP step, merged.

Each package under ``sop_pipeline/defs/`` owns its assets, checks, jobs, schedules and sensors
(``docs/internals.md`` has the map); this module adds what they share: the resources built
from the settings, the executor and the loggers. ``workspace.yaml`` loads ``defs``.
"""

import dagster as dg

from sop_pipeline.core.settings import Settings
from sop_pipeline.defs.clean.definitions import defs as clean
from sop_pipeline.defs.demand.definitions import defs as demand
from sop_pipeline.defs.executive.definitions import defs as executive
from sop_pipeline.defs.finance.definitions import defs as finance
from sop_pipeline.defs.ingest.definitions import defs as ingest
from sop_pipeline.defs.orchestration.definitions import defs as orchestration
from sop_pipeline.defs.publish.definitions import defs as publish
from sop_pipeline.defs.report.definitions import defs as report
from sop_pipeline.defs.resources import build_resources
from sop_pipeline.defs.supply.definitions import defs as supply
from sop_pipeline.runtime.steplog import step_logger

#: the S&OP steps in the order of the monthly cycle
DOMAINS = (ingest, clean, demand, supply, finance, executive, publish, report, orchestration)

ALL_ASSETS = [a for d in DOMAINS for a in (d.assets or [])]
ALL_CHECKS = [c for d in DOMAINS for c in (d.asset_checks or [])]


def build_definitions(settings: Settings) -> dg.Definitions:
    """The project's Definitions with the resources of ``settings`` (read once by the caller)."""
    shared = dg.Definitions(
        resources=build_resources(settings),
        # one process, one step at a time: DuckDB allows a single writer on the working file
        executor=dg.in_process_executor,
        loggers={"console": dg.colored_console_logger, "sop_steps": step_logger},
    )
    return dg.Definitions.merge(*DOMAINS, shared)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location of ``dagster dev`` / workspace.yaml: settings from the environment.

    Read when Dagster loads the code location, not when this module is imported.
    """
    return build_definitions(Settings.from_env())
