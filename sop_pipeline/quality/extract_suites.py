"""Great Expectations suites of the extracts, generated from the contract.

``data_quality/extracts/<extract>.json`` are written by this module and never edited by
hand: change ``sop_pipeline/ingest/contract.py``, then run

    python -m sop_pipeline.quality.extract_suites --write

A test asserts the committed files equal what the contract generates, so they cannot drift.
The suites run on the *typed* frame the reader builds (numbers as floats, dates as
timestamps, one column per contract column, index = file line number); parse errors
(``'abc'`` in a number) are found before GX sees the frame.
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

from sop_pipeline.ingest.contract import EXTRACTS, Extract

#: ``data_quality/extracts`` of the repository.
SUITES_DIR = Path(__file__).resolve().parents[2] / "data_quality" / "extracts"

#: demand_overrides.adjustment: a quantity ("120", "-40", "12.5") or a percent ("+15%", "-10%").
ADJUSTMENT_REGEX = r"^[+-]?\d+(?:\.\d+)?%?$"


def build_extract_suite(extract: Extract) -> dict:
    """The GX suite of one extract, from its contract.

    Expectations, in this order: required columns are not null; status codes are in their allowed set; numbers within their min/max; the key is
    unique (compound when it has several columns); extract-specific patterns
    (``demand_overrides.adjustment``).

    Args:
        extract: the contract entry.

    Returns:
        ``{"name": <extract>, "meta": {...}, "expectations": [{"type", "kwargs"}, ...]}``.
    """
    # No expect_column_to_exist: the reader checks the header by name before GX runs and
    # gives a file-level error with the fix; here each expectation costs ~10 ms of GX overhead.
    exps: list[dict] = []
    for col in extract.columns:
        if col.required:
            exps.append(
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col.name}}
            )
    for col in extract.columns:
        if col.allowed:
            exps.append(
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": col.name, "value_set": list(col.allowed)},
                }
            )
    for col in extract.columns:
        if col.type in ("num", "int") and (col.min_value is not None or col.max_value is not None):
            kwargs: dict = {"column": col.name}
            if col.min_value is not None:
                kwargs["min_value"] = col.min_value
            if col.max_value is not None:
                kwargs["max_value"] = col.max_value
            exps.append({"type": "expect_column_values_to_be_between", "kwargs": kwargs})
    if len(extract.key) == 1:
        exps.append(
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": extract.key[0]}}
        )
    else:
        exps.append(
            {
                "type": "expect_compound_columns_to_be_unique",
                "kwargs": {"column_list": list(extract.key)},
            }
        )
    if extract.name == "demand_overrides":
        exps.append(
            {
                "type": "expect_column_values_to_match_regex",
                "kwargs": {"column": "adjustment", "regex": ADJUSTMENT_REGEX},
            }
        )
    return {
        "name": extract.name,
        "meta": {
            "generated_by": "python -m sop_pipeline.quality.extract_suites --write",
            "source": "sop_pipeline/ingest/contract.py",
            "key": list(extract.key),
        },
        "expectations": exps,
    }


def suite_json(extract: Extract) -> str:
    """The exact text of ``data_quality/extracts/<extract>.json``."""
    return json.dumps(build_extract_suite(extract), indent=2) + "\n"


@cache
def _extract_suite_cached(name: str) -> str:
    path = SUITES_DIR / f"{name}.json"
    if path.exists():
        from sop_pipeline.quality.gx import load_suite

        return json.dumps(load_suite(path))
    # installed without the repository's data_quality/ folder: the contract is the source
    return json.dumps(build_extract_suite(EXTRACTS[name]))


def extract_suite(name: str) -> dict:
    """The suite the reader runs for extract ``name``: the committed JSON, else the contract's."""
    return json.loads(_extract_suite_cached(name))


def write_suites(directory: Path = SUITES_DIR) -> list[Path]:
    """Rewrite every ``<extract>.json`` in ``directory`` from the contract.

    Returns:
        The files written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for extract in EXTRACTS.values():
        path = directory / f"{extract.name}.json"
        path.write_text(suite_json(extract), encoding="utf-8")
        written.append(path)
    _extract_suite_cached.cache_clear()
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m sop_pipeline.quality.extract_suites [--write]``: check or rewrite the suites."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite data_quality/extracts/*.json")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_suites():
            print(f"wrote {path}")
        return 0
    stale = [
        name
        for name, e in EXTRACTS.items()
        if not (SUITES_DIR / f"{name}.json").exists()
        or (SUITES_DIR / f"{name}.json").read_text(encoding="utf-8") != suite_json(e)
    ]
    if stale:
        print(f"stale or missing suites: {', '.join(stale)}; run with --write")
        return 1
    print("extract suites match the contract")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
