"""The pack reads right at a glance: each chart says what its numbers say.

Fast checks on the generated HTML and on the figure data plotly is given (no browser):
the plan-change waterfall shows a small change on its own scale, the inventory section counts
the series below safety stock and lists the items at risk, thousands of low-priority
exceptions do not bury the ones that need action, and the capacity decision says what is
short and by how much.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from sop_pipeline.report.figures_review import waterfall_axis_range
from sop_pipeline.report.pack import (
    TOP_EXCEPTIONS,
    TOP_LOW_EXCEPTIONS,
    PackData,
    build_pack,
    capacity_shortfall_text,
    decision_options,
)

MONTH = "2026-10"
HORIZON = pd.date_range("2026-11-01", periods=4, freq="MS")


def pack_data(**tables: pd.DataFrame) -> PackData:
    kwargs = {k: tables.pop(k) for k in ("exceptions", "waterfall") if k in tables}
    return PackData(
        plan_month=MONTH,
        plan_version=1,
        tables=tables,
        version_row={"plan_month": MONTH, "plan_version": 1},
        versions=pd.DataFrame({"plan_month": [MONTH], "plan_version": [1]}),
        **kwargs,
    )


def value(html: str, key: str) -> float:
    """The ``data-value`` of the figure ``key`` (what the reader sees as a number)."""
    match = re.search(rf'data-key="{re.escape(key)}" data-value="([^"]+)"', html)
    assert match, f"no figure {key}"
    return float(match.group(1))


def section(html: str, sid: str) -> str:
    match = re.search(rf"<section class='block' id='{sid}'>(.*?)</section>", html, re.S)
    assert match, f"no section {sid}"
    return match.group(1)


def plotly_figure(html: str, div_id: str) -> tuple[list[dict], dict]:
    """The data and layout plotly draws in ``div_id`` (parsed from the newPlot call)."""
    start = html.index(f'Plotly.newPlot(                        "{div_id}"')
    decoder = json.JSONDecoder()
    pos = html.index("[", start)
    data, end = decoder.raw_decode(html, pos)
    pos = html.index("{", end)
    layout, _ = decoder.raw_decode(html, pos)
    return data, layout


def array(values: list | dict) -> list[float]:
    """A plotly data array as a list (plotly writes numeric arrays as typed base64 data)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


# --------------------------------------------------------------------------------------
# waterfall
# --------------------------------------------------------------------------------------


def waterfall_rows(start: float, changes: dict[str, float]) -> pd.DataFrame:
    comps = ["start", *changes, "end"]
    qty = [start, *changes.values(), start + sum(changes.values())]
    return pd.DataFrame(
        {
            "family": ["(all)"] * len(comps),
            "component": comps,
            "qty": qty,
            "revenue": [q * 10 for q in qty],
            "sort_order": range(len(comps)),
        }
    )


def test_a_small_change_on_a_large_plan_gets_its_own_scale():
    wf = waterfall_rows(690_000.0, {"new_actuals": -7_700.0, "override_change": 1_200.0})
    html = build_pack(pack_data(waterfall=wf))
    data, layout = plotly_figure(html, "fig-waterfall")
    low, high = layout["yaxis"]["range"]
    levels = [690_000.0, 682_300.0, 683_500.0]
    span = max(levels) - min(levels)
    # the axis starts near the levels, not at 0: the -7.7k change fills a good part of it
    assert 600_000 < low < min(levels) and max(levels) < high < 700_000
    assert span / (high - low) > 0.5
    assert layout["yaxis2"]["range"][0] > 0  # revenue too
    assert next(t["measure"] for t in data) == ["absolute", "relative", "relative", "total"]
    assert "axis does not start at 0" in section(html, "waterfall")


def test_a_large_change_keeps_the_axis_from_zero():
    wf = waterfall_rows(1_000.0, {"new_actuals": 600.0})
    html = build_pack(pack_data(waterfall=wf))
    _data, layout = plotly_figure(html, "fig-waterfall")
    assert "range" not in layout.get("yaxis", {})
    assert "axis does not start at 0" not in section(html, "waterfall")


@pytest.mark.parametrize(
    ("values", "measures", "expected"),
    [
        ([100.0, -1.0, 99.0], ["absolute", "relative", "total"], (99.0, 100.0)),
        ([100.0, 50.0, 150.0], ["absolute", "relative", "total"], None),  # big change
        ([10.0, -30.0, -20.0], ["absolute", "relative", "total"], None),  # crosses 0
        ([-500.0, -5.0, -505.0], ["absolute", "relative", "total"], (-505.0, -500.0)),
        ([], [], None),
    ],
)
def test_waterfall_axis_range(values, measures, expected):
    axis = waterfall_axis_range(values, measures)
    if expected is None:
        assert axis is None
    else:
        lo, hi = expected
        assert axis is not None and axis[0] <= lo and axis[1] >= hi
        # zoomed: the range is a few times the changes' span, not the level
        assert axis[1] - axis[0] < 0.1 * max(abs(v) for v in values)


# --------------------------------------------------------------------------------------
# inventory
# --------------------------------------------------------------------------------------


def inventory_where_the_sum_hides_the_deficits() -> pd.DataFrame:
    """One big item far above safety stock, nine small ones below it in some months."""
    rows = []
    for i in range(10):
        item = f"I-{i}"
        for k, month in enumerate(HORIZON):
            if i == 0:
                closing, ss = 10_000.0, 100.0
            else:
                closing, ss = (20.0 if k >= i % 3 else 80.0), 50.0
            shortage = 5.0 * i if (i == 9 and k == 3) else 0.0
            rows.append((item, "DC1", "pumps", month, closing, ss, shortage))
    return pd.DataFrame(
        rows,
        columns=[
            "item_id",
            "location_id",
            "family",
            "month",
            "closing_qty",
            "safety_stock_qty",
            "shortage_qty",
        ],
    )


def test_inventory_counts_the_series_below_safety_stock_and_lists_items_at_risk():
    inv = inventory_where_the_sum_hides_the_deficits()
    html = build_pack(pack_data(plan_inventory=inv))
    body = section(html, "inventory")
    # the sum of all items sits far above safety stock every month...
    sums = inv.groupby("month")[["closing_qty", "safety_stock_qty"]].sum()
    assert (sums["closing_qty"] > sums["safety_stock_qty"]).all()
    # ...yet 9 of 10 series are below it: the chart and the sentence say so
    assert value(body, "series_below_safety_stock") == 9
    assert "(90%) fall below safety stock" in body
    data, _layout = plotly_figure(html, "fig-inventory")
    counts = next(t for t in data if t["name"] == "series below safety stock" and t.get("visible"))
    expected = (inv["closing_qty"] < inv["safety_stock_qty"]).groupby(inv["month"]).sum()
    assert array(counts["y"]) == [int(v) for v in expected]
    assert counts["text"][-1] == f"{int(expected.iloc[-1])} ({expected.iloc[-1] / 10:.0%})"
    # items at risk: the one with a shortage first, the item above safety stock not at all
    risk = re.search(r"<table class='risk'>.*?</table>", body, re.S).group(0)
    items = re.findall(r"<tr><td>(I-\d)</td>", risk)
    assert items[0] == "I-9" and "I-0" not in items and len(items) == 9


# --------------------------------------------------------------------------------------
# exceptions
# --------------------------------------------------------------------------------------


def many_low_few_high() -> pd.DataFrame:
    rows = []
    for i in range(900):  # 300 series × 3 months of excess inventory
        rows.append(
            ("excess_inventory", "low", f"X-{i // 3}@DC1", HORIZON[i % 3], 150.0 + i, "too much")
        )
    for i in range(30):
        rows.append(("stock_out", "high", f"S-{i}@DC1", HORIZON[1], 10.0 * i, f"short {i}"))
    rows.append(("capacity_overload", "high", "WC-A", HORIZON[2], 1.3, "WC-A over"))
    rows.append(("stock_out", "medium", "S-0@DC1", HORIZON[3], 2.0, "short again"))
    return pd.DataFrame(
        rows, columns=["exception_type", "severity", "scope_id", "month", "value", "reason"]
    )


def test_low_priority_exceptions_are_grouped_capped_and_below_the_ones_that_matter():
    ex = many_low_few_high()
    body = section(build_pack(pack_data(exceptions=ex)), "exceptions")
    assert value(body, "exceptions_total") == 932
    assert value(body, "exceptions_action") == 32
    assert value(body, "exceptions_low") == 900
    assert "excess inventory, 300 items" in body and "plan_exceptions table" in body
    action = re.search(r"<table class='ex ex-action'>.*?</table>", body, re.S).group(0)
    low = re.search(r"<table class='ex ex-low'>.*?</table>", body, re.S).group(0)
    assert body.index("ex-action") < body.index("ex-low")
    action_rows = re.findall(
        r"<tr><td class='sev (\w+)'>\w+</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>", action
    )
    assert len(action_rows) == TOP_EXCEPTIONS
    # capacity first (one overload causes many stock-outs), then the largest stock-outs
    assert action_rows[0][1] == "WC-A" and action_rows[1][1] == "S-29@DC1"
    assert all(sev == "high" for sev, _scope, _months in action_rows)
    # the low-priority list: one row per series, capped, the largest cover first
    low_rows = re.findall(r"<td>(X-\d+@DC1)</td><td>([^<]*)</td>", low)
    assert len(low_rows) == TOP_LOW_EXCEPTIONS
    assert low_rows[0] == ("X-299@DC1", "2026-11..2027-01 (3 months)")
    assert "Low priority: the 5 largest of 300 items (900 rows)" in body


def test_an_item_short_in_several_months_is_one_row():
    ex = many_low_few_high()
    body = section(build_pack(pack_data(exceptions=ex)), "exceptions")
    # S-0 is short in two months (one high, one medium): one row, with its months
    assert body.count("<td>S-0@DC1</td>") <= 1


# --------------------------------------------------------------------------------------
# capacity decision text
# --------------------------------------------------------------------------------------


def test_capacity_text_says_what_is_short_and_by_how_much():
    short = pd.Series({"available_hours": 720.0, "required_hours": 843.0, "planned_hours": 706.0})
    text = capacity_shortfall_text(short)
    assert text.startswith(": short 137 h") and "demand needs 843 h" in text
    assert "706 h of the 720 h available, 98%" in text
    fits = pd.Series({"available_hours": 720.0, "required_hours": 583.0, "planned_hours": 706.0})
    text = capacity_shortfall_text(fits)
    assert "no hours short in that month itself" in text and "583 h, 81%" in text
    cap = pd.DataFrame(
        {
            "work_center_id": ["WC-W-MOLD"],
            "month": [pd.Timestamp("2026-12-01")],
            **{k: [v] for k, v in short.items()},
        }
    )
    first = decision_options("capacity WC-W-MOLD in 2026-12 (100% of gap value)", cap)[0]
    assert first.startswith("Overtime or extra shift on WC-W-MOLD in 2026-12: short 137 h")


def test_the_scenario_chart_keeps_revenue_units_short_and_inventory_with_gap_value_present():
    # scenario_comparison gained gap_value (#20): the table shows it, after the headline
    # three the chart draws (sections_review.scenarios charts the first three)
    from sop_pipeline.report.sections_review import _metric_rank

    metrics = ["demand_qty", "gap_value", "inventory_value", "supply_qty", "revenue", "gap_qty"]
    ranked = sorted(metrics, key=_metric_rank)
    assert ranked[:3] == ["revenue", "gap_qty", "inventory_value"]
    assert ranked[3] == "gap_value"
