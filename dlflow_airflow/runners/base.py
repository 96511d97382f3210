"""The runner protocol and the one lookup that chooses a backend."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol


class JobFailedError(RuntimeError):
    """The job exited with an error; the message carries the tail of its output."""


class JobRunner(Protocol):
    """Runs one job program to completion and returns its result line (if any)."""

    def run(
        self, module: str, args: list[str], *, env: Mapping[str, str], log: logging.Logger
    ) -> dict[str, Any] | None: ...

    def kill(self) -> None: ...


def _registry() -> dict[str, type[JobRunner]]:
    from dlflow_airflow.runners.local import LocalRunner

    return {"local": LocalRunner}


def runner_names() -> list[str]:
    return sorted(_registry())


def get_runner(name: str) -> JobRunner:
    runners = _registry()
    if name not in runners:
        raise ValueError(f"unknown runner {name!r}; known runners: {', '.join(sorted(runners))}")
    return runners[name]()
