"""The project's exception hierarchy: every error the pipeline raises on purpose derives from here.

Two families decide what happens to a failed step:

- :class:`InvalidInputError` — the extracts, a workbook, a settings value or the plan itself is
  wrong (a bad file, an unknown item, a gate failure). Retrying cannot help: the Dagster step
  fails at once (``sop_pipeline.defs.retry``) and the CLI prints the message with exit code 1
  or 2.
- :class:`OperationalError` — the machine or a service said no (a locked database, a full
  disk, a cluster that did not answer). The step's retry policy may help.

Each concrete error keeps the built-in base it always had (``ValueError`` / ``RuntimeError``)
next to one of the two families, so ``except ValueError`` in callers keeps working.
This module imports nothing from the project: every package may import it.
"""

from __future__ import annotations


class SopError(Exception):
    """Base of every error the pipeline raises on purpose; ``str()`` is what the user reads."""


class InvalidInputError(SopError):
    """The input, the settings or the plan is wrong; retrying the step cannot help."""


class OperationalError(SopError):
    """The environment refused (lock, disk, network, solver); a later retry may succeed."""


#: What a step never retries: the project's validation errors, and any ``ValueError`` a library
#: raises on bad data (pandas, numpy, DuckDB conversions).
NOT_RETRYABLE: tuple[type[BaseException], ...] = (InvalidInputError, ValueError)


def is_retryable(exc: BaseException) -> bool:
    """False for validation errors, True for anything else (operational or unexpected)."""
    return not isinstance(exc, NOT_RETRYABLE)
