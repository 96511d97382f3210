"""A validated pipeline: spec + resolved stage kinds + task graph.

This is the whole check that ``dlflow-airflow validate`` runs and that the
DAG factory relies on: the spec, the model and its params (against the model
catalogue, without TensorFlow), the Spark conf policy, every stage's options
and placeholder paths, and the task graph. Nothing here imports Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dlflow_airflow.contract.artifacts import (
    ARTIFACTS,
    CHAMPION_FEATURE,
    ENCODED_FEATURE,
    EVALUATE_RESULT,
    FMAP,
    TRAINED_MODEL,
    Role,
    StageRef,
    asset_name,
    gated_tags,
    latest_conflict_message,
    model_date_conflicts,
    stage_roles,
)
from dlflow_airflow.contract.models import (
    ModelConfigError,
    ModelParamsError,
    get_model,
    resolve_params,
)
from dlflow_airflow.contract.options import path_templates
from dlflow_airflow.contract.tasks import label_problems
from dlflow_airflow.pipeline.errors import Issue, PipelineError, SpecError
from dlflow_airflow.pipeline.extends import read_pipeline
from dlflow_airflow.pipeline.graph import Edge, StageTags, build_edges, topological_order
from dlflow_airflow.pipeline.kinds import resolve_kind
from dlflow_airflow.pipeline.policy import spark_conf_issues
from dlflow_airflow.pipeline.spec import (
    AssetSchedule,
    PipelineSpec,
    issues_from_validation,
    parse_spec,
)
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
        """The pipeline of a file, its ``extends`` resolved (see :mod:`.extends`).

        An issue at a key a base set names that base.
        """
        found = read_pipeline(path)
        try:
            return cls.from_data(found.data, source=str(path))
        except PipelineError as exc:
            raise found.locate(exc) from None

    @classmethod
    def from_data(cls, data: Any, *, source: str) -> Pipeline:
        spec = parse_spec(data, source)
        stages, issues = resolve_stages(spec, source)
        issues = [*model_issues(spec, stages), *spark_conf_issues(spec), *issues]
        if issues:
            raise SpecError(source, issues)
        check_model_date(spec, stages, source)
        check_approval_tasks(stages, source)
        stages = gate_before_scoring(stages)
        stages = encode_for_champion(stages, spec.external, source)
        check_schedule_loop(spec, stages, source)
        tags = {name: StageTags(s.needs, s.produces) for name, s in stages.items()}
        edges = build_edges(tags, external=spec.external, source=source)
        order = topological_order(stages, edges, source=source)
        return cls(source, spec, stages, tuple(edges), tuple(order))

    @property
    def approvals(self) -> dict[str, tuple[str, ...]]:
        """Each evaluate stage with ``approval`` and the stages that score its model after it.

        The factory puts the stage's approval task (:func:`approval_task_id`) between them.
        """
        return {
            name: tuple(
                down
                for up, down in self.edges
                if up == name and gated_tags(self.stages[down].needs)
            )
            for name, stage in self.stages.items()
            if asks_approval(stage)
        }


def asks_approval(stage: Stage) -> bool:
    """An evaluate stage whose models a human approves (``approval: true``)."""
    return stage.kind.job == "evaluate" and bool(getattr(stage.options, "approval", False))


def approval_task_id(evaluate_stage: str) -> str:
    """The task id of an evaluate stage's human approval, e.g. ``evaluate_approval``."""
    return f"{evaluate_stage}_approval"


def check_approval_tasks(stages: dict[str, Stage], source: str) -> None:
    """An approval task's id must not be a stage's name."""
    issues = [
        Issue(
            f"stages.{approval_task_id(name)}",
            f"this name is the task id of stage {name!r}'s human approval; rename the stage",
        )
        for name, stage in stages.items()
        if asks_approval(stage) and approval_task_id(name) in stages
    ]
    if issues:
        raise SpecError(source, issues)


def gate_before_scoring(stages: dict[str, Stage]) -> dict[str, Stage]:
    """With an evaluate stage that has a gate (or a human approval), every predict stage
    waits for its verdict.

    Predict then needs EVALUATE_RESULT too: the graph orders it after evaluate,
    and the contract (:func:`~dlflow_airflow.contract.artifacts.gate_block`)
    refuses an unblessed model, whatever ``model.date`` says.
    """
    gated = any(
        s.kind.job == "evaluate" and (getattr(s.options, "gate", None) or asks_approval(s))
        for s in stages.values()
    )
    if not gated:
        return stages
    return {
        name: replace(s, needs=(*s.needs, EVALUATE_RESULT))
        if s.kind.job == "predict" and EVALUATE_RESULT not in s.needs
        else s
        for name, s in stages.items()
    }


def encode_for_champion(
    stages: dict[str, Stage], external: list[str], source: str
) -> dict[str, Stage]:
    """With an evaluate stage that compares with the champion (``max_drop_vs_blessed``),
    the encode stages producing ENCODED_FEATURE also encode the rows for the champion.

    Each model date has its own fmap, so the champion needs the day's rows
    encoded with its fmap: CHAMPION_FEATURE, which encode produces with its
    option ``champion`` (turned on here); the graph then orders evaluate after it.

    :raises SpecError: no stage can produce CHAMPION_FEATURE and the pipeline
        does not list it under ``external``; the issue names the gate's key.
    """
    comparing = [s for s in stages.values() if CHAMPION_FEATURE in s.needs]
    if not comparing or CHAMPION_FEATURE in external:
        return stages
    encoders = {
        name
        for name, s in stages.items()
        if s.kind.job == "encode" and ENCODED_FEATURE in s.produces
    }
    if not encoders:
        if any(CHAMPION_FEATURE in s.produces for s in stages.values()):
            return stages  # a stage of the user's own kind produces it
        raise SpecError(source, [_champion_issue(s) for s in comparing])
    return {name: _encoding_champion(s) if name in encoders else s for name, s in stages.items()}


def _encoding_champion(stage: Stage) -> Stage:
    options = stage.options.model_copy(update={"champion": True})
    needs, produces = _stage_tags(stage.kind, options, stage.common)
    return replace(stage, options=options, needs=needs, produces=produces)


def _champion_issue(stage: Stage) -> Issue:
    gate = getattr(stage.options, "gate", {})
    metric = next((m for m, b in gate.items() if b.max_drop_vs_blessed is not None), None)
    path = f"stages.{stage.name}" + (f".gate.{metric}.max_drop_vs_blessed" if metric else "")
    return Issue(
        path,
        "comparing with the blessed model needs the day's rows encoded with that model's "
        f"fmap ({CHAMPION_FEATURE}), made by the encode stage producing {ENCODED_FEATURE}, "
        "and this pipeline has none; add the encode stage, or list "
        f"{CHAMPION_FEATURE} under 'external' if another pipeline's encode makes it "
        "(with its option champion: true)",
    )


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


def model_issues(spec: PipelineSpec, stages: Mapping[str, Stage]) -> list[Issue]:
    """``model.name`` is in the model catalogue, ``model.params`` suit it, and the
    labels and ``model.heads`` suit its task (:func:`label_issues`).

    A ``package.module:ATTR`` model's module is imported here (TensorFlow is not).
    """
    model = spec.model
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
    return label_issues(spec, found.task, stages)


LABEL_READERS = (FMAP, TRAINED_MODEL, EVALUATE_RESULT)
"""A stage producing one of these reads the labels (fits their encoding, learns, scores)."""


def label_issues(spec: PipelineSpec, task: str, stages: Mapping[str, Stage]) -> list[Issue]:
    """``feature.labels`` and ``model.heads`` against the model's task: checked when the
    pipeline fits an fmap, trains or evaluates, or names labels or heads at all."""
    labels, heads = spec.feature.labels, spec.model.heads
    learns = any(tag in stage.produces for stage in stages.values() for tag in LABEL_READERS)
    if not (learns or labels or heads):
        return []
    return [
        Issue("model.heads" if problem.startswith("model.heads") else "feature.labels", problem)
        for problem in label_problems(task, labels, heads)
    ]


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


def check_schedule_loop(spec: PipelineSpec, stages: Mapping[str, Stage], source: str) -> None:
    """A pipeline is not scheduled on an artifact one of its own stages writes:
    each run would trigger the next."""
    if not isinstance(spec.schedule, AssetSchedule):
        return
    tags = {"feature_tag": spec.feature.tag, "model_tag": spec.model.tag}
    writers: dict[str, str] = {}
    for name, stage in stages.items():
        for role in stage_roles(stage.needs, stage.produces, spec.model.date, stage.options):
            if role.role in (Role.WRITE, Role.FIT_OR_REUSE):
                owner = role.artifact.owner_tag(**tags)
                writers.setdefault(asset_name(role.artifact.folder, owner), name)
    issues = []
    for index, ref in enumerate(spec.schedule.artifacts()):
        asset = asset_name(ARTIFACTS[ref.artifact].folder, ref.owner_tag(**tags))
        if asset in writers:
            issues.append(
                Issue(
                    f"schedule.assets.{index}",
                    f"stage {writers[asset]!r} of this pipeline writes {ref.artifact} "
                    f"(asset {asset}): each run would trigger the next; name an artifact "
                    "another pipeline writes",
                )
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
    needs, produces = _stage_tags(kind, options, common)
    return Stage(name, kind_name, kind, options, common, needs, produces)


def _stage_tags(
    kind: StageKind, options: BaseModel, common: StageCommon
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A stage's needs and produces: its kind's for its options, then its own extra tags."""
    needs = tuple(dict.fromkeys((*kind.needed_tags(options), *common.needs)))
    produces = tuple(dict.fromkeys((*kind.produced_tags(options), *common.produces)))
    return needs, produces


def _with_common_keys(issue: Issue, stage_path: str) -> Issue:
    """Unknown keys at a stage's top level may also be one of the common keys."""
    prefix = "unknown key"
    if issue.message.startswith(prefix) and issue.path.count(".") == stage_path.count(".") + 1:
        head, _, allowed = issue.message.partition("; allowed keys: ")
        names = [n for n in allowed.split(", ") if n] + list(StageCommon.model_fields)
        return Issue(issue.path, f"{head}; allowed keys: {', '.join(names)}")
    return issue
