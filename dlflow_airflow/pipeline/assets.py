"""Stage outputs as Airflow Assets: one Asset per (artifact, tag) under a workspace.

The Asset is the *undated* root of an artifact (``<ws>/model/TAG=dnn_v1``); each
successful task adds an asset event whose ``extra`` names the partition it
committed (``date``, ``partition``, ``rows``). Another pipeline can then be
scheduled on, e.g., a newly trained model (``schedule: {assets: [TRAINED_MODEL]}``,
:func:`schedule_condition`); its run takes its date from the triggering event
(:mod:`dlflow_airflow.contract.run_date`).

What is an outlet comes from the artifact contract: a partition the stage
always writes is an Asset outlet; encode's fmap, fitted only when absent, is
announced through an AssetAlias, so an event exists only when an fmap was
really written; a reused partition (``model.date: latest``) is no outlet at
all. Parse-time safe: no heavy imports.
"""

from __future__ import annotations

from collections.abc import Iterable

from airflow.sdk import Asset, AssetAlias, AssetAll, AssetAny

from dlflow_airflow.contract.artifacts import ARTIFACTS, Role, TagRole, asset_name
from dlflow_airflow.contract.layout import Layout
from dlflow_airflow.pipeline.spec import AssetSchedule


def artifact_asset(workspace: str, folder: str, owner_tag: str) -> Asset:
    """The Asset of an artifact root; the same name and URI in every DAG that uses it."""
    uri = Layout(workspace).root(folder, owner_tag)
    return Asset(name=asset_name(folder, owner_tag), uri=uri, group="dlflow")


def fitted_alias(folder: str, owner_tag: str) -> AssetAlias:
    """The alias through which a stage announces a partition it wrote only this time."""
    return AssetAlias(name=f"{asset_name(folder, owner_tag)}.written", group="dlflow")


def output_assets(
    roles: Iterable[TagRole], *, workspace: str, feature_tag: str, model_tag: str
) -> list[Asset | AssetAlias]:
    """A stage's outlets: Assets of what it writes, aliases of what it may fit."""
    out: list[Asset | AssetAlias] = []
    for role in roles:
        owner = role.artifact.owner_tag(feature_tag, model_tag)
        if role.role == Role.WRITE:
            out.append(artifact_asset(workspace, role.artifact.folder, owner))
        elif role.role == Role.FIT_OR_REUSE:
            out.append(fitted_alias(role.artifact.folder, owner))
    return out


def input_assets(
    tags: Iterable[str], *, workspace: str, feature_tag: str, model_tag: str
) -> list[Asset]:
    """Assets of built-in tags made by another DAG (the UI's asset graph links the two)."""
    return [
        artifact_asset(
            workspace, ARTIFACTS[tag].folder, ARTIFACTS[tag].owner_tag(feature_tag, model_tag)
        )
        for tag in tags
        if tag in ARTIFACTS
    ]


def schedule_condition(
    schedule: AssetSchedule, *, workspace: str, feature_tag: str, model_tag: str
) -> AssetAll | AssetAny:
    """The Assets a pipeline's ``schedule: {assets: [...]}`` names, all or any of them.

    Each is :func:`artifact_asset` of the artifact, as its producer's outlet is.
    """
    assets: dict[str, Asset] = {}
    for ref in schedule.artifacts():
        folder = ARTIFACTS[ref.artifact].folder
        asset = artifact_asset(workspace, folder, ref.owner_tag(feature_tag, model_tag))
        assets.setdefault(asset.name, asset)
    condition = AssetAny if schedule.when == "any" else AssetAll
    return condition(*assets.values())
