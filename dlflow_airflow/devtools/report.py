"""What a run left in the workspace: every stage's partitions, metrics, predictions.

The partitions come from the artifact contract (the same call the
bookkeeping and the jobs make), so a reused fmap or model is reported as
``reused <date>``, never as missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    METRICS_FILE,
    Role,
    approval_of,
    gate_block,
    stage_io,
)
from dlflow_airflow.contract.model_resolution import ModelNotFoundError
from dlflow_airflow.operators.fingerprints import written_by
from dlflow_airflow.pipeline.build import Pipeline

SHOWN_ROLES = (Role.WRITE, Role.FIT_OR_REUSE, Role.REUSE)


@dataclass(frozen=True)
class PartitionState:
    """One line of the report.

    :param status: ``ok`` (written for the date), ``reused`` (an earlier
        partition used as it is), ``missing``, ``unresolved`` (no model for
        ``model.date: latest``) or ``blocked`` (its model missed the gate);
        ``detail`` says why for the last two.
    :param approval: with ``approval: true``, where the human approval of the
        model stands: ``awaiting approval``, ``approved by X``, ``rejected by X``.
    """

    stage: str
    artifact: str
    uri: str
    status: str
    date: str = ""
    detail: str = ""
    approval: str = ""

    @property
    def complete(self) -> bool:
        return self.status in ("ok", "reused")

    def render(self) -> str:
        label = {
            "ok": "ok",
            "reused": f"reused {self.date}",
            "missing": "MISSING",
            "unresolved": "MISSING",
            "blocked": "blocked by gate",
        }[self.status]
        if self.status == "blocked" and self.approval and not self.approval.startswith("approved"):
            label = self.approval  # met the gate; a human has not approved it
        where = self.detail if self.status in ("unresolved", "blocked") else self.uri
        line = f"  {label:<17} {self.stage:<10} {self.artifact:<9} {where}"
        if self.approval and self.status != "blocked":
            line += f" ({self.approval})"
        return line


def stage_partitions(pipeline: Pipeline, date: str) -> list[PartitionState]:
    """Every built-in stage's written and reused partitions for ``date``, in task order."""
    out: list[PartitionState] = []
    for name in pipeline.order:
        config = pipeline.stages[name].context(pipeline.spec).job_config(date)
        try:
            io = stage_io(config)
        except ModelNotFoundError as exc:
            out.append(PartitionState(name, "model", "", "unresolved", detail=str(exc)))
            continue
        blocked = gate_block(config, io)
        approval = approval_of(io)
        for p in io.by_role(*SHOWN_ROLES):
            if not storage.is_complete(p.uri):
                status = "blocked" if blocked and p.role == Role.WRITE else "missing"
            elif p.role == Role.WRITE or p.date == date or written_by(p, date):
                status = "ok"
            else:
                status = "reused"
            detail = blocked if status == "blocked" else ""
            shown = approval.describe() if approval and p.role == Role.WRITE else ""
            out.append(PartitionState(name, p.folder, p.uri, status, p.date, detail or "", shown))
    return out


def read_metrics(pipeline: Pipeline, date: str) -> dict | None:
    from dlflow_airflow.contract.layout import Layout

    uri = (
        f"{Layout(pipeline.spec.workspace).evaluate(pipeline.spec.model.tag, date)}/{METRICS_FILE}"
    )
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else None


def render(pipeline: Pipeline, date: str) -> tuple[str, bool]:
    """A text report and whether every stage's partitions are there (written or reused)."""
    parts = stage_partitions(pipeline, date)
    lines = [f"Pipeline {pipeline.spec.dag_id}, partition {date}:"]
    lines.extend(p.render() for p in parts)
    metrics = read_metrics(pipeline, date)
    if metrics:
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        lines.append("Evaluation metrics: " + json.dumps(shown, sort_keys=True))
    predict = [p for p in parts if p.artifact == "predict"]
    if predict:
        lines.append(f"Predictions (Parquet): {predict[0].uri}")
    return "\n".join(lines), all(p.complete for p in parts)
