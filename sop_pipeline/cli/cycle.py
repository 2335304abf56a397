"""``sop approve / reject / export / import-overrides``: the S&OP cycle after a run (issue #14).

Registered on the ``sop`` parser by :func:`add_cycle_commands`. Every failure prints one
line and exits 2 (unknown month / version / scenario, bad arguments) or 1 (refused or failed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from sop_pipeline.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    console,
    err,
    month_arg,
    settings_or_exit,
)


def _fail(message: str, code: int) -> int:
    err.print(f"[bold red]Error:[/] {escape(message)}", soft_wrap=True)
    return code


def _decide(args: argparse.Namespace, decision: str) -> int:
    from sop_pipeline.publish.approval import approve_plan, reject_plan
    from sop_pipeline.publish.decision_log import ApprovalError
    from sop_pipeline.publish.published_file import PublishError
    from sop_pipeline.storage.runlock import RunLockTimeout

    settings = settings_or_exit()

    def waiting(message: str) -> None:
        console.print(escape(message))

    try:
        if decision == "approved":
            result = approve_plan(
                settings,
                args.month,
                version=args.version,
                by=args.by,
                scenario=args.scenario,
                note=args.note,
                on_wait=waiting,
            )
        else:
            result = reject_plan(
                settings,
                args.month,
                version=args.version,
                by=args.by,
                note=args.note,
                on_wait=waiting,
            )
    except ApprovalError as exc:
        return _fail(str(exc), exc.exit_code)
    except (RunLockTimeout, PublishError) as exc:
        return _fail(str(exc), EXIT_FAILED)
    what = "approved" if decision == "approved" else "rejected"
    line = (
        f"Plan {result.plan_month} v{result.plan_version} {what} by {escape(result.decided_by)} "
        f"at {result.decided_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    if result.superseded_version is not None:
        line += f"; v{result.superseded_version} is superseded"
    console.print(line + ".", soft_wrap=True)
    if decision == "approved":
        console.print(f"  BI: the <table>_approved views of {result.path} now show this version.")
    _refresh_packs(settings, result.plan_month, result.plan_version)
    return EXIT_OK


def _refresh_packs(settings, month: str, version: int) -> None:
    """Rewrite the packs whose status section the decision changed (best effort)."""
    from sop_pipeline.report.pack import write_pack_from_published

    try:
        path = write_pack_from_published(settings, month, version)
        latest = write_pack_from_published(settings, month)
    except Exception as exc:  # the decision is recorded; the pack is a view of it
        console.print(
            f"  note: the executive pack was not rewritten ({escape(str(exc).splitlines()[0])}); "
            f"run `sop report --month {month}`."
        )
        return
    shown = path if latest == path else f"{path} and {latest}"
    console.print(f"  Executive pack with the new status: {shown}")


def cmd_approve(args: argparse.Namespace) -> int:
    """``sop approve``: approve a published plan version."""
    return _decide(args, "approved")


def cmd_reject(args: argparse.Namespace) -> int:
    """``sop reject``: reject a published plan version, with a note saying why."""
    return _decide(args, "rejected")


def cmd_export(args: argparse.Namespace) -> int:
    """``sop export``: write the planner's workbook of a published month."""
    from sop_pipeline.publish.published_file import PublishError
    from sop_pipeline.report.workbook import WorkbookError, export_workbook

    settings = settings_or_exit()
    try:
        path = export_workbook(settings, args.month, version=args.version)
    except WorkbookError as exc:
        return _fail(str(exc), exc.exit_code)
    except PublishError as exc:
        return _fail(str(exc), EXIT_USAGE)
    console.print(f"Planner's workbook for {args.month}: {path}", soft_wrap=True)
    console.print(
        "  Fill the adjustment column of the Overrides sheet, then "
        f"`sop import-overrides {path.name} --month {args.month}` (or save it as "
        f"landing/{args.month}/demand_overrides.xlsx) and re-plan: "
        f"`sop run --month {args.month}`.",
        soft_wrap=True,
    )
    return EXIT_OK


def cmd_import_overrides(args: argparse.Namespace) -> int:
    """``sop import-overrides``: the workbook's Overrides sheet into ``--month``'s landing folder."""
    from sop_pipeline.ingest.override_import import WorkbookReadError, import_overrides

    settings = settings_or_exit()
    try:
        result = import_overrides(settings, Path(args.file), args.month)
    except WorkbookReadError as exc:
        err.print(f"[bold red]{escape(str(exc.headline))}[/]", soft_wrap=True)
        for line in exc.lines:
            err.print(f"  - {escape(line)}", soft_wrap=True)
        return exc.exit_code
    for note in result.notes:
        console.print(f"  note: {escape(note)}")
    console.print(
        f"{result.rows} override(s) from {escape(str(args.file))} written to {result.path}; "
        f"`sop run --month {args.month}` re-plans with them.",
        soft_wrap=True,
    )
    return EXIT_OK


def add_cycle_commands(sub: argparse._SubParsersAction) -> None:
    """Add approve / reject / export / import-overrides to the ``sop`` sub-commands."""
    p = sub.add_parser("approve", help="approve a published plan version (executive S&OP)")
    p.add_argument("--month", type=month_arg, required=True)
    p.add_argument("--version", type=int, default=None, help="default: the latest published")
    p.add_argument("--by", required=True, help="who approves")
    p.add_argument("--scenario", default=None, help="the what-if scenario chosen (recorded)")
    p.add_argument("--note", default=None, help="the decision note")
    p.set_defaults(func=cmd_approve)
    p = sub.add_parser("reject", help="reject a published candidate plan version")
    p.add_argument("--month", type=month_arg, required=True)
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--by", required=True, help="who rejects")
    p.add_argument("--note", required=True, help="why (required)")
    p.set_defaults(func=cmd_reject)
    p = sub.add_parser("export", help="write the planner's Excel workbook of a published plan")
    p.add_argument("--month", type=month_arg, required=True)
    p.add_argument("--version", type=int, default=None, help="default: the latest published")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser(
        "import-overrides", help="check a filled workbook and write the month's overrides"
    )
    p.add_argument("file", help="the workbook (its Overrides sheet is read)")
    p.add_argument("--month", type=month_arg, required=True, help="landing month to write to")
    p.set_defaults(func=cmd_import_overrides)
