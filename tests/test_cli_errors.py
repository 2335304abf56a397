"""A newcomer's wrong commands: one clear line, exit 2 (usage/settings) or 1, never a traceback.

Every case here is refused before a Dagster run starts, so none of them needs a pipeline
run: a small generated landing folder (20 items, 30 months to 2026-10) is shared by the module.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sop_pipeline import __version__
from sop_pipeline.cli import commands as cli
from sop_pipeline.core.settings import Settings, load_env_file
from sop_pipeline.generator.company import generate_company
from sop_pipeline.runtime.output import NO_WRAP_WIDTH, exception_message, make_console, one_line

LAST = "2026-10"
FIRST = "2024-05"  # 30 months ending 2026-10

#: Python class names that must never reach a person
CLASS_NAMES = re.compile(
    r"Traceback|DagsterUnknownPartitionError|IngestError|ReportError|UsageError|InputError|"
    r"SettingsError|PublishError|sop_pipeline\.|dagster\._core"
)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("generated")
    generate_company(home / "landing", items=20, months=30, seed=7, end=LAST)
    return home / "landing"


@pytest.fixture
def home(tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SOP_HOME holding the generated landing folder (a copy: tests may break it)."""
    home = tmp_path / "sop"
    shutil.copytree(landing, home / "landing")
    monkeypatch.setenv("SOP_HOME", str(home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("SOP_DEBUG", raising=False)
    return home


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``sop ARGV`` in process: (exit code, stdout, stderr); argparse exits count too."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse: usage errors and --help/--version
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_clear_line(out: str, err: str) -> str:
    """The single message line; fails when there are more, or a class name or traceback."""
    text = out + err
    assert not CLASS_NAMES.search(text), text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


def no_run_started(home: Path) -> None:
    """Nothing was handed to Dagster: no run log, no run history."""
    logs = home / "dagster" / "logs"
    assert not list(logs.glob("sop_run_*.log")) if logs.exists() else True
    assert not (home / "dagster" / "history").exists()
    assert not (home / "warehouse" / "sop.duckdb").exists()


# --------------------------------------------------------------------------------------
# sop run: months that cannot be planned, checked before a Dagster run
# --------------------------------------------------------------------------------------


def test_run_after_the_last_partition_names_the_months_that_can_be_planned(home, capsys):
    code, out, err = run(["run", "--month", "2027-03"], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert "2027-03" in line and "after the last plan month" in line
    assert f"so {FIRST}..{LAST} can be planned" in line
    assert f"sop run --month {LAST}" in line
    no_run_started(home)


def test_run_after_the_last_landing_month_says_to_add_it(home, capsys):
    # 2026-11 is a partition (the last closed month on 2026-12) but has no landing folder
    code, out, err = run(["run", "--month", "2026-11"], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert "after the last landing month" in line and "landing/2026-11/" in line
    no_run_started(home)


def test_run_before_the_partitions(home, capsys):
    code, out, err = run(["run", "--month", "2019-05"], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert "before the first plan month" in line and "from 2020-01 (SOP_PARTITION_START)" in line
    no_run_started(home)


def test_run_with_no_landing_folder_at_or_before_the_month(home, capsys):
    code, out, err = run(["run", "--month", "2021-06"], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert "no landing folder at or before it" in line and f"landing/ holds {FIRST}..{LAST}" in line
    no_run_started(home)


def test_run_with_a_missing_extract_fails_before_the_run_naming_the_file(home, capsys):
    (home / "landing" / "2025-02" / "sales_orders.csv").unlink()
    code, out, err = run(["run", "--month", LAST], capsys)
    assert code == 1  # bad input: a failed run, not a usage error
    line = one_clear_line(out, err)
    assert "landing/2025-02" in line and "sales_orders" in line
    no_run_started(home)


def test_run_on_a_home_without_landing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    code, out, err = run(["run", "--month", LAST], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert "landing" in line and "sop generate" in line


def test_backfill_with_from_after_to(home, capsys):
    code, out, err = run(["backfill", "--from", "2026-11", "--to", "2026-09"], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert "--from 2026-11 is after --to 2026-09" in line
    assert "--from 2026-09 --to 2026-11" in line


def test_backfill_checks_both_ends_before_running(home, capsys):
    code, out, err = run(["backfill", "--from", "2026-09", "--to", "2027-01"], capsys)
    assert code == 2
    assert "2027-01" in one_clear_line(out, err)
    no_run_started(home)


# --------------------------------------------------------------------------------------
# SOP_HOME: a file, a typo; only generate/demo/--init create it
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["status"], ["report", "--month", LAST], ["run", "--month", LAST]]
)
def test_sop_home_pointing_at_a_file(tmp_path, monkeypatch, capsys, argv):
    target = tmp_path / "not-a-folder.txt"
    target.write_text("x")
    monkeypatch.setenv("SOP_HOME", str(target))
    code, out, err = run(argv, capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert f"SOP_HOME={target} is a file" in line


@pytest.mark.parametrize(
    "argv", [["status"], ["report", "--month", LAST], ["run", "--month", LAST]]
)
def test_a_mistyped_sop_home_is_not_created_by_read_only_verbs(tmp_path, monkeypatch, capsys, argv):
    typo = tmp_path / "sop-hmoe"
    monkeypatch.setenv("SOP_HOME", str(typo))
    code, out, err = run(argv, capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert f"SOP_HOME={typo} does not exist" in line and "typo" in line
    assert not typo.exists()


def test_init_creates_the_home_and_generate_creates_it_too(tmp_path, monkeypatch, capsys):
    new = tmp_path / "new-home"
    monkeypatch.setenv("SOP_HOME", str(new))
    code, out, _err = run(["status", "--init"], capsys)
    assert code == 0 and new.is_dir() and "landing: 0 month folders" in out
    other = tmp_path / "generated-home"
    monkeypatch.setenv("SOP_HOME", str(other))
    code, out, _err = run(["generate", "--items", "20", "--months", "2", "--end", LAST], capsys)
    assert code == 0 and (other / "landing" / LAST).is_dir()


def test_generate_with_too_few_items_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    code, out, err = run(["generate", "--items", "3"], capsys)
    assert code == 2
    assert "items" in one_clear_line(out, err)


# --------------------------------------------------------------------------------------
# sop report: nothing published, the month not published
# --------------------------------------------------------------------------------------


def test_report_on_a_fresh_home(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    code, out, err = run(["report", "--month", "2026-10"], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert "nothing is published" in line and "sop run --month 2026-10" in line


def test_report_of_a_month_that_is_not_published_lists_the_published_ones(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    (tmp_path / "published").mkdir()
    con = duckdb.connect(str(tmp_path / "published" / "sop.duckdb"))
    con.execute("create table plan_versions (plan_month varchar, plan_version integer)")
    con.execute("insert into plan_versions values ('2026-09', 1), ('2026-10', 1), ('2026-10', 2)")
    con.close()
    code, out, err = run(["report", "--month", "2030-01"], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert "plan month 2030-01 is not published" in line
    assert "published months: 2026-09, 2026-10" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["report"], "sop report: the following arguments are required: --month"),
        (["run", "--month", "2026-13"], "'2026-13' is not a month; use YYYY-MM"),
        (["plan"], "invalid choice: 'plan'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_argparse_usage_errors_are_one_line_too(home, capsys, argv, expected):
    code, out, err = run(argv, capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert expected in line and "--help" in line


# --------------------------------------------------------------------------------------
# the guard: an unexpected error is one line + where the traceback is
# --------------------------------------------------------------------------------------


def _boom(settings):
    raise RuntimeError("the disk said no")


def test_an_unexpected_error_is_one_line_with_the_log(home, capsys, monkeypatch):
    import sop_pipeline.runtime.runner

    monkeypatch.setattr(sop_pipeline.runtime.runner, "status_lines", _boom)
    code, out, err = run(["status"], capsys)
    assert code == 1
    line = one_clear_line(out, err)
    assert "sop status failed: the disk said no" in line and "SOP_DEBUG=1" in line
    log = home / "dagster" / "logs" / "sop_errors.log"
    assert str(log) in line
    assert "Traceback" in log.read_text() and "RuntimeError" in log.read_text()


def test_sop_debug_prints_the_traceback(home, capsys, monkeypatch):
    import sop_pipeline.runtime.runner

    monkeypatch.setattr(sop_pipeline.runtime.runner, "status_lines", _boom)
    monkeypatch.setenv("SOP_DEBUG", "1")
    code, _out, err = run(["status"], capsys)
    assert code == 1 and "Traceback" in err and "the disk said no" in err


def test_exception_messages_keep_the_sentence_not_the_class():
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as low:
            raise RuntimeError("publishing failed") from low
    except RuntimeError as exc:
        assert exception_message(exc) == "publishing failed"
    assert exception_message(KeyError("plan_month")) == "no entry 'plan_month'"
    assert exception_message(ValueError()) == "an error without a message"
    assert one_line("first\n  second\n") == "first; second"


# --------------------------------------------------------------------------------------
# help, version, output width
# --------------------------------------------------------------------------------------


def test_version(capsys):
    code, out, _err = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"sop {__version__}"


@pytest.mark.parametrize("verb", ["generate", "run", "demo", "backfill", "report", "status"])
def test_each_verb_has_a_described_help_with_placeholders_paths_and_exit_codes(verb, capsys):
    code, out, _err = run([verb, "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "SOP_HOME" in text and "exit codes: 0" in text and "2 wrong usage or settings" in text
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 10, f"{verb}: no description: {description!r}"
    if verb in ("run", "report"):
        assert "--month YYYY-MM" in text and "reports/YYYY-MM/index.html" in text
    if verb == "backfill":
        assert "--from YYYY-MM" in text and "--to YYYY-MM" in text
    if verb == "run":
        assert "published/sop.duckdb" in text and "sop_run_YYYY-MM.log" in text


def test_piped_output_is_not_wrapped_at_80_columns(tmp_path, monkeypatch, capsys):
    assert make_console().width == NO_WRAP_WIDTH  # pytest's stdout is not a terminal
    deep = tmp_path / ("a-rather-long-folder-name-" * 6) / "sop"
    monkeypatch.setenv("SOP_HOME", str(deep))
    code, out, err = run(["status"], capsys)
    assert code == 2
    line = one_clear_line(out, err)
    assert len(line) > 200 and str(deep) in line


def test_piped_sop_in_a_subprocess_prints_whole_lines(tmp_path):
    deep = tmp_path / ("folder-" * 30) / "sop"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOP_", "DAGSTER_"))}
    env.update(SOP_HOME=str(deep), COLUMNS="")
    proc = subprocess.run(
        [sys.executable, "-m", "sop_pipeline.cli", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(deep) in lines[0], proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------------------------------
# .env in the working directory
# --------------------------------------------------------------------------------------


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        "# copied from .env.example\nSOP_STRATEGY=level\nSOP_HORIZON_MONTHS=12\n"
        f"SOP_HOME={tmp_path / 'from-dotenv'}\n"
    )
    monkeypatch.chdir(tmp_path)
    for name in ("SOP_STRATEGY", "SOP_HORIZON_MONTHS", "SOP_HOME"):
        monkeypatch.setenv(name, "")  # recorded, so the values the file adds are undone
        monkeypatch.delenv(name)
    monkeypatch.setenv("SOP_HORIZON_MONTHS", "6")  # a real variable beats the file
    settings = Settings.from_env()
    assert settings.strategy == "level"
    assert settings.horizon_months == 6
    assert settings.sop_home == (tmp_path / "from-dotenv").resolve()


def test_no_dotenv_is_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_env_file() is None


# --------------------------------------------------------------------------------------
# a failed run's lines and the progress of a run
# --------------------------------------------------------------------------------------


def test_a_failed_steps_message_is_the_sentence_without_the_class_name():
    from types import SimpleNamespace

    from sop_pipeline.runtime.runner import _error_chain_message

    deepest = SimpleNamespace(
        message="sop_pipeline.ingest.problems.IngestError: landing/2026-10: required extract(s) "
        "items missing\n\nStack Trace:\n  File ...",
        cause=None,
    )
    wrapper = SimpleNamespace(
        message="dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while "
        "executing op raw_extracts",
        cause=deepest,
    )
    assert _error_chain_message(wrapper) == "landing/2026-10: required extract(s) items missing"


def test_run_progress_prints_step_n_of_n_and_a_timing_table():
    import io

    from rich.console import Console

    from sop_pipeline.runtime.progress import RunProgress

    out = io.StringIO()
    console = Console(file=out, width=NO_WRAP_WIDTH, soft_wrap=True)
    with RunProgress(console, total_steps=3, parts={"dbt": 2}) as live:
        live.start("raw_extracts")
        live.finish("raw_extracts", "done")
        live.start("dbt")
        live.part("dbt", "stg_items")
        live.part("dbt", "fct_demand_history")
        live.finish("dbt", "failed")
        live.skipped("forecast")
    lines = out.getvalue().splitlines()
    assert lines[0].strip() == "step 1/3 ▶ raw_extracts"
    assert re.fullmatch(r"\s*✓ raw_extracts \(\d+\.\ds\)", lines[1])
    assert lines[2].strip() == "step 2/3 ▶ dbt" and lines[3].strip().startswith("✗ dbt (")
    assert "– forecast" in lines[4] and "upstream" in lines[4]
    assert live.timings["dbt"].parts == 2 and live.timings["dbt"].status == "failed"
    table = io.StringIO()
    Console(file=table, width=200).print(live.table())
    text = table.getvalue()
    assert "all steps" in text and "skipped" in text and "failed" in text


def test_dagsters_not_executing_notices_are_not_printed():
    import logging

    from sop_pipeline.runtime.steplog import _StepFilter

    record = logging.LogRecord(
        "sop.steps",
        logging.ERROR,
        __file__,
        1,
        "Dependencies for step plan__stat_forecast failed: ['raw_extracts']. Not executing.",
        (),
        None,
    )
    assert _StepFilter().filter(record) is False
    record.msg = "a warning from a step"
    assert _StepFilter().filter(record) is True


def test_a_steps_progress_log_line_advances_its_bar():
    import io
    import logging

    from rich.console import Console

    from sop_pipeline.runtime.progress import RunProgress
    from sop_pipeline.runtime.steplog import _StepFilter

    record = logging.LogRecord("sop.steps", logging.INFO, __file__, 1, "", (), None)
    record.dagster_meta = {"orig_message": "progress 2/5: demand_plus_10", "step_key": "scen"}
    with RunProgress(Console(file=io.StringIO()), total_steps=1) as live:
        live.start("scen")
        assert _StepFilter().filter(record) is False  # drawn in the bar, not printed
    assert live.timings["scen"].parts == 1
