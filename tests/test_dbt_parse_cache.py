"""dbt's parsed project is kept for later processes: a new ``sop run`` does not parse again."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from sop_pipeline.defs.clean import project
from sop_pipeline.defs.clean.project import SopDbtResource, dbt_resource


def test_a_new_process_loads_the_kept_manifest_and_a_torn_file_is_parsed_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dbt = dbt_resource("duckdb", 2)
    first = dbt.manifest(tmp_path)
    kept = list((Path(dbt.project_dir) / "target" / "sop_parse").glob("manifest-duckdb-*.pickle"))
    assert len(kept) == 1, "one kept manifest per target, for the current project files"

    def no_parse(*_args):
        raise AssertionError("parsed again although the kept manifest is current")

    monkeypatch.setattr(project, "_PARSED", {})  # as in a new process
    monkeypatch.setattr(SopDbtResource, "_parse", no_parse)
    loaded = dbt.manifest(tmp_path)
    assert loaded is not first
    assert sorted(loaded.nodes) == sorted(first.nodes)
    model = next(n for n in first.nodes.values() if n.resource_type == "model")
    assert loaded.nodes[model.unique_id].raw_code == model.raw_code

    monkeypatch.undo()
    kept[0].write_bytes(b"torn")  # a process killed while writing it (or another dbt's file)
    monkeypatch.setattr(project, "_PARSED", {})
    parsed = dbt.manifest(tmp_path)
    assert sorted(parsed.nodes) == sorted(first.nodes)
    assert sorted(pickle.loads(kept[0].read_bytes()).nodes) == sorted(first.nodes)
