"""Where a TensorFlow job runs: one small protocol, one class per backend."""

from __future__ import annotations

from dlflow_airflow.runners.base import (
    JobFailedError,
    Runner,
    RunnerUnavailableError,
    TfTask,
    get_runner,
    runner_names,
)

__all__ = [
    "JobFailedError",
    "Runner",
    "RunnerUnavailableError",
    "TfTask",
    "get_runner",
    "runner_names",
]
