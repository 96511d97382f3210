"""Each stage's partitions for its run: written, reused, missing or blocked by the gate.

The partitions come from the artifact contract (the same call the
bookkeeping and the jobs make), so a reused fmap or model is reported as
``reused <date>``, never as missing. The CLI's ``report`` and the run report
in the Airflow UI both show these states.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import Role, StageIO, approval_of, gate_block, stage_io
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.model_resolution import ModelNotFoundError
from dlflow_airflow.operators.fingerprints import written_by

SHOWN_ROLES = (Role.WRITE, Role.FIT_OR_REUSE, Role.REUSE)


@dataclass(frozen=True)
class PartitionState:
    """One partition of one stage for its run.

    :param status: ``ok`` (written for the date), ``reused`` (an earlier
        partition used as it is), ``missing``, ``unresolved`` (no model for
        ``model.date: latest``) or ``blocked`` (its model missed the gate);
        ``detail`` says why for the last two.
    :param approval: with ``approval: true``, where the human approval of the
        model stands: ``awaiting approval``, ``approved by X``, ``rejected by X``.
    :param tag: the artifact tag (``FMAP``, ``EVALUATE_RESULT``...); empty when unresolved.
    """

    stage: str
    artifact: str
    uri: str
    status: str
    date: str = ""
    detail: str = ""
    approval: str = ""
    tag: str = ""

    @property
    def complete(self) -> bool:
        return self.status in ("ok", "reused")

    @property
    def label(self) -> str:
        """The status as a person reads it: ``ok``, ``reused <date>``, ``blocked by gate``..."""
        label = {
            "ok": "ok",
            "reused": f"reused {self.date}",
            "missing": "MISSING",
            "unresolved": "MISSING",
            "blocked": "blocked by gate",
        }[self.status]
        if self.status == "blocked" and self.approval and not self.approval.startswith("approved"):
            label = self.approval  # met the gate; a human has not approved it
        return label

    @property
    def where(self) -> str:
        """The partition, or why there is none to show."""
        return self.detail if self.status in ("unresolved", "blocked") else self.uri

    def render(self) -> str:
        line = f"  {self.label:<17} {self.stage:<10} {self.artifact:<9} {self.where}"
        if self.approval and self.status != "blocked":
            line += f" ({self.approval})"
        return line


def resolve_io(config: JobConfig) -> StageIO | str:
    """The stage's partitions, or why they cannot be named (no model for ``latest``)."""
    try:
        return stage_io(config)
    except ModelNotFoundError as exc:
        return str(exc)


def stage_states(
    name: str, config: JobConfig, io: StageIO | str | None = None
) -> list[PartitionState]:
    """The written and reused partitions of stage ``name`` for the run of ``config``.

    :param io: the stage's :func:`resolve_io`, when the caller has it already.
    """
    io = resolve_io(config) if io is None else io
    if isinstance(io, str):
        return [PartitionState(name, "model", "", "unresolved", detail=io)]
    blocked = gate_block(config, io)
    approval = approval_of(io)
    out: list[PartitionState] = []
    for p in io.by_role(*SHOWN_ROLES):
        if not storage.is_complete(p.uri):
            status = "blocked" if blocked and p.role == Role.WRITE else "missing"
        elif p.role == Role.WRITE or p.date == config.date or written_by(p, config.date):
            status = "ok"
        else:
            status = "reused"
        detail = blocked if status == "blocked" else ""
        shown = approval.describe() if approval and p.role == Role.WRITE else ""
        out.append(
            PartitionState(name, p.folder, p.uri, status, p.date, detail or "", shown, p.tag)
        )
    return out
