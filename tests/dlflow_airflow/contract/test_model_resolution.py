"""model.date resolution (same | latest | YYYY-MM-DD) with and without blessing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dlflow_airflow.contract.layout import Layout, PartitionDateError, local_path
from dlflow_airflow.contract.model_resolution import (
    MANIFEST_FILE,
    ModelNotBlessedError,
    ModelNotFoundError,
    is_blessed,
    record_blessing,
    record_decision,
    resolve_champion,
    resolve_model_partition,
)

TAG = "m1"


def _model(layout: Layout, date: str, *, complete: bool = True, blessed: bool = False) -> None:
    folder = Path(local_path(layout.model(TAG, date)))
    folder.mkdir(parents=True)
    if complete:
        (folder / "_SUCCESS").touch()
    if blessed:
        (folder / "BLESSED").write_text("{}")


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(str(tmp_path))
    _model(layout, "2026-01-01", blessed=True)
    _model(layout, "2026-01-03")  # complete, missed its gate
    _model(layout, "2026-01-04", complete=False)  # a crashed write
    _model(layout, "2026-01-06", blessed=True)  # after the run date below
    return layout


def test_latest_blessed_is_the_newest_blessed_not_after_the_run(layout: Layout) -> None:
    resolved = resolve_model_partition(layout, TAG, "latest", "2026-01-05", blessed_only=True)
    assert (resolved.date, resolved.blessed) == ("2026-01-01", True)
    assert resolved.uri == layout.model(TAG, "2026-01-01")


def test_latest_any_complete_model(layout: Layout) -> None:
    resolved = resolve_model_partition(layout, TAG, "latest", "2026-01-05", blessed_only=False)
    assert (resolved.date, resolved.blessed) == ("2026-01-03", False)
    on_the_day = resolve_model_partition(layout, TAG, "latest", "2026-01-06", blessed_only=True)
    assert on_the_day.date == "2026-01-06"


def test_latest_with_nothing_blessed_says_what_was_skipped(layout: Layout) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_partition(layout, TAG, "latest", "2025-12-31", blessed_only=True)
    assert "no blessed model under" in str(info.value)
    assert "dated on or before 2025-12-31" in str(info.value)
    (Path(local_path(layout.model(TAG, "2026-01-01"))) / "BLESSED").unlink()
    with pytest.raises(
        ModelNotFoundError, match="complete but not blessed: 2026-01-03, 2026-01-01"
    ):
        resolve_model_partition(layout, TAG, "latest", "2026-01-05", blessed_only=True)


def test_same_and_fixed_dates(layout: Layout) -> None:
    assert resolve_model_partition(layout, TAG, "same", "2026-01-01", blessed_only=True).blessed
    fixed = resolve_model_partition(layout, TAG, "2026-01-03", "2026-02-01", blessed_only=False)
    assert fixed.date == "2026-01-03"
    with pytest.raises(ModelNotBlessedError, match="missed the evaluate stage's quality gate"):
        resolve_model_partition(layout, TAG, "same", "2026-01-03", blessed_only=True)
    with pytest.raises(ModelNotFoundError, match="no complete model at .*dt=2026-01-04"):
        resolve_model_partition(layout, TAG, "same", "2026-01-04", blessed_only=False)


def test_bad_dates(layout: Layout) -> None:
    with pytest.raises(PartitionDateError):
        resolve_model_partition(layout, TAG, "yesterday", "2026-01-05", blessed_only=False)
    with pytest.raises(PartitionDateError):
        resolve_model_partition(layout, TAG, "latest", "2026-13-01", blessed_only=False)


def test_importable_without_heavy_packages() -> None:
    code = (
        "import sys, dlflow_airflow.contract.model_resolution; "
        "print(sorted({'tensorflow', 'numpy', 'pyarrow', 'pandas'} & set(sys.modules)))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "[]"


def test_the_champion_is_the_newest_blessed_model_other_than_the_new_one(layout: Layout) -> None:
    champion = resolve_champion(layout, TAG, "2026-01-06", exclude="2026-01-06")
    assert champion is not None and champion.date == "2026-01-01"
    assert champion.uri == layout.model(TAG, "2026-01-01")
    later = resolve_champion(layout, TAG, "2026-01-07", exclude="2026-01-07")
    assert later is not None and later.date == "2026-01-06"
    # The first model of a tag has no champion; a model never champions itself.
    assert resolve_champion(layout, TAG, "2025-12-31", exclude="2025-12-31") is None
    assert resolve_champion(layout, TAG, "2026-01-02", exclude="2026-01-01") is None
    assert resolve_champion(layout, "other", "2026-01-02", exclude="2026-01-02") is None


def test_record_blessing_writes_and_removes_the_marker(layout: Layout) -> None:
    model = layout.model(TAG, "2026-01-03")
    record_blessing(model, True, {"evaluated_on": "2026-01-04", "by": "test"})
    assert is_blessed(model)
    assert '"by": "test"' in (Path(local_path(model)) / "BLESSED").read_text()
    record_blessing(model, False, {})
    record_blessing(model, False, {})  # already unblessed: no error
    assert not is_blessed(model)


def test_record_decision_merges_an_approval_into_the_manifest(layout: Layout) -> None:
    model = layout.model(TAG, "2026-01-03")
    manifest = Path(local_path(model)) / MANIFEST_FILE
    with pytest.raises(ModelNotFoundError, match="has no manifest.json"):
        record_decision(model, {"approved": True})
    manifest.write_text(json.dumps({"fmap_checksum": "abc", "approval": {"approved": False}}))
    record_decision(model, {"approved": True, "by": "ada", "at": "2026-01-04T10:00:00Z"})
    assert json.loads(manifest.read_text()) == {
        "fmap_checksum": "abc",
        "approval": {"approved": True, "by": "ada", "at": "2026-01-04T10:00:00Z"},
    }
