from __future__ import annotations

import pytest

from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.errors import CycleError, MissingProducerError, SpecError
from dlflow_airflow.pipeline.graph import StageTags, build_edges, topological_order
from tests.dlflow_airflow.pipelines import base_pipeline


def test_edges_follow_tags():
    pipeline = Pipeline.from_data(base_pipeline(), source="p.yaml")
    assert pipeline.order == ("merge", "encode", "train", "evaluate", "predict")
    assert ("merge", "encode") in pipeline.edges
    assert ("train", "predict") in pipeline.edges
    assert ("encode", "train") in pipeline.edges
    assert ("predict", "evaluate") not in pipeline.edges


def test_cycle_is_refused_with_its_members_named():
    stages = {
        "a": StageTags(needs=("Y",), produces=("X",)),
        "b": StageTags(needs=("X",), produces=("Y",)),
        "c": StageTags(needs=(), produces=("Z",)),
    }
    edges = build_edges(stages, source="cyc.yaml")
    with pytest.raises(CycleError) as info:
        topological_order(stages, edges, source="cyc.yaml")
    message = str(info.value)
    assert message.startswith("cyc.yaml: stages: the stages form a cycle: ")
    assert "a" in message.split("cycle: ")[1] and "b" in message.split("cycle: ")[1]
    assert "c" not in message.split("cycle: ")[1]


def test_cycle_in_yaml_through_extra_needs(tmp_path):
    doc = base_pipeline()
    doc["stages"]["merge"]["needs"] = ["TRAINED_MODEL"]
    with pytest.raises(CycleError, match=r"cycle: .*merge"):
        Pipeline.from_data(doc, source="p.yaml")


def test_missing_producer_gets_did_you_mean():
    doc = base_pipeline()
    del doc["stages"]["train"]
    doc["stages"]["evaluate"]["needs"] = ["ENCODED_FEATUR"]
    with pytest.raises(MissingProducerError) as info:
        Pipeline.from_data(doc, source="p.yaml")
    message = str(info.value)
    assert "p.yaml: stages.evaluate: needs ENCODED_FEATUR, which no stage produces" in message
    assert "did you mean ENCODED_FEATURE?" in message
    assert "p.yaml: stages.predict: needs TRAINED_MODEL" in message


def test_external_tag_satisfies_a_need():
    doc = base_pipeline()
    del doc["stages"]["train"]
    doc["external"] = ["TRAINED_MODEL"]
    pipeline = Pipeline.from_data(doc, source="p.yaml")
    assert "train" not in pipeline.stages
    assert ("encode", "predict") in pipeline.edges


def test_user_stage_kind_by_module_path():
    doc = base_pipeline()
    doc["stages"]["export"] = {
        "kind": "tests.dlflow_airflow.user_stages:Export",
        "target": "s3://bucket/out",
    }
    pipeline = Pipeline.from_data(doc, source="p.yaml")
    assert pipeline.order[-1] == "export"
    assert ("predict", "export") in pipeline.edges
    assert pipeline.stages["export"].produces == ("EXPORTED",)


def test_user_stage_kind_options_are_strict():
    doc = base_pipeline()
    doc["stages"]["export"] = {"kind": "tests.dlflow_airflow.user_stages:Export"}
    with pytest.raises(SpecError, match="p.yaml: stages.export.target: required key is missing"):
        Pipeline.from_data(doc, source="p.yaml")


def test_user_stage_kind_must_subclass_stage_kind():
    doc = base_pipeline()
    doc["stages"]["export"] = {"kind": "tests.dlflow_airflow.user_stages:NotAKind"}
    with pytest.raises(
        SpecError, match="is not a subclass of dlflow_airflow.stages.base.StageKind"
    ):
        Pipeline.from_data(doc, source="p.yaml")


def test_entry_point_stage_kind(monkeypatch):
    from importlib.metadata import EntryPoint

    from dlflow_airflow.contract import plugins
    from dlflow_airflow.pipeline.kinds import ENTRY_POINT_GROUP

    ep = EntryPoint(
        name="export", value="tests.dlflow_airflow.user_stages:Export", group=ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(
        plugins, "_group", lambda group: {"export": ep} if group == ENTRY_POINT_GROUP else {}
    )
    doc = base_pipeline()
    doc["stages"]["export"] = {"target": "x"}
    pipeline = Pipeline.from_data(doc, source="p.yaml")
    assert pipeline.stages["export"].kind_name == "export"
