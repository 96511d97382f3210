"""Stage outputs as Airflow Assets: one Asset per (artifact, tag) under a workspace.

The Asset is the *undated* root of an artifact (``<ws>/model/TAG=dnn_v1``); each
successful task adds an asset event whose ``extra`` names the partition it
committed (``date``, ``partition``, ``rows``). Another DAG can then be scheduled
on, e.g., a newly trained model (``schedule=[Asset(...)]``) and read the date
from the triggering event. Parse-time safe: no heavy imports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from airflow.sdk import Asset

from dlflow_airflow import stages as tags
from dlflow_airflow.layout import Layout, normalize_workspace


@dataclass(frozen=True)
class ArtifactRef:
    """Where a tag's partitions live: the artifact folder and which tag/date names them."""

    artifact: str
    owner: str  # "feature" or "model": whose tag names the partition
    dated_by: str  # "date" (the run's) or "model_date"


# Built-in tags -> their partitioned artifact. Tags not listed (user kinds'
# extra tags, DEMO_UPSTREAM) get no Asset of their own.
TAG_ARTIFACTS: dict[str, ArtifactRef] = {
    tags.RAW_FEATURE: ArtifactRef("raw", "feature", "date"),
    tags.ENCODED_FEATURE: ArtifactRef("encoded", "feature", "date"),
    tags.TFRECORD_FEATURE: ArtifactRef("tfrecord", "feature", "date"),
    tags.FMAP: ArtifactRef("femodel", "feature", "model_date"),
    tags.TRAINED_MODEL: ArtifactRef("model", "model", "model_date"),
    tags.EVALUATE_RESULT: ArtifactRef("evaluate", "model", "date"),
    tags.PREDICT_RESULT: ArtifactRef("predict", "model", "date"),
}


def asset_name(artifact: str, tag: str) -> str:
    """The Asset name of one artifact and tag, e.g. ``dlflow.model.dnn_v1``."""
    return f"dlflow.{artifact}.{tag}"


def artifact_asset(workspace: str, artifact: str, tag: str) -> Asset:
    """The Asset of an artifact root; the same name and URI in every DAG that uses it."""
    uri = Layout(normalize_workspace(workspace)).root(artifact, tag)
    return Asset(name=asset_name(artifact, tag), uri=uri, group="dlflow")


def output_assets(
    produced: Iterable[str], *, workspace: str, feature_tag: str, model_tag: str
) -> list[Asset]:
    """The Assets a stage declares as outlets, one per produced built-in tag."""
    owners = {"feature": feature_tag, "model": model_tag}
    out: list[Asset] = []
    for tag in produced:
        ref = TAG_ARTIFACTS.get(tag)
        if ref is not None:
            out.append(artifact_asset(workspace, ref.artifact, owners[ref.owner]))
    return out
