"""Month arithmetic used everywhere (plan months are ``YYYY-MM``; ``month`` columns are DATEs)."""

from __future__ import annotations

import re
from datetime import date

_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(value: str) -> date:
    """``'2026-10'`` → ``date(2026, 10, 1)``; raises ValueError with the expected format."""
    match = _MONTH_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a month; use YYYY-MM, e.g. 2026-10.")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_start(d: date, offset: int = 0) -> date:
    """First day of the month ``offset`` months after the month of ``d``."""
    index = d.year * 12 + (d.month - 1) + offset
    return date(index // 12, index % 12 + 1, 1)


def month_key(d: date) -> str:
    """``date(2026, 10, 5)`` → ``'2026-10'``."""
    return f"{d.year:04d}-{d.month:02d}"


def month_range(first: str, last: str) -> list[str]:
    """Inclusive list of ``YYYY-MM`` keys from ``first`` to ``last``."""
    a, b = parse_month(first), parse_month(last)
    n = (b.year * 12 + b.month) - (a.year * 12 + a.month)
    return [month_key(month_start(a, i)) for i in range(n + 1)]


def months_between(a: date, b: date) -> int:
    """Whole months from the month of ``a`` to the month of ``b``."""
    return (b.year * 12 + b.month) - (a.year * 12 + a.month)


def latest_complete_month(today: date | None = None) -> str:
    """The plan month a run started today would plan: the last closed month."""
    today = today or date.today()
    return month_start(date(today.year, today.month, 1), -1).strftime("%Y-%m")
