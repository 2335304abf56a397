"""Executive approval: rules, the decisions log, `_approved` views, locks and BI readers."""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from factories.plan import SCENARIOS, publish_sample, sample_settings

from sop_pipeline.cli import commands as cli
from sop_pipeline.publish import dictionary, published_file, writer
from sop_pipeline.publish.approval import approve_plan, reject_plan
from sop_pipeline.publish.decision_log import ApprovalError, UnknownPlanError, version_statuses
from sop_pipeline.publish.tables import PLAN_TABLES, TABLES
from sop_pipeline.publish.writer import read_published
from sop_pipeline.storage.runlock import RunLockTimeout, run_lock


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _statuses(settings) -> dict[int, str]:
    v = read_published(settings.published_dir, "plan_versions", "2026-01")
    return dict(zip(v["plan_version"].astype(int), v["status"], strict=True))


@pytest.fixture
def two_versions(tmp_path: Path):
    settings = sample_settings(tmp_path / "home")
    publish_sample(settings, run_id="run-1")
    publish_sample(settings, run_id="run-2", scale=1.5)
    return settings


def test_approve_records_who_when_and_the_approved_views_follow(two_versions) -> None:
    s = two_versions
    assert _statuses(s) == {1: "candidate", 2: "candidate"}
    # nothing approved yet: the official views are empty, the current ones show v2
    assert read_published(s.published_dir, "plan_demand_approved").empty
    result = approve_plan(
        s, "2026-01", version=1, by="COO", scenario=SCENARIOS[0], note="go with v1"
    )
    assert (result.plan_version, result.decision, result.superseded_version) == (
        1,
        "approved",
        None,
    )

    v = read_published(s.published_dir, "plan_versions", "2026-01", 1).iloc[0]
    assert (v["status"], v["approved_by"], v["decision_note"], v["chosen_scenario"]) == (
        "approved",
        "COO",
        "go with v1",
        SCENARIOS[0],
    )
    assert (
        abs((pd.Timestamp(v["approved_at"]) - pd.Timestamp(result.decided_at)).total_seconds()) < 1
    )
    for table in PLAN_TABLES:
        approved = read_published(s.published_dir, f"{table}_approved")
        assert set(approved["plan_version"]) <= {1}, table
    demand = read_published(s.published_dir, "plan_demand_approved")
    assert len(demand) == len(read_published(s.published_dir, "plan_demand", "2026-01", 1))
    assert set(read_published(s.published_dir, "plan_demand_current")["plan_version"]) == {2}
    decisions = read_published(s.published_dir, "plan_decisions")
    assert decisions[["plan_version", "decision", "decided_by", "decision_id"]].values.tolist() == [
        [1, "approved", "COO", 1]
    ]


def test_approving_another_version_supersedes_and_the_log_only_grows(two_versions) -> None:
    s = two_versions
    approve_plan(s, "2026-01", version=1, by="COO")
    first = read_published(s.published_dir, "plan_decisions")
    result = approve_plan(s, "2026-01", by="CEO", note="the re-plan")  # default: latest version
    assert (result.plan_version, result.superseded_version) == (2, 1)
    assert _statuses(s) == {1: "superseded", 2: "approved"}
    v1 = read_published(s.published_dir, "plan_versions", "2026-01", 1).iloc[0]
    assert v1["approved_by"] == "COO"  # who approved it is kept when superseded
    assert set(read_published(s.published_dir, "plan_capacity_approved")["plan_version"]) == {2}
    log = read_published(s.published_dir, "plan_decisions")
    assert log["decision_id"].tolist() == [1, 2]
    pd.testing.assert_frame_equal(log.iloc[:1].reset_index(drop=True), first)  # row 1 untouched
    # re-approving the approved version is refused, and changes nothing
    before = _hash_tree(s.published_dir)
    with pytest.raises(ApprovalError, match="already the approved plan"):
        approve_plan(s, "2026-01", version=2, by="CEO")
    assert _hash_tree(s.published_dir) == before


def test_a_version_that_did_not_pass_the_gate_cannot_be_approved(tmp_path: Path) -> None:
    s = sample_settings(tmp_path / "home")
    publish_sample(s, run_id="ungated", checks_failed=2)
    before = _hash_tree(s.published_dir)
    with pytest.raises(ApprovalError, match="did not pass the gate") as info:
        approve_plan(s, "2026-01", version=1, by="COO")
    assert info.value.exit_code == 1 and "sop run --month 2026-01" in str(info.value)
    assert _hash_tree(s.published_dir) == before
    assert read_published(s.published_dir, "plan_decisions").empty


def test_reject_rules(two_versions) -> None:
    s = two_versions
    with pytest.raises(UnknownPlanError, match="--note"):
        reject_plan(s, "2026-01", version=2, by="CFO", note="  ")
    reject_plan(s, "2026-01", version=2, by="CFO", note="margin too thin")
    assert _statuses(s) == {1: "candidate", 2: "rejected"}
    v2 = read_published(s.published_dir, "plan_versions", "2026-01", 2).iloc[0]
    assert v2["decision_note"] == "margin too thin" and pd.isna(v2["approved_by"])
    with pytest.raises(ApprovalError, match="already rejected"):
        reject_plan(s, "2026-01", version=2, by="CFO", note="again")
    approve_plan(s, "2026-01", version=1, by="CEO")
    with pytest.raises(ApprovalError, match="approve another version"):
        reject_plan(s, "2026-01", version=1, by="CFO", note="changed my mind")
    # a rejected version can still be approved later (the log keeps both decisions)
    approve_plan(s, "2026-01", version=2, by="CEO", note="after the price change")
    assert _statuses(s) == {1: "superseded", 2: "approved"}
    log = read_published(s.published_dir, "plan_decisions").sort_values("decision_id")
    assert log["decision"].tolist() == ["rejected", "approved", "approved"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"plan_month": "2025-12"}, "2025-12 is not published"),
        ({"version": 7}, "no version 7 \\(published versions: 1, 2\\)"),
        ({"scenario": "moon_landing"}, "scenario 'moon_landing' is not in scenario_comparison"),
        ({"by": " "}, "--by"),
    ],
)
def test_unknown_month_version_or_scenario_is_a_usage_error(two_versions, kwargs, message) -> None:
    args = {"plan_month": "2026-01", "version": 1, "by": "COO", **kwargs}
    month = args.pop("plan_month")
    with pytest.raises(UnknownPlanError, match=message) as info:
        approve_plan(two_versions, month, **args)
    assert info.value.exit_code == 2


def test_a_new_publication_keeps_the_decisions(two_versions) -> None:
    s = two_versions
    approve_plan(s, "2026-01", version=1, by="COO")
    reject_plan(s, "2026-01", version=2, by="COO", note="no")
    publish_sample(s, run_id="run-3", scale=2.0)
    publish_sample(s, "2026-02", run_id="run-4")
    assert _statuses(s) == {1: "approved", 2: "rejected", 3: "candidate"}
    assert len(read_published(s.published_dir, "plan_decisions")) == 2
    approved = read_published(s.published_dir, "plan_demand_approved")
    assert set(zip(approved["plan_month"], approved["plan_version"], strict=True)) == {
        ("2026-01", 1)
    }
    current = read_published(s.published_dir, "plan_demand_current")
    assert set(zip(current["plan_month"], current["plan_version"], strict=True)) == {("2026-02", 1)}
    # the Parquet copy agrees with the DuckDB file
    parquet = duckdb.sql(
        f"SELECT plan_version, status FROM read_parquet('{s.published_dir}/parquet/plan_versions/"
        "plan_month=2026-01/*/*.parquet', hive_partitioning=false) ORDER BY 1"
    ).fetchall()
    assert parquet == [(1, "approved"), (2, "rejected"), (3, "candidate")]
    decisions = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{s.published_dir}/parquet/plan_decisions/*/*/*.parquet')"
    ).fetchone()[0]
    assert decisions == 2


def test_the_file_keeps_its_storage_version_and_descriptions(two_versions) -> None:
    s = two_versions
    approve_plan(s, "2026-01", version=1, by="COO")
    header = (s.published_dir / "sop.duckdb").read_bytes()[:20]
    assert header[8:12] == b"DUCK" and struct.unpack("<Q", header[12:20])[0] == 64
    con = published_file.bi_connect(s.published_dir / "sop.duckdb")
    try:
        comment = con.execute(
            "SELECT comment FROM duckdb_tables() WHERE table_name = 'plan_decisions'"
        ).fetchone()[0]
        assert comment == dictionary.table_description("plan_decisions")
        cols = [r[0] for r in con.execute("DESCRIBE plan_versions").fetchall()]
        assert cols[: len(TABLES["plan_versions"].columns)] == TABLES["plan_versions"].column_names
    finally:
        con.close()
    assert not list(s.published_dir.glob(".staging-*"))


def test_version_statuses_replays_the_log() -> None:
    versions = pd.DataFrame({"plan_month": ["M"] * 3, "plan_version": [1, 2, 3]})
    log = pd.DataFrame(
        {
            "plan_month": ["M"] * 4,
            "plan_version": [1, 2, 3, 1],
            "decision": ["approved", "rejected", "approved", "approved"],
            "decided_by": ["a", "b", "c", "d"],
            "decided_at": pd.to_datetime(["2026-01-01"] * 4),
            "note": [None, "why", None, "back to v1"],
            "chosen_scenario": [None] * 4,
            "decision_id": [1, 2, 3, 4],
        }
    )
    out = version_statuses(versions, log.sample(frac=1.0, random_state=3))
    assert out["status"].tolist() == ["approved", "rejected", "superseded"]
    assert (
        out["approved_by"].tolist()[0] == "d" and out["decision_note"].tolist()[0] == "back to v1"
    )


def test_approve_waits_for_a_run_holding_the_run_lock(two_versions) -> None:
    s = two_versions
    held, release = threading.Event(), threading.Event()

    def sop_run() -> None:
        with run_lock(s.sop_home, run="sop run 2026-02", month="2026-02", timeout=5):
            held.set()
            release.wait(10)

    runner = threading.Thread(target=sop_run)
    runner.start()
    held.wait(5)
    waits: list[str] = []
    done: list[object] = []
    approver = threading.Thread(
        target=lambda: done.append(approve_plan(s, "2026-01", by="COO", on_wait=waits.append))
    )
    approver.start()
    time.sleep(0.8)
    assert not done and waits and "sop run 2026-02" in waits[0]  # waiting, nothing written
    assert _statuses(s)[2] == "candidate"
    release.set()
    runner.join(10)
    approver.join(20)
    assert done and _statuses(s)[2] == "approved"


def test_approve_gives_up_after_the_run_lock_timeout(two_versions, tmp_path: Path) -> None:
    import dataclasses

    s = dataclasses.replace(two_versions, run_lock_timeout=0.3)
    held, release = threading.Event(), threading.Event()

    def sop_run() -> None:
        with run_lock(s.sop_home, run="sop run 2026-02", month="2026-02", timeout=5):
            held.set()
            release.wait(10)

    t = threading.Thread(target=sop_run)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(RunLockTimeout, match="did not start"):
            approve_plan(s, "2026-01", by="COO")
    finally:
        release.set()
        t.join(10)
    assert _statuses(s) == {1: "candidate", 2: "candidate"}


def test_approve_and_publish_at_the_same_time_both_land(two_versions, monkeypatch) -> None:
    s = two_versions
    in_swap, go_on = threading.Event(), threading.Event()

    def pause(stage_dir: Path) -> None:
        in_swap.set()
        go_on.wait(10)

    monkeypatch.setattr(writer, "_before_swap", pause)
    publisher = threading.Thread(target=lambda: publish_sample(s, run_id="run-3", scale=3.0))
    publisher.start()
    in_swap.wait(10)  # the publisher holds the publication lock, its new file is staged
    done: list[object] = []
    approver = threading.Thread(
        target=lambda: done.append(approve_plan(s, "2026-01", version=1, by="COO"))
    )
    approver.start()
    time.sleep(0.8)
    assert not done  # the approval waits for the publication instead of interleaving
    go_on.set()
    publisher.join(20)
    approver.join(20)
    assert done
    # neither lost the other's change: v3 is published, v1 approved
    assert _statuses(s) == {1: "approved", 2: "candidate", 3: "candidate"}
    assert len(read_published(s.published_dir, "plan_decisions")) == 1


def test_a_bi_reader_sees_the_old_plan_or_the_new_one(two_versions) -> None:
    s = two_versions
    db = s.published_dir / "sop.duckdb"
    held_open = published_file.bi_connect(db)  # a BI tool that keeps its connection
    seen: set[tuple[int, int]] = set()
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                con = duckdb.connect()
                con.execute(f"ATTACH '{db}' AS pub (READ_ONLY)")
                seen.add(
                    con.execute(
                        "SELECT (SELECT count(*) FROM pub.plan_versions WHERE status = 'approved'),"
                        " (SELECT count(*) FROM pub.plan_demand_approved)"
                    ).fetchone()
                )
                con.close()
            except duckdb.Error as exc:  # pragma: no cover - would be the failure
                errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        time.sleep(0.2)
        approve_plan(s, "2026-01", version=2, by="COO")
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(10)
    n_rows = len(read_published(s.published_dir, "plan_demand", "2026-01", 2))
    assert not errors
    assert seen <= {(0, 0), (1, n_rows)} and (1, n_rows) in seen
    # the connection opened before the approval still reads the old, complete file
    assert held_open.execute("SELECT count(*) FROM plan_demand_approved").fetchone()[0] == 0
    held_open.close()


def test_cli_approve_and_reject_exit_codes(two_versions, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SOP_HOME", str(two_versions.sop_home))
    assert cli.main(["approve", "--month", "2026-01", "--version", "1", "--by", "COO"]) == 0
    out = capsys.readouterr().out
    assert "Plan 2026-01 v1 approved by COO" in out
    # the packs show the new status: v1's, and the latest version's comparison with it
    pack = two_versions.reports_dir / "2026-01" / "sop_pack_2026-01_v1.html"
    assert "Approved by <b>COO</b>" in pack.read_text(encoding="utf-8")
    index = (two_versions.reports_dir / "2026-01" / "index.html").read_text(encoding="utf-8")
    assert "Change against the last approved plan: 2026-01 v1" in index
    assert cli.main(["approve", "--month", "2026-03", "--by", "COO"]) == 2
    err = capsys.readouterr().err
    assert "2026-03 is not published" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2
    assert (
        cli.main(["reject", "--month", "2026-01", "--version", "1", "--by", "x", "--note", "n"])
        == 1
    )
    assert "approve another version" in capsys.readouterr().err
    assert (
        cli.main(["reject", "--month", "2026-01", "--version", "2", "--by", "CFO", "--note", "no"])
        == 0
    )
    assert _statuses(two_versions) == {1: "approved", 2: "rejected"}


def test_the_sop_approve_job_records_the_decision(two_versions) -> None:
    from sop_pipeline.core.settings import Settings
    from sop_pipeline.definitions import build_definitions
    from sop_pipeline.defs.resources import SopResource

    settings = Settings.from_env({"SOP_HOME": str(two_versions.sop_home)})
    job = build_definitions(settings).get_job_def("sop_approve")
    config = {"month": "2026-01", "by": "COO", "version": 2, "note": "launchpad"}
    result = job.execute_in_process(
        run_config={"ops": {"decide_plan": {"config": config}}},
        resources={"sop": SopResource(sop_home=str(two_versions.sop_home))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    assert _statuses(two_versions) == {1: "candidate", 2: "approved"}
    bad = job.execute_in_process(
        run_config={"ops": {"decide_plan": {"config": {**config, "version": 9}}}},
        resources={"sop": SopResource(sop_home=str(two_versions.sop_home))},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not bad.success


def test_the_pack_shows_the_status_and_what_a_candidate_changes(two_versions) -> None:
    from sop_pipeline.report.approval_section import change_vs_approved
    from sop_pipeline.report.pack import build_pack, load_pack_data

    s = two_versions
    html = build_pack(load_pack_data(s.published_dir, "2026-01", 1))
    assert "Candidate: awaiting the executives' decision" in html
    assert "No approved plan to compare with yet" in html
    approve_plan(s, "2026-01", version=1, by="COO", scenario=SCENARIOS[1], note="base case")
    html = build_pack(load_pack_data(s.published_dir, "2026-01", 1))
    assert "Approved by <b>COO</b>" in html and SCENARIOS[1] in html and "base case" in html
    # v2 (demand × 1.5) is the candidate: it shows its change against the approved v1
    data = load_pack_data(s.published_dir, "2026-01", 2)
    assert (data.approved.plan_month, data.approved.plan_version) == ("2026-01", 1)
    change = change_vs_approved(data.table("plan_demand"), data.approved)
    v1 = read_published(s.published_dir, "plan_demand", "2026-01", 1)
    expected = v1.groupby("family")["consensus_qty"].sum() * 0.5
    assert change.set_index("family")["delta_qty"].to_dict() == pytest.approx(expected.to_dict())
    assert change["delta_revenue"].sum() == pytest.approx(v1["consensus_revenue"].sum() * 0.5)
    html = build_pack(data)
    assert "Change against the last approved plan: 2026-01 v1 (approved by COO)" in html


def test_accuracy_scores_the_approved_plan_of_a_month_when_there_is_one(two_versions) -> None:
    from sop_pipeline.planning.approved import prefer_approved
    from sop_pipeline.publish.approval import approved_plan_demand

    s = two_versions
    publish_sample(s, "2026-02", run_id="feb")
    # the working database's snapshot of 2026-01 is its latest run (v2, demand × 1.5)
    v2 = read_published(s.published_dir, "plan_demand", "2026-01", 2)
    feb = read_published(s.published_dir, "plan_demand", "2026-02", 1)
    snaps = pd.concat([v2, feb]).rename(columns={"stat_forecast_qty": "stat_qty"})
    snaps = snaps[
        ["plan_month", "item_id", "location_id", "family", "month", "stat_qty", "consensus_qty"]
    ]
    snaps["naive_qty"] = 1.0
    assert approved_plan_demand(s.published_dir, "2026-03").empty  # nothing approved yet
    approve_plan(s, "2026-01", version=1, by="COO")
    approved = approved_plan_demand(s.published_dir, "2026-03")
    assert set(zip(approved["plan_month"], approved["plan_version"], strict=True)) == {
        ("2026-01", 1)
    }
    out = prefer_approved(snaps.reset_index(drop=True), approved)
    assert out.attrs["approved_months"] == ["2026-01"]
    v1 = read_published(s.published_dir, "plan_demand", "2026-01", 1)
    jan = out[out["plan_month"] == "2026-01"]
    assert jan["consensus_qty"].sum() == pytest.approx(v1["consensus_qty"].sum())  # approved v1
    assert jan["stat_qty"].sum() == pytest.approx(v1["stat_forecast_qty"].sum())
    assert (jan["naive_qty"] == 1.0).all()  # the naive benchmark does not depend on a version
    # a month without an approved plan keeps its latest run; rows and columns are unchanged
    pd.testing.assert_frame_equal(
        out[out["plan_month"] == "2026-02"].reset_index(drop=True),
        snaps[snaps["plan_month"] == "2026-02"].reset_index(drop=True),
    )
    assert list(out.columns) == list(snaps.columns) and len(out) == len(snaps)
    # only earlier plan months count for the plan being made
    assert approved_plan_demand(s.published_dir, "2026-01").empty


def test_sop_status_shows_the_approved_version_of_each_month(two_versions) -> None:
    from sop_pipeline.runtime.summary import status

    approve_plan(two_versions, "2026-01", version=1, by="COO")
    lines = status(two_versions)
    month_line = next(line for line in lines if line.strip().startswith("2026-01 v2"))
    assert month_line.endswith("(approved v1)")
