"""Retries: transient failures are retried by the step's policy, validation errors never are.

Dagster retries *every* exception under a retry policy, so an asset body raises validation errors
(:class:`sop_pipeline.errors.InvalidInputError`, or a ``ValueError`` from a library) as
``dg.Failure(allow_retries=False)`` through :class:`no_retry_on_validation`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

from sop_pipeline import errors

#: Retry a failed step twice, 10 s then 30 s later: for locked files, full disks being
#: cleaned, network shares that blink. Dagster retries *every* exception under a policy,
#: so validation errors must be raised as ``Failure(allow_retries=False)``
#: (:func:`no_retry_on_validation`).
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)


def is_retryable(exc: BaseException) -> bool:
    """False for validation errors (and non-retryable Failures), True for anything else."""
    if isinstance(exc, dg.Failure):
        return exc.allow_retries is not False
    return errors.is_retryable(exc)


def as_failure(exc: BaseException) -> dg.Failure:
    """A non-retryable ``Failure`` with the message of ``exc`` (what the CLI and UI show)."""
    return dg.Failure(
        description=str(exc),
        metadata={"error_type": dg.MetadataValue.text(type(exc).__name__)},
        allow_retries=False,
    )


F = TypeVar("F", bound=Callable[..., Any])


class no_retry_on_validation:  # noqa: N801 - reads as a statement at the use site
    """Raise validation errors as ``dg.Failure(allow_retries=False)``; let the rest through.

    Use it as a context manager inside an asset body, or as a decorator under ``@dg.asset``
    (works for asset functions that ``return`` and for those that ``yield``)::

        @dg.asset(...)
        @no_retry_on_validation()
        def raw_extracts(context, sop): ...

        def raw_extracts(context, sop):
            with no_retry_on_validation():
                ...

    The Failure's description is ``str(exc)`` and its ``__cause__`` the original exception, so
    the message a user reads does not change; only the step is not retried.
    """

    def __enter__(self) -> no_retry_on_validation:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, dg.Failure) or is_retryable(exc):
            return False
        raise as_failure(exc) from exc

    def __call__(self, fn: F) -> F:
        """Wrap ``fn`` (a function or a generator function) so its validation errors are not retried."""
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                with no_retry_on_validation():
                    return (yield from fn(*args, **kwargs))

            return gen_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_retry_on_validation():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
