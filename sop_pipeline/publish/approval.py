"""Executive approval of a published plan version (DESIGN §5, §6; issue #14).

A published version is a *candidate* until executives decide. ``approve_plan`` and
``reject_plan`` append one row to ``plan_decisions`` (never changed afterwards) and derive
the status columns of ``plan_versions`` from that log
(:func:`~sop_pipeline.publish.decision_log.version_statuses`):

- ``approved``: the latest approval of its plan month (at most one per month);
- ``superseded``: approved once, then another version of the month was approved;
- ``rejected``: its latest decision was a rejection;
- ``candidate``: no decision yet.

Rules: only a version that passed the gate (``checks_failed = 0`` and at least one check
evaluated) can be approved; the approved version cannot be rejected (approve another one,
which supersedes it); a chosen what-if scenario must be one of the version's scenarios in
``scenario_comparison``.

The decision changes ``published/sop.duckdb`` the way a publication does
(:mod:`sop_pipeline.publish.writer`): under the run lock of ``SOP_HOME`` and the
publication lock, a copy of the file is made beside it in ``published/.staging-…``, changed,
checkpointed, audited read-only, then renamed over the published file (the commit point).
BI readers see the old file or the new one, never a mix. The Parquet copies of
``plan_versions`` and ``plan_decisions`` of the versions whose rows changed are written
beside theirs and renamed into place just before the swap (restored if the swap fails).
No Dagster import: the ``sop approve`` command and the ``sop_approve`` job call these.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from sop_pipeline.core.months import parse_month
from sop_pipeline.publish import dictionary, published_file, writer
from sop_pipeline.publish.decision_log import (
    STATUS_COLUMNS,
    ApprovalError,
    UnknownPlanError,
    _check_text,
    _resolve,
    version_statuses,
)
from sop_pipeline.publish.tables import PLAN_TABLES, TABLES, conform
from sop_pipeline.storage.runlock import run_lock


@dataclass(frozen=True)
class DecisionResult:
    """One recorded decision.

    Attributes:
        plan_month: ``YYYY-MM``.
        plan_version: the version decided on.
        decision: ``approved`` or ``rejected``.
        decided_by: who decided.
        decided_at: when (UTC, naive).
        superseded_version: the month's previously approved version, now superseded.
        path: the published DuckDB file.
        seconds: wall time, lock waits included.
    """

    plan_month: str
    plan_version: int
    decision: str
    decided_by: str
    decided_at: datetime
    superseded_version: int | None
    path: Path
    seconds: float


def _read_state(db_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """plan_versions, plan_decisions and the scenario names per version of the published file."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {published_file._lit(str(db_path))} AS cur (READ_ONLY)")
        tables = set(
            con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'cur'")
            .fetchnumpy()["table_name"]
            .tolist()
        )
        versions = con.execute("SELECT * FROM cur.main.plan_versions ORDER BY 1, 2").df()
        if "plan_decisions" in tables:
            decisions = con.execute(
                "SELECT * FROM cur.main.plan_decisions ORDER BY decision_id"
            ).df()
        else:  # a file published before approvals existed
            decisions = _empty_decisions()
        scenarios = (
            con.execute(
                "SELECT DISTINCT plan_month, plan_version, scenario "
                "FROM cur.main.scenario_comparison ORDER BY ALL"
            ).df()
            if "scenario_comparison" in tables
            else pd.DataFrame(columns=["plan_month", "plan_version", "scenario"])
        )
    except duckdb.Error as exc:
        raise ApprovalError(
            f"{db_path} cannot be read as a published plan ({str(exc).splitlines()[0]}); "
            "restore it from a backup."
        ) from exc
    finally:
        con.close()
    return versions, decisions, scenarios


def _empty_decisions() -> pd.DataFrame:
    spec = TABLES["plan_decisions"]
    return pd.DataFrame({c: pd.Series(dtype="object") for c in spec.column_names})


def _stage_file(
    stage_dir: Path,
    db_path: Path,
    decision_row: pd.DataFrame,
    statuses: pd.DataFrame,
) -> Path:
    """Copy the published file beside it and record the decision in the copy."""
    stage_db = stage_dir / published_file.DB_NAME
    shutil.copyfile(db_path, stage_db)
    q = published_file._q
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {published_file._lit(str(stage_db))} AS pub")
        con.execute("USE pub")
        existing = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() "
                "WHERE database_name = 'pub' AND table_name = 'plan_versions'"
            ).fetchall()
        }
        types = TABLES["plan_versions"].types
        for col in STATUS_COLUMNS:
            if col not in existing:  # a file published before approvals existed
                con.execute(f"ALTER TABLE plan_versions ADD COLUMN {q(col)} {types[col]}")
        spec = TABLES["plan_decisions"]
        has_decisions = con.execute(
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE database_name = 'pub' AND table_name = 'plan_decisions'"
        ).fetchone()[0]
        if not has_decisions:
            cols = ", ".join(f"{q(c)} {t}" for c, t in spec.columns)
            con.execute(f"CREATE TABLE plan_decisions ({cols})")
            con.execute(
                "COMMENT ON TABLE plan_decisions IS "
                f"{published_file._lit(dictionary.table_description('plan_decisions'))}"
            )
        con.register("new_statuses", statuses)
        sets = ", ".join(f"{q(c)} = s.{q(c)}" for c in STATUS_COLUMNS)
        con.execute(
            f"UPDATE plan_versions SET {sets} FROM new_statuses AS s "
            "WHERE plan_versions.plan_month = s.plan_month "
            "AND plan_versions.plan_version = s.plan_version"
        )
        con.register("new_decision", decision_row)
        con.execute("INSERT INTO plan_decisions BY NAME SELECT * FROM new_decision")
        for name in PLAN_TABLES:
            if con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'pub' "
                "AND table_name = $t",
                {"t": name},
            ).fetchone()[0]:
                published_file.create_approved_view(con, name)
        con.execute("USE memory")
        con.execute("CHECKPOINT pub")
        con.execute("DETACH pub")
    finally:
        con.close()
    published_file._fsync_path(stage_db)
    return stage_db


def _parquet_rel(table: str, plan_month: str, plan_version: int) -> Path:
    return (
        Path(published_file.PARQUET_DIR)
        / table
        / f"plan_month={plan_month}"
        / f"plan_version={plan_version}"
        / "part-0.parquet"
    )


def _stage_parquet(stage_db: Path, stage_dir: Path, changed: list[tuple[str, int]]) -> list[Path]:
    """Parquet files of plan_versions / plan_decisions for the changed versions, staged."""
    rels: list[Path] = []
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {published_file._lit(str(stage_db))} AS pub (READ_ONLY)")
        for month, version in changed:
            for table in ("plan_versions", "plan_decisions"):
                rel = _parquet_rel(table, month, version)
                target = stage_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                order = ", ".join(published_file._q(c) for c in TABLES[table].sort_key)
                con.execute(
                    f"COPY (SELECT * FROM pub.main.{published_file._q(table)} WHERE plan_month = "
                    f"{published_file._lit(month)} AND plan_version = {int(version)} ORDER BY {order}) "
                    f"TO {published_file._lit(str(target))} (FORMAT parquet, COMPRESSION zstd)"
                )
                published_file._fsync_path(target)
                rels.append(rel)
    finally:
        con.close()
    return rels


def _audit(stage_db: Path, plan_month: str, plan_version: int, decision: str, n_before: int):
    con = duckdb.connect()
    problems = []
    try:
        con.execute(f"ATTACH {published_file._lit(str(stage_db))} AS pub (READ_ONLY)")
        tag = con.execute(
            "SELECT tags FROM duckdb_databases() WHERE database_name = 'pub'"
        ).fetchone()[0]
        if not str(tag.get("storage_version", "")).startswith(published_file.STORAGE_VERSION):
            problems.append(f"storage version is {tag.get('storage_version')}")
        n = con.execute("SELECT count(*) FROM pub.main.plan_decisions").fetchone()[0]
        if n != n_before + 1:
            problems.append(f"plan_decisions holds {n} rows, expected {n_before + 1}")
        status = con.execute(
            "SELECT status FROM pub.main.plan_versions WHERE plan_month = $m AND plan_version = $v",
            {"m": plan_month, "v": plan_version},
        ).fetchall()
        if status != [(decision,)]:
            problems.append(f"plan_versions status of v{plan_version} is {status}")
        approved = con.execute(
            "SELECT count(*) FROM pub.main.plan_versions WHERE plan_month = $m "
            "AND status = 'approved'",
            {"m": plan_month},
        ).fetchone()[0]
        if approved > 1:
            problems.append(f"{approved} approved versions of {plan_month}")
        for name in PLAN_TABLES:
            con.execute(f"SELECT count(*) FROM pub.main.{published_file._q(name + '_approved')}")
    except duckdb.Error as exc:
        problems.append(f"cannot read the staged file: {exc}")
    finally:
        con.close()
    if problems:
        raise published_file.AuditError(
            f"audit of the staged decision {stage_db} failed: {'; '.join(problems)}. Nothing "
            "changed; the published plan is as it was."
        )


def _decide(
    settings,
    plan_month: str,
    version: int | None,
    decision: str,
    by: str,
    note: str | None,
    scenario: str | None,
    on_wait: Callable[[str], None] | None,
) -> DecisionResult:
    started = time.monotonic()
    try:
        parse_month(plan_month)
    except ValueError as exc:
        raise UnknownPlanError(str(exc)) from None
    by = _check_text(by, "--by (who decides)", required=True)
    note = _check_text(note, "--note", required=decision == "rejected")
    scenario = _check_text(scenario, "--scenario", required=False)
    published_dir = Path(settings.published_dir)
    db_path = published_dir / published_file.DB_NAME
    if not db_path.exists():
        raise UnknownPlanError(
            f"{db_path} does not exist; nothing has been published yet (run `sop run`)."
        )
    verb = "approve" if decision == "approved" else "reject"
    with (
        run_lock(
            settings.sop_home,
            run=f"sop {verb} {plan_month}",
            month=plan_month,
            timeout=settings.run_lock_timeout,
            on_wait=on_wait,
        ),
        published_file._publish_lock(published_dir),
    ):
        versions, decisions, scenarios = _read_state(db_path)
        statuses = version_statuses(versions, decisions)
        version, superseded = _resolve(
            versions, statuses, scenarios, plan_month, version, decision, scenario
        )
        decided_at = datetime.now(UTC).replace(tzinfo=None)
        next_id = int(decisions["decision_id"].max()) + 1 if len(decisions) else 1
        row = conform(
            "plan_decisions",
            pd.DataFrame(
                {
                    "decision": [decision],
                    "decided_by": [by],
                    "decided_at": [pd.Timestamp(decided_at)],
                    "note": [note],
                    "chosen_scenario": [scenario],
                    "decision_id": [next_id],
                }
            ),
            plan_month,
            version,
        )
        new_statuses = version_statuses(
            versions,
            pd.concat([decisions.astype(object), row.astype(object)], ignore_index=True)
            if len(decisions)
            else row,
        )
        changed = [
            (m, int(v))
            for m, v in zip(new_statuses["plan_month"], new_statuses["plan_version"], strict=True)
            if (m, int(v)) in {(plan_month, version), (plan_month, superseded)}
        ]
        stage_dir = published_dir / f"{published_file.STAGING_PREFIX}{verb}-{uuid.uuid4().hex[:12]}"
        stage_dir.mkdir()
        replaced: list[tuple[Path, Path | None]] = []
        try:
            stage_db = _stage_file(stage_dir, db_path, row, new_statuses)
            rels = _stage_parquet(stage_db, stage_dir, changed)
            _audit(stage_db, plan_month, version, decision, len(decisions))
            backup = stage_dir / "backup"
            for rel in rels:
                target = published_dir / rel
                saved = None
                if target.exists():
                    saved = backup / rel
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(target, saved)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage_dir / rel, target)
                replaced.append((target, saved))
            os.replace(stage_db, db_path)  # the commit point
        except BaseException:
            for target, saved in reversed(replaced):
                if saved is not None:
                    os.replace(saved, target)
                else:
                    target.unlink(missing_ok=True)
            shutil.rmtree(stage_dir, ignore_errors=True)
            raise
        published_file._fsync_path(published_dir)
        shutil.rmtree(stage_dir, ignore_errors=True)
    return DecisionResult(
        plan_month=plan_month,
        plan_version=version,
        decision=decision,
        decided_by=by,
        decided_at=decided_at,
        superseded_version=superseded,
        path=db_path,
        seconds=round(time.monotonic() - started, 3),
    )


def approve_plan(
    settings,
    plan_month: str,
    *,
    by: str,
    version: int | None = None,
    scenario: str | None = None,
    note: str | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> DecisionResult:
    """Approve a published plan version; it becomes the month's official plan.

    Args:
        settings: ``Settings`` (``published_dir``, ``sop_home``, ``run_lock_timeout``).
        plan_month: ``YYYY-MM``.
        by: who approves (recorded).
        version: the version (default: the month's latest published version).
        scenario: the what-if scenario chosen in the meeting (recorded; must be one of the
            version's scenarios in ``scenario_comparison``).
        note: the decision note.
        on_wait: called with a message while another run holds the run lock.

    Returns:
        The recorded decision (and the version it superseded, if any).

    Raises:
        UnknownPlanError: nothing published, unknown month / version / scenario, empty ``by``.
        ApprovalError: the version did not pass the gate, or is already approved.
        RunLockTimeout: another run held the run lock too long.
    """
    return _decide(settings, plan_month, version, "approved", by, note, scenario, on_wait)


def reject_plan(
    settings,
    plan_month: str,
    *,
    version: int,
    by: str,
    note: str,
    on_wait: Callable[[str], None] | None = None,
) -> DecisionResult:
    """Reject a candidate plan version (the note says why; it stays published and kept).

    Raises:
        UnknownPlanError: unknown month / version, empty ``by`` or ``note``.
        ApprovalError: the version is the approved plan or already rejected.
    """
    return _decide(settings, plan_month, version, "rejected", by, note, None, on_wait)


def plan_status(published_dir: Path, plan_month: str, plan_version: int) -> dict[str, object]:
    """Status columns of one published version, and the month's approved version (or None).

    Returns:
        ``status``, ``approved_by``, ``approved_at``, ``decision_note``, ``chosen_scenario``
        of the version, plus ``approved_version`` (the month's approved version number) and
        ``last_approved`` (``(plan_month, plan_version)`` of the latest approved plan of this
        month or, failing that, of the latest earlier month), both None when there is none.
    """
    versions = writer.read_published(published_dir, "plan_versions")
    if "status" not in versions.columns:
        versions = versions.assign(**{c: None for c in STATUS_COLUMNS})
    versions["status"] = versions["status"].fillna("candidate")
    row = versions[
        (versions["plan_month"] == plan_month) & (versions["plan_version"] == int(plan_version))
    ]
    out: dict[str, object] = {c: None for c in STATUS_COLUMNS}
    if len(row):
        out.update({c: row.iloc[0][c] for c in STATUS_COLUMNS})
        out = {
            k: (None if v is pd.NaT or (not isinstance(v, str) and pd.isna(v)) else v)
            for k, v in out.items()
        }
    approved = versions[versions["status"] == "approved"]
    this_month = approved[approved["plan_month"] == plan_month]
    out["approved_version"] = int(this_month["plan_version"].iloc[0]) if len(this_month) else None
    earlier = approved[approved["plan_month"] <= plan_month].sort_values(
        ["plan_month", "plan_version"]
    )
    out["last_approved"] = (
        (str(earlier["plan_month"].iloc[-1]), int(earlier["plan_version"].iloc[-1]))
        if len(earlier)
        else None
    )
    return out


def approved_plan_demand(published_dir: Path, before_month: str) -> pd.DataFrame | None:
    """``plan_demand`` of the approved version of every plan month before ``before_month``.

    Returns None when nothing is published or the file predates approvals.
    """
    try:
        out = writer.read_published(published_dir, "plan_demand_approved")
    except published_file.PublishError:
        return None
    return out[out["plan_month"] < before_month].reset_index(drop=True)


def earlier_plan_snapshots(con, sop_home: str | Path | None, month: str) -> pd.DataFrame:
    """Earlier plans' forecast snapshots, as approved where a month has an approved plan.

    What ``forecast_accuracy`` and the KPI scorecard score (see planning/approved.py).
    """
    from sop_pipeline.planning.approved import prefer_approved
    from sop_pipeline.storage.warehouse import read_plan_history

    snapshots = read_plan_history(con, "forecast_snapshots", month)
    if not sop_home:
        return snapshots
    return prefer_approved(snapshots, approved_plan_demand(Path(sop_home) / "published", month))
