"""Time a first load of the demo company into an empty database (issue "scale").

Usage::

    .venv/bin/python benchmarks/bench_ingest.py [--sizes 300x60,5000x48] [--landing-cache DIR]

For each size ``ITEMSxMONTHS`` it generates the demo company (seed 42, last month 2026-10;
not timed), then times ``load_extracts`` of the last month into a new DuckDB file, and
prints wall seconds, files, rows loaded / rejected / restated, and the per-stage split of
``LoadSummary.seconds``:

- plan: folder checks, sha256 of every file, what was loaded before
- read: decode and parse the files (types, dates, numbers, date rules)
- contract: the extract suites run by Great Expectations (one run per batch of files)
- references: foreign keys, currencies, late restatements against ``raw``
- write: inserts, rejects and the ingest log
- other: scenarios and the rest

The first size also pays for importing Great Expectations (~3 s), as a real first load does.
Reference figures, 2-core machine: see docs/bad_input.md ("Speed of a first load").
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from sop_pipeline.generator.company import generate_company
from sop_pipeline.ingest.loader import load_extracts

END = "2026-10"


def bench(items: int, months: int, cache: Path | None) -> None:
    """Load a generated company of ``items`` × ``months`` and print the timings per phase."""
    work = Path(tempfile.mkdtemp(prefix="sop-bench-ingest-"))
    try:
        landing = (cache or work) / f"landing-{items}x{months}"
        if not (landing / END).is_dir():
            generate_company(landing, items=items, months=months, seed=42, end=END)
        files = sum(1 for p in landing.glob("*/*") if p.suffix in (".csv", ".parquet", ".yaml"))
        con = duckdb.connect(str(work / "sop.duckdb"))
        try:
            started = time.perf_counter()
            summary = load_extracts(con, landing, END, base_currency="USD")
            wall = time.perf_counter() - started
        finally:
            con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = sum(summary.rows_loaded.values())
    print(f"items={items} months={months}: {wall:.1f} s for {files} files")
    print(
        f"  rows loaded {rows:,}, rejected {summary.rows_rejected}, "
        f"late restatements {summary.restated_rows:,}"
    )
    stages = ("plan", "read", "contract", "references", "write", "other")
    print("  " + ", ".join(f"{s} {summary.seconds.get(s, 0.0):.1f} s" for s in stages))


def main() -> None:
    """Run :func:`bench` for each size on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300x60,5000x48", help="ITEMSxMONTHS, comma separated")
    parser.add_argument(
        "--landing-cache",
        type=Path,
        default=None,
        help="keep the generated landing folders here and reuse them on the next run",
    )
    args = parser.parse_args()
    for size in args.sizes.split(","):
        items, months = (int(x) for x in size.lower().split("x"))
        bench(items, months, args.landing_cache)


if __name__ == "__main__":
    main()
