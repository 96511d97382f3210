"""Load every pipeline YAML of a folder into DAGs, each file in isolation.

One broken file never hides the others, and never takes them down with it.
Airflow records import errors per DAG *file* and marks every DAG of a file
with an import error as stale (not scheduled, not triggerable). So the work
is split across two DAG files:

- ``dlflow_pipelines.py`` calls :func:`load_dags`: every good pipeline
  becomes a DAG; a broken one is skipped (and logged).
- ``dlflow_pipeline_errors.py`` holds no DAG: it calls
  :func:`raise_for_broken_pipelines`, which raises one error listing every
  broken file with its key path and what was expected. Airflow shows it as
  that file's import error (UI banner, ``airflow dags list-import-errors``)
  and clears it on the next parse once the files are fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dlflow_airflow.pipeline.errors import PipelineError

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from dlflow_airflow.pipeline.build import Pipeline

log = logging.getLogger(__name__)


class PipelineLoadError(Exception):
    """One or more pipeline files could not become DAGs."""


def pipeline_files(folder: str | Path, patterns: Iterable[str] = ("*.yaml", "*.yml")) -> list[Path]:
    folder = Path(folder)
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


@dataclass
class FolderScan:
    """The pipelines of a folder that validate, and the messages of those that do not."""

    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def scan(folder: str | Path) -> FolderScan:
    """Validate every pipeline file of ``folder``; a duplicate dag_id is an error too."""
    from dlflow_airflow.pipeline.build import Pipeline

    result = FolderScan()
    sources: dict[str, Path] = {}
    for path in pipeline_files(folder):
        try:
            pipeline = Pipeline.from_file(path)
        except PipelineError as exc:
            result.errors.append(str(exc))
            continue
        dag_id = pipeline.spec.dag_id
        if dag_id in sources:
            result.errors.append(f"{path}: dag_id: {dag_id!r} is already used by {sources[dag_id]}")
            continue
        sources[dag_id] = path
        result.pipelines[dag_id] = pipeline
    return result


def load_dags(folder: str | Path) -> dict[str, DAG]:
    """``{dag_id: DAG}`` for every good pipeline of ``folder``.

    Meant for a DAG file: ``globals().update(load_dags(HERE / "pipelines"))``.
    """
    from dlflow_airflow.pipeline.factory import build_dag

    found = scan(folder)
    for message in found.errors:
        log.error("dlflow: pipeline not loaded (see dlflow_pipeline_errors.py):\n%s", message)
    dags: dict[str, DAG] = {}
    for dag_id, pipeline in found.pipelines.items():
        try:
            dags[dag_id] = build_dag(pipeline)
        except Exception:  # a kind's build_operator or Airflow itself refused it
            log.exception("dlflow: pipeline %s not loaded", pipeline.source)
    return dags


def broken_pipelines(folder: str | Path) -> list[str]:
    """The error message of every pipeline file of ``folder`` that does not validate.

    Validation only: building a DAG here would register it in this file too.
    """
    return scan(folder).errors


def raise_for_broken_pipelines(folder: str | Path) -> None:
    """Raise :class:`PipelineLoadError` listing every broken pipeline file, if any."""
    errors = broken_pipelines(folder)
    if errors:
        raise PipelineLoadError(
            f"{len(errors)} pipeline file(s) could not be loaded:\n" + "\n".join(errors)
        )
