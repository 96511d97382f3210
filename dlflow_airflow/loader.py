"""Load every pipeline YAML of a folder into DAGs, each file in isolation.

One broken file never hides the others. Airflow records import errors per DAG
*file*, and a Python file that raises loses all its DAGs; so broken pipelines
are gathered into one stand-in DAG whose validation fails during bagging.
Airflow then shows their messages (file, key path, what was expected) as the
loader file's import error while the good DAGs load normally.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from airflow.sdk import DAG

from dlflow_airflow.errors import PipelineError

log = logging.getLogger(__name__)

INVALID_DAG_ID = "dlflow_invalid_pipelines"


class PipelineLoadError(Exception):
    """One or more pipeline files could not become DAGs."""


class InvalidPipelines(DAG):
    """Stand-in for broken pipeline files: Airflow reports it as an import error."""

    def validate(self) -> None:  # noqa: D102 - called by Airflow's DagBag before bagging
        raise PipelineLoadError(self.doc_md)


def pipeline_files(folder: str | Path, patterns: Iterable[str] = ("*.yaml", "*.yml")) -> list[Path]:
    folder = Path(folder)
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


def load_dags(folder: str | Path) -> dict[str, DAG]:
    """``{name: DAG}`` for every good pipeline, plus the stand-in if any failed.

    Meant for a DAG file: ``globals().update(load_dags(HERE / "pipelines"))``.
    """
    from dlflow_airflow.factory import build_dag
    from dlflow_airflow.pipeline import Pipeline

    dags: dict[str, DAG] = {}
    sources: dict[str, Path] = {}
    errors: list[str] = []
    for path in pipeline_files(folder):
        try:
            pipeline = Pipeline.from_file(path)
            dag_id = pipeline.spec.dag_id
            if dag_id in sources:
                raise PipelineLoadError(
                    f"{path}: dag_id: {dag_id!r} is already used by {sources[dag_id]}"
                )
            dags[dag_id] = build_dag(pipeline)
            sources[dag_id] = path
        except (PipelineError, PipelineLoadError) as exc:
            errors.append(str(exc))
            log.error("dlflow: pipeline %s not loaded:\n%s", path, exc)
        except Exception as exc:  # a kind's build_operator or Airflow itself refused it
            errors.append(f"{path}: {type(exc).__name__}: {exc}")
            log.exception("dlflow: pipeline %s not loaded", path)
    if errors:
        dags[INVALID_DAG_ID] = InvalidPipelines(
            dag_id=INVALID_DAG_ID,
            schedule=None,
            doc_md=f"{len(errors)} pipeline file(s) could not be loaded:\n" + "\n".join(errors),
        )
    return dags
