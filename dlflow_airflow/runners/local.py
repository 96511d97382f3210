"""Run a job as a local subprocess of the Airflow worker."""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from dlflow_airflow.jobconf import parse_result
from dlflow_airflow.runners.base import JobFailedError

_TAIL_LINES = 30
_KILL_GRACE_SECONDS = 10


class LocalRunner:
    """``python -m <module> <args>`` with this interpreter, output streamed to the log.

    The child gets its own process group so :meth:`kill` stops it and anything
    it started (TensorFlow's worker threads, a multi-worker launch).
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None

    def command(self, module: str, args: list[str]) -> list[str]:
        return [sys.executable, "-u", "-m", module, *args]

    def run(
        self, module: str, args: list[str], *, env: Mapping[str, str], log: logging.Logger
    ) -> dict[str, Any] | None:
        cmd = self.command(module, args)
        log.info("Running %s", " ".join(cmd[:4]) + " ...")
        self._process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, **env},
            start_new_session=True,
        )
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        result: dict[str, Any] | None = None
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            log.info("%s", line)
            parsed = parse_result(line)
            if parsed is not None:
                result = parsed
        code = self._process.wait()
        self._process = None
        if code != 0:
            raise JobFailedError(
                f"{module} exited with code {code}; last lines:\n" + "\n".join(tail)
            )
        return result

    def kill(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=_KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
