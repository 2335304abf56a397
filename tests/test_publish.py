"""Write-audit-publish: versions kept, all-or-nothing replacement, locked-down BI access."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from factories.plan import publish_candidate, sample_tables

from sop_pipeline.publish import published_file, writer
from sop_pipeline.publish.published_file import AuditError, PublishError, bi_connect
from sop_pipeline.publish.tables import (
    PLAN_TABLES,
    RECORD_TABLES,
    TABLES,
    ConformError,
    conform,
)
from sop_pipeline.publish.writer import read_published


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _without_version(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["plan_version"]).reset_index(drop=True)


def test_versions_are_kept_and_current_view_shows_latest(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    r1 = publish_candidate(pub, run_id="run-1")
    r2 = publish_candidate(pub, run_id="run-2")
    assert (r1.plan_version, r2.plan_version) == (1, 2)
    assert r2.row_counts["plan_demand"] == 6 and r2.row_counts["plan_versions"] == 1

    versions = read_published(pub, "plan_versions")
    assert versions[["plan_month", "plan_version", "run_id"]].values.tolist() == [
        ["2026-01", 1, "run-1"],
        ["2026-01", 2, "run-2"],
    ]
    assert versions["is_backfill"].tolist() == [False, False]
    assert (
        list(versions.columns[: len(TABLES["plan_versions"].columns)])
        == TABLES["plan_versions"].column_names
    )
    assert versions["status"].tolist() == ["candidate", "candidate"]

    all_rows = read_published(pub, "plan_demand")
    assert sorted(all_rows["plan_version"].unique()) == [1, 2]
    current = read_published(pub, "plan_demand_current")
    assert set(current["plan_version"]) == {2}
    v1 = read_published(pub, "plan_demand", "2026-01", 1)
    pd.testing.assert_frame_equal(_without_version(current), _without_version(v1))

    # a later month becomes current; re-publishing an older month (backfill) does not change it
    publish_candidate(pub, month="2026-02", run_id="run-3", tables=sample_tables(scale=2.0))
    publish_candidate(pub, month="2026-01", run_id="run-4", is_backfill=True)
    current = read_published(pub, "plan_capacity_current")
    assert set(current["plan_month"]) == {"2026-02"} and current["required_hours"].iloc[0] == 160.0
    latest = read_published(pub, "plan_capacity_latest_versions")
    assert sorted(set(zip(latest["plan_month"], latest["plan_version"], strict=True))) == [
        ("2026-01", 3),
        ("2026-02", 1),
    ]
    parquet = duckdb.sql(
        f"SELECT plan_month, plan_version, count(*) AS n FROM read_parquet('{pub}/parquet/plan_demand/*/*/*.parquet', "
        f"hive_partitioning=true) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert parquet == [("2026-01", 1, 6), ("2026-01", 2, 6), ("2026-01", 3, 6), ("2026-02", 1, 6)]


def test_same_inputs_give_identical_contents_whatever_the_row_order(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    tables = sample_tables()
    shuffled = {k: v.sample(frac=1.0, random_state=7) for k, v in tables.items()}
    publish_candidate(pub, run_id="a", tables=tables)
    publish_candidate(pub, run_id="b", tables=shuffled)
    for name in PLAN_TABLES:
        v1 = read_published(pub, name, "2026-01", 1)
        v2 = read_published(pub, name, "2026-01", 2)
        pd.testing.assert_frame_equal(_without_version(v1), _without_version(v2))


@pytest.mark.parametrize("where", ["audit", "swap"])
def test_failure_before_the_swap_leaves_published_files_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub, run_id="run-1")
    before = _hash_tree(pub)

    if where == "audit":

        def broken_audit(*args, **kwargs):
            raise AuditError("injected audit failure")

        monkeypatch.setattr(writer, "_audit", broken_audit)
        expected = AuditError
    else:

        def broken_replace(src, dst):
            raise OSError("injected rename failure")

        monkeypatch.setattr(writer.os, "replace", broken_replace)
        expected = OSError
    with pytest.raises(expected, match="injected"):
        publish_candidate(pub, run_id="run-2", tables=sample_tables(scale=3.0))

    assert _hash_tree(pub) == before
    assert not list(pub.glob(".staging-*"))
    assert not list(pub.glob("parquet/*/plan_month=2026-01/plan_version=2"))
    monkeypatch.undo()
    assert publish_candidate(pub, run_id="run-3").plan_version == 2


def test_audit_catches_rows_missing_from_the_staged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub, run_id="run-1")
    before = _hash_tree(pub)
    real_build = writer._build

    def lying_build(stage_db, old_db, frames):
        counts = real_build(stage_db, old_db, frames)
        new, total = counts["plan_gaps"]
        counts["plan_gaps"] = (new + 1, total + 1)  # claims a row the file does not hold
        return counts

    monkeypatch.setattr(writer, "_build", lying_build)
    with pytest.raises(AuditError, match="plan_gaps: 6 rows of version 2"):
        publish_candidate(pub, run_id="run-2")
    assert _hash_tree(pub) == before


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from factories.plan import publish_candidate, sample_tables
    from sop_pipeline.publish import published_file, writer

    def hold(stage_dir):
        print("BUILT", stage_dir, flush=True)
        time.sleep(120)

    writer._before_swap = hold
    publish_candidate(Path({pub!r}), run_id="killed-run", tables=sample_tables(scale=5.0))
    """
)


def test_sigkill_between_build_and_swap_keeps_previous_version(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub, run_id="run-1")
    before = {k: v for k, v in _hash_tree(pub).items()}
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), pub=str(pub))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("BUILT"), line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert (pub / ".staging-killed-run" / "sop.duckdb").exists()  # it was killed mid-publication
    after = _hash_tree(pub)
    assert {k: v for k, v in after.items() if not k.startswith(".staging-")} == before
    assert read_published(pub, "plan_versions")["plan_version"].tolist() == [1]

    result = publish_candidate(pub, run_id="run-2")
    assert result.plan_version == 2
    assert not list(pub.glob(".staging-*"))
    assert read_published(pub, "plan_versions")["run_id"].tolist() == ["run-1", "run-2"]


def test_orphan_parquet_of_an_unpublished_version_is_removed(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub, run_id="run-1")
    # a run killed after renaming Parquet but before the DuckDB swap leaves version 2 folders
    orphan = pub / "parquet" / "plan_gaps" / "plan_month=2026-01" / "plan_version=2"
    orphan.mkdir(parents=True)
    (orphan / "part-0.parquet").write_bytes(b"half-published")
    publish_candidate(pub, run_id="run-2")
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{orphan}/part-0.parquet')").fetchone()[0]
    assert rows == 6


_READER_SCRIPT = textwrap.dedent(
    """
    import duckdb, sys
    con = duckdb.connect(sys.argv[1], read_only=True)
    print(con.execute("SELECT max(plan_version) FROM plan_versions").fetchone()[0])
    """
)


def test_open_reader_keeps_old_view_and_new_reader_sees_new_version(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub, run_id="run-1")
    db = pub / "sop.duckdb"
    inode_before = db.stat().st_ino
    reader = bi_connect(db)
    try:
        assert reader.execute("SELECT max(plan_version) FROM plan_versions").fetchone()[0] == 1
        publish_candidate(
            pub, run_id="run-2", tables=sample_tables(scale=2.0)
        )  # must not be blocked by the reader
        assert db.stat().st_ino != inode_before  # a new file was renamed over the old one
        # the open reader still sees the complete old publication, consistently
        assert reader.execute("SELECT max(plan_version) FROM plan_versions").fetchone()[0] == 1
        assert (
            reader.execute("SELECT sum(required_hours) FROM plan_capacity_current").fetchone()[0]
            == 240.0
        )
        # a new process opening the path sees the new version
        out = subprocess.run(
            [sys.executable, "-c", _READER_SCRIPT, str(db)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "2"
        assert read_published(pub, "plan_capacity_current")["required_hours"].sum() == 480.0
    finally:
        reader.close()


def test_every_published_table_has_its_stable_columns_and_types(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub)
    con = bi_connect(pub / "sop.duckdb")
    try:
        for name, spec in TABLES.items():
            described = con.execute(f'DESCRIBE "{name}"').fetchall()
            got = [(row[0], row[1]) for row in described]
            assert got[: len(spec.columns)] == list(spec.columns), name
            view = (
                con.execute(f'DESCRIBE "{name}_current"').fetchall()
                if name not in RECORD_TABLES
                else described
            )
            assert [row[0] for row in view] == [row[0] for row in described]
        extras = [r[0] for r in con.execute('DESCRIBE "kpi_scorecard"').fetchall()][8:]
        assert extras == ["unit"]
    finally:
        con.close()
    for name in TABLES:
        file = pub / "parquet" / name / "plan_month=2026-01" / "plan_version=1" / "part-0.parquet"
        cols = [
            r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{file}')").fetchall()
        ]
        assert cols[: len(TABLES[name].columns)] == TABLES[name].column_names


def test_published_file_uses_a_storage_version_old_clients_read(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub)
    header = (pub / "sop.duckdb").read_bytes()[:20]
    assert header[8:12] == b"DUCK"
    assert struct.unpack("<Q", header[12:20])[0] == 64  # storage format of DuckDB 1.0 / 1.1


def test_bi_connection_is_read_only_without_file_access(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub)
    con = bi_connect(pub / "sop.duckdb")
    try:
        assert con.execute("SELECT count(*) FROM plan_demand_current").fetchone()[0] == 6
        with pytest.raises(duckdb.Error, match="disabled by configuration"):
            con.execute("SELECT * FROM read_csv('/etc/passwd')").fetchall()
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE stolen AS SELECT 1 AS x")
        with pytest.raises(duckdb.Error):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            con.execute(f"COPY (SELECT 1) TO '{tmp_path / 'leak.csv'}'")
    finally:
        con.close()
    assert not (tmp_path / "leak.csv").exists()


def test_concurrent_publishers_never_interleave(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            publish_candidate(pub, run_id=f"t{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert read_published(pub, "plan_versions")["plan_version"].tolist() == [1, 2, 3]


def test_extra_files_are_published_with_the_version(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub, extra_files={"report.html": b"<html>pack</html>"})
    assert (
        pub / "files" / "plan_month=2026-01" / "plan_version=1" / "report.html"
    ).read_bytes() == b"<html>pack</html>"
    with pytest.raises(PublishError, match="plain file name"):
        publish_candidate(pub, run_id="run-2", extra_files={"../evil": b"x"})


def test_unknown_table_and_missing_columns_are_refused_clearly(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    with pytest.raises(PublishError, match=r"unknown published table.*plan_demnad"):
        publish_candidate(pub, tables={"plan_demnad": pd.DataFrame()})
    broken = sample_tables()
    broken["plan_gaps"] = broken["plan_gaps"].drop(columns=["gap_qty", "gap_value"])
    with pytest.raises(ConformError, match=r"plan_gaps: missing stable column.*gap_qty, gap_value"):
        publish_candidate(pub, tables=broken)
    assert not (pub / "sop.duckdb").exists()


def test_conform_orders_columns_casts_types_and_keeps_extras() -> None:
    df = sample_tables()["plan_capacity"][
        [
            "utilization",
            "month",
            "work_center_id",
            "available_hours",
            "required_hours",
            "planned_hours",
        ]
    ].assign(note="x", available_hours=[100, 90, 80])
    out = conform("plan_capacity", df, "2026-01", 3)
    assert list(out.columns) == [*TABLES["plan_capacity"].column_names, "note"]
    assert out["plan_version"].tolist() == [3, 3, 3]
    assert str(out["available_hours"].dtype) == "float64"
    with pytest.raises(ConformError, match=r"plan_month.*2026-01"):
        conform("plan_capacity", df.assign(plan_month="2025-12"), "2026-01", 1)


# --------------------------------------------------------------------------------------
# a full disk, a read-only or unwritable published/ folder
# --------------------------------------------------------------------------------------


@contextmanager
def _mounted(target: Path, *mount_args: str, then: tuple[str, ...] = ()) -> Iterator[None]:
    """``mount <mount_args> <target>`` (and ``mount <then> <target>``), unmounted afterwards.

    Skips the test where mounting is not possible (not root, no mount namespace).
    """
    try:
        subprocess.run(["mount", *mount_args, str(target)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount here ({exc}); the simulated variant covers the code")
    try:
        if then:
            subprocess.run(["mount", *then, str(target)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(target)], check=False, capture_output=True)
    assert not os.path.ismount(target), f"{target} is still mounted"


def _assert_clean_failure(pub: Path, before: dict[str, str]) -> None:
    assert _hash_tree(pub) == before
    assert not list(pub.glob(".staging-*"))
    assert read_published(pub, "plan_versions")["plan_version"].tolist() == [1]


def test_full_disk_fails_cleanly_and_the_next_publication_succeeds(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    pub.mkdir()
    with _mounted(pub, "-t", "tmpfs", "-o", "size=16m", "tmpfs"):
        publish_candidate(pub, run_id="run-1")
        before = _hash_tree(pub)
        free = os.statvfs(pub).f_bavail * os.statvfs(pub).f_frsize
        filler = pub / "filler"
        with filler.open("wb") as fh:  # leave 64 KB: far less than a new sop.duckdb
            fh.write(b"\0" * (free - 64 * 1024))
        before["filler"] = hashlib.sha256(filler.read_bytes()).hexdigest()
        with pytest.raises(published_file.PublishDiskFullError) as caught:
            publish_candidate(pub, run_id="run-2")
        _assert_clean_failure(pub, before)
        text = str(caught.value)
        assert "no space left on device" in text and str(pub) in text
        assert (
            "Free space on the disk holding" in text and "previous publication is unchanged" in text
        )
        assert "sop run --month 2026-01" in text

        filler.unlink()  # space freed: the same publication goes through
        assert publish_candidate(pub, run_id="run-3").plan_version == 2


def test_read_only_published_folder_fails_cleanly(tmp_path: Path) -> None:
    pub = tmp_path / "published"
    publish_candidate(pub, run_id="run-1")
    before = _hash_tree(pub)
    with _mounted(pub, "--bind", str(pub), then=("-o", "remount,ro,bind")):
        with pytest.raises(published_file.PublishNotWritableError) as caught:
            publish_candidate(pub, run_id="run-2")
        _assert_clean_failure(pub, before)
        # BI keeps reading the previous publication from the read-only folder
        con = bi_connect(pub / "sop.duckdb")
        try:
            assert con.execute("SELECT count(*) FROM plan_demand_current").fetchone()[0] == 6
        finally:
            con.close()
    text = str(caught.value)
    assert "read-only file system" in text and str(pub) in text
    assert "make it writable for the user running the pipeline" in text
    assert publish_candidate(pub, run_id="run-3").plan_version == 2


def _failing(real, code: int, when: Callable[[tuple], bool]):
    def fake(*args, **kwargs):
        if when(args):
            raise OSError(code, os.strerror(code), str(args[0]))
        return real(*args, **kwargs)

    return fake


@pytest.mark.parametrize(
    ("call", "code", "expected", "says"),
    [
        # the lock file cannot be created: a folder the pipeline's user may not write
        ("open", errno.EACCES, published_file.PublishNotWritableError, "permission denied"),
        # the Parquet folders cannot be moved into place on a read-only mount
        ("rename", errno.EROFS, published_file.PublishNotWritableError, "read-only file system"),
        # the commit itself: the disk is full (or over quota) at the last moment
        ("replace", errno.ENOSPC, published_file.PublishDiskFullError, "no space left on device"),
        ("replace", errno.EDQUOT, published_file.PublishDiskFullError, "disk quota exceeded"),
    ],
)
def test_os_errors_of_the_disk_fail_cleanly_with_path_and_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    call: str,
    code: int,
    expected: type[Exception],
    says: str,
) -> None:
    """The same faults simulated at the OS-call level (where mounting is not possible)."""
    pub = tmp_path / "published"
    publish_candidate(pub, run_id="run-1")
    before = _hash_tree(pub)
    if call == "open":
        when = lambda args: str(args[0]).endswith(published_file.LOCK_NAME)  # noqa: E731
    else:
        when = lambda args: True  # noqa: E731
    monkeypatch.setattr(writer.os, call, _failing(getattr(os, call), code, when))
    with pytest.raises(expected) as caught:
        publish_candidate(pub, run_id="run-2", tables=sample_tables(scale=2.0))
    monkeypatch.undo()
    _assert_clean_failure(pub, before)
    assert not list(pub.glob("parquet/*/plan_month=2026-01/plan_version=2"))
    text = str(caught.value)
    assert says in text and str(pub) in text and "previous publication is unchanged" in text
    assert ("Free space" in text) == (expected is published_file.PublishDiskFullError)
    assert publish_candidate(pub, run_id="run-3").plan_version == 2
