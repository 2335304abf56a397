"""The contract checks of parsed extracts: the GX suite and the rules GX cannot express.

The GX suite runs once per batch of files; the other rules cover two columns, dates against
the extract month, and the BOM and supplier capacity rules.

:func:`check_parsed` turns :class:`~sop_pipeline.ingest.parsing.ParsedExtract` objects into
:class:`~sop_pipeline.ingest.problems.ReadResult` objects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sop_pipeline.core.months import month_start, parse_month
from sop_pipeline.ingest.bom_rules import bom_rules, supplier_capacity_rules
from sop_pipeline.ingest.parsing import ParsedExtract, quoted
from sop_pipeline.ingest.problems import ReadResult
from sop_pipeline.quality.extract_suites import extract_suite
from sop_pipeline.quality.gx import validate_dataframe

#: Dates of events that have happened by the close of the extract month (the extract is
#: written after it): a later date is a typing error or a clock problem in the source.
#: Planned and expected dates (requested, due, start, expected close) may be in the future.
NOT_AFTER_EXTRACT_MONTH: dict[str, tuple[str, ...]] = {
    "sales_orders": ("order_date", "ship_date"),
    "inventory": ("snapshot_date", "receipt_date"),
    "production_orders": ("completed_date",),
    "purchase_orders": ("order_date", "received_date"),
}

#: Dates that must fall in the extract month itself: the inventory is the snapshot taken at
#: the month's close, so an earlier snapshot_date means a stale extract was delivered.
IN_EXTRACT_MONTH: dict[str, tuple[str, ...]] = {"inventory": ("snapshot_date",)}

_UNIQUE = ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique")


def _file_scoped_suite(suite: dict) -> tuple[dict, dict[str, tuple[str, ...]]]:
    """The suite for a frame that stacks several files: keys are unique *within a file*.

    Every other expectation is row by row and runs unchanged. A key-uniqueness expectation
    gets a leading scope column holding the file's number, so a key repeated in two files
    (a full snapshot every month, a restated order) is not a duplicate, and rows GX would
    ignore on one file are ignored here too: ``expect_column_values_to_be_unique`` ignores
    empty values (``ignore_row_if: any_value_is_missing``); the compound form ignores rows
    whose key is all empty by default, so its scope is empty on exactly those rows.

    Returns:
        (the suite, scope column → the key columns whose all-empty rows have no scope)
    """
    out = []
    scopes: dict[str, tuple[str, ...]] = {}
    for i, exp in enumerate(suite["expectations"]):
        kwargs = dict(exp.get("kwargs", {}))
        if exp["type"] not in _UNIQUE:
            out.append({"type": exp["type"], "kwargs": kwargs})
            continue
        scope = f"_file_scope_{i}"
        if exp["type"] == "expect_column_values_to_be_unique":
            key = (kwargs.pop("column"),)
            kwargs["ignore_row_if"] = "any_value_is_missing"
            scopes[scope] = ()
        else:
            key = tuple(kwargs["column_list"])
            rule = kwargs.get("ignore_row_if", "all_values_are_missing")
            scopes[scope] = key if rule == "all_values_are_missing" else ()
        kwargs["column_list"] = [scope, *key]
        out.append({"type": "expect_compound_columns_to_be_unique", "kwargs": kwargs})
    return {"name": suite["name"], "expectations": out}, scopes


def check_parsed(parsed: list[ParsedExtract]) -> list[ReadResult]:
    """Run the extract's GX suite once over all ``parsed`` files and finish their checks.

    The files must be of one extract. The typed frames are stacked with a file number, GX
    validates the stack in one run (GX costs ~0.1 s per run whatever the size, so one run
    per file dominated a first load), and each failing row is mapped back to its file and
    line. Key uniqueness stays per file (see :func:`_file_scoped_suite`). The result is the
    same as checking every file on its own.

    Args:
        parsed: files of one extract, from :func:`parse_extract`.

    Returns:
        One :class:`ReadResult` per file, in the same order.
    """
    if not parsed:
        return []
    extract = parsed[0].extract
    if any(p.extract.name != extract.name for p in parsed):
        raise ValueError("check_parsed: every file of a batch must be of the same extract")
    suite, scopes = _file_scoped_suite(extract_suite(extract.name))
    sizes = np.asarray([p.row_count for p in parsed], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    stacked = (
        pd.concat([p.gx_frame for p in parsed], ignore_index=True)
        if len(parsed) > 1
        else parsed[0].gx_frame.reset_index(drop=True)
    )
    file_no = np.repeat(np.arange(len(parsed), dtype=np.float64), sizes)
    for scope, key in scopes.items():
        col = file_no
        if key:
            all_empty = stacked[list(key)].isna().all(axis=1).to_numpy()
            col = np.where(all_empty, np.nan, file_no)
        stacked[scope] = col
    outcome = validate_dataframe(stacked, suite, index_limit=None)
    per_file: list[list[tuple[str, str | None, np.ndarray]]] = [[] for _ in parsed]
    for failure in outcome.failures:
        positions = np.asarray(failure.unexpected_index, dtype=np.int64)
        if len(positions) == 0:
            if failure.expectation != "expect_column_to_exist":
                raise RuntimeError(f"extract suite {extract.name}: {failure.message}")
            continue
        which = np.searchsorted(offsets, positions, side="right") - 1
        for i in np.unique(which):
            local = positions[which == i] - offsets[i]
            lines = parsed[i].frame["_source_row"].to_numpy()[local]
            per_file[i].append((failure.expectation, failure.column, lines))
    results = []
    for p, failures in zip(parsed, per_file, strict=True):
        _gx_problems(p, failures)
        _extract_rules(p)
        problem_list = p.problems.to_list()
        results.append(
            ReadResult(
                frame=p.frame,
                problems=problem_list,
                row_count=p.row_count,
                sha256=p.sha256,
                bad_rows={pr.row for pr in problem_list},
            )
        )
    return results


def _gx_problems(parsed: ParsedExtract, failures: list[tuple[str, str | None, np.ndarray]]) -> None:
    """Turn the GX failures of one file (expectation, column, line numbers) into RowProblems."""
    extract, frame, texts, problems = (
        parsed.extract,
        parsed.frame,
        parsed.texts,
        parsed.problems,
    )
    for expectation, column, rows in failures:
        if expectation in _UNIQUE:
            key = list(extract.key)
            dup_later = frame.duplicated(key, keep="first").to_numpy()
            rows = frame["_source_row"].to_numpy()[dup_later]
            if len(rows) == 0:
                continue
            sub = frame.loc[dup_later]
            first_row = frame.groupby(key, dropna=False, sort=False)["_source_row"].transform(
                "min"
            )[dup_later]
            key_text = sub[key[0]].astype(str)
            for k in key[1:]:
                key_text = key_text + ", " + sub[k].astype(str)
            reason = (
                f"duplicate key ({', '.join(key)}) = ("
                + key_text
                + "); the first row with this key is row "
                + first_row.astype(str)
            )
            problems.add(
                rows,
                ", ".join(key),
                key_text,
                reason,
                "keep one row per key in the extract (a restatement belongs in a later month's extract)",
            )
            continue
        text = texts[column].at_rows(rows) if column in texts else pd.Series([None] * len(rows))
        if expectation == "expect_column_values_to_not_be_null":
            problems.add(
                rows,
                column,
                text,
                "a value is required but the cell is empty",
                f"fill {column} in the source system (or drop the row from the extract)",
            )
        elif expectation == "expect_column_values_to_be_in_set":
            allowed = ", ".join(extract.column(column).allowed or ())
            problems.add(
                rows,
                column,
                text,
                quoted(text) + f" is not an allowed {column} (allowed: {allowed})",
                "use one of the allowed codes in the extract",
            )
        elif expectation == "expect_column_values_to_be_between":
            col = extract.column(column)
            vals = parsed.gx_frame.loc[rows, column]
            below = (
                (vals < col.min_value).to_numpy()
                if col.min_value is not None
                else np.zeros(len(rows), bool)
            )
            reason = np.where(
                below,
                quoted(text) + f" is below the minimum {col.min_value:g}",
                quoted(text)
                + f" is above the maximum {col.max_value if col.max_value is None else f'{col.max_value:g}'}",
            )
            problems.add(
                rows, column, text, pd.Series(reason), "correct the value in the source system"
            )
        elif expectation == "expect_column_values_to_match_regex":
            problems.add(
                rows,
                column,
                text,
                quoted(text) + " is not a quantity (120, -40) or a percent (+15%, -10%)",
                "write the adjustment as a quantity like 120 or -40, or a percent like +15% or -10%",
            )
        else:
            problems.add(
                rows,
                column,
                text,
                f"the value fails the contract check {expectation}",
                "fix the extract",
            )


def _extract_rules(parsed: ParsedExtract) -> None:
    """Rules GX cannot express on one column: two columns, or the extract month."""
    extract, frame, texts, problems = (
        parsed.extract,
        parsed.frame,
        parsed.texts,
        parsed.problems,
    )
    rows = frame["_source_row"].to_numpy()
    if extract.name == "sales_orders":
        not_return = frame["status"].notna() & (frame["status"] != "returned")
        for qty in ("qty_ordered", "qty_shipped"):
            neg = (frame[qty] < 0).fillna(False).astype(bool) & not_return
            neg = neg.to_numpy()
            if not neg.any():
                continue
            problems.add(
                rows[neg],
                qty,
                texts[qty][neg].reset_index(drop=True),
                "negative quantity "
                + texts[qty][neg].astype(str).reset_index(drop=True)
                + " on a line whose status is '"
                + frame.loc[neg, "status"].astype(str).reset_index(drop=True)
                + "'; only returns may be negative",
                "book the line with status returned, or correct the quantity in the source system",
            )
    if extract.name == "opportunities":
        neither = (frame["item_id"].isna() & frame["family"].isna()).to_numpy()
        problems.add(
            rows[neither],
            "item_id",
            [None] * int(neither.sum()),
            "neither item_id nor family is filled",
            "fill item_id or family for every opportunity",
        )
    if extract.name == "bom":
        bom_rules(frame, texts, problems.add)
    if extract.name == "supplier_capacity":
        supplier_capacity_rules(frame, problems.add)
    month = parse_month(parsed.extract_month)
    first = pd.Timestamp(month)
    after_end = pd.Timestamp(month_start(month, 1))
    for column in IN_EXTRACT_MONTH.get(extract.name, ()):
        before = (frame[column] < first).to_numpy()
        if before.any():
            text = texts[column][before]
            problems.add(
                rows[before],
                column,
                text,
                quoted(text)
                + f" is before the extract month {parsed.extract_month} (stale extract: "
                "this snapshot is not the one taken at the month's close)",
                f"re-export {extract.name} with the snapshot of {parsed.extract_month}'s close",
            )
    for column in NOT_AFTER_EXTRACT_MONTH.get(extract.name, ()):
        future = (frame[column] >= after_end).to_numpy()
        if future.any():
            text = texts[column][future]
            problems.add(
                rows[future],
                column,
                text,
                quoted(text) + f" is after the end of the extract month {parsed.extract_month} "
                f"({column} cannot be in the future of the extract)",
                "correct the date in the source system (or move the row to the extract of its month)",
            )
