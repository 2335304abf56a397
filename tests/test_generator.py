"""The demo company generator: contract-exact files with the patterns a planner expects.

One small company (60 items, 26 months) is generated once per module and read back as text,
the way the ingest reader sees it; a second, smaller pair of runs checks determinism.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sop_pipeline.core.months import month_key, month_range, month_start, parse_month
from sop_pipeline.generator.company import GenerationSummary, generate_company
from sop_pipeline.ingest.contract import (
    COMPLETE_MARKER,
    DIALECT_FILE,
    EXTRACTS,
    REQUIRED_EXTRACTS,
    SCENARIOS_FILE,
)

END = "2026-10"
MONTHS = 26
ITEMS = 60


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> tuple[Path, GenerationSummary]:
    landing = tmp_path_factory.mktemp("gen") / "landing"
    calls: list[tuple[str, int, int]] = []
    summary = generate_company(
        landing, items=ITEMS, months=MONTHS, seed=7, end=END, progress=lambda *a: calls.append(a)
    )
    assert calls[-1] == ("write", MONTHS, MONTHS), (
        "the progress callback reports every month folder"
    )
    return landing, summary


_cache: dict[tuple[Path, str, str], pd.DataFrame] = {}


def read(landing: Path, month: str, extract: str) -> pd.DataFrame:
    """The file as text (empty string = null), like a reader sees it."""
    key = (landing, month, extract)
    if key not in _cache:
        _cache[key] = pd.read_csv(
            landing / month / f"{extract}.csv", dtype=str, keep_default_na=False, na_filter=False
        )
    return _cache[key]


def all_months(landing: Path, extract: str) -> pd.DataFrame:
    """Every month folder's rows of a transaction extract, with the folder as ``_month``."""
    frames = []
    for month in sorted(p.name for p in landing.iterdir() if p.is_dir()):
        df = read(landing, month, extract).copy()
        df["_month"] = month
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def latest_sales(landing: Path) -> pd.DataFrame:
    """Sales order lines, latest extract wins per (order_id, line_no)."""
    so = all_months(landing, "sales_orders")
    so = so.sort_values("_month").drop_duplicates(["order_id", "line_no"], keep="last")
    so["qty"] = so["qty_ordered"].astype(float)
    so["requested"] = pd.to_datetime(so["requested_date"])
    so["ym"] = so["requested_date"].str[:7]
    return so


# ----------------------------------------------------------------------------------------
# Layout and contract
# ----------------------------------------------------------------------------------------
def test_one_complete_folder_per_month_with_every_required_extract(company) -> None:
    landing, summary = company
    months = month_range(summary.first_month, summary.last_month)
    assert summary.last_month == END
    assert len(months) == MONTHS == summary.months
    assert sorted(p.name for p in landing.iterdir() if p.is_dir()) == months
    dialect = yaml.safe_load((landing / DIALECT_FILE).read_text())
    assert dialect == {
        "encoding": "utf-8",
        "delimiter": ",",
        "decimal": ".",
        "date_format": "%Y-%m-%d",
    }
    for month in months:
        folder = landing / month
        assert (folder / COMPLETE_MARKER).exists(), f"{month} has no completeness marker"
        # the marker is written after every data file of the folder
        marker_time = (folder / COMPLETE_MARKER).stat().st_mtime_ns
        for name in REQUIRED_EXTRACTS:
            assert (folder / f"{name}.csv").exists(), f"{month}/{name}.csv missing"
        for path in folder.glob("*.csv"):
            assert path.stat().st_mtime_ns <= marker_time


def test_every_file_has_exactly_the_contract_columns_and_valid_values(company) -> None:
    landing, summary = company
    for month in month_range(summary.first_month, summary.last_month):
        for name, extract in EXTRACTS.items():
            path = landing / month / f"{name}.csv"
            header = path.read_text(encoding="utf-8").split("\n", 1)[0]
            assert header == ",".join(extract.column_names), f"{month}/{name}.csv header"
            df = read(landing, month, name)
            if not len(df):
                continue
            assert not df.duplicated(list(extract.key)).any(), f"{month}/{name}.csv duplicate keys"
            for col in extract.columns:
                values = df[col.name]
                filled = values[values != ""]
                if col.required:
                    assert len(filled) == len(values), f"{month}/{name}.{col.name} has empty values"
                if col.allowed:
                    assert set(filled) <= set(col.allowed), (
                        f"{month}/{name}.{col.name}: {set(filled)}"
                    )
                if col.type == "date":
                    parsed = pd.to_datetime(filled, format="%Y-%m-%d", errors="coerce")
                    assert parsed.notna().all(), f"{month}/{name}.{col.name} has a non-ISO date"
                if col.type == "month":
                    assert filled.str.fullmatch(r"\d{4}-(0[1-9]|1[0-2])").all()
                if col.type in ("num", "int"):
                    numbers = pd.to_numeric(filled, errors="coerce")
                    assert numbers.notna().all(), f"{month}/{name}.{col.name} is not numeric"
                    decimals = filled.str.partition(".")[2].str.len()
                    assert decimals.max() <= 6, f"{month}/{name}.{col.name} has too many decimals"
                    # sales order quantities may be negative on returns (checked below)
                    if col.min_value is not None and not (
                        name == "sales_orders" and col.name.startswith("qty_")
                    ):
                        assert (numbers >= col.min_value).all(), (
                            f"{month}/{name}.{col.name} below min"
                        )
                    if col.max_value is not None:
                        assert (numbers <= col.max_value).all(), (
                            f"{month}/{name}.{col.name} above max"
                        )


def test_money_has_two_decimals_and_quantities_at_most_four(company) -> None:
    landing, summary = company
    so = read(landing, summary.last_month, "sales_orders")
    assert so["unit_price"].str.fullmatch(r"\d+\.\d{2}").all()
    assert so["qty_ordered"].str.fullmatch(r"-?\d+(\.\d{1,4})?").all()
    routings = read(landing, summary.last_month, "routings")
    assert routings["hours_per_unit"].str.fullmatch(r"\d+\.\d{1,4}").all()


def test_foreign_keys_resolve_against_the_same_month(company) -> None:
    landing, summary = company
    for month in month_range(summary.first_month, summary.last_month):
        for name, extract in EXTRACTS.items():
            df = read(landing, month, name)
            for fk in extract.foreign_keys:
                values = set(df[fk.column]) - {""}
                known = set(read(landing, month, fk.ref_extract)[fk.ref_column])
                assert values <= known, (
                    f"{month}/{name}.{fk.column} unknown: {sorted(values - known)[:5]}"
                )


def test_only_returns_are_negative(company) -> None:
    landing, _ = company
    so = all_months(landing, "sales_orders")
    for col in ("qty_ordered", "qty_shipped"):
        qty = pd.to_numeric(so[col].replace("", np.nan))
        negative = so[qty < 0]
        assert len(negative) > 0, "the company has returns"
        assert set(negative["status"]) == {"returned"}
    returns = so[so["status"] == "returned"]
    assert (pd.to_numeric(returns["qty_ordered"]) < 0).all()
    # every other order line orders something
    others = so[so["status"] != "returned"]
    assert (pd.to_numeric(others["qty_ordered"]) > 0).all()


def test_opportunities_name_an_item_or_a_family_never_both(company) -> None:
    landing, summary = company
    opp = all_months(landing, "opportunities")
    has_item = opp["item_id"] != ""
    has_family = opp["family"] != ""
    assert (has_item ^ has_family).all()
    assert has_item.any() and has_family.any()
    families = set(read(landing, summary.last_month, "items")["family"])
    assert set(opp.loc[has_family, "family"]) <= families
    probability = {"prospecting": 0.1, "qualification": 0.25, "proposal": 0.5, "negotiation": 0.75}
    open_ = opp[opp["stage"].isin(probability)]
    assert (open_["probability"].astype(float) == open_["stage"].map(probability)).all()
    # the last extract's pipeline closes within the next 1-9 months
    latest = opp.sort_values("_month").drop_duplicates("opportunity_id", keep="last")
    still_open = latest[latest["stage"].isin(probability)]
    assert len(still_open) > 0
    close = pd.to_datetime(still_open["expected_close_date"])
    end = pd.Timestamp(month_start(parse_month(END), 1))
    assert (close >= end).all() and (close < end + pd.DateOffset(months=10)).all()
    assert {"closed_won", "closed_lost"} <= set(opp["stage"])


def test_overrides_and_aop_are_planning_inputs_for_the_future(company) -> None:
    landing, summary = company
    ov = read(landing, summary.last_month, "demand_overrides")
    assert 8 <= len(ov) <= 12
    assert ov["adjustment"].str.fullmatch(r"-?\d+|[+-]\d+%").all()
    assert set(ov["reason_code"]) <= {
        "promotion", "new_customer", "lost_customer", "price_change", "supply_issue", "market_intel",
    }  # fmt: skip
    assert (ov["month"] > summary.last_month).all()
    items = read(landing, summary.last_month, "items")
    scopes = set(items["item_id"]) | set(items["family"])
    assert set(ov["scope"]) <= scopes
    aop = read(landing, summary.last_month, "aop_targets")
    months = set(aop["month"])
    # full fiscal years from the first history year through the 36-month horizon
    assert min(months) == summary.first_month[:4] + "-01"
    assert max(months) >= "2029-10"
    assert aop.groupby("family")["month"].nunique().nunique() == 1


def test_aop_revenue_is_within_reach_of_actual_revenue(company) -> None:
    """The AOP is a target a planner would believe: within ±20% of what the year sold."""
    landing, summary = company
    so = latest_sales(landing)
    fx = read(landing, summary.last_month, "fx_rates").astype({"rate_to_base": float})
    so = so.merge(fx, left_on=["currency", "ym"], right_on=["currency", "month"], how="left")
    so = so[so["status"] != "cancelled"]
    last_year = month_range(month_key_minus(summary.last_month, 11), summary.last_month)
    actual = (so["qty"] * so["unit_price"].astype(float) * so["rate_to_base"])[
        so["ym"].isin(last_year)
    ].sum()
    aop = read(landing, summary.last_month, "aop_targets")
    target = aop.loc[aop["month"].isin(last_year), "revenue_target"].astype(float).sum()
    assert 0.8 < actual / target < 1.2


def month_key_minus(month: str, n: int) -> str:
    d = month_start(parse_month(month), -n)
    return f"{d.year:04d}-{d.month:02d}"


# ----------------------------------------------------------------------------------------
# Demand patterns
# ----------------------------------------------------------------------------------------
def test_seasonal_family_peaks_in_summer(company) -> None:
    landing, summary = company
    so = latest_sales(landing)
    items = read(landing, summary.last_month, "items")
    fam = so.merge(items[["item_id", "family"]], on="item_id")
    hoses_pumps = fam[fam["family"].isin(["pumps", "hoses"]) & (fam["status"] != "cancelled")]
    by_month = hoses_pumps.groupby(hoses_pumps["requested"].dt.month)["qty"].sum()
    summer = by_month.loc[[6, 7]].mean()
    winter = by_month.loc[[12, 1]].mean()
    assert summer > 1.3 * winter


def test_spare_parts_are_intermittent(company) -> None:
    landing, summary = company
    so = latest_sales(landing)
    so = so[so["status"].isin(["shipped", "open"])]
    spares = so[so["item_id"].str.startswith("SPR-") & (so["ym"] <= summary.last_month)]
    months = month_range(summary.first_month, summary.last_month)
    grid = spares.groupby(["item_id", "location_id", "ym"])["qty"].sum().unstack(fill_value=0)
    grid = grid.reindex(columns=months, fill_value=0)
    zero_share = (grid == 0).mean(axis=1)
    assert len(grid) >= 3
    assert zero_share.median() >= 0.3, "spare parts should have many months without orders"
    # fast movers (fittings) sell nearly every month once they sell at all
    fittings = so[so["item_id"].str.startswith("FIT-") & (so["ym"] <= summary.last_month)]
    grid = fittings.groupby(["item_id", "location_id", "ym"])["qty"].sum().unstack(fill_value=0)
    grid = grid.reindex(columns=months, fill_value=0)
    selling = grid.gt(0).cummax(axis=1) & grid[::-1].gt(0).cummax(axis=1)[::-1]  # first..last sale
    regular_zero = ((grid == 0) & selling).sum(axis=1) / selling.sum(axis=1)
    assert regular_zero.median() < 0.1


def test_launches_sell_only_after_launch_and_eol_items_stop(company) -> None:
    landing, summary = company
    items = read(landing, summary.last_month, "items")
    so = latest_sales(landing)
    first, last = parse_month(summary.first_month), parse_month(summary.last_month)
    launch = pd.to_datetime(items["launch_date"])
    launched = items[(launch > pd.Timestamp(first)) & (launch <= pd.Timestamp(last))]
    assert len(launched) >= 2, "some items launch inside the history"
    sales = so.merge(launched[["item_id", "launch_date"]], on="item_id")
    assert len(sales) > 0, "launched items sell"
    assert (sales["requested"] >= pd.to_datetime(sales["launch_date"])).all()
    assert (pd.to_datetime(sales["order_date"]) >= pd.to_datetime(sales["launch_date"])).all()
    # recent launches are flagged new
    recent = items[(launch > pd.Timestamp(month_start(last, -5)))]
    assert (recent["lifecycle_status"] == "new").all()

    eol = items[(items["eol_date"] != "") & (items["eol_date"] < summary.last_month)]
    assert len(eol) >= 2, "some items reached end of life inside the history"
    assert (eol["lifecycle_status"] == "eol").all()
    sales = so.merge(eol[["item_id", "eol_date"]], on="item_id")
    assert len(sales) > 0
    assert (sales["requested"] <= pd.to_datetime(sales["eol_date"])).all()
    # items not yet launched are listed as new with a future launch date
    future = items[launch > pd.Timestamp(last)]
    assert len(future) >= 1 and (future["lifecycle_status"] == "new").all()
    assert not so["item_id"].isin(future["item_id"]).any()


def test_eol_date_appears_only_once_the_end_of_life_is_announced(company) -> None:
    landing, summary = company
    last = read(landing, summary.last_month, "items").set_index("item_id")
    first = read(landing, summary.first_month, "items").set_index("item_id")
    late_eol = last[(last["eol_date"] > month_key_minus(summary.last_month, -13))]
    # an end of life more than a year after the first extract is not in that extract yet
    unknown_then = late_eol.index[late_eol["eol_date"] > month_key_minus(summary.first_month, -13)]
    assert (first.loc[unknown_then, "eol_date"] == "").all()


def test_orders_open_at_month_end_ship_in_a_later_extract(company) -> None:
    landing, summary = company
    so = all_months(landing, "sales_orders")
    open_ = so[so["status"] == "open"]
    assert len(open_) > 0
    assert (open_["ship_date"] == "").all() and (open_["qty_shipped"] == "").all()
    # an open line in an earlier month reappears later with its outcome
    earlier = open_[open_["_month"] < summary.last_month]
    later = so[so["status"] != "open"].merge(
        earlier[["order_id", "line_no", "_month"]], on=["order_id", "line_no"]
    )
    assert len(later) > 0 and (later["_month_x"] > later["_month_y"]).all()
    # the last extract carries the order book for the next month
    last = so[(so["_month"] == summary.last_month) & (so["status"] == "open")]
    assert (last["requested_date"] > summary.last_month + "-31").any()


def test_shipments_are_sometimes_late_and_short(company) -> None:
    landing, _ = company
    so = latest_sales(landing)
    shipped = so[so["status"] == "shipped"]
    late = pd.to_datetime(shipped["ship_date"]) > shipped["requested"]
    short = shipped["qty_shipped"].astype(float) < shipped["qty"]
    assert 0.02 < late.mean() < 0.25
    assert 0.01 < short.mean() < 0.15
    assert (so["status"] == "cancelled").any()
    # customers order up to 30 days ahead, several lines per order
    lead = (so["requested"] - pd.to_datetime(so["order_date"])).dt.days
    assert lead.between(0, 30).all()
    orders = so[so["status"] != "returned"].groupby("order_id").size()
    assert orders.mean() > 1.5 and orders.max() <= 40


def test_late_and_restated_rows_are_where_the_summary_says(company) -> None:
    landing, summary = company
    so = all_months(landing, "sales_orders")
    assert summary.late_rows and summary.restated_rows
    for month, keys in summary.late_rows.items():
        previous = month_key_minus(month, 1)
        for order_id, line_no in keys:
            rows = so[(so["order_id"] == order_id) & (so["line_no"] == str(line_no))]
            assert list(rows["_month"]) == [month], "a late line first appears in its late month"
            assert rows["requested_date"].iloc[0][:7] == previous
    for month, keys in summary.restated_rows.items():
        previous = month_key_minus(month, 1)
        for order_id, line_no in keys:
            rows = so[(so["order_id"] == order_id) & (so["line_no"] == str(line_no))].set_index(
                "_month"
            )
            assert set(rows.index) == {previous, month}
            assert rows.loc[previous, "qty_ordered"] != rows.loc[month, "qty_ordered"]


def test_prices_come_in_several_currencies_with_rates(company) -> None:
    landing, summary = company
    so = all_months(landing, "sales_orders")
    assert {"USD", "EUR", "GBP"} <= set(so["currency"])
    fx = read(landing, summary.last_month, "fx_rates")
    months = month_range(summary.first_month, summary.last_month)
    for ccy in ("EUR", "GBP"):
        assert sorted(fx.loc[fx["currency"] == ccy, "month"]) == months
    # an order line's price is near the item's list price, converted
    items = read(landing, summary.last_month, "items").set_index("item_id")
    last = so[
        (so["_month"] == summary.last_month)
        & (so["currency"] == "USD")
        & (so["status"] == "shipped")
    ]
    last = last[last["item_id"].map(items["currency"]) == "USD"]
    ratio = last["unit_price"].astype(float) / last["item_id"].map(items["unit_price"]).astype(
        float
    )
    assert 0.85 < ratio.median() < 1.02


# ----------------------------------------------------------------------------------------
# Supply side
# ----------------------------------------------------------------------------------------
def test_inventory_is_a_month_end_snapshot_of_a_few_months_of_demand(company) -> None:
    landing, summary = company
    for month in (summary.first_month, summary.last_month):
        inv = read(landing, month, "inventory")
        end = month_start(parse_month(month), 1).toordinal() - 1
        assert set(inv["snapshot_date"]) == {date.fromordinal(end).isoformat()}
        assert (inv["receipt_date"] <= inv["snapshot_date"]).all()
    inv = read(landing, summary.last_month, "inventory")
    # raw materials (kg, sets) are stock for production, not cover of the items sold
    materials = read(landing, summary.last_month, "items").query("family == 'materials'")
    inv = inv[~inv["item_id"].isin(set(materials["item_id"]))]
    so = latest_sales(landing)
    recent = so[
        so["ym"].isin(month_range(month_key_minus(summary.last_month, 5), summary.last_month))
    ]
    monthly = recent[recent["status"] != "cancelled"]["qty"].sum() / 6
    cover = inv["qty_on_hand"].astype(float).sum() / monthly
    assert 0.5 < cover < 2.5


def test_capacity_calendar_has_holidays_and_the_overhaul_in_the_horizon(company) -> None:
    landing, summary = company
    cal = read(landing, summary.last_month, "capacity_calendar").astype({"available_hours": float})
    horizon_end = month_key_minus(summary.last_month, -36)
    assert cal["month"].min() == summary.first_month and cal["month"].max() == horizon_end
    assert cal.groupby("work_center_id").size().nunique() == 1
    wc = summary.overhaul_work_center
    hours = cal[cal["work_center_id"] == wc].set_index("month")["available_hours"]
    assert len(summary.overhaul_months) == 2
    assert all(m > summary.last_month for m in summary.overhaul_months)
    assert summary.overhaul_months[0] <= month_key_minus(summary.last_month, -6), (
        "inside an 18-month plan"
    )
    normal = hours.drop(list(summary.overhaul_months)).median()
    for month in summary.overhaul_months:
        assert 0.2 * normal <= hours[month] <= 0.4 * normal
    # summer shutdown and Christmas: August and December have fewer hours than October
    other = cal[cal["work_center_id"] != wc].copy()
    other["m"] = other["month"].str[5:]
    per_month = other.groupby("m")["available_hours"].mean()
    assert per_month["08"] < per_month["10"] and per_month["12"] < per_month["10"]


def test_overhaul_leaves_the_work_center_short(company) -> None:
    """Recent demand needs more hours than the overhaul months offer: the plan must pre-build."""
    landing, summary = company
    so = latest_sales(landing)
    so = so[so["status"].isin(["shipped", "open"])]
    routings = read(landing, summary.last_month, "routings").astype({"hours_per_unit": float})
    wc = summary.overhaul_work_center
    last12 = month_range(month_key_minus(summary.last_month, 11), summary.last_month)
    load = so[so["ym"].isin(last12)].merge(routings[routings["work_center_id"] == wc], on="item_id")
    monthly_hours = (load["qty"] * load["hours_per_unit"]).sum() / 12
    cal = read(landing, summary.last_month, "capacity_calendar").astype({"available_hours": float})
    hours = cal[cal["work_center_id"] == wc].set_index("month")["available_hours"]
    assert monthly_hours > 1.5 * hours[summary.overhaul_months[0]]
    # outside the overhaul the work center copes with its average load
    assert monthly_hours < hours[last12].mean()


def test_routings_purchased_items_and_work_centers_are_plausible(company) -> None:
    landing, summary = company
    items = read(landing, summary.last_month, "items")
    # the BOM's sub-assemblies and raw materials are not items for sale
    items = items[~items["family"].isin(["materials", "assemblies"])]
    routings = read(landing, summary.last_month, "routings").astype({"hours_per_unit": float})
    per_item = routings.groupby("item_id").size()
    assert per_item.between(1, 2).all()
    purchased = 1 - len(per_item) / len(items)
    assert 0.1 < purchased < 0.35
    assert (routings["hours_per_unit"] > 0).all() and (routings["hours_per_unit"] < 10).all()
    wcs = read(landing, summary.last_month, "work_centers")
    assert 6 <= len(wcs) <= 8
    locations = read(landing, summary.last_month, "locations")
    assert sorted(locations["type"]) == ["dc", "plant", "plant"]
    assert set(wcs["location_id"]) <= set(
        locations.loc[locations["type"] == "plant", "location_id"]
    )


def test_open_production_and_purchase_orders_are_due_soon(company) -> None:
    landing, summary = company
    end = summary.last_month + "-31"
    horizon = month_key_minus(summary.last_month, -4)
    for name, open_status in (
        ("production_orders", {"planned", "released"}),
        ("purchase_orders", {"open"}),
    ):
        rows = all_months(landing, name)
        key = "order_id" if name == "production_orders" else "po_id"
        latest = rows.sort_values("_month").drop_duplicates(key, keep="last")
        still_open = latest[latest["status"].isin(open_status)]
        future = still_open[still_open["due_date"] > end]
        assert len(future) > 0, f"{name}: open orders due after the last month"
        assert (future["due_date"] < horizon).all()
        done = latest[latest["status"].isin({"completed", "received"})]
        assert len(done) > len(still_open), f"{name}: mostly history"
        # status changes re-appear later as restated rows (same key, later month)
        assert rows.duplicated(key).any()


def test_scenarios_name_levers_inside_the_horizon(company) -> None:
    landing, summary = company
    doc = yaml.safe_load((landing / summary.last_month / SCENARIOS_FILE).read_text())
    by_name = {s["name"]: s for s in doc["scenarios"]}
    assert {"overhaul_extended", "supplier_delay", "price_increase", "chase_strategy"} <= set(
        by_name
    )
    lever = by_name["overhaul_extended"]["levers"][0]
    assert (
        lever["type"] == "capacity_loss" and lever["work_center_id"] == summary.overhaul_work_center
    )
    assert all(
        summary.last_month < m <= month_key_minus(summary.last_month, -18) for m in lever["months"]
    )
    demand = next(s for s in doc["scenarios"] if s["levers"][0]["type"] == "demand_change")[
        "levers"
    ][0]
    assert all(re.fullmatch(r"\d{4}-\d{2}", m) and m > summary.last_month for m in demand["months"])
    supplier = by_name["supplier_delay"]["levers"][0]["supplier_id"]
    po = all_months(landing, "purchase_orders")
    assert supplier in set(po["supplier_id"])


def test_customers_and_series(company) -> None:
    landing, summary = company
    customers = read(landing, summary.last_month, "customers")
    assert 150 <= len(customers) <= 3000
    assert customers["segment"].nunique() >= 4 and customers["channel"].nunique() >= 2
    so = latest_sales(landing)
    series = so[so["qty"] > 0].groupby(["item_id", "location_id"]).ngroups
    assert series == summary.series_count
    per_item = so.groupby("item_id")["location_id"].nunique()
    assert per_item.between(1, 3).all() and per_item.mean() > 1.3


# ----------------------------------------------------------------------------------------
# Determinism and arguments
# ----------------------------------------------------------------------------------------
def test_same_arguments_give_identical_bytes(tmp_path) -> None:
    a = generate_company(tmp_path / "a", items=40, months=14, seed=3, end="2025-03")
    b = generate_company(tmp_path / "b", items=40, months=14, seed=3, end="2025-03")
    files_a = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    files_b = sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    assert files_a == files_b and len(files_a) == 14 * (len(EXTRACTS) + 2) + 1
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert a.rows == b.rows and a.late_rows == b.late_rows
    c = generate_company(tmp_path / "c", items=40, months=14, seed=4, end="2025-03")
    assert (tmp_path / "c/2025-03/sales_orders.csv").read_bytes() != (
        tmp_path / "a/2025-03/sales_orders.csv"
    ).read_bytes()
    assert c.first_month == "2024-02"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"items": 5}, "items=5"),
        ({"months": 0}, "months=0"),
        ({"seed": -1}, "seed=-1"),
        ({"end": "2026/10"}, "YYYY-MM"),
    ],
)
def test_bad_arguments_say_what_to_pass(tmp_path, kwargs, fragment) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        generate_company(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir()), "nothing is written when the arguments are wrong"


def test_made_families_have_a_two_level_bom_and_a_supplier_with_a_capacity_dip(company) -> None:
    landing, summary = company
    last = summary.last_month
    items = read(landing, last, "items").set_index("item_id")
    bom = read(landing, last, "bom")
    routed = set(read(landing, last, "routings")["item_id"])
    parents = set(bom["parent_item_id"])
    # every made item is a parent; its sub-assemblies are shared and have raw materials
    assert routed <= parents
    subs = bom[bom["parent_item_id"].str.startswith("SA-")]
    assert set(items.loc[list(set(subs["component_item_id"])), "family"]) == {"materials"}
    uses = bom[bom["component_item_id"].str.startswith("SA-")]
    assert uses.groupby("component_item_id")["parent_item_id"].nunique().max() > 1
    capacity = read(landing, last, "supplier_capacity")
    copper = capacity[capacity["item_id"] == "RM-1001"].astype({"max_qty": float})
    assert set(copper["supplier_id"]) == {"SUP-RM1"}
    dip = copper.set_index("month")["max_qty"]
    low = dip[[month_key(month_start(parse_month(last), k)) for k in (3, 4)]]
    assert (low < 0.5 * dip.max()).all()
    # the same seed writes the same BOM (a random stream of its own)
    assert len(bom) == len(bom.drop_duplicates(["parent_item_id", "component_item_id"]))
