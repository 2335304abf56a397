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
