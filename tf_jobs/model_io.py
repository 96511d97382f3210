"""Save and load the trained Keras model at a workspace URI.

A model partition holds ``model.keras``, ``history.json`` and
``manifest.json`` (what train knew: fmap checksum, params, task...), written
by train and read by evaluate. Remote workspaces are staged through a local
temporary folder, since Keras reads local files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.model_resolution import MANIFEST_FILE, ModelNotFoundError
from dlflow_airflow.contract.models import get_model

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"

__all__ = [
    "HISTORY_FILE",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "ModelNotFoundError",
    "load_model",
    "model_file_uri",
    "read_manifest",
    "require_committed",
    "save_model",
]


def model_file_uri(model_partition: str) -> str:
    return f"{model_partition}/{MODEL_FILE}"


def save_model(model, model_dir_uri: str) -> str:
    """Write ``model.keras`` into a (staging) partition folder; returns its URI."""
    from pyarrow import fs

    target = model_file_uri(model_dir_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, MODEL_FILE)
        model.save(local)
        filesystem, path = storage.resolve(target)
        filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        fs.copy_files(local, path, destination_filesystem=filesystem)
    return target


def require_committed(model_partition: str) -> None:
    """:raises ModelNotFoundError: the partition has no ``_SUCCESS`` or no ``model.keras``."""
    uri = model_file_uri(model_partition)
    if not storage.is_complete(model_partition) or not storage.exists(uri):
        raise ModelNotFoundError(
            f"no committed model at {uri} (tried {model_partition}/_SUCCESS); "
            "did the train stage run for that model date?"
        )


def read_manifest(model_partition: str) -> dict[str, Any]:
    """The manifest train wrote beside the model.

    :raises ModelNotFoundError: the partition has none (a model from before manifests).
    """
    uri = f"{model_partition}/{MANIFEST_FILE}"
    if not storage.exists(uri):
        raise ModelNotFoundError(f"model {model_partition} has no {MANIFEST_FILE}; retrain it")
    return json.loads(storage.read_text(uri))


def task_of(manifest: Mapping[str, Any], model_name: str) -> str:
    """A model's task: its manifest's, else the catalogue's for ``model_name`` (a model
    trained before manifests recorded it)."""
    return manifest.get("task") or get_model(model_name).task


def load_model(model_partition: str):
    """Load the model of a committed partition (``_SUCCESS`` required)."""
    import keras

    require_committed(model_partition)
    uri = model_file_uri(model_partition)
    filesystem, path = storage.resolve(uri)
    from pyarrow import fs

    if isinstance(filesystem, fs.LocalFileSystem):
        return keras.models.load_model(path, compile=False)
    tmp = tempfile.mkdtemp(prefix="dlflow-model-")
    try:
        local = os.path.join(tmp, MODEL_FILE)
        fs.copy_files(path, local, source_filesystem=filesystem)
        return keras.models.load_model(local, compile=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
