"""Apache Superset on the published plan: the dashboard of bi/superset/, tested as a user sees it.

A demo plan is published, Superset (its own venv, ``bash bi/superset/install.sh --venv-only``
or ``make superset``) is set up with its own CLI (db upgrade, create-admin, init,
import-dashboards) and started on localhost. Every chart of the dashboard is queried through
Superset's API and compared with the same query run on the file with DuckDB; then a new plan
version is published while Superset keeps querying: every answer is the old plan or the new
one, never an error or a mix.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from sop_pipeline.core.settings import Settings
from sop_pipeline.generator.company import generate_company
from sop_pipeline.publish.published_file import bi_connect
from sop_pipeline.runtime.runner import run_plan_month

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SUPERSET = REPO / ".venv-superset" / "bin" / "superset"
MONTH = "2026-06"
STARTUP_TIMEOUT = 300


def _bundle_module():
    spec = importlib.util.spec_from_file_location(
        "sop_superset_bundle", REPO / "bi/superset/bundle.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Superset:
    url: str
    settings: Settings
    session: requests.Session = field(default_factory=requests.Session)

    def login(self, password: str) -> None:
        r = self.session.post(
            f"{self.url}/api/v1/security/login",
            json={"username": "admin", "password": password, "provider": "db", "refresh": True},
            timeout=60,
        )
        r.raise_for_status()
        self.session.headers["Authorization"] = "Bearer " + r.json()["access_token"]

    def charts(self) -> list[dict]:
        r = self.session.get(f"{self.url}/api/v1/dashboard/sop-plan/charts", timeout=60)
        r.raise_for_status()
        return r.json()["result"]

    def chart_data(self, chart_id: int) -> tuple[list[str], list[dict]]:
        """(group columns, rows) of a chart, asked the way the chart's own form data says."""
        meta = self.session.get(f"{self.url}/api/v1/chart/{chart_id}", timeout=60)
        meta.raise_for_status()
        chart = meta.json()["result"]
        import json

        params = json.loads(chart["params"])
        columns = (
            params["groupby"]
            if params["viz_type"] == "table"
            else [params["x_axis"], *params.get("groupby", [])]
        )
        body = {
            "datasource": {"id": chart["datasource_id"], "type": "table"},
            "force": True,
            "queries": [
                {
                    "columns": columns,
                    "metrics": params["metrics"],
                    "row_limit": 10000,
                    "orderby": [],
                }
            ],
            "form_data": params,
            "result_format": "json",
            "result_type": "full",
        }
        r = self.session.post(f"{self.url}/api/v1/chart/data", json=body, timeout=120)
        r.raise_for_status()
        result = r.json()["result"][0]
        assert result["status"] == "success" and not result["error"], result
        return columns, result["data"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _superset(args: list[str], env: dict[str, str], log: Path) -> None:
    with open(log, "ab") as out:
        subprocess.run(
            [str(SUPERSET), *args], env=env, stdout=out, stderr=out, check=True, timeout=900
        )


@pytest.fixture(scope="module")
def superset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Superset]:
    if not SUPERSET.exists():
        pytest.fail("Superset is not installed: run `bash bi/superset/install.sh --venv-only`")
    from sop_pipeline.defs.clean.project import ensure_manifest

    ensure_manifest()
    home = tmp_path_factory.mktemp("sop_home")
    settings = Settings.from_env({"SOP_HOME": str(home), "SOP_HORIZON_MONTHS": "12"})
    settings.ensure_dirs()
    generate_company(settings.landing_dir, items=30, months=30, seed=3, end=MONTH)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOP_HOME", str(home))
        mp.setenv("SOP_HORIZON_MONTHS", "12")
        outcome = run_plan_month(settings, MONTH)
    assert outcome.success, outcome.errors
    ss_home = tmp_path_factory.mktemp("superset")
    password = secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOP_", "DAGSTER_"))}
    env.update(
        SOP_HOME=str(home),
        SOP_SUPERSET_HOME=str(ss_home),
        SUPERSET_CONFIG_PATH=str(REPO / "bi/superset/superset_config.py"),
        SUPERSET_SECRET_KEY=secrets.token_urlsafe(32),
        FLASK_APP="superset",
    )
    log = ss_home / "superset.log"
    _superset(["db", "upgrade"], env, log)
    _superset(
        [
            "fab",
            "create-admin",
            *("--username", "admin", "--firstname", "S", "--lastname", "OP"),
            *("--email", "admin@localhost", "--password", password),
        ],
        env,
        log,
    )
    _superset(["init"], env, log)
    bundle = ss_home / "sop_dashboard.zip"
    bundle.write_bytes(_bundle_module().bundle(settings.published_dir / "sop.duckdb"))
    _superset(["import-dashboards", "-p", str(bundle), "-u", "admin"], env, log)
    port = _free_port()
    with open(ss_home / "server.log", "wb") as out:
        proc = subprocess.Popen(
            [str(SUPERSET), "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    srv = Superset(f"http://127.0.0.1:{port}", settings)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{srv.url}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (ss_home / "server.log").read_text()[-3000:]
            time.sleep(2)
        else:
            pytest.fail("Superset did not start: " + (ss_home / "server.log").read_text()[-3000:])
        srv.login(password)
        yield srv
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue


def _on_file(settings: Settings, chart: dict, version: int | None = None) -> list[dict]:
    """The chart's query run with DuckDB on the published file (a version's rows, or _current)."""
    columns = [chart["x"], *chart["groupby"]]
    metrics = ", ".join(f'{expr} AS "{label}"' for label, expr in chart["metrics"].items())
    source = chart["view"]
    where = ""
    if version is not None:
        source = source.removesuffix("_current")
        where = f"WHERE plan_month = '{MONTH}' AND plan_version = {int(version)}"
    con = bi_connect(settings.published_dir / "sop.duckdb")
    try:
        df = con.execute(
            f"SELECT {', '.join(columns)}, {metrics} FROM main.{source} {where} "
            f"GROUP BY {', '.join(columns)}"
        ).df()
    finally:
        con.close()
    return df.to_dict("records")


def _canon(rows: list[dict], columns: list[str]) -> list[tuple]:
    """Rows as sorted tuples, numbers rounded to 6 significant digits (JSON vs DuckDB floats)."""

    def norm(v):
        if v is None or (isinstance(v, float) and v != v):
            return None
        if isinstance(v, float | int) and not isinstance(v, bool):
            return float(f"{float(v):.6g}")
        return str(v)

    keys = sorted({k for r in rows for k in r})
    return sorted(
        (tuple(norm(r.get(k)) for k in keys) for r in rows),
        key=lambda t: tuple("" if x is None else str(x) for x in t),
    )


def test_every_chart_of_the_dashboard_shows_what_the_file_holds(superset: Superset) -> None:
    specs = {c["name"]: c for c in _bundle_module().CHARTS}
    charts = superset.charts()
    assert sorted(c["slice_name"] for c in charts) == sorted(specs)
    for chart in charts:
        spec = specs[chart["slice_name"]]
        columns, rows = superset.chart_data(chart["id"])
        assert columns == [spec["x"], *spec["groupby"]]
        expected = _on_file(superset.settings, spec)
        assert rows, f"{chart['slice_name']}: Superset returned no rows"
        assert _canon(rows, columns) == _canon(expected, columns), chart["slice_name"]


def test_superset_sees_the_old_plan_or_the_new_one_while_a_version_is_published(
    superset: Superset,
) -> None:
    spec = next(c for c in _bundle_module().CHARTS if c["view"] == "plan_financials_current")
    chart = next(c for c in superset.charts() if c["slice_name"] == spec["name"])
    columns = [spec["x"], *spec["groupby"]]
    old = _canon(_on_file(superset.settings, spec, version=1), columns)
    # a planner raises one family by half from the second planned month: version 2 differs
    overrides = superset.settings.landing_dir / MONTH / "demand_overrides.csv"
    family = sorted(r["family"] for r in _on_file(superset.settings, spec))[0]
    with open(overrides, encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    row = {"scope": family, "month": "2026-08", "adjustment": "+50%", "reason_code": "promotion"}
    row |= {"author": "test", "comment": "superset test"}
    with open(overrides, "a", newline="", encoding="utf-8") as fh:
        csv.DictWriter(fh, fieldnames=header).writerow({k: row.get(k, "") for k in header})
    answers: list = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                answers.append(_canon(superset.chart_data(chart["id"])[1], columns))
            except Exception as exc:  # every error is a failure of the test below
                answers.append(exc)

    reader = threading.Thread(target=ask)
    reader.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SOP_HOME", str(superset.settings.sop_home))
            mp.setenv("SOP_HORIZON_MONTHS", "12")
            outcome = run_plan_month(superset.settings, MONTH)
        assert outcome.success, outcome.errors
        time.sleep(3)  # a few answers after the swap
    finally:
        stop.set()
        reader.join(timeout=180)
    new = _canon(_on_file(superset.settings, spec, version=2), columns)
    assert new != old, "the override did not change the plan: the test would prove nothing"
    errors = [a for a in answers if isinstance(a, Exception)]
    assert not errors, errors[:3]
    assert len(answers) >= 3
    assert all(a in (old, new) for a in answers), "Superset returned a mix of two versions"
    assert answers[0] == old and answers[-1] == new
    assert _canon(superset.chart_data(chart["id"])[1], columns) == new
