"""The contract between an operator and the job it launches.

An operator renders one JSON document (the *job config*) plus the run's date
into the job's argument list::

    <program> --date 2026-01-01 --job '{"workspace": ..., "feature": ..., "stage": ...}'

``spark_jobs`` and ``tf_jobs`` parse it with :func:`JobConfig.from_argv`
into the same typed models the YAML was validated with (feature, model,
buckets, and the stage's own options), so no job reads a dict with a default
of its own. Pure Python, importable on Spark executors and in containers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from dlflow_airflow.contract.artifacts import JOBS, StageRef, job_tags
from dlflow_airflow.contract.layout import Layout, check_date
from dlflow_airflow.contract.options import JOB_OPTIONS
from dlflow_airflow.contract.schema import Buckets, BucketSpec, FeatureSpec, ModelSpec

RESULT_PREFIX = "DLFLOW_RESULT "
# Validated as one mapping, so an error names the bucket (``user.method``).
_BUCKETS = TypeAdapter(Buckets)
# Where a container job also writes its result, for the provider's XCom mechanism.
RESULT_FILE_ENV = "DLFLOW_RESULT_FILE"
NO_RETRY_EXIT_CODE = 3
"""A Spark job's exit code for a :class:`NoRetryError`: the operator fails the task for good."""


class NoRetryError(RuntimeError):
    """A job failure the same inputs always reproduce (e.g. a drift gate breached with
    ``on_breach: fail``): the job exits with :data:`NO_RETRY_EXIT_CODE` and Airflow
    does not retry it."""


class UserOptions(BaseModel):
    """The options of a user stage kind, kept as given (the kind validated them)."""

    model_config = ConfigDict(extra="allow", frozen=True)


@dataclass(frozen=True)
class JobConfig:
    """Everything one stage's job needs to know.

    :param stage: the stage this document belongs to (name, built-in job, tags).
    :param options: the stage's options, as the job's own options model.
    """

    date: str
    workspace: str
    feature: FeatureSpec
    model: ModelSpec
    stage: StageRef
    buckets: dict[str, BucketSpec] = field(default_factory=dict)
    options: Any = field(default_factory=UserOptions)

    @property
    def layout(self) -> Layout:
        return Layout(self.workspace)

    def body(self) -> dict[str, Any]:
        """The JSON document (without the date) an operator passes as ``--job``."""
        return job_document(
            self.workspace, self.feature, self.model, self.buckets, self.options, self.stage
        )

    @classmethod
    def from_body(cls, date: str, body: dict[str, Any], *, job: str | None = None) -> JobConfig:
        """Parse a job document.

        :param job: the built-in job reading it; names the options model, and
            the stage when the document has no ``stage`` (a job run by hand).
        """
        stage_doc = body.get("stage")
        named = (stage_doc or {}).get("job")
        if job and named and job != named:
            raise ValueError(f"the job document is for the {named!r} job, not {job!r}")
        job = job or named
        options_model = JOB_OPTIONS.get(job or "", UserOptions)
        options = options_model.model_validate(body.get("options", {}))
        if stage_doc is None:
            if job not in JOBS:
                raise ValueError("the job document has no 'stage' and names no built-in job")
            tags = job_tags(job, options)
            stage = StageRef(job, job, tags.needs, tags.produces)
        else:
            stage = StageRef.from_json(stage_doc)
        return cls(
            date=check_date(date),
            workspace=body["workspace"],
            feature=FeatureSpec.model_validate(body["feature"]),
            model=ModelSpec.model_validate(body["model"]),
            stage=stage,
            buckets=_BUCKETS.validate_python(body.get("buckets") or {}),
            options=options,
        )

    @classmethod
    def from_argv(cls, argv: Sequence[str] | None = None, *, job: str | None = None) -> JobConfig:
        parser = argparse.ArgumentParser(description="a dlflow-airflow stage job")
        parser.add_argument("--date", required=True, help="the partition date, YYYY-MM-DD")
        parser.add_argument("--job", required=True, help="the job config (JSON)")
        args = parser.parse_args(argv)
        return cls.from_body(args.date, json.loads(args.job), job=job)


def job_document(
    workspace: str,
    feature: FeatureSpec,
    model: ModelSpec,
    buckets: Mapping[str, BucketSpec],
    options: BaseModel,
    stage: StageRef,
) -> dict[str, Any]:
    """The one builder of a ``--job`` document (the factory's and :meth:`JobConfig.body`)."""
    return {
        "workspace": workspace,
        "feature": feature.model_dump(mode="json"),
        "model": model.model_dump(mode="json"),
        "buckets": {k: v.model_dump(mode="json") for k, v in buckets.items()},
        "options": options.model_dump(mode="json"),
        "stage": stage.to_json(),
    }


def job_argv(date: str, body: dict[str, Any]) -> list[str]:
    """The one function that builds a job's arguments (date may be a template)."""
    return ["--date", date, "--job", json.dumps(body, sort_keys=True)]


def emit_result(result: dict[str, Any]) -> None:
    """Print the job's result on one line; the operator returns it as XCom."""
    print(RESULT_PREFIX + json.dumps(result, sort_keys=True), flush=True)


def parse_result(line: str) -> dict[str, Any] | None:
    if line.startswith(RESULT_PREFIX):
        return json.loads(line[len(RESULT_PREFIX) :])
    return None
