"""Great Expectations adapter: validate a pandas DataFrame against a suite given as a dict.

Why pandas and not DuckDB: GX's SQL datasource on DuckDB returns wrong results (every
expectation fails with ``list index out of range``, TOOLCHAIN.md), so callers load the table
into a DataFrame and validate it here. Why an adapter at all: GX reports success for an empty
batch and for a suite with zero expectations; a quality gate must treat both as failures,
and callers need row-level evidence (index labels, values) and one readable sentence per
failure rather than GX's nested result objects.

The ephemeral GX context is created once per process (it costs ~10 ms after the ~3 s import)
and reused; a lock serialises validations because the context is not thread-safe.

Suite format (the JSON files in ``data_quality/``)::

    {"name": "sales_orders", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]}
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sop_pipeline.errors import InvalidInputError

# Analytics off before GX is imported (GX reads the variable at import / context creation).
# GX 1.24 ships no telemetry client any more, but the config key still exists: keep both off
# so a future upgrade cannot start calling home from a pipeline with no network.
os.environ["GX_ANALYTICS_ENABLED"] = "false"

#: How many failing index labels / values a failure carries (evidence, not the full list).
MAX_INDEX = 200
MAX_VALUES = 20

# Pseudo-expectation names for the two cases GX itself reports as successes.
EMPTY_FRAME = "expect_table_row_count_to_be_between"
NO_EXPECTATIONS = "suite_has_expectations"


@dataclass(frozen=True)
class ExpectationFailure:
    """One failed expectation.

    Attributes:
        expectation: GX expectation type, e.g. ``expect_column_values_to_not_be_null``.
        column: the column it checks; for multi-column expectations the names joined by
            ``", "``; None for table-level expectations.
        unexpected_count: how many rows failed (0 when GX could not evaluate it).
        unexpected_index: DataFrame index labels of failing rows (at most ``MAX_INDEX``
            unless the caller asked for more).
        unexpected_values: the failing values (first ``MAX_VALUES``).
        message: one sentence saying what failed, on which column.
    """

    expectation: str
    column: str | None
    unexpected_count: int
    unexpected_index: list[int]
    unexpected_values: list
    message: str


@dataclass(frozen=True)
class SuiteOutcome:
    """Result of one suite on one DataFrame.

    Attributes:
        suite: suite name.
        success: False if any expectation failed, if zero expectations were evaluated, or
            if the DataFrame is empty and empty frames were not allowed.
        evaluated: number of expectations GX evaluated.
        row_count: rows in the DataFrame.
        failures: the failed expectations (including the empty-frame / no-expectation
            pseudo-failures).
    """

    suite: str
    success: bool
    evaluated: int
    row_count: int
    failures: list[ExpectationFailure]


class SuiteFileError(InvalidInputError, ValueError):
    """A suite JSON file cannot be used; the message names the file and the problem."""


_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}


def _batch_definition():
    """The cached whole-dataframe batch definition of an ephemeral in-memory context."""
    if "batch_definition" not in _STATE:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            # progress bars would spam Dagster logs and test output
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        context = gx.get_context(project_config=config, mode="ephemeral")
        asset = context.data_sources.add_pandas("sop_pandas").add_dataframe_asset("frame")
        _STATE["batch_definition"] = asset.add_batch_definition_whole_dataframe("whole")
    return _STATE["batch_definition"]


def load_suite(path: Path) -> dict:
    """Read a suite JSON file and check its shape.

    Args:
        path: ``data_quality/.../<name>.json`` with ``name`` and ``expectations``
            (a list of ``{"type": ..., "kwargs": {...}}``).

    Returns:
        The suite as a dict.

    Raises:
        SuiteFileError: the file is missing, not JSON, or not shaped like a suite.
    """
    path = Path(path)
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteFileError(
            f"{path}: suite file not found; regenerate the suites or fix the path."
        ) from None
    except json.JSONDecodeError as exc:
        raise SuiteFileError(
            f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); fix the file."
        ) from None
    _check_suite(suite, str(path))
    return suite


def _check_suite(suite: Any, where: str) -> None:
    if not isinstance(suite, dict) or not isinstance(suite.get("name"), str) or not suite["name"]:
        raise SuiteFileError(f"{where}: a suite needs a non-empty string 'name'; add it.")
    exps = suite.get("expectations")
    if not isinstance(exps, list):
        raise SuiteFileError(f"{where}: 'expectations' must be a list of {{type, kwargs}} objects.")
    for i, exp in enumerate(exps):
        if (
            not isinstance(exp, dict)
            or not isinstance(exp.get("type"), str)
            or not isinstance(exp.get("kwargs", {}), dict)
        ):
            raise SuiteFileError(
                f"{where}: expectation #{i + 1} must be an object with a string 'type' and an object 'kwargs'."
            )


def _column_of(kwargs: dict) -> str | None:
    if "column" in kwargs:
        return str(kwargs["column"])
    for key in ("column_list", "column_A"):
        if key in kwargs:
            cols = (
                kwargs[key]
                if key == "column_list"
                else [kwargs["column_A"], kwargs.get("column_B")]
            )
            return ", ".join(str(c) for c in cols if c is not None)
    return None


def _plain(value: Any) -> Any:
    """Numpy scalars → Python values so failures serialise and compare simply."""
    if hasattr(value, "item") and not isinstance(value, list | dict | tuple | str):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def _describe(
    exp_type: str, column: str | None, kwargs: dict, count: int, n_rows: int, values: list
) -> str:
    """One sentence for a failed expectation."""
    where = f"column {column}" if column else "the table"
    examples = ", ".join(repr(v) for v in values[:5])
    eg = f" (e.g. {examples})" if examples else ""
    of = f"{count} of {n_rows} rows"
    if exp_type == "expect_column_values_to_not_be_null":
        return f"{where}: {of} are empty but a value is required"
    if exp_type == "expect_column_values_to_be_in_set":
        allowed = ", ".join(map(str, kwargs.get("value_set", [])))
        return f"{where}: {of} are not one of {allowed}{eg}"
    if exp_type == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        bound = (
            f"between {lo} and {hi}"
            if lo is not None and hi is not None
            else (f"at least {lo}" if lo is not None else f"at most {hi}")
        )
        return f"{where}: {of} are not {bound}{eg}"
    if exp_type in ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"):
        return f"{where}: {of} share a key with another row{eg}"
    if exp_type == "expect_column_values_to_match_regex":
        return f"{where}: {of} do not match {kwargs.get('regex')!r}{eg}"
    if count:
        return f"{where}: {exp_type} failed for {of}{eg}"
    return f"{where}: {exp_type} failed"


def _result_format(index_limit: int | None) -> dict:
    if index_limit is None:
        # every failing index (the reader needs all of them to reject rows); no query string
        return {"result_format": "COMPLETE", "return_unexpected_index_query": False}
    return {
        "result_format": "SUMMARY",
        "partial_unexpected_count": max(index_limit, MAX_VALUES),
        "return_unexpected_index_query": False,
    }


def validate_dataframe(
    df: pd.DataFrame,
    suite: dict,
    *,
    allow_empty: bool = False,
    index_limit: int | None = MAX_INDEX,
) -> SuiteOutcome:
    """Validate ``df`` against ``suite`` with GX's pandas datasource.

    Args:
        df: the frame; its index labels are what ``unexpected_index`` reports, so give it a
            meaningful index (e.g. the file line number) before validating.
        suite: ``{"name": ..., "expectations": [{"type": ..., "kwargs": {...}}]}``.
        allow_empty: accept a frame with zero rows (otherwise it is a failure).
        index_limit: how many failing index labels to keep per expectation (default 200);
            None keeps all of them (slower on big failures; the reader uses it to reject
            every failing row).

    Returns:
        The outcome; ``success`` is False on any failure, on zero evaluated expectations,
        or on an empty frame when ``allow_empty`` is False.

    Raises:
        SuiteFileError: the suite is not shaped like a suite or names an unknown
            expectation type.
    """
    from great_expectations.core.expectation_suite import ExpectationSuite

    _check_suite(suite, f"suite {suite.get('name', '?') if isinstance(suite, dict) else '?'}")
    name = suite["name"]
    n_rows = len(df)
    failures: list[ExpectationFailure] = []
    evaluated = 0
    expectations = [
        {"type": e["type"], "kwargs": dict(e.get("kwargs", {}))} for e in suite["expectations"]
    ]
    if expectations:
        try:
            gx_suite = ExpectationSuite(name=name, expectations=expectations)
        except Exception as exc:  # GX raises several types for an unknown expectation
            raise SuiteFileError(
                f"suite {name}: cannot build the GX suite ({exc}); fix the expectation types or kwargs."
            ) from exc
        with _LOCK:
            batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
            # Two passes: GX's per-expectation overhead more than doubles when it also
            # gathers index and value lists, so the whole suite runs as pass/fail first and
            # only the failed expectations run again for their evidence.
            quick = batch.validate(gx_suite, result_format={"result_format": "BOOLEAN_ONLY"})
            evaluated = int(quick.statistics.get("evaluated_expectations", 0))
            failed = [r.expectation_config for r in quick.results if not r.success]
            detailed = []
            if failed:
                retry = ExpectationSuite(
                    name=name,
                    expectations=[{"type": c.type, "kwargs": dict(c.kwargs)} for c in failed],
                )
                detailed = batch.validate(retry, result_format=_result_format(index_limit)).results
        for r in detailed:
            if r.success:  # cannot pass on the same data; kept for safety
                continue
            cfg = r.expectation_config
            kwargs = dict(cfg.kwargs)
            column = _column_of(kwargs)
            res = r.result or {}
            count = int(res.get("unexpected_count") or 0)
            if "unexpected_index_list" in res:
                index = list(res["unexpected_index_list"] or [])
                values = list(res.get("unexpected_list") or [])
            else:
                index = list(res.get("partial_unexpected_index_list") or [])
                values = list(res.get("partial_unexpected_list") or [])
            if index_limit is not None:
                index = index[:index_limit]
            values = [_plain(v) for v in values[:MAX_VALUES]]
            index = [_plain(i) for i in index]
            where = f"column {column}" if column else "the table"
            error = _exception_message(r.exception_info)
            if error:
                message = f"{where}: GX could not evaluate {cfg.type} ({error})"
            elif cfg.type == "expect_column_to_exist":
                message = f"{where}: the column is missing"
            else:
                message = _describe(cfg.type, column, kwargs, count, n_rows, values)
            message = message if message.endswith(".") else f"{message}."
            failures.append(
                ExpectationFailure(cfg.type, column, count, index, values, f"{name}: {message}")
            )
    else:
        failures.append(
            ExpectationFailure(
                NO_EXPECTATIONS,
                None,
                0,
                [],
                [],
                f"{name}: the suite has no expectations, so it proves nothing; add expectations to it.",
            )
        )
    if n_rows == 0 and not allow_empty:
        failures.append(
            ExpectationFailure(
                EMPTY_FRAME,
                None,
                0,
                [],
                [],
                f"{name}: the table is empty (0 rows); a passing check on no data proves nothing.",
            )
        )
    success = not failures and evaluated > 0
    return SuiteOutcome(
        suite=name, success=success, evaluated=evaluated, row_count=n_rows, failures=failures
    )


def _exception_message(info: Any) -> str | None:
    """First line of GX's exception info (flat or keyed by metric id), if one was raised."""
    if not isinstance(info, dict):
        return None
    candidates = (
        [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    )
    for item in candidates:
        if item.get("raised_exception") or item.get("exception_message"):
            msg = str(item.get("exception_message") or "error").strip().splitlines()
            return msg[0] if msg else "error"
    return None
