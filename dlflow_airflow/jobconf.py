"""The contract between an operator and the job it launches.

An operator renders one JSON document (the *job config*) plus the run's date
into the job's argument list::

    <program> --date 2026-01-01 --job '{"workspace": ..., "feature": ..., ...}'

``spark_jobs`` and ``tf_jobs`` parse it with :func:`JobConfig.from_argv`.
Pure Python, importable on Spark executors and in containers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dlflow_airflow.layout import Layout, check_date

RESULT_PREFIX = "DLFLOW_RESULT "


@dataclass(frozen=True)
class FeatureConf:
    tag: str
    primary_keys: tuple[str, ...]
    labels: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelConf:
    tag: str
    name: str
    date: str = "same"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobConfig:
    """Everything one stage's job needs to know."""

    date: str
    workspace: str
    feature: FeatureConf
    model: ModelConf
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return Layout(self.workspace)

    @property
    def model_date(self) -> str:
        """The model date this run trains or uses; ``same`` is the run's date."""
        if self.model.date == "same":
            return self.date
        if self.model.date == "latest":
            raise ValueError("model.date 'latest' is resolved by the stage that needs a model")
        return check_date(self.model.date)

    def body(self) -> dict[str, Any]:
        """The JSON document (without the date) an operator passes as ``--job``."""
        return {
            "workspace": self.workspace,
            "feature": {
                "tag": self.feature.tag,
                "primary_keys": list(self.feature.primary_keys),
                "labels": list(self.feature.labels),
                "drop_columns": list(self.feature.drop_columns),
            },
            "model": {
                "tag": self.model.tag,
                "name": self.model.name,
                "date": self.model.date,
                "params": self.model.params,
            },
            "buckets": self.buckets,
            "options": self.options,
        }

    @classmethod
    def from_body(cls, date: str, body: dict[str, Any]) -> JobConfig:
        feature = body["feature"]
        model = body["model"]
        return cls(
            date=check_date(date),
            workspace=body["workspace"],
            feature=FeatureConf(
                tag=feature["tag"],
                primary_keys=tuple(feature["primary_keys"]),
                labels=tuple(feature.get("labels", ())),
                drop_columns=tuple(feature.get("drop_columns", ())),
            ),
            model=ModelConf(
                tag=model["tag"],
                name=model["name"],
                date=model.get("date", "same"),
                params=dict(model.get("params", {})),
            ),
            buckets=dict(body.get("buckets", {})),
            options=dict(body.get("options", {})),
        )

    @classmethod
    def from_argv(cls, argv: Sequence[str] | None = None) -> JobConfig:
        parser = argparse.ArgumentParser(description="a dlflow-airflow stage job")
        parser.add_argument("--date", required=True, help="the partition date, YYYY-MM-DD")
        parser.add_argument("--job", required=True, help="the job config (JSON)")
        args = parser.parse_args(argv)
        return cls.from_body(args.date, json.loads(args.job))


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
