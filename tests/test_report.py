"""The executive S&OP pack: every section, numbers equal to the published tables, offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from factories.pack import (
    MONTH,
    build_full_pack,
    exceptions,
    history,
    plan_tables,
    publish,
    waterfall,
)

from sop_pipeline.cli import commands as cli
from sop_pipeline.core.settings import Settings
from sop_pipeline.publish.writer import read_published
from sop_pipeline.report.pack import (
    ReportError,
    build_pack,
    decision_options,
    load_pack_data,
    write_pack,
    write_pack_from_published,
)

SECTIONS = (
    "status",
    "kpis",
    "decisions",
    "demand",
    "supply",
    "capacity",
    "inventory",
    "finance",
    "scenarios",
    "waterfall",
    "exceptions",
    "accuracy",
    "lineage",
)


class _Figures(HTMLParser):
    """Collect ``data-key`` → (``data-value``, text) and the ids of sections."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, float] = {}
        self.texts: dict[str, str] = {}
        self.sections: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("id"):
            self.sections.append(a["id"])
        if tag == "script":
            self.scripts.append(a)
        if a.get("data-key") and a.get("data-value") is not None:
            assert a["data-key"] not in self.values, f"duplicate data-key {a['data-key']}"
            self.values[a["data-key"]] = float(a["data-value"])
            self._open = a["data-key"]
            self.texts[self._open] = ""

    def handle_data(self, data: str) -> None:
        if self._open:
            self.texts[self._open] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._open = None


def parse(text: str) -> _Figures:
    parser = _Figures()
    parser.feed(text)
    return parser


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pack")
    path = build_full_pack(tmp)
    text = path.read_text(encoding="utf-8")
    return tmp / "published", text, parse(text)


def test_pack_has_every_section_title_version_and_lineage(full):
    _published, text, figures = full
    assert figures.sections == list(SECTIONS)
    assert f"Plan month <b data-field='plan_month'>{MONTH}</b>" in text
    assert "<b data-field='plan_version'>1</b>" in text
    for value in ("run-1", "fp-abc123", "0.1.0+test"):
        assert value in text
    assert figures.values["checks_passed"] == 14 and figures.values["checks_failed"] == 1
    # history, the band label and every family's small multiple are drawn
    assert "actual demand" in text and "sum of item bands" in text
    for i in range(3):
        assert f'id="fig-demand-{i}"' in text
    assert "No data" not in text


def test_headline_and_table_figures_equal_sums_over_published_tables(full):
    published, _text, figures = full
    v = figures.values
    demand = read_published(published, "plan_demand", MONTH, 1)
    gaps = read_published(published, "plan_gaps", MONTH, 1)
    fin = read_published(published, "plan_financials", MONTH, 1)
    assert v["consensus_revenue_total"] == pytest.approx(demand["consensus_revenue"].sum())
    assert v["consensus_qty_total"] == pytest.approx(demand["consensus_qty"].sum())
    assert v["gap_value_total"] == pytest.approx(gaps["gap_value"].sum())
    assert v["gap_value_total"] == pytest.approx(40.0 * 100 + 12.5 * 45.5)
    assert v["gap_qty_total"] == pytest.approx(52.5)
    assert v["revenue_total"] == pytest.approx(fin["revenue"].sum())
    assert v["gross_margin_total"] == pytest.approx(fin["gross_margin"].sum())
    with_aop = fin[fin["aop_revenue"].notna()]
    assert v["aop_revenue_total"] == pytest.approx(with_aop["aop_revenue"].sum())
    assert v["revenue_vs_aop_total"] == pytest.approx(
        with_aop["revenue"].sum() - with_aop["aop_revenue"].sum()
    )
    for family, grp in demand.groupby("family"):
        assert v[f"consensus_revenue:{family}"] == pytest.approx(grp["consensus_revenue"].sum())
    for family, grp in fin.groupby("family"):
        assert v[f"fin_revenue:{family}"] == pytest.approx(grp["revenue"].sum())
    # what the reader sees is the same number, rounded
    assert figures.texts["gap_value_total"] == "USD 4,569"
    assert figures.texts["consensus_qty_total"] == f"{demand['consensus_qty'].sum():,.0f}"


def test_each_kpi_value_target_and_traffic_light_come_from_the_scorecard(full):
    published, text, figures = full
    kpis = read_published(published, "kpi_scorecard", MONTH, 1)
    for r in kpis.itertuples(index=False):
        month = f"{pd.Timestamp(r.month):%Y-%m}"
        key = f"kpi:{r.kpi}:{r.scope}:{month}"
        assert figures.values[key] == pytest.approx(r.value), key
        if r.scope == "total":
            assert figures.values[key + ":target"] == pytest.approx(r.target)
    assert figures.texts["kpi:inventory_turns:total:2026-03"] == "4.25×"
    assert figures.texts["kpi:forecast_bias:total:2026-03"] == "8.1%"
    # one light per total KPI row, in the status's colour class
    for status, count in kpis[kpis["scope"] == "total"]["status"].value_counts().items():
        assert text.count(f'<span class="light {status}" title=') == count
        assert figures.values[f"kpi_count:{status}"] == count


def test_decisions_scenarios_waterfall_and_accuracy_show_published_numbers(full):
    published, text, figures = full
    v = figures.values
    # decisions: the largest gap first, with its binding constraint and options
    decisions = text[text.index("id='decisions'") : text.index("id='demand'")]
    assert decisions.index("pumps") < decisions.index("valves")
    assert (
        "capacity WC-A in 2026-06" in decisions and "Overtime or extra shift on WC-A" in decisions
    )
    assert "Expedite purchase orders" in decisions
    assert v["gap_value:pumps:2026-06"] == pytest.approx(4000.0)
    scen = read_published(published, "scenario_comparison", MONTH, 1)
    for (s, m), grp in scen.groupby(["scenario", "metric"]):
        if m == "inventory_value":  # a stock: families summed, months averaged
            expected = grp.groupby("month")["delta"].sum().mean()
        elif m == "capacity_utilization":  # a ratio: averaged
            expected = grp["delta"].mean()
        else:
            expected = grp["delta"].sum()
        assert v[f"scenario:{s}:{m}"] == pytest.approx(expected)
    assert v["scenario:demand_plus_10:revenue"] == 400.0
    assert v["scenario:wc_a_overhaul:inventory_value"] == -50.0
    assert figures.texts["scenario:demand_plus_10:capacity_utilization"] == "+5.0 pp"
    assert v["waterfall_revenue:override_change"] == -2500.0
    assert "<td>last plan</td>" in text and "<td>this plan</td>" in text
    assert '"measure":["absolute","relative","relative","total"]' in text
    acc = read_published(published, "forecast_accuracy", MONTH, 1)
    item1 = acc[(acc["level"] == "item") & (acc["lag"] == 1)].set_index("forecast_kind")
    assert v["wape:consensus:item:1"] == pytest.approx(item1.loc["consensus", "wape"])
    assert v["fva_stat:item:1"] == pytest.approx(0.42 - 0.31)
    assert v["fva_consensus:item:1"] == pytest.approx(0.31 - 0.28)
    assert v["exceptions_total"] == 3


def test_waterfall_uses_the_all_families_rows_when_present(tmp_path):
    publish(tmp_path, plan_tables())
    parts = waterfall().assign(family="pumps")
    parts["qty"] /= 2
    parts["revenue"] /= 2
    both = pd.concat([waterfall().assign(family="Total"), parts, parts.assign(family="valves")])
    figures = parse(build_pack(load_pack_data(tmp_path, MONTH, waterfall=both)))
    assert figures.values["waterfall_revenue:end"] == 54500.0
    assert figures.values["waterfall_qty:override_change"] == -50.0


def test_pack_opens_offline_with_plotly_inlined_once(full):
    _published, text, figures = full
    assert text.count("* plotly.js v") == 1  # the bundle's banner: inlined once, in <head>
    assert text.index("* plotly.js v") < text.index("<body>")
    assert all(s.get("src") is None for s in figures.scripts), "no external <script src>"
    assert not re.search(r"<(link|img|iframe)[^>]+(href|src)=['\"]?https?:", text)
    assert "cdn.plot.ly/plotly" not in text.split("* plotly.js v")[0]
    assert text.count("Plotly.newPlot(") == text.count('class="plotly-graph-div"') >= 8


def test_missing_optional_data_shows_no_data_sections(tmp_path):
    tables = plan_tables()
    tables["scenario_comparison"] = tables["scenario_comparison"].iloc[0:0]
    tables["forecast_accuracy"] = tables["forecast_accuracy"].iloc[0:0]
    del tables["kpi_scorecard"]  # published with zero rows
    publish(tmp_path, tables)
    data = load_pack_data(tmp_path, MONTH)
    text = build_pack(data)
    figures = parse(text)
    assert figures.sections == list(SECTIONS)
    for section in ("scenarios", "waterfall", "exceptions", "accuracy", "kpis"):
        body = text[text.index(f"id='{section}'") :]
        body = body[: body.index("</section>")]
        if section == "exceptions":
            # plan_exceptions is a published table: published empty means "none", not "unknown"
            assert "No exceptions" in body or "No data:" in body, section
        else:
            assert "No data:" in body, section
    assert "actual demand" not in text and "history not provided" in text
    assert figures.values["consensus_revenue_total"] == pytest.approx(
        tables["plan_demand"]["consensus_revenue"].sum()
    )


def test_pack_is_deterministic(tmp_path):
    publish(tmp_path, plan_tables())
    first = build_pack(load_pack_data(tmp_path, MONTH, history=history()))
    second = build_pack(load_pack_data(tmp_path, MONTH, history=history()))
    assert first == second


def test_write_pack_keeps_every_version_and_index_shows_the_latest(tmp_path):
    settings = Settings.from_env({"SOP_HOME": str(tmp_path)})
    publish(settings.published_dir, plan_tables(), run_id="run-1")
    publish(settings.published_dir, plan_tables(scale=2.0), run_id="run-2")
    reports = settings.reports_dir / MONTH

    v2 = write_pack(settings, MONTH)
    assert v2 == reports / f"sop_pack_{MONTH}_v2.html"
    v1 = write_pack(settings, MONTH, version=1)
    assert v1 == reports / f"sop_pack_{MONTH}_v1.html"
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert index == v2.read_text(encoding="utf-8"), "index.html is the newest version's pack"
    totals = {
        path.name: parse(path.read_text(encoding="utf-8")).values["consensus_qty_total"]
        for path in (v1, v2)
    }
    assert totals[v2.name] == pytest.approx(2 * totals[v1.name])
    assert "run-2" in index

    with pytest.raises(ReportError, match="no version 7"):
        write_pack(settings, MONTH, version=7)
    with pytest.raises(ReportError, match="sop run --month 2026-01"):
        write_pack(settings, "2026-01")


def test_sop_report_writes_the_pack_and_reads_history_from_the_working_db(
    tmp_path, monkeypatch, capsys
):
    import duckdb

    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings.from_env()
    publish(settings.published_dir, plan_tables())
    settings.warehouse_dir.mkdir(parents=True)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE SCHEMA plan")
    hist = history().assign(item_id="P-1", location_id="DC1")
    con.register("h", hist)
    con.execute("CREATE TABLE marts.fct_demand_history AS SELECT * FROM h")
    ex = exceptions().assign(plan_month=MONTH)
    con.register("e", ex)
    con.execute("CREATE TABLE plan.plan_exceptions AS SELECT * FROM e")
    con.register("w", waterfall().assign(plan_month=MONTH))
    con.execute("CREATE TABLE plan.plan_waterfall AS SELECT * FROM w")
    con.close()

    assert cli.main(["report", "--month", MONTH]) == 0
    assert f"sop_pack_{MONTH}_v1.html" in capsys.readouterr().out.replace("\n", "")
    text = (settings.reports_dir / MONTH / "index.html").read_text(encoding="utf-8")
    figures = parse(text)
    assert "actual demand" in text and "1000000000" not in text
    assert figures.values["exceptions_total"] == 3
    assert figures.values["waterfall_revenue:end"] == 54500.0
    assert "marts.fct_demand_history" in text  # lineage says where history came from


def test_write_pack_from_published_without_working_db_leaves_history_out(tmp_path):
    settings = Settings.from_env({"SOP_HOME": str(tmp_path)})
    publish(settings.published_dir, plan_tables())
    path = write_pack_from_published(settings, MONTH)
    text = path.read_text(encoding="utf-8")
    assert "history not provided" in text and "No working database" in text


@pytest.mark.parametrize(
    ("constraint", "expected", "absent"),
    [
        ("capacity WC-W-MOLD in 2026-12 (100% of gap value)", "Pre-build", None),
        (
            "capacity WC-W-MOLD in 2026-12: no free capacity earlier to pre-build",
            "Overtime",
            "Pre-build",
        ),
        ("purchase lead time 44 days: no new receipt before 2027-01", "Expedite purchase", None),
        (None, "Re-prioritise", None),
    ],
)
def test_decision_options_follow_the_binding_constraint(constraint, expected, absent):
    options = " | ".join(decision_options(constraint))
    assert expected in options
    if absent:
        assert absent not in options


def test_backlog_plan_shows_peak_backlog_and_the_one_unmet_figure(tmp_path):
    # under SOP_UNMET_DEMAND=backlog the month-end backlogs do not add up over months: the
    # headline shows the peak and what is still open at the horizon end (Σ demand − Σ served)
    tables = plan_tables()
    tables["plan_inventory"] = tables["plan_inventory"].assign(unmet_demand="backlog")
    fin = tables["plan_financials"]
    tables["plan_financials"] = fin.assign(
        aop_inventory_value=fin["inventory_value"] / 2,
        safety_stock_value=fin["inventory_value"] / 4,
    )
    published = tmp_path / "published"
    publish(published, tables)
    data = load_pack_data(published, MONTH, None, history())
    figures = parse(build_pack(data))
    gaps = tables["plan_gaps"]
    by_month = gaps.groupby("month")["gap_qty"].sum()
    assert figures.values["backlog_peak_qty"] == pytest.approx(by_month.max())
    assert figures.values["unmet_qty_total"] == pytest.approx(
        gaps["demand_qty"].sum() - gaps["supply_qty"].sum()
    )
    assert "gap_qty_total" not in figures.values
    # inventory value vs AOP: 2× the target, a quarter of it safety stock
    assert figures.values["inventory_vs_aop_ratio"] == pytest.approx(2.0)
    assert figures.values["safety_stock_share"] == pytest.approx(0.25)


def test_text_from_the_data_is_escaped_not_run_as_markup(tmp_path):
    # item ids, family names and exception reasons come from the planners' extracts: a
    # `<script>` in one must show as text in the pack, never run (Jinja2 autoescape)
    attack = "<script>alert('pack')</script>"
    tables = plan_tables()
    for name in ("plan_demand", "plan_gaps", "plan_financials"):
        tables[name] = tables[name].assign(family=tables[name]["family"].replace("pumps", attack))
    inv = tables["plan_inventory"]
    tables["plan_inventory"] = inv.assign(item_id=inv["item_id"].replace("P-1", f"P-1{attack}"))
    publish(tmp_path, tables)
    ex = exceptions().assign(reason=f"short </td>{attack}")
    text = build_pack(load_pack_data(tmp_path, MONTH, None, history(), exceptions=ex))
    assert "<script>alert" not in text and "</td><script>" not in text
    visible = _Text()
    visible.feed(text)
    shown = "".join(visible.parts)
    assert f"P-1{attack}" in shown  # the item at risk, as the planner typed it
    assert f"short </td>{attack}" in shown  # the exception's reason
    assert f"<b>{attack}</b>" not in text and attack in shown  # a family name


class _Text(HTMLParser):
    """The text a reader sees (script and style contents left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def test_templates_and_css_ship_with_the_package():
    # an installed package reads them with importlib.resources: pyproject's package-data
    # must cover every file the renderer loads
    import tomllib
    from fnmatch import fnmatch

    root = Path(__file__).resolve().parents[1]
    report = root / "sop_pipeline" / "report"
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["sop_pipeline.report"]
    files = [
        p.relative_to(report).as_posix()
        for d in ("templates", "static")
        for p in (report / d).iterdir()
    ]
    assert "static/pack.css" in files and "templates/base.html.j2" in files
    assert [f for f in files if not any(fnmatch(f, pat) for pat in patterns)] == []
