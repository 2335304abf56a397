"""Checks a command makes before it starts anything: SOP_HOME, the plan month, the landing folder.

A Dagster run that fails at its first step marks every asset red in the UI and prints a dozen
lines before the useful one. What can be known before a run starts (is SOP_HOME a folder,
is the month a partition, is there a landing folder for it, is the month published) is
checked here, with one sentence that says what is wrong and what to do. The CLI turns
:class:`UsageError` into exit code 2; every ``sop`` verb (and the verbs other modules add)
can call these functions.

No Dagster import at module level: ``sop status`` and the error paths stay fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sop_pipeline.core.months import month_range
from sop_pipeline.core.settings import Settings
from sop_pipeline.errors import InvalidInputError

_MONTH_DIR_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class UsageError(InvalidInputError):
    """A command cannot be carried out as typed; the message says what to do (exit code 2)."""


class InputError(InvalidInputError):
    """The landing folder cannot be planned as it is (exit code 1, as a failed ingest)."""


def require_home(settings: Settings, *, create: bool = False) -> None:
    """Make sure ``SOP_HOME`` is a folder; create it only when the command may.

    Read-only verbs (``status``, ``report``, ``run``) never create a mistyped ``SOP_HOME``;
    ``generate`` and ``demo`` (or ``--init``) do.

    Args:
        settings: the command's settings.
        create: create a missing SOP_HOME (and its sub-folders) instead of refusing.

    Raises:
        UsageError: SOP_HOME is a file, or does not exist and ``create`` is False.
    """
    home = settings.sop_home
    if home.exists() and not home.is_dir():
        raise UsageError(
            f"SOP_HOME={home} is a file, not a folder; point SOP_HOME at the folder that holds "
            "(or will hold) landing/, warehouse/ and published/."
        )
    if not home.exists():
        if not create:
            raise UsageError(
                f"SOP_HOME={home} does not exist; check SOP_HOME for a typo, or create it with "
                "`sop generate` / `sop demo` (demo data) or `--init` (an empty home for your "
                "own extracts)."
            )
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"SOP_HOME={home} cannot be created ({exc.strerror or exc}); pick a folder "
                "you can write to."
            ) from None
    # Parents that are files (SOP_HOME=/etc/passwd/x) fail in mkdir above; a home that exists
    # gets its sub-folders, as before, so every verb finds them.


def landing_months(settings: Settings) -> list[str]:
    """The ``YYYY-MM`` month folders of ``$SOP_HOME/landing`` (sorted; other names ignored)."""
    landing = settings.landing_dir
    if not landing.is_dir():
        return []
    return sorted(p.name for p in landing.iterdir() if p.is_dir() and _MONTH_DIR_RE.match(p.name))


@dataclass(frozen=True)
class PlannableMonths:
    """Which plan months a run can plan: partitions ∩ landing folders."""

    partition_first: str
    partition_last: str
    landing_first: str | None
    landing_last: str | None

    @property
    def first(self) -> str | None:
        """The first plannable month, or None without landing folders."""
        if self.landing_first is None:
            return None
        return max(self.partition_first, self.landing_first)

    @property
    def last(self) -> str | None:
        """The last plannable month, or None without landing folders."""
        if self.landing_last is None:
            return None
        return min(self.partition_last, self.landing_last)

    def describe(self) -> str:
        """Which months can be planned, and what limits each end."""
        text = (
            f"plan months run from {self.partition_first} (SOP_PARTITION_START) to "
            f"{self.partition_last} (the last closed month)"
        )
        if self.landing_first is None:
            return text + " and the landing folder holds no month folder yet"
        text += f" and landing/ holds {self.landing_first}..{self.landing_last}"
        if self.first and self.last and self.first <= self.last:
            return f"{text}, so {self.first}..{self.last} can be planned"
        return f"{text}, so no month can be planned yet"


def plannable_months(settings: Settings) -> PlannableMonths:
    """The partition window (``SOP_PARTITION_START`` .. last closed month) and the landing months."""
    from sop_pipeline.defs.partitions import plan_month_partitions

    months = landing_months(settings)
    # the partitions start at a fixed month (defs/partitions.py); the run's setting is the limit
    first = settings.partition_start
    last = plan_month_partitions.get_last_partition_key()
    return PlannableMonths(
        partition_first=first,
        partition_last=last or first,
        landing_first=months[0] if months else None,
        landing_last=months[-1] if months else None,
    )


def check_run_month(settings: Settings, month: str) -> None:
    """Refuse a plan month that cannot be planned, before a Dagster run starts.

    Checks that the landing folder exists, that ``month`` is a partition of ``sop_monthly``
    and that a landing month folder exists at or before it; then the landing folder's
    structure as the ingest step would (month folder names, gaps, required extracts), so a
    missing file is reported without a failed run in the Dagster history.

    Args:
        settings: the run's settings.
        month: plan month ``YYYY-MM`` (already parsed).

    Raises:
        UsageError: the month cannot be planned; the message lists the months that can.
        InputError: the landing folder is incomplete (file and fix named); a failed run
            (exit code 1), not a usage error.
    """
    landing = settings.landing_dir
    if not landing.is_dir():
        raise UsageError(
            f"plan month {month} cannot be planned: {landing} does not exist; write the demo "
            "company's extracts with `sop generate`, or put your extracts in landing/YYYY-MM/ "
            "folders (or point SOP_HOME at the folder that holds landing/)."
        )
    window = plannable_months(settings)
    first, last = window.first, window.last
    if window.landing_first is None:
        raise UsageError(
            f"plan month {month} cannot be planned: {landing} holds no month folder (YYYY-MM); "
            "write the demo company's extracts with `sop generate`, or add landing/YYYY-MM/ "
            "folders with the month's extracts."
        )
    if month < window.partition_first or month > window.partition_last:
        where = "before the first" if month < window.partition_first else "after the last"
        raise UsageError(
            f"plan month {month} is {where} plan month: {window.describe()}. "
            + _suggest(first, last)
        )
    if month < window.landing_first:
        raise UsageError(
            f"plan month {month} has no landing folder at or before it: {window.describe()}. "
            + _suggest(first, last)
        )
    if month > window.landing_last:
        raise UsageError(
            f"plan month {month} is after the last landing month: {window.describe()}. Add "
            f"landing/{month}/ with that month's extracts, or " + _suggest(first, last, lower=True)
        )
    from sop_pipeline.ingest.landing import check_landing
    from sop_pipeline.ingest.problems import IngestError

    try:
        check_landing(landing, month)
    except IngestError as exc:
        raise InputError(str(exc)) from None


def _suggest(first: str | None, last: str | None, *, lower: bool = False) -> str:
    if first and last and first <= last:
        text = f"pick a month from {first} to {last}, e.g. `sop run --month {last}`."
    else:
        text = "set SOP_PARTITION_START or add landing folders so that the two overlap."
    return text if lower else text[0].upper() + text[1:]


def check_month_order(
    first: str, last: str, *, first_flag: str = "--from", last_flag: str = "--to"
) -> list[str]:
    """The months from ``first`` to ``last``; refuse an empty range.

    Raises:
        UsageError: ``first`` is after ``last``.
    """
    if first > last:
        raise UsageError(
            f"{first_flag} {first} is after {last_flag} {last}: the range holds no month; "
            f"swap them (`{first_flag} {last} {last_flag} {first}`)."
        )
    return month_range(first, last)


def published_months(settings: Settings) -> list[str]:
    """Plan months with a published version (empty when nothing is published)."""
    import duckdb

    db = settings.published_dir / "sop.duckdb"
    if not db.is_file():
        return []
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return []
    try:
        rows = con.execute("select distinct plan_month from plan_versions order by 1").fetchall()
    except duckdb.Error:
        return []
    finally:
        con.close()
    return [str(r[0]) for r in rows]


def check_published_month(settings: Settings, month: str) -> None:
    """Refuse a report of a month that is not published, listing what is.

    Raises:
        UsageError: nothing is published, or ``month`` is not.
    """
    months = published_months(settings)
    if not months:
        raise UsageError(
            f"nothing is published in {settings.published_dir} yet; plan a month first with "
            f"`sop run --month {month}` (or `sop demo`), then `sop report --month {month}`."
        )
    if month not in months:
        shown = ", ".join(months[-6:]) + (
            f" (and {len(months) - 6} earlier)" if len(months) > 6 else ""
        )
        raise UsageError(
            f"plan month {month} is not published; published months: {shown}. Plan it with "
            f"`sop run --month {month}`, or report one of those."
        )
