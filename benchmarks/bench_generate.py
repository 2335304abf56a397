"""Time the demo company generator at benchmark size.

Usage::

    .venv/bin/python benchmarks/bench_generate.py [--items 5000] [--months 48] [--keep DIR]

Prints wall seconds, item × location series, rows per extract and megabytes written.
The target (DESIGN §4 size knob): about 10,000 series × 48 months in well under a minute
on a 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from sop_pipeline.generator.company import generate_company


def main() -> None:
    """Time the generator for the size on the command line and print the rows per extract."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", default="2026-10", help="last month (fixed so runs compare)")
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep the files")
    args = parser.parse_args()

    target = args.keep or Path(tempfile.mkdtemp(prefix="sop-bench-"))
    try:
        started = time.perf_counter()
        summary = generate_company(
            target / "landing", items=args.items, months=args.months, seed=args.seed, end=args.end
        )
        wall = time.perf_counter() - started
    finally:
        if args.keep is None:
            shutil.rmtree(target, ignore_errors=True)

    total_rows = sum(summary.rows.values())
    print(
        f"items={summary.item_count} months={summary.months} ({summary.first_month}..{summary.last_month})"
    )
    print(f"series (item x location with sales): {summary.series_count}")
    print(f"seconds: {wall:.1f}")
    print(f"rows: {total_rows:,} in total")
    for name, rows in sorted(summary.rows.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<18} {rows:>12,}")
    print(f"MB written: {summary.bytes_written / 1e6:.1f}")


if __name__ == "__main__":
    main()
