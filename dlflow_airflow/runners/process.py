"""A job as local subprocesses of the Airflow worker, output streamed to the task log."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dlflow_airflow.contract.jobconf import parse_result
from dlflow_airflow.runners.base import JobFailedError

_TAIL_LINES = 30
_KILL_GRACE_SECONDS = 10
_POLL_SECONDS = 0.2


class LocalProcess:
    """``python -m <module> <args>`` with this interpreter, output streamed to the log.

    With ``workers > 1`` it starts that many processes, each with a
    ``TF_CONFIG`` naming the whole local cluster and its own index, for
    ``MultiWorkerMirroredStrategy``; worker 0 is the chief and its result is
    the job's. Every child gets its own process group so :meth:`kill` stops
    it and anything it started.
    """

    def __init__(self, *, on_stop: Callable[[], None] | None = None) -> None:
        """:param on_stop: called before a running job is stopped from outside (a kill,
        a task timeout), e.g. to cancel the work the job started elsewhere."""
        self._processes: list[subprocess.Popen[str]] = []
        self._lock = threading.Lock()
        self._on_stop = on_stop

    def command(self, module: str, args: list[str]) -> list[str]:
        return [sys.executable, "-u", "-m", module, *args]

    def run(
        self,
        module: str,
        args: list[str],
        *,
        env: Mapping[str, str],
        log: logging.Logger,
        workers: int = 1,
    ) -> dict[str, Any] | None:
        cmd = self.command(module, args)
        log.info("Running %s ... with %d worker(s)", " ".join(cmd[:4]), workers)
        configs = tf_configs(workers) if workers > 1 else [None]
        tails: list[collections.deque[str]] = [
            collections.deque(maxlen=_TAIL_LINES) for _ in configs
        ]
        results: list[dict[str, Any] | None] = [None for _ in configs]
        pumps: list[threading.Thread] = []
        with self._lock:
            for index, config in enumerate(configs):
                child_env = {**os.environ, **env}
                if config is not None:
                    child_env["TF_CONFIG"] = config
                process = subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    bufsize=1,
                    env=child_env,
                    start_new_session=True,
                )
                self._processes.append(process)
                prefix = f"[worker {index}] " if workers > 1 else ""
                pump = threading.Thread(
                    target=_pump,
                    args=(process, prefix, log, tails[index], results, index),
                    daemon=True,
                )
                pump.start()
                pumps.append(pump)
        try:
            try:
                failed = self._wait_all()
            except BaseException:
                # A task timeout or a signal while waiting: the job must not outlive its
                # task (and its output ends only when it does).
                self.kill()
                raise
        finally:
            for pump in pumps:
                pump.join()
            with self._lock:
                codes = [p.returncode for p in self._processes]
                self._processes = []
        if failed is not None:
            index, code = failed
            who = f"{module} (worker {index})" if workers > 1 else module
            raise JobFailedError(
                f"{who} exited with code {code}; last lines:\n" + "\n".join(tails[index]),
                exit_code=code,
            )
        if any(code != 0 for code in codes):  # killed from outside
            raise JobFailedError(f"{module} was stopped (exit codes {codes})")
        return results[0]

    def _wait_all(self) -> tuple[int, int] | None:
        """Wait for every process; on the first failure stop the others (they would hang)."""
        while True:
            with self._lock:
                processes = list(self._processes)
            codes = [p.poll() for p in processes]
            for index, code in enumerate(codes):
                if code not in (None, 0):
                    self.kill()
                    return index, code
            if all(code == 0 for code in codes):
                return None
            time.sleep(_POLL_SECONDS)

    def kill(self) -> None:
        with self._lock:
            processes = list(self._processes)
        running = [p for p in processes if p.poll() is None]
        # SIGTERM first: Airflow SIGKILLs the task a few seconds after on_kill, so the jobs
        # hear it before on_stop (which may take longer) runs beside their own shutdown.
        for process in running:
            _signal(process, signal.SIGTERM)
        if self._on_stop is not None and running:
            try:
                self._on_stop()
            except Exception:  # stopping the processes matters more
                logging.getLogger(__name__).warning("on_stop failed", exc_info=True)
        for process in running:
            _reap(process)


def _pump(
    process: subprocess.Popen[str],
    prefix: str,
    log: logging.Logger,
    tail: collections.deque[str],
    results: list[dict[str, Any] | None],
    index: int,
) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.rstrip("\n")
        tail.append(line)
        log.info("%s%s", prefix, line)
        parsed = parse_result(line)
        if parsed is not None:
            results[index] = parsed
    process.wait()


def _signal(process: subprocess.Popen[str], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _reap(process: subprocess.Popen[str]) -> None:
    """Wait a grace period for a process sent SIGTERM, then SIGKILL it (a second SIGTERM
    could cut short the shutdown its first one started)."""
    try:
        process.wait(timeout=_KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)


def tf_configs(workers: int) -> list[str]:
    """One ``TF_CONFIG`` per worker of a local cluster on free loopback ports."""
    ports = _free_ports(workers)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(workers)
    ]


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("localhost", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
