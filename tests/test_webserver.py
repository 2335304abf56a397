"""The Dagster UI path: a real webserver and daemon, the asset graph over GraphQL, one launched run.

What a user does with `make dev`: open the UI, see the graph by stage with its checks, pick
partition 2026-06 of `sop_monthly` and launch it. The run goes through the run queue (the
daemon dequeues it) into a subprocess that must find SOP_HOME, and publishes the plan.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import requests

from sop_pipeline.core.settings import Settings
from sop_pipeline.defs.orchestration.schedules import SCHEDULE_NAME, SENSOR_NAME
from sop_pipeline.generator.company import generate_company
from sop_pipeline.runtime.runner import write_dagster_yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MONTH = "2026-06"
STARTUP_TIMEOUT = 180
RUN_TIMEOUT = 600
STAGES = {"ingest", "clean", "demand", "supply", "finance", "gate", "publish"}
GATE_CHECKS = {"plan_consistency", "gx_plan_demand", "gx_plan_supply", "gx_kpi_scorecard"}


@dataclass
class Server:
    port: int
    settings: Settings
    log_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} (tail) ---\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen) -> None:
    """Stop the process group we started (webserver + code server + run workers)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from sop_pipeline.defs.clean.project import ensure_manifest

    ensure_manifest()
    home = tmp_path_factory.mktemp("sop_home")
    log_dir = tmp_path_factory.mktemp("logs")
    settings = Settings.from_env({"SOP_HOME": str(home), "SOP_HORIZON_MONTHS": "12"})
    settings.ensure_dirs()
    generate_company(settings.landing_dir, items=30, months=30, seed=3, end=MONTH)
    write_dagster_yaml(settings.dagster_home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOP_", "DAGSTER_"))}
    env.update(
        SOP_HOME=str(home),
        SOP_HORIZON_MONTHS="12",
        DAGSTER_HOME=str(settings.dagster_home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    port = _free_port()
    procs = []
    srv = Server(port, settings, log_dir)
    try:
        procs.append(
            _start(
                [
                    str(BIN / "dagster-webserver"),
                    *("-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"),
                ],
                env,
                log_dir / "webserver.log",
            )
        )
        # runs launched from the UI wait in the run queue until the daemon starts them
        procs.append(
            _start(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                env,
                log_dir / "daemon.log",
            )
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            for proc in procs:
                assert proc.poll() is None, f"a Dagster process exited early\n{srv.logs()}"
            try:
                if requests.get(f"{srv.url}/server_info", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (
                f"webserver not up in {STARTUP_TIMEOUT}s\n{srv.logs()}"
            )
            time.sleep(1)
        yield srv
    finally:
        for proc in procs:
            _stop(proc)


def test_ui_shows_the_graph_by_stage_with_its_checks(server: Server) -> None:
    data = server.graphql(
        """
        query {
          assetNodes {
            assetKey { path }
            groupName
            assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
          }
        }
        """
    )
    nodes = data["assetNodes"]
    assert {n["groupName"] for n in nodes} >= STAGES
    checks = {
        ("/".join(n["assetKey"]["path"]), c["name"]): c["blocking"]
        for n in nodes
        for c in (n["assetChecksOrError"] or {}).get("checks", [])
    }
    gate = {name for (key, name), blocking in checks.items() if key == "gate/candidate_plan"}
    assert gate >= GATE_CHECKS
    dbt_tests = [name for (key, name) in checks if key.startswith(("staging/", "marts/"))]
    assert any(name.startswith("unique_") for name in dbt_tests)
    assert any(name.startswith("not_null_") for name in dbt_tests)


def test_ui_lists_the_schedule_and_the_sensor(server: Server) -> None:
    data = server.graphql(
        """
        query {
          repositoriesOrError {
            ... on RepositoryConnection {
              nodes { name schedules { name cronSchedule } sensors { name } }
            }
          }
        }
        """
    )
    repo = data["repositoriesOrError"]["nodes"][0]
    assert {s["name"]: s["cronSchedule"] for s in repo["schedules"]} == {SCHEDULE_NAME: "0 2 2 * *"}
    assert SENSOR_NAME in {s["name"] for s in repo["sensors"]}


def test_partition_launched_from_the_ui_is_published(server: Server) -> None:
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=server.port, timeout=60)
    started = time.monotonic()
    run_id = client.submit_job_execution("sop_monthly", tags={"dagster/partition": MONTH})
    status = client.get_run_status(run_id)
    while status not in (
        DagsterRunStatus.SUCCESS,
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.CANCELED,
    ):
        assert time.monotonic() - started < RUN_TIMEOUT, (
            f"run {run_id} still {status.value} after {RUN_TIMEOUT}s\n{server.logs()}"
        )
        time.sleep(3)
        status = client.get_run_status(run_id)
    assert status == DagsterRunStatus.SUCCESS, f"run {run_id}: {status.value}\n{server.logs()}"
    print(f"UI run of {MONTH}: {time.monotonic() - started:.0f}s")

    published = server.settings.published_dir / "sop.duckdb"
    con = duckdb.connect(str(published), read_only=True)
    try:
        versions = con.execute("select plan_month, run_id from plan_versions").fetchall()
        demand_months = con.execute(
            "select distinct plan_month from plan_demand_current"
        ).fetchall()
    finally:
        con.close()
    assert versions == [(MONTH, run_id)]
    assert demand_months == [(MONTH,)]
