"""Workspace file operations: the newest complete partitions, discarding folders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

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


def _staging_folder(root: Path, name: str, age_hours: float) -> Path:
    """A staging folder left by a killed job (``_SUCCESS`` and a part file inside),
    last written ``age_hours`` ago."""
    folder = root / "_staging" / name
    folder.mkdir(parents=True)
    (folder / "part-00000.parquet").write_bytes(b"x")
    (folder / "_SUCCESS").touch()
    stamp = time.time() - age_hours * 3600
    for path in (*folder.iterdir(), folder):
        os.utime(path, (stamp, stamp))
    return folder


def _commit_new(root: Path, **kwargs: object) -> None:
    final = f"file://{root}/dt=2026-01-02"
    staging = storage.staging_uri(final)
    storage.write_text(f"{staging}/part-00000.parquet", "new")
    storage.commit(staging, final, **kwargs)
    assert storage.is_complete(final)


def test_commit_removes_old_orphan_staging_folders_and_keeps_fresh_ones(tmp_path: Path) -> None:
    root = tmp_path / "raw" / "TAG=t"
    orphan = _staging_folder(root, "dt=2026-01-01-0123456789ab", 25)
    fresh = _staging_folder(root, "dt=2026-01-01-ba9876543210", 23)
    touched = _staging_folder(root, "dt=2025-12-31-aaaaaaaaaaaa", 48)
    (touched / "part-00001.parquet").write_bytes(b"a running job still writes here")
    foreign = _staging_folder(root, "notes", 48)  # not a name staging_uri makes
    _commit_new(root)
    assert not orphan.exists()
    assert fresh.exists() and touched.exists() and foreign.exists()
    assert sorted(p.name for p in (root / "_staging").iterdir()) == [
        "dt=2025-12-31-aaaaaaaaaaaa",
        "dt=2026-01-01-ba9876543210",
        "notes",
    ]


def test_the_age_is_a_parameter_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "model" / "TAG=m"
    two_hours = _staging_folder(root, "dt=2026-01-01-0123456789ab", 2)
    _commit_new(root)
    assert two_hours.exists()  # the default is 24 hours
    monkeypatch.setenv(storage.STALE_STAGING_ENV, "off")
    _commit_new(root, stale_hours=None)
    assert two_hours.exists()
    monkeypatch.setenv(storage.STALE_STAGING_ENV, "1.5")
    _commit_new(root)
    assert not two_hours.exists()
    one_hour = _staging_folder(root, "dt=2026-01-01-aaaaaaaaaaaa", 1)
    _commit_new(root, stale_hours=0.5)  # the parameter wins over the environment
    assert not one_hour.exists()


@pytest.mark.parametrize("value", ["0", "-3", "soon", "nan"])
def test_a_bad_age_fails_before_anything_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(storage.STALE_STAGING_ENV, value)
    final = f"file://{tmp_path}/dt=2026-01-02"
    staging = storage.staging_uri(final)
    storage.write_text(f"{staging}/part", "x")
    with pytest.raises(ValueError, match=f"{storage.STALE_STAGING_ENV}=.*positive number"):
        storage.commit(staging, final)
    assert not storage.exists(final)
