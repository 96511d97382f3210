"""A validated pipeline: spec + resolved stage kinds + task graph.

This is the whole check that ``dlflow-airflow validate`` runs and that the
DAG factory relies on: the spec, the model and its params (against the model
catalogue, without TensorFlow), the Spark conf policy, every stage's options
and placeholder paths, and the task graph. Nothing here imports Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dlflow_airflow.contract.artifacts import (
    EVALUATE_RESULT,
    StageRef,
    latest_conflict_message,
    model_date_conflicts,
)
from dlflow_airflow.contract.models import (
    ModelConfigError,
    ModelParamsError,
    get_model,
    resolve_params,
)
from dlflow_airflow.contract.options import path_templates
from dlflow_airflow.contract.schema import ModelSpec
from dlflow_airflow.pipeline.errors import Issue, PipelineError, SpecError
from dlflow_airflow.pipeline.graph import Edge, StageTags, build_edges, topological_order
from dlflow_airflow.pipeline.kinds import resolve_kind
from dlflow_airflow.pipeline.policy import spark_conf_issues
from dlflow_airflow.pipeline.spec import PipelineSpec, issues_from_validation, parse_spec
from dlflow_airflow.pipeline.yaml_reader import read_yaml
from dlflow_airflow.stages.base import StageCommon, StageContext, StageKind


@dataclass(frozen=True)
class Stage:
    name: str
    kind_name: str
    kind: StageKind
    options: BaseModel
    common: StageCommon
    needs: tuple[str, ...]
    produces: tuple[str, ...]

    @property
    def ref(self) -> StageRef:
        """The stage as the job document names it (see the artifact contract)."""
        return StageRef(self.name, self.kind.job, self.needs, self.produces)

    def context(self, spec: PipelineSpec) -> StageContext:
        return StageContext(
            name=self.name, spec=spec, options=self.options, common=self.common, stage=self.ref
        )


@dataclass(frozen=True)
class Pipeline:
    source: str
    spec: PipelineSpec
    stages: dict[str, Stage]
    edges: tuple[Edge, ...]
    order: tuple[str, ...]

    @classmethod
    def from_file(cls, path: str | Path) -> Pipeline:
        return cls.from_data(read_yaml(path), source=str(path))

    @classmethod
    def from_data(cls, data: Any, *, source: str) -> Pipeline:
        spec = parse_spec(data, source)
        stages, issues = resolve_stages(spec, source)
        issues = [*model_issues(spec.model), *spark_conf_issues(spec), *issues]
        if issues:
            raise SpecError(source, issues)
        check_model_date(spec, stages, source)
        stages = gate_before_scoring(stages)
        tags = {name: StageTags(s.needs, s.produces) for name, s in stages.items()}
        edges = build_edges(tags, external=spec.external, source=source)
        order = topological_order(stages, edges, source=source)
        return cls(source, spec, stages, tuple(edges), tuple(order))


def gate_before_scoring(stages: dict[str, Stage]) -> dict[str, Stage]:
    """With an evaluate stage that has a gate, every predict stage waits for its verdict.

    Predict then needs EVALUATE_RESULT too: the graph orders it after evaluate,
    and the contract (:func:`~dlflow_airflow.contract.artifacts.gate_block`)
    refuses an unblessed model, whatever ``model.date`` says.
    """
    gated = any(
        s.kind.job == "evaluate" and getattr(s.options, "gate", None) for s in stages.values()
    )
    if not gated:
        return stages
    return {
        name: replace(s, needs=(*s.needs, EVALUATE_RESULT))
        if s.kind.job == "predict" and EVALUATE_RESULT not in s.needs
        else s
        for name, s in stages.items()
    }


def resolve_stages(spec: PipelineSpec, source: str) -> tuple[dict[str, Stage], list[Issue]]:
    """Every stage whose keys suit its kind, and the issues of all the others and of
    every path (:func:`path_issues`)."""
    stages: dict[str, Stage] = {}
    issues: list[Issue] = []
    for name in sorted(spec.stages):
        try:
            stages[name] = _resolve_stage(name, spec.stages[name], source)
        except SpecError as exc:
            issues.extend(exc.issues)
        else:
            issues.extend(path_issues(stages[name]))
    return stages, issues


def model_issues(model: ModelSpec) -> list[Issue]:
    """``model.name`` is in the model catalogue and ``model.params`` suit it.

    A ``package.module:ATTR`` model's module is imported here (TensorFlow is not).
    """
    try:
        found = get_model(model.name)
    except ModelConfigError as exc:
        return [Issue("model.name", str(exc))]
    try:
        resolve_params(found, model.params)
    except ModelParamsError as exc:
        return [_param_issue(problem) for problem in exc.problems]
    except Exception as exc:  # a user model's validate failed: its message, not a traceback
        return [Issue("model.params", f"model {model.name!r}: {type(exc).__name__}: {exc}")]
    return []


def _param_issue(problem: ModelConfigError) -> Issue:
    path = f"model.params.{problem.param}" if problem.param else "model.params"
    return Issue(path, str(problem))


def path_issues(stage: Stage) -> list[Issue]:
    """Every placeholder path of ``stage`` names only placeholders its job fills."""
    return [
        Issue(f"stages.{stage.name}.{template.key}", problem)
        for template in path_templates(stage.options)
        if (problem := template.problem()) is not None
    ]


def check_model_date(spec: PipelineSpec, stages: dict[str, Stage], source: str) -> None:
    """``model.date: latest`` names an existing model: no stage may have to write one."""
    issues = []
    for name, stage in stages.items():
        conflicts = model_date_conflicts(stage.produces, spec.model.date, stage.options)
        if conflicts:
            issues.append(
                Issue("model.date", f"stage {name!r}: {latest_conflict_message(conflicts)}")
            )
    if issues:
        raise SpecError(source, issues)


def _resolve_stage(name: str, raw: Any, source: str) -> Stage:
    path = f"stages.{name}"
    if not isinstance(raw, dict):
        raise SpecError(source, [Issue(path, f"expected a mapping, got {type(raw).__name__}")])
    common_keys = set(StageCommon.model_fields)
    common_raw = {k: v for k, v in raw.items() if k in common_keys}
    options_raw = {k: v for k, v in raw.items() if k not in common_keys}
    try:
        common = StageCommon.model_validate(common_raw)
    except ValidationError as exc:
        raise SpecError(source, issues_from_validation(exc, StageCommon, path)) from None
    kind_name = common.kind or name
    try:
        kind_cls = resolve_kind(kind_name, source=source, path=f"{path}.kind")
    except PipelineError as exc:
        raise SpecError(source, exc.issues) from None
    try:
        options = kind_cls.Options.model_validate(options_raw)
    except ValidationError as exc:
        issues = issues_from_validation(exc, kind_cls.Options, path)
        raise SpecError(source, [_with_common_keys(i, path) for i in issues]) from None
    kind = kind_cls()
    needs = tuple(dict.fromkeys((*kind.needed_tags(options), *common.needs)))
    produces = tuple(dict.fromkeys((*kind.produced_tags(options), *common.produces)))
    return Stage(name, kind_name, kind, options, common, needs, produces)


def _with_common_keys(issue: Issue, stage_path: str) -> Issue:
    """Unknown keys at a stage's top level may also be one of the common keys."""
    prefix = "unknown key"
    if issue.message.startswith(prefix) and issue.path.count(".") == stage_path.count(".") + 1:
        head, _, allowed = issue.message.partition("; allowed keys: ")
        names = [n for n in allowed.split(", ") if n] + list(StageCommon.model_fields)
        return Issue(issue.path, f"{head}; allowed keys: {', '.join(names)}")
    return issue
