"""The ``sop`` console command (DESIGN §6): what a person does without the Dagster UI.

Exit codes: 0 success (for ``run``: the plan was published), 1 the run failed (bad input, a
check or a step failed; the message says what and where), 2 wrong usage or settings.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from rich.console import Console
from rich.markup import escape

from sop_pipeline.months import month_key, month_range, month_start, parse_month
from sop_pipeline.runner import write_dagster_yaml
from sop_pipeline.settings import Settings, SettingsError

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _settings() -> Settings:
    settings = Settings.from_env()
    settings.ensure_dirs()
    # Dagster keeps run history under SOP_HOME so `dagster dev` sees the CLI's runs
    write_dagster_yaml(settings.dagster_home)
    return settings


def _month_arg(value: str) -> str:
    try:
        parse_month(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def cmd_generate(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from sop_pipeline.generator.company import generate_company

    settings = _settings()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            progress.update(task, description=f"generating {stage}", completed=done, total=total)

        summary = generate_company(
            settings.landing_dir,
            items=args.items,
            months=args.months,
            seed=args.seed,
            end=args.end,
            progress=on_progress,
        )
    console.print(
        f"Demo company written to [bold]{settings.landing_dir}[/]: {summary.months} month folders "
        f"{summary.first_month}..{summary.last_month}, {summary.item_count} items, "
        f"{summary.series_count} item×location series ({summary.seconds:.1f}s)."
    )
    return EXIT_OK


def _run_month(settings: Settings, month: str, *, is_backfill: bool = False) -> bool:
    from sop_pipeline.runlock import RunLockTimeout
    from sop_pipeline.runner import run_plan_month

    try:
        outcome = run_plan_month(settings, month, is_backfill=is_backfill, console=console)
    except RunLockTimeout as exc:
        err.print(f"[bold red]Plan month {month} did not run:[/] {escape(str(exc))}")
        return False
    if outcome.success:
        console.print(outcome.summary)
        return True
    err.print(f"[bold red]Plan month {month} failed[/]")
    for line in outcome.errors:
        err.print(f"  - {escape(line)}")
    err.print(f"  Run id {outcome.run_id}; open the Dagster UI (`make dev`) for the full log.")
    return False


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    return EXIT_OK if _run_month(settings, args.month) else EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings()
    start = time.monotonic()
    code = cmd_generate(args)
    if code != EXIT_OK:
        return code
    month = _latest_landing_month(settings)
    # A few earlier months first (point in time, as a backfill would), so the latest plan can
    # already score earlier plans' forecasts: forecast accuracy and FVA are not empty.
    earlier = month_range(month_key(month_start(parse_month(month), -args.warmup)), month)[:-1]
    for done, past in enumerate(earlier, start=1):
        console.print(f"Planning earlier month [bold]{past}[/] ({done}/{len(earlier)} warm-up) ...")
        if not _run_month(settings, past, is_backfill=True):
            return EXIT_FAILED
    console.print(f"Planning the latest complete month, [bold]{month}[/] ...")
    ok = _run_month(settings, month)
    console.print(
        f"Demo finished in {time.monotonic() - start:.0f}s. Results under [bold]{settings.sop_home}[/]:"
    )
    console.print(f"  working database  {settings.warehouse_path}")
    if settings.warehouse == "postgres":
        console.print(f"  marts             PostgreSQL {settings.postgres_label}")
    console.print(f"  published (BI)    {settings.published_dir}")
    pack = settings.reports_dir / month / "index.html"
    console.print(f"  executive pack    {pack if pack.exists() else settings.reports_dir}")
    console.print("  Dagster UI        make dev  (dagster dev -w workspace.yaml)")
    return EXIT_OK if ok else EXIT_FAILED


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = _settings()
    months = month_range(args.from_month, args.to_month)
    for month in months:
        console.print(f"[bold]{month}[/] ({months.index(month) + 1}/{len(months)})")
        if not _run_month(settings, month, is_backfill=True):
            return EXIT_FAILED
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    settings = _settings()
    from sop_pipeline.report.pack import write_pack_from_published

    path = write_pack_from_published(settings, args.month)
    console.print(f"Executive pack for {args.month}: {path}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from sop_pipeline.runner import status_lines

    settings = _settings()
    for line in status_lines(settings):
        console.print(line)
    return EXIT_OK


def _latest_landing_month(settings: Settings) -> str:
    months = sorted(
        p.name
        for p in settings.landing_dir.iterdir()
        if p.is_dir() and len(p.name) == 7 and p.name[4] == "-"
    )
    if not months:
        raise SystemExit(f"No month folders in {settings.landing_dir}; run `sop generate` first.")
    return months[-1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sop", description="Sales & Operations Planning pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    def gen_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--items", type=int, default=300, help="number of items (default 300)")
        p.add_argument("--months", type=int, default=60, help="months of history (default 60)")
        p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        p.add_argument(
            "--end",
            type=_month_arg,
            default=None,
            help="last month YYYY-MM (default: last closed month)",
        )

    p = sub.add_parser("generate", help="write the demo company's extracts into $SOP_HOME/landing/")
    gen_args(p)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("run", help="plan one month end to end through publication")
    p.add_argument("--month", type=_month_arg, required=True)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("demo", help="generate the demo company, then plan its latest month")
    gen_args(p)
    p.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="earlier months planned first, for forecast accuracy (default 2)",
    )
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("backfill", help="plan past months point in time, in month order")
    p.add_argument("--from", dest="from_month", type=_month_arg, required=True)
    p.add_argument("--to", dest="to_month", type=_month_arg, required=True)
    p.set_defaults(func=cmd_backfill)
    p = sub.add_parser("report", help="write the executive S&OP pack of a month")
    p.add_argument("--month", type=_month_arg, required=True)
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("status", help="what is loaded, planned and published")
    p.set_defaults(func=cmd_status)
    from sop_pipeline.cli_explain import add_parser as add_explain

    add_explain(sub, _month_arg)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster flags some of the APIs we use as beta; that is for developers, not for this output
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        err.print(f"[bold red]Settings error:[/] {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("Interrupted.")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
