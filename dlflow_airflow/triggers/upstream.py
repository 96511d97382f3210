"""The trigger behind ``wait_upstream`` in deferrable mode.

:class:`UpstreamPartitionTrigger` runs in Airflow's triggerer: it checks the
same dependencies, with the same checkers, as
:class:`~dlflow_airflow.sensors.upstream.UpstreamPartitionSensor`'s ``poke``, every
``poke_interval`` seconds, off the event loop (the checkers read file
metadata, which blocks). It fires one event:

- ``{"status": "success", "values": {name: resolved value}}`` once all resolve;
- ``{"status": "timeout", "message": ...}`` when ``deadline`` passes first, the
  message naming every path tried and why it failed;
- ``{"status": "error", "message": ...}`` for a misconfigured dependency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from dlflow_airflow.contract.dependencies import (
    DependencyError,
    UpstreamMissingError,
    parse_dependencies,
    resolve_all,
)


class UpstreamPartitionTrigger(BaseTrigger):
    """Waits until every dependency resolves for ``date``.

    :param dependencies: name -> dependency, as JSON
        (see :mod:`dlflow_airflow.contract.dependencies`).
    :param workspace: fills ``{workspace}`` in dependency paths.
    :param date: the run date, ``YYYY-MM-DD``.
    :param poke_interval: seconds between checks.
    :param deadline: a POSIX timestamp after which the trigger gives up (None: never);
        absolute, so a trigger re-created after a triggerer restart keeps it.
    """

    def __init__(
        self,
        *,
        dependencies: dict[str, Any],
        workspace: str,
        date: str,
        poke_interval: float = 300.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.dependencies = dependencies
        self.workspace = workspace
        self.date = date
        self.poke_interval = float(poke_interval)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "dependencies": self.dependencies,
                "workspace": self.workspace,
                "date": self.date,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
            },
        )

    def check(self) -> dict[str, str]:
        """One blocking check: the resolved values, or :class:`UpstreamMissingError`."""
        parsed = parse_dependencies(self.dependencies)
        resolved = resolve_all(parsed, workspace=self.workspace, day=self.date)
        return {name: item.value for name, item in resolved.items()}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                values = await asyncio.to_thread(self.check)
            except UpstreamMissingError as exc:
                if self.deadline is not None and time.time() >= self.deadline:
                    yield TriggerEvent({"status": "timeout", "message": str(exc)})
                    return
                self.log.info("upstream not ready: %s", exc)
            except (DependencyError, ValueError) as exc:
                yield TriggerEvent({"status": "error", "message": str(exc)})
                return
            else:
                self.log.info("upstream ready: %s", values)
                yield TriggerEvent({"status": "success", "values": values})
                return
            await asyncio.sleep(self.poke_interval)
