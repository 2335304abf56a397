"""The ``sop`` console command (DESIGN §6): what a person does without the Dagster UI.

Exit codes: 0 success (for ``run``: the plan was published), 1 the run failed (bad input, a
check or a step failed; the message says what and where), 2 wrong usage or settings.

Every failure prints one line (``sop_pipeline.runtime.output``); what can be checked before a Dagster
run starts is checked first (``sop_pipeline.cli.preflight``). An error nobody anticipated prints
one line and where its traceback was written; ``SOP_DEBUG=1`` prints the traceback.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import NoReturn

from rich.markup import escape

from sop_pipeline import __version__
from sop_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    console,
    err,
    month_arg,
    settings_or_exit,
)
from sop_pipeline.cli.preflight import (
    InputError,
    UsageError,
    check_month_order,
    check_published_month,
    check_run_month,
)
from sop_pipeline.core.months import month_key, month_range, month_start, parse_month
from sop_pipeline.core.settings import Settings, SettingsError, debug_requested
from sop_pipeline.runtime.output import print_error, report_unexpected


def cmd_generate(args: argparse.Namespace) -> int:
    """``sop generate``: write the demo company's landing folders."""
    from rich.progress import Progress

    from sop_pipeline.generator.company import generate_company

    settings = settings_or_exit(create=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            progress.update(task, description=f"generating {stage}", completed=done, total=total)

        try:
            summary = generate_company(
                settings.landing_dir,
                items=args.items,
                months=args.months,
                seed=args.seed,
                end=args.end,
                progress=on_progress,
            )
        except ValueError as exc:  # an argument out of range: the message names it
            raise UsageError(str(exc)) from None
    console.print(
        f"Demo company written to [bold]{settings.landing_dir}[/]: {summary.months} month folders "
        f"{summary.first_month}..{summary.last_month}, {summary.item_count} items, "
        f"{summary.series_count} item×location series ({summary.seconds:.1f}s)."
    )
    return EXIT_OK


def _run_month(settings: Settings, month: str, *, is_backfill: bool = False) -> bool:
    from sop_pipeline.runtime.runner import run_plan_month
    from sop_pipeline.storage.runlock import RunLockTimeout

    try:
        outcome = run_plan_month(settings, month, is_backfill=is_backfill, console=console)
    except RunLockTimeout as exc:
        err.print(f"[bold red]Plan month {month} did not run:[/] {escape(str(exc))}")
        return False
    if outcome.success:
        console.print(outcome.summary)
        if outcome.log_path:
            console.print(f"  full log (dbt's output too): {outcome.log_path}")
        return True
    err.print(f"[bold red]Plan month {month} failed[/]")
    for line in outcome.errors:
        err.print(f"  - {escape(line)}")
    where = f"full log {outcome.log_path}; " if outcome.log_path else ""
    err.print(
        f"  Run id {outcome.run_id}; {escape(where)}the Dagster UI (`make dev`) shows the run."
    )
    return False


def cmd_run(args: argparse.Namespace) -> int:
    """``sop run``: plan one month with the Dagster job."""
    settings = settings_or_exit(create=args.init)
    check_run_month(settings, args.month)  # before a Dagster run starts
    return EXIT_OK if _run_month(settings, args.month) else EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    """``sop demo``: generate the demo company, plan a few earlier months, then the latest."""
    settings = settings_or_exit(create=True)
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
    """``sop backfill``: plan every month of a range, oldest first."""
    months = check_month_order(args.from_month, args.to_month)
    settings = settings_or_exit(create=args.init)
    for month in (months[0], months[-1]):  # the whole range is plannable: both ends are
        check_run_month(settings, month)
    for month in months:
        console.print(f"[bold]{month}[/] ({months.index(month) + 1}/{len(months)})")
        if not _run_month(settings, month, is_backfill=True):
            return EXIT_FAILED
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """``sop report``: write the executive pack of a published month again."""
    settings = settings_or_exit()
    check_published_month(settings, args.month)
    from sop_pipeline.report.pack import ReportError, write_pack_from_published

    try:
        path = write_pack_from_published(settings, args.month)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    console.print(f"Executive pack for {args.month}: {path}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """``sop status``: print the landing, loaded and published months of SOP_HOME."""
    from sop_pipeline.runtime.runner import status_lines

    settings = settings_or_exit(create=args.init)
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
        raise UsageError(f"No month folders in {settings.landing_dir}; run `sop generate` first.")
    return months[-1]


#: the end of every ``--help``: where things go and what the exit code means
HELP_EPILOG = """\
SOP_HOME (default ./.sop; settings: .env.example, read from ./.env too) holds landing/,
warehouse/sop.duckdb, published/ (what BI reads), reports/YYYY-MM/ and dagster/ (run history
and logs). Only `sop generate` and `sop demo` (or --init) create SOP_HOME.
exit codes: 0 done (run: the plan was published), 1 the run failed (the message says what and
where), 2 wrong usage or settings. SOP_DEBUG=1 prints the traceback of an unexpected error."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error: what is wrong and where the help is (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print_error(err, f"{self.prog}: {message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_USAGE)


def _verb(
    sub: argparse._SubParsersAction, name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    """A verb's parser: one-line ``summary`` in ``sop --help``, ``description`` + epilog in its own."""
    # wrapped here (the raw formatter keeps the epilog's and the paragraphs' line breaks)
    wrapped = "\n".join(textwrap.fill(part, 92) for part in description.split("\n"))
    return sub.add_parser(
        name,
        help=summary,
        description=wrapped,
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _init_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--init",
        action="store_true",
        help="create SOP_HOME if it does not exist (without it a missing SOP_HOME is an error)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``sop`` argument parser with every verb and its options."""
    parser = _Parser(
        prog="sop",
        description=textwrap.fill(
            "Sales & Operations Planning pipeline: plan a month from the landing folder's "
            "extracts through publication and the executive pack. First hour: `sop demo`.",
            92,
        ),
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def gen_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--items", type=int, default=300, metavar="N", help="number of items (default 300)"
        )
        p.add_argument(
            "--months", type=int, default=60, metavar="M", help="months of history (default 60)"
        )
        p.add_argument("--seed", type=int, default=42, metavar="S", help="random seed (default 42)")
        p.add_argument(
            "--end",
            type=month_arg,
            default=None,
            metavar="YYYY-MM",
            help="last month YYYY-MM (default: last closed month)",
        )

    p = _verb(
        sub,
        "generate",
        "write the demo company's extracts into $SOP_HOME/landing/",
        "Write a synthetic company's monthly ERP/CRM extracts into $SOP_HOME/landing/YYYY-MM/ "
        "(creates SOP_HOME). Then plan a month with `sop run --month YYYY-MM`.",
    )
    gen_args(p)
    p.set_defaults(func=cmd_generate)
    p = _verb(
        sub,
        "run",
        "plan one month end to end through publication",
        "Plan one month end to end (ingest, dbt, forecast, supply, finance, scenarios, gate, "
        "publish, pack) with the same Dagster job the UI runs. The month must have a landing "
        "folder (landing/YYYY-MM/ at or before it) and be a plan-month partition "
        "(SOP_PARTITION_START .. last closed month).\nResults: $SOP_HOME/published/sop.duckdb "
        "and published/parquet/ (BI), the pack in $SOP_HOME/reports/YYYY-MM/index.html, the full "
        "log (dbt's too) in $SOP_HOME/dagster/logs/sop_run_YYYY-MM.log.",
    )
    p.add_argument("--month", type=month_arg, required=True, metavar="YYYY-MM", help="plan month")
    _init_arg(p)
    p.set_defaults(func=cmd_run)
    p = _verb(
        sub,
        "demo",
        "generate the demo company, then plan its latest month",
        "Generate the demo company (as `sop generate`, creates SOP_HOME), plan a few earlier "
        "months as warm-up (so forecast accuracy has history), then the latest month. Prints "
        "where the published tables, the pack and the Dagster UI are.",
    )
    gen_args(p)
    p.add_argument(
        "--warmup",
        type=int,
        default=5,
        metavar="N",
        # five: the latest plan then scores earlier plans' forecasts at lag 1 over 5 months,
        # lag 2 over 4 and lag 3 over 3 (three warm-up months left lag 3 resting on one)
        help="earlier months planned first, for forecast accuracy at lags 1-3 (default 5)",
    )
    p.set_defaults(func=cmd_demo)
    p = _verb(
        sub,
        "backfill",
        "plan past months point in time, in month order",
        "Plan each month from --from to --to in order, point in time (each month sees only the "
        "extracts of that month and earlier). Published versions are marked is_backfill.",
    )
    p.add_argument(
        "--from",
        dest="from_month",
        type=month_arg,
        required=True,
        metavar="YYYY-MM",
        help="first plan month",
    )
    p.add_argument(
        "--to",
        dest="to_month",
        type=month_arg,
        required=True,
        metavar="YYYY-MM",
        help="last plan month",
    )
    _init_arg(p)
    p.set_defaults(func=cmd_backfill)
    p = _verb(
        sub,
        "report",
        "write the executive S&OP pack of a month",
        "Write the executive pack of the latest published version of a month to "
        "$SOP_HOME/reports/YYYY-MM/index.html (one offline HTML file). The month must be "
        "published (`sop status` lists them).",
    )
    p.add_argument(
        "--month", type=month_arg, required=True, metavar="YYYY-MM", help="published plan month"
    )
    p.set_defaults(func=cmd_report)
    p = _verb(
        sub,
        "status",
        "what is loaded, planned and published",
        "Show SOP_HOME's landing months, loaded extract months, rejected rows and published plan "
        "versions. Reads only; a missing SOP_HOME is an error unless --init.",
    )
    _init_arg(p)
    p.set_defaults(func=cmd_status)
    from sop_pipeline.cli.cycle import add_cycle_commands  # approve/reject/export (#14)

    add_cycle_commands(sub)

    from sop_pipeline.cli.explain import add_parser as add_explain

    add_explain(sub, month_arg)
    return parser


def _log_dir() -> Path | None:
    """Where an unexpected error's traceback goes: ``$DAGSTER_HOME/logs`` of an existing home."""
    try:
        settings = Settings.from_env()
    except SettingsError:
        return None
    return settings.dagster_home / "logs" if settings.sop_home.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    """Run the ``sop`` command line on ``argv``; the exit code."""
    # Dagster flags some of the APIs we use as beta; that is for developers, not for this output
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, SettingsError) as exc:
        print_error(
            err, str(exc), label="Settings error" if isinstance(exc, SettingsError) else "Error"
        )
        return EXIT_USAGE
    except InputError as exc:
        month = getattr(args, "month", None) or getattr(args, "to_month", "")
        print_error(err, str(exc), label=f"Plan month {month} cannot run".replace("  ", " "))
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.print("Interrupted.")
        return EXIT_FAILED
    except Exception as exc:  # the one place an unanticipated error becomes one line
        report_unexpected(
            err, exc, command=f"sop {args.command}", log_dir=_log_dir(), debug=debug_requested()
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
