"""A human approves a model between evaluate and its blessing (``gate: {approval: true}``).

The factory puts one :class:`ModelApprovalOperator` after an evaluate stage
with ``approval``, before the stages that score its model (predict). It is the
standard provider's ``ApprovalOperator`` (Airflow's human-in-the-loop: the
request shows under *Required actions* in the UI and in the REST API's
``hitlDetails``), told which evaluate partition it asks about:

- at ``execute``: it reads the evaluate partition's ``metrics.json``; a model
  that missed a bound, or is blessed already, leaves nothing to approve (the
  task skips itself and predict's own gate check says why). Otherwise it asks,
  showing the metrics, the gate and the drift summary of the encoded partition.
- on the answer (``execute_complete``, after Airflow resumes the task):
  Approve writes the model's ``BLESSED`` marker with the approver as evidence;
  Reject leaves the model unblessed and skips predict. Either way the
  decision, who took it, when and the evaluate partition go into the model's
  manifest (its ``approval`` entry).

With ``approval_timeout_hours`` a request nobody answers in time counts as
rejected (Airflow applies the ``Reject`` default); without, it waits for ever.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    DRIFT_FILE,
    ENCODED_FEATURE,
    EVALUATE_RESULT,
    METRICS_FILE,
    TRAINED_MODEL,
    ContractError,
    stage_io,
    verdict_stamp,
)
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.model_resolution import (
    ModelNotFoundError,
    is_blessed,
    record_blessing,
    record_decision,
)
from dlflow_airflow.operators.bookkeeping import check_selected
from dlflow_airflow.operators.run_date import RunDateTemplates
from dlflow_airflow.operators.run_report import RunReportLink


@dataclass(frozen=True)
class Verdict:
    """The evaluate partition a request is about, and the model it judged.

    :param metrics: the partition's ``metrics.json``; None when evaluate has not committed one.
    """

    config: JobConfig
    model: str
    partition: str
    encoded: str | None
    metrics: dict[str, Any] | None

    @property
    def gate(self) -> dict[str, Any]:
        return (self.metrics or {}).get("gate") or {}

    @property
    def record(self) -> str:
        return f"{self.partition}/{METRICS_FILE}"


class ModelApprovalOperator(RunDateTemplates, ApprovalOperator):
    """Ask a human to approve the model an evaluate stage judged; bless it on Approve.

    :param stage_body: the evaluate stage's job document without the date
        (see :mod:`dlflow_airflow.contract.jobconf`): it names the evaluate
        partition and the model through the artifact contract.
    :param evaluate_stage: the evaluate stage's name; selecting it in
        ``params.stages`` selects this task too.
    :param stage_date: the partition date, a template (``{{ ds }}``).
    :param response_timeout: how long a request waits; unanswered, it is rejected.
        None: it waits until someone answers.
    """

    template_fields = (*ApprovalOperator.template_fields, "stage_date")
    ui_color = "#f6e7b4"
    operator_extra_links = (RunReportLink(),)  # the run report (dlflow_airflow.ui)

    def __init__(
        self,
        *,
        stage_body: dict[str, Any],
        evaluate_stage: str,
        stage_date: str = "{{ ds }}",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("response_timeout") is not None:
            kwargs.setdefault("defaults", [self.REJECT])
        kwargs.setdefault("subject", f"Approve the model judged by {evaluate_stage}?")
        super().__init__(**kwargs)
        self.stage_body = stage_body
        self.evaluate_stage = evaluate_stage
        self.stage_date = stage_date

    # -- the request --------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        check_selected(self, context.get("params") or {}, also=(self.evaluate_stage,))
        verdict = self.verdict()
        reason = nothing_to_approve(verdict)
        if reason:
            message = f"dlflow: {self.task_id}: nothing to approve: {reason}"
            self.log.info(message)
            raise AirflowSkipException(message)
        self.subject = request_subject(verdict)
        self.body = request_body(verdict)
        self.log.info("dlflow: asking for approval of %s:\n%s", verdict.model, self.body)
        return super().execute(context)

    def verdict(self) -> Verdict:
        """The evaluate partition and model of this run, from the artifact contract."""
        config = JobConfig.from_body(self.stage_date, self.stage_body)
        try:
            io = stage_io(config)
        except (ModelNotFoundError, ContractError) as exc:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(
                f"dlflow: {self.task_id}: no model to approve: {exc}"
            ) from exc
        partition = io.get(EVALUATE_RESULT).uri
        record = f"{partition}/{METRICS_FILE}"
        metrics = None
        if storage.is_complete(partition) and storage.exists(record):
            metrics = json.loads(storage.read_text(record))
        encoded = io.get(ENCODED_FEATURE).uri if io.has(ENCODED_FEATURE) else None
        return Verdict(config, io.get(TRAINED_MODEL).uri, partition, encoded, metrics)

    # -- the answer ---------------------------------------------------------------

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Record the human's decision on the model; the provider then skips predict on Reject."""
        if "error" not in event:  # a timeout without default: the provider raises
            chosen = event["chosen_options"]
            self.validate_chosen_options(chosen)
            self.record(context, approved=chosen == [self.APPROVE], event=event)
        return super().execute_complete(context=context, event=event)

    def record(self, context: Any, *, approved: bool, event: dict[str, Any]) -> dict[str, Any]:
        """Write the decision into the model's manifest and bless (or unbless) the model."""
        verdict = self.verdict()
        user = event.get("responded_by_user")
        at = event.get("responded_at")
        decision = {
            "decision": "approved" if approved else "rejected",
            "by": dict(user) if user else None,
            "at": at.isoformat() if isinstance(at, datetime) else at,
            "timed_out": bool(event.get("timedout")),
            "evaluate": verdict.partition,
            "verdict_stamp": verdict_stamp(verdict.partition),
            "date": verdict.config.date,
            "dag_id": getattr(self, "dag_id", None),
            "run_id": str(getattr(context.get("dag_run"), "run_id", "") or ""),
            "task_id": self.task_id,
        }
        record_decision(verdict.model, decision)
        evidence = {
            "evaluated_on": verdict.config.date,
            "metrics": verdict.partition,
            "gate": verdict.gate.get("bounds") or {},
            "approved_by": decision["by"],
            "approved_at": decision["at"],
        }
        record_blessing(verdict.model, approved, evidence)
        who = (user or {}).get("name") or "nobody (timed out)"
        outcome = "approved by %s: blessed" if approved else "rejected by %s: not blessed"
        self.log.info("dlflow: model %s " + outcome, verdict.model, who)
        return decision


def nothing_to_approve(verdict: Verdict) -> str | None:
    """Why there is no request to make (None: ask)."""
    if verdict.metrics is None:
        return f"evaluate has not judged {verdict.model}: no {verdict.record}"
    missed = verdict.gate.get("missed") or []
    if missed:
        return f"model {verdict.model} missed the gate ({'; '.join(missed)}); see {verdict.record}"
    if is_blessed(verdict.model):
        return f"model {verdict.model} is blessed already"
    return None


def request_subject(verdict: Verdict) -> str:
    metrics = verdict.metrics or {}
    model = f"{metrics.get('model_tag', verdict.config.model.tag)}@{metrics.get('model_date', '?')}"
    return f"Bless model {model} (evaluated on {verdict.config.date})?"


def request_body(verdict: Verdict) -> str:
    """What the approver reads: the metrics against the gate, the verdict, the drift summary."""
    metrics = verdict.metrics or {}
    bounds = verdict.gate.get("bounds") or {}
    lines = [
        f"Model `{verdict.model}` met every bound of the gate on `{verdict.partition}`.",
        "**Approve** blesses it (predict and `model.date: latest` use it); "
        "**Reject** leaves it unblessed and skips predict.",
        "",
        "| metric | value | gate |",
        "| --- | --- | --- |",
    ]
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {name} | {shown} | {_bound_text(bounds.get(name))} |")
    notes = {
        k: v
        for k, v in verdict.gate.items()
        if k not in ("bounds", "missed", "blessed", "awaiting_approval")
    }
    if notes:
        lines += ["", f"Gate: `{json.dumps(notes, sort_keys=True, default=str)}`"]
    lines += ["", drift_summary(verdict.encoded)]
    return "\n".join(lines)


def _bound_text(bound: Any) -> str:
    if not isinstance(bound, dict):
        return ""
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in bound.items())


def drift_summary(encoded: str | None) -> str:
    """The encoded partition's drift report (``_DRIFT.json``) in a few lines, worst first."""
    from dlflow_airflow.contract.drift import summary_of

    record = f"{encoded}/{DRIFT_FILE}" if encoded else None
    if record is None or not storage.exists(record):
        return "Drift: no drift report for the evaluated partition."
    try:
        summary = summary_of(json.loads(storage.read_text(record)))
    except (ValueError, TypeError, AttributeError) as exc:
        return f"Drift: the report `{record}` is unreadable ({exc})."
    lines = [
        f"Drift of the evaluated rows since the fit ({summary['features']} features, `{record}`):"
    ]
    if summary["worst"]:
        lines += [
            "",
            "| feature | psi | null rate change | unseen rate |",
            "| --- | --- | --- | --- |",
        ]
        for f in summary["worst"]:
            cells = [f.get(k) for k in ("psi", "null_rate_change", "unseen_rate")]
            shown = " | ".join("" if c is None else f"{c:.4f}" for c in cells)
            lines.append(f"| {f.get('feature')} | {shown} |")
    for breach in summary["breaches"]:
        lines.append(f"- beyond the drift gate: {breach}")
    for key, label in (("new_columns", "new columns"), ("vanished_columns", "columns gone")):
        if summary.get(key):
            lines.append(f"- {label}: {', '.join(summary[key])}")
    return "\n".join(lines)
