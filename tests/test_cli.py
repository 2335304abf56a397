"""The `sop` command: exit codes and messages a person sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from sop_pipeline.cli.commands import main


def test_bad_month_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--month", "2026-13"])
    assert exc.value.code == 2
    assert "YYYY-MM" in capsys.readouterr().err


def test_bad_setting_exits_2_and_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    monkeypatch.setenv("SOP_STRATEGY", "yolo")
    assert main(["status"]) == 2
    captured = capsys.readouterr()
    assert "SOP_STRATEGY" in captured.out + captured.err


def test_status_of_an_empty_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "landing: 0 month folders" in out
    assert "published: nothing yet" in out


def test_run_without_extracts_fails_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOP_HOME", str(tmp_path))
    # refused before a Dagster run starts: SOP_HOME holds no landing folder (exit 2)
    assert main(["run", "--month", "2026-06"]) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "2026-06" in text
    assert "landing" in text


def test_demo_plans_five_earlier_months_first_so_every_lag_1_to_3_has_three_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sop_pipeline.cli import commands

    monkeypatch.setenv("SOP_HOME", str(tmp_path))

    def generate(args) -> int:  # the demo company's landing folders, 2025-12..2026-11
        for month in ["2025-12", *(f"2026-{m:02d}" for m in range(1, 12))]:
            (tmp_path / "landing" / month).mkdir(parents=True, exist_ok=True)
        return 0

    planned: list[tuple[str, bool]] = []
    monkeypatch.setattr(commands, "cmd_generate", generate)
    monkeypatch.setattr(
        commands,
        "_run_month",
        lambda settings, month, is_backfill=False: planned.append((month, is_backfill)) or True,
    )
    assert main(["demo"]) == 0
    earlier = [f"2026-{m:02d}" for m in range(6, 11)]
    # point in time, oldest first (as a backfill), then the latest month as a normal run
    assert planned == [*((m, True) for m in earlier), ("2026-11", False)]
    # the latest plan scores earlier plans' forecasts of months up to 2026-11: lag 3 (the
    # S&OP horizon's far end) over three plans, lag 1 over five
    index = {m: i for i, m in enumerate([*earlier, "2026-11"])}
    for lag, plans in ((1, 5), (2, 4), (3, 3)):
        assert sum(1 for m in earlier if index[m] + lag <= index["2026-11"]) == plans
