from __future__ import annotations

from pathlib import Path

import pytest

from dlflow_airflow.contract import storage
from spark_jobs.paths import (
    PartitionNotFoundError,
    PlaceholderError,
    Staging,
    render_path,
    require_complete,
)


def test_render_fills_every_placeholder() -> None:
    path = render_path("{workspace}/up/{date}/{date_nodash}", workspace="/ws/", date="2026-03-04")
    assert path == "file:///ws/up/2026-03-04/20260304"
    path = render_path("/up/{year}/{month}/{day}", workspace="/ws/", date="2026-03-04")
    assert path == "/up/2026/03/04"


def test_render_keeps_escaped_braces() -> None:
    assert render_path("/a/{{x}}/{date}", workspace="/ws", date="2026-03-04") == "/a/{x}/2026-03-04"


def test_unknown_placeholder_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(
        PlaceholderError, match=r"\{dt\}.*\{workspace\}, \{date\}, \{date_nodash\}, \{year\}"
    ):
        render_path("/up/dt={dt}", workspace="/ws", date="2026-03-04")


@pytest.mark.parametrize("template", ["/up/{}", "/up/{date:%Y}", "/up/{date!r}", "/up/{date"])
def test_malformed_placeholders_are_refused(template: str) -> None:
    with pytest.raises(PlaceholderError, match="path"):
        render_path(template, workspace="/ws", date="2026-03-04")


def test_require_complete_names_the_path(tmp_path: Path) -> None:
    missing = f"file://{tmp_path}/nothing/dt=2026-01-01"
    with pytest.raises(PartitionNotFoundError, match=f"source 'x': no data at {missing}"):
        require_complete(missing, "source 'x'")
    (tmp_path / "half").mkdir()
    with pytest.raises(PartitionNotFoundError, match=r"incomplete \(no _SUCCESS marker at .*half"):
        require_complete(f"file://{tmp_path}/half", "source 'x'")


def test_staging_commits_in_order_or_discards(tmp_path: Path) -> None:
    first, second = f"file://{tmp_path}/a/dt=2026-01-01", f"file://{tmp_path}/b/dt=2026-01-01"
    with Staging() as staging:
        storage.write_text(f"{staging.folder(first)}/part", "1")
        storage.write_text(f"{staging.folder(second)}/part", "2")
        staging.commit()
    assert storage.is_complete(first) and storage.read_text(f"{second}/part") == "2"

    with pytest.raises(RuntimeError, match="boom"), Staging() as staging:
        storage.write_text(f"{staging.folder(first)}/part", "new")
        raise RuntimeError("boom")
    assert storage.read_text(f"{first}/part") == "1"  # the committed partition is untouched
    assert storage.list_names(f"file://{tmp_path}/a/_staging") == []
