"""Consensus demand: CRM increment, overrides, reason codes, revenue and totals that add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sop_pipeline.planning.consensus import (
    PLAN_DEMAND_COLUMNS,
    ConsensusInputError,
    build_consensus,
)

PLAN = "2026-10"
MONTHS = pd.date_range("2026-11-01", periods=6, freq="MS")
NOV, DEC, JAN = MONTHS[0], MONTHS[1], MONTHS[2]


@pytest.fixture()
def items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["A", "B", "C"],
            "family": ["F1", "F1", "F2"],
            "unit_price": [10.0, 20.0, 5.0],
            "lifecycle_status": "active",
        }
    )


@pytest.fixture()
def stat() -> pd.DataFrame:
    """A: 100 at DC1 and 300 at DC2; B: 200 at DC1; C: 50 at DC1 — every month."""
    rows = []
    for item, loc, qty in (
        ("A", "DC1", 100.0),
        ("A", "DC2", 300.0),
        ("B", "DC1", 200.0),
        ("C", "DC1", 50.0),
    ):
        for m in MONTHS:
            rows.append(
                {
                    "item_id": item,
                    "location_id": loc,
                    "month": m,
                    "stat_forecast_qty": qty,
                    "stat_lo80_qty": qty * 0.8,
                    "stat_hi80_qty": qty * 1.2,
                    "stat_lo95_qty": qty * 0.6,
                    "stat_hi95_qty": qty * 1.4,
                    "stat_model": "ETS_AAdA",
                    "naive_forecast_qty": qty,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture()
def history() -> pd.DataFrame:
    months = pd.date_range("2025-11-01", "2026-10-01", freq="MS")
    return pd.DataFrame(
        [
            {"item_id": i, "location_id": "DC1", "month": m, "demand_qty": 100.0}
            for i in ("A", "B", "C")
            for m in months
        ]
    )


def _overrides(rows: list[dict]) -> pd.DataFrame:
    base = {"reason_code": "PROMO", "author": "ana", "comment": ""}
    return pd.DataFrame([{**base, **r} for r in rows])


def _no_pipeline() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "opportunity_id",
            "customer_id",
            "item_id",
            "family",
            "expected_qty",
            "amount",
            "stage",
            "probability",
            "close_month",
        ]
    )


def _by(frame: pd.DataFrame, item: str, loc: str, month: pd.Timestamp) -> pd.Series:
    hit = frame[
        (frame["item_id"] == item) & (frame["location_id"] == loc) & (frame["month"] == month)
    ]
    assert len(hit) == 1
    return hit.iloc[0]


def test_without_adjustments_consensus_is_the_statistical_forecast(stat, items, history):
    res = build_consensus(stat, items, _no_pipeline(), _overrides([]), history, PLAN)
    pdm = res.plan_demand
    assert list(pdm.columns[: len(PLAN_DEMAND_COLUMNS)]) == PLAN_DEMAND_COLUMNS
    assert len(pdm) == len(stat)
    np.testing.assert_array_equal(pdm["consensus_qty"], pdm["stat_forecast_qty"])
    assert (pdm[["crm_adjustment_qty", "override_qty"]] == 0).all().all()
    assert res.check() == []


def test_item_qty_override_spreads_over_locations_by_stat(stat, items, history):
    ov = _overrides(
        [
            {
                "scope_type": "item",
                "scope_id": "A",
                "month": NOV,
                "adjustment_type": "qty",
                "adjustment_value": 80.0,
            }
        ]
    )
    res = build_consensus(stat, items, _no_pipeline(), ov, history, PLAN)
    pdm = res.plan_demand
    assert _by(pdm, "A", "DC1", NOV)["override_qty"] == pytest.approx(20.0)
    assert _by(pdm, "A", "DC2", NOV)["override_qty"] == pytest.approx(60.0)
    assert _by(pdm, "A", "DC1", DEC)["override_qty"] == 0.0
    assert pdm["override_qty"].sum() == pytest.approx(80.0, abs=1e-9)
    assert res.check() == []


def test_family_qty_override_adds_up_exactly_to_its_value(stat, items, history):
    ov = _overrides(
        [
            {
                "scope_type": "family",
                "scope_id": "F1",
                "month": DEC,
                "adjustment_type": "qty",
                "adjustment_value": 123.45,
            },
            {
                "scope_type": "family",
                "scope_id": "F1",
                "month": DEC,
                "adjustment_type": "qty",
                "adjustment_value": -23.45,
            },
        ]
    )
    res = build_consensus(stat, items, _no_pipeline(), ov, history, PLAN)
    pdm = res.plan_demand
    f1_dec = pdm[(pdm["family"] == "F1") & (pdm["month"] == DEC)]
    # Two overrides on the same scope and month add: +123.45 − 23.45 = +100, spread ∝ stat (100/300/200).
    assert f1_dec["override_qty"].sum() == pytest.approx(100.0, abs=1e-9)
    assert _by(pdm, "B", "DC1", DEC)["override_qty"] == pytest.approx(100.0 * 200 / 600)
    assert pdm.loc[pdm["family"] == "F2", "override_qty"].eq(0).all()
    log = res.override_log
    assert log.groupby("override_id")["qty_effect"].sum().round(9).tolist() == [123.45, -23.45]
    assert res.check() == []


def test_pct_override_scales_stat_plus_crm(stat, items, history):
    ov = _overrides(
        [
            {
                "scope_type": "family",
                "scope_id": "F2",
                "month": JAN,
                "adjustment_type": "pct",
                "adjustment_value": -0.10,
            }
        ]
    )
    res = build_consensus(stat, items, _no_pipeline(), ov, history, PLAN)
    row = _by(res.plan_demand, "C", "DC1", JAN)
    assert row["override_qty"] == pytest.approx(-5.0)
    assert row["consensus_qty"] == pytest.approx(45.0)


def test_reason_codes_are_kept_per_touched_row(stat, items, history):
    ov = _overrides(
        [
            {
                "scope_type": "item",
                "scope_id": "A",
                "month": NOV,
                "adjustment_type": "qty",
                "adjustment_value": 40.0,
                "reason_code": "TENDER",
                "author": "bo",
                "comment": "city tender",
            },
            {
                "scope_type": "family",
                "scope_id": "F2",
                "month": DEC,
                "adjustment_type": "pct",
                "adjustment_value": 0.2,
                "reason_code": "PRICE",
            },
        ]
    )
    res = build_consensus(stat, items, _no_pipeline(), ov, history, PLAN)
    log = res.override_log
    tender = log[log["reason_code"] == "TENDER"]
    assert set(tender["location_id"]) == {"DC1", "DC2"} and set(tender["author"]) == {"bo"}
    assert set(tender["comment"]) == {"city tender"}
    price = log[log["reason_code"] == "PRICE"]
    assert len(price) == 1 and price["qty_effect"].iloc[0] == pytest.approx(10.0)


def test_plan_demand_carries_the_override_reason_and_author(stat, items, history):
    # finding: plan_demand had override quantities but not who changed them and why
    ov = _overrides(
        [
            {
                "scope_type": "item",
                "scope_id": "A",
                "month": NOV,
                "adjustment_type": "qty",
                "adjustment_value": 40.0,
                "reason_code": "TENDER",
                "author": "bo",
                "comment": "",
            },
            {
                "scope_type": "item",
                "scope_id": "A",
                "month": NOV,
                "adjustment_type": "pct",
                "adjustment_value": 0.1,
                "reason_code": "PROMO",
                "author": "al",
                "comment": "",
            },
        ]
    )
    plan = build_consensus(stat, items, _no_pipeline(), ov, history, PLAN).plan_demand
    touched = plan[(plan["item_id"] == "A") & (plan["month"] == NOV)]
    assert len(touched) == 2  # both locations of A
    assert set(touched["override_reason_code"]) == {"TENDER; PROMO"}
    assert set(touched["override_author"]) == {"bo; al"}
    untouched = plan[(plan["item_id"] != "A") | (plan["month"] != NOV)]
    assert untouched["override_reason_code"].isna().all() and (untouched["override_qty"] == 0).all()


def test_negative_override_is_clipped_and_recorded(stat, items, history):
    ov = _overrides(
        [
            {
                "scope_type": "item",
                "scope_id": "C",
                "month": NOV,
                "adjustment_type": "qty",
                "adjustment_value": -80.0,
            }
        ]
    )
    res = build_consensus(stat, items, _no_pipeline(), ov, history, PLAN)
    row = _by(res.plan_demand, "C", "DC1", NOV)
    assert row["consensus_qty"] == 0.0
    assert row["clipped_qty"] == pytest.approx(30.0)
    assert res.check() == []


def test_crm_adds_only_the_pipeline_above_the_run_rate(stat, items, history):
    pipeline = pd.DataFrame(
        [
            # Item A: 2000 × 0.5 = 1000 weighted, 500 in Nov and 500 in Dec; A's stat is 400/month.
            {
                "opportunity_id": "O1",
                "customer_id": "K1",
                "item_id": "A",
                "family": "F1",
                "expected_qty": 2000.0,
                "amount": 20000.0,
                "stage": "proposal",
                "probability": 0.5,
                "close_month": NOV,
            },
            # Small family deal: 100 × 0.9 = 90 ≤ the family's 600/month: already in the forecast.
            {
                "opportunity_id": "O2",
                "customer_id": "K2",
                "item_id": None,
                "family": "F1",
                "expected_qty": 100.0,
                "amount": 1500.0,
                "stage": "negotiation",
                "probability": 0.9,
                "close_month": JAN,
            },
        ]
    )
    res = build_consensus(stat, items, pipeline, _overrides([]), history, PLAN)
    pdm = res.plan_demand
    a_nov = pdm[(pdm["item_id"] == "A") & (pdm["month"] == NOV)]
    assert a_nov["crm_adjustment_qty"].sum() == pytest.approx(100.0)  # 500 − 400
    assert _by(pdm, "A", "DC2", NOV)["crm_adjustment_qty"] == pytest.approx(75.0)  # ∝ stat 300/400
    assert pdm.loc[pdm["month"] == JAN, "crm_adjustment_qty"].sum() == 0.0
    assert pdm["crm_adjustment_qty"].sum() == pytest.approx(
        res.crm_detail["incremental_qty"].sum(), abs=1e-9
    )
    assert res.check() == []


def test_family_opportunity_without_run_rate_counts_in_full(stat, items):
    pipeline = pd.DataFrame(
        [
            {
                "opportunity_id": "O3",
                "customer_id": "K1",
                "item_id": None,
                "family": "F2",
                "expected_qty": 40.0,
                "amount": 200.0,
                "stage": "proposal",
                "probability": 0.5,
                "close_month": NOV,
            }
        ]
    )
    empty_history = pd.DataFrame(columns=["item_id", "location_id", "month", "demand_qty"])
    res = build_consensus(stat, items, pipeline, _overrides([]), empty_history, PLAN)
    assert res.plan_demand["crm_adjustment_qty"].sum() == pytest.approx(20.0, abs=1e-9)
    assert _by(res.plan_demand, "C", "DC1", DEC)["crm_adjustment_qty"] == pytest.approx(10.0)


def test_revenue_is_qty_times_price_and_families_add_up(stat, items, history):
    ov = _overrides(
        [
            {
                "scope_type": "family",
                "scope_id": "F1",
                "month": NOV,
                "adjustment_type": "qty",
                "adjustment_value": 77.7,
            }
        ]
    )
    res = build_consensus(stat, items, _no_pipeline(), ov, history, PLAN)
    pdm = res.plan_demand.merge(items[["item_id", "unit_price"]], on="item_id")
    np.testing.assert_allclose(pdm["consensus_revenue"], pdm["consensus_qty"] * pdm["unit_price"])
    fam = res.family_totals()
    assert set(fam["family"]) == {"F1", "F2"} and len(fam) == 2 * len(MONTHS)
    for col in ("consensus_qty", "consensus_revenue", "override_qty"):
        assert fam[col].sum() == pytest.approx(res.plan_demand[col].sum(), rel=1e-12)
    assert res.totals()["override_qty"] == pytest.approx(77.7)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"scope_type": "item", "scope_id": "ZZZ"}, "item 'ZZZ' is not in the forecast"),
        ({"scope_type": "family", "scope_id": "F9"}, "family 'F9' is not in the forecast"),
        ({"scope_type": "region", "scope_id": "EU"}, "scope_type 'region' is unknown"),
        ({"adjustment_type": "ratio"}, "adjustment_type 'ratio' is unknown"),
    ],
)
def test_unknown_override_scope_is_an_error_naming_it(stat, items, history, override, message):
    row = {
        "scope_type": "item",
        "scope_id": "A",
        "month": NOV,
        "adjustment_type": "qty",
        "adjustment_value": 1.0,
        "reason_code": "X",
    }
    with pytest.raises(ConsensusInputError, match=message):
        build_consensus(
            stat, items, _no_pipeline(), _overrides([{**row, **override}]), history, PLAN
        )


def test_unknown_opportunity_item_is_an_error_naming_it(stat, items, history):
    pipeline = pd.DataFrame(
        [
            {
                "opportunity_id": "O9",
                "customer_id": "K1",
                "item_id": "NOPE",
                "family": "F1",
                "expected_qty": 5.0,
                "amount": 5.0,
                "stage": "proposal",
                "probability": 0.5,
                "close_month": NOV,
            }
        ]
    )
    with pytest.raises(ConsensusInputError, match="opportunity 'O9' names item 'NOPE'"):
        build_consensus(stat, items, pipeline, _overrides([]), history, PLAN)
    pipeline.loc[0, "item_id"] = "A"
    pipeline.loc[0, "probability"] = 40
    with pytest.raises(ConsensusInputError, match="not a fraction"):
        build_consensus(stat, items, pipeline, _overrides([]), history, PLAN)


def test_override_outside_horizon_is_kept_aside_not_applied(stat, items, history):
    ov = _overrides(
        [
            {
                "scope_type": "item",
                "scope_id": "A",
                "month": pd.Timestamp("2026-09-01"),
                "adjustment_type": "qty",
                "adjustment_value": 10.0,
            }
        ]
    )
    res = build_consensus(stat, items, _no_pipeline(), ov, history, PLAN)
    assert res.plan_demand["override_qty"].sum() == 0.0
    assert len(res.ignored_overrides) == 1


def test_family_figure_shows_history_forecast_and_bands(stat, items, history):
    from sop_pipeline.report.figures import family_forecast_figure, figure_html

    res = build_consensus(stat, items, _no_pipeline(), _overrides([]), history, PLAN)
    fig = family_forecast_figure(history, res.plan_demand, "F1")
    names = {t.name for t in fig.data}
    assert {
        "actual demand",
        "statistical forecast",
        "consensus",
        "80% interval",
        "95% interval",
    } <= names
    consensus = next(t for t in fig.data if t.name == "consensus")
    assert list(consensus.y) == [600.0] * len(MONTHS)  # A 100 + 300, B 200
    html = figure_html(fig)
    assert "<div" in html and "cdn.plot.ly" not in html
    with pytest.raises(ValueError, match="family 'F9'"):
        family_forecast_figure(history, res.plan_demand, "F9")


def test_the_dagster_still_image_draws_the_same_family_series_as_the_pack(stat, items, history):
    # the Dagster UI shows the family chart as a PNG (matplotlib), the pack with plotly: both
    # come from one series function, so they show the same numbers
    from sop_pipeline.report.figures import family_forecast_figure, family_forecast_still

    res = build_consensus(stat, items, _no_pipeline(), _overrides([]), history, PLAN)
    still = family_forecast_still(history, res.plan_demand, families=4)
    axes = still.axes
    assert [ax.get_title() for ax in axes] == [
        "F1 (sum of item-level ranges)",  # largest consensus first
        "F2 (sum of item-level ranges)",
    ]
    lines = {line.get_label(): list(line.get_ydata()) for line in axes[0].get_lines()}
    fig = family_forecast_figure(history, res.plan_demand, "F1")
    traces = {t.name: list(t.y) for t in fig.data}
    assert lines["consensus"] == traces["consensus"] == [600.0] * len(MONTHS)
    assert lines["statistical"] == traces["statistical forecast"]
    assert lines["actual demand"] == traces["actual demand"][-36:]
