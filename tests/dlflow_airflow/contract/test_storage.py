"""Workspace file operations: the newest complete partitions, discarding folders."""

from __future__ import annotations

from pathlib import Path

from dlflow_airflow.contract import storage


def test_complete_dates_skip_incomplete_future_and_staging(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/model/TAG=m"
    for day, complete in [("2026-01-01", True), ("2026-01-03", False), ("2026-01-05", True)]:
        storage.write_text(f"{root}/dt={day}/model.keras", "x")
        if complete:
            storage.write_text(f"{root}/dt={day}/_SUCCESS", "")
    storage.write_text(f"{root}/_staging/dt=2026-01-04-abc/_SUCCESS", "")
    assert list(storage.complete_dates(root, "2026-01-04")) == ["2026-01-01"]
    assert list(storage.complete_dates(root, "2026-01-05")) == ["2026-01-05", "2026-01-01"]
    assert list(storage.complete_dates(root, "2025-12-31")) == []
    assert list(storage.complete_dates(f"file://{tmp_path}/absent", "2026-01-05")) == []


def test_discard_removes_a_folder_and_ignores_a_missing_one(tmp_path: Path) -> None:
    storage.write_text(f"file://{tmp_path}/stage/part", "x")
    storage.discard(f"file://{tmp_path}/stage")
    storage.discard(f"file://{tmp_path}/stage")
    assert not (tmp_path / "stage").exists()
