"""How the pack writes numbers, months and money (also the Jinja filters of its templates).

Plain functions of a value → display text; no HTML. ``exact`` gives the ``data-value``
attribute of a key figure: the number before rounding, so a script can check the pack
against the published tables.
"""

from __future__ import annotations

import math

import pandas as pd

from sop_pipeline.core.months import month_key


def isnum(value: object) -> bool:
    """Whether ``value`` is a finite number (None, NaN, text and ±inf are not)."""
    try:
        return value is not None and not pd.isna(value) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt_money(value: float, currency: str = "") -> str:
    """``54645802.1`` → ``'54.65 M'`` (with the currency code first when given)."""
    if not isnum(value):
        return "–"
    v = float(value)
    a = abs(v)
    if a >= 1e9:
        text = f"{v / 1e9:,.2f} B"
    elif a >= 1e6:
        text = f"{v / 1e6:,.2f} M"
    elif a >= 1e4:
        text = f"{v / 1e3:,.1f} k"
    else:
        text = f"{v:,.0f}"
    return f"{currency} {text}".strip()


def fmt_qty(value: float) -> str:
    """Units with thousands separators."""
    return f"{float(value):,.0f}" if isnum(value) else "–"


def fmt_pct(value: float, digits: int = 1) -> str:
    """A ratio as a percentage: ``0.4216`` → ``'42.2%'``."""
    return f"{float(value) * 100:.{digits}f}%" if isnum(value) else "–"


def fmt_kpi(value: float, unit: str | None) -> str:
    """A KPI value in its unit (ratios and shares as %, turns as ``7.66×``)."""
    if not isnum(value):
        return "–"
    if unit and "turn" in str(unit):
        return f"{float(value):.2f}×"
    return fmt_pct(value)


def fmt_signed_money(value: float, currency: str = "") -> str:
    """Money with a ``+`` before a gain (``fmt_money`` writes the ``-``)."""
    return ("+" if isnum(value) and float(value) >= 0 else "") + fmt_money(value, currency)


def fmt_pp(value: float) -> str:
    """A difference of two ratios in percentage points: ``0.031`` → ``'+3.1 pp'``."""
    if not isnum(value):
        return "–"
    return f"{'+' if float(value) > 0 else ''}{float(value) * 100:.1f} pp"


def exact(value: object) -> str | None:
    """The ``data-value`` text of a key figure (``repr`` of the float), None when not a number."""
    return f"{float(value)!r}" if isnum(value) else None


def is_date(value: object) -> bool:
    """Whether ``value`` is a date (not None / NaT)."""
    return value is not None and not pd.isna(value)


def mkey(value: object) -> str:
    """A month as ``YYYY-MM`` (``–`` when missing)."""
    return month_key(pd.Timestamp(value).date()) if is_date(value) else "–"


#: the filters the templates use (``{{ x | money }}``)
FILTERS = {
    "money": fmt_money,
    "qty": fmt_qty,
    "pct": fmt_pct,
    "kpi": fmt_kpi,
    "signed_money": fmt_signed_money,
    "pp": fmt_pp,
    "mkey": mkey,
}
