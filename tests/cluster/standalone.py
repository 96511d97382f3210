"""A Spark standalone cluster (one master, one worker) on 127.0.0.1, for tests.

Started with the ``spark-daemon.sh`` that the pyspark wheel ships (it has no
``start-master.sh``); pid and log files live in the cluster's own folder, so
``stop`` ends exactly the two daemons it started.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class StandaloneCluster:
    root: Path
    cores: int = 2
    memory: str = "3g"
    port: int = 0

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        # The worker's environment becomes its executors': keep project paths out of it.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "PYTHON"))}
        return {
            **env,
            "SPARK_HOME": str(pyspark_home()),
            "SPARK_LOG_DIR": str(self.root / "logs"),
            "SPARK_PID_DIR": str(self.root / "pids"),
            "SPARK_WORKER_DIR": str(self.root / "work"),
        }

    def daemon(self, action: str, klass: str, *args: str) -> None:
        script = pyspark_home() / "sbin" / "spark-daemon.sh"
        subprocess.run(
            ["bash", str(script), action, klass, "1", *args],
            env=self.env(),
            check=True,
            capture_output=True,
            cwd=self.root,
        )

    def start(self, timeout: float = 120.0) -> None:
        self.port = self.port or free_port()
        self.daemon(
            "start", MASTER, "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", "0"
        )
        self.daemon(
            "start",
            WORKER,
            self.url,
            "--host",
            "127.0.0.1",
            "--cores",
            str(self.cores),
            "--memory",
            self.memory,
            "--webui-port",
            "0",
            "--work-dir",
            str(self.root / "work"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Registering worker" in self.master_log():
                return
            time.sleep(1)
        raise RuntimeError(f"no worker registered with {self.url}:\n{self.master_log()[-3000:]}")

    def master_log(self) -> str:
        logs = sorted((self.root / "logs").glob(f"*{MASTER}*.out"))
        return logs[0].read_text(errors="replace") if logs else ""

    def stop(self) -> None:
        for klass in (WORKER, MASTER):
            with contextlib.suppress(subprocess.CalledProcessError):  # already gone
                self.daemon("stop", klass)
