"""The built-in stage kinds by name (DESIGN.md's table)."""

from __future__ import annotations

from dlflow_airflow.stages.base import StageKind
from dlflow_airflow.stages.spark import DemoDataStage, EncodeStage, MergeStage, PredictStage
from dlflow_airflow.stages.tf import EvaluateStage, TrainStage
from dlflow_airflow.stages.upstream import WaitUpstreamStage

BUILTIN_KINDS: dict[str, type[StageKind]] = {
    "demo_data": DemoDataStage,
    "merge": MergeStage,
    "encode": EncodeStage,
    "train": TrainStage,
    "evaluate": EvaluateStage,
    "predict": PredictStage,
    "wait_upstream": WaitUpstreamStage,
}
