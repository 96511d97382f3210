from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dlflow_airflow.contract import models as catalogue
from dlflow_airflow.contract.tasks import LabelEncoding, TaskError
from tests.tf_jobs.conftest import (
    CLASSES,
    MULTILABEL_LABELS,
    TASK_MODELS,
    make_fmap,
    task_fmap,
)
from tf_jobs import heads as head_labels
from tf_jobs import models
from tf_jobs.models import ModelConfigError

pytestmark = pytest.mark.tf


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(
        ModelConfigError, match="known models: deepfm, dnn_binary_classifier, dnn_classifier, "
    ) as info:
        models.get_model("dnn_binary_clasifier")
    assert "; did you mean 'dnn_binary_classifier'?" in str(info.value)


def test_the_catalogue_is_the_contracts_and_builds_with_these_builders() -> None:
    assert models.ModelSpec is catalogue.ModelSpec
    assert models.ModelConfigError is catalogue.ModelConfigError
    assert models.get_model("deepfm") is catalogue.MODELS["deepfm"]
    builders = {name: spec.builder() for name, spec in catalogue.MODELS.items()}
    assert builders == {
        "dnn_binary_classifier": models.build_dnn_binary_classifier,
        "dnn_regressor": models.build_dnn_regressor,
        "deepfm": models.build_deepfm,
        "dnn_classifier": models.build_dnn_classifier,
        "dnn_multilabel_classifier": models.build_dnn_multilabel_classifier,
        "dnn_multitask": models.build_dnn_multitask,
    }


def test_defaults_and_overrides() -> None:
    spec = models.get_model("dnn_binary_classifier")
    params = models.resolve_params(spec, {"dropout": 0, "hidden_units": [8]})
    assert params == {
        "epochs": 3,
        "batch_size": 512,
        "hidden_units": [8],
        "embedding_dim": 8,
        "dropout": 0.0,
        "learning_rate": 0.001,
    }


def test_unknown_param_lists_accepted_ones() -> None:
    spec = models.get_model("dnn_binary_classifier")
    with pytest.raises(ModelConfigError, match="unknown param 'hiden_units'") as info:
        models.resolve_params(spec, {"hiden_units": [8]})
    assert "batch_size, dropout, embedding_dim, epochs, hidden_units, learning_rate" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": "3"}, "epochs must be an integer"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"hidden_units": 64}, "hidden_units must be a list of integers"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"learning_rate": True}, "learning_rate must be a number"),
    ],
)
def test_bad_param_values(params: dict, message: str) -> None:
    spec = models.get_model("dnn_binary_classifier")
    with pytest.raises(ModelConfigError, match=message):
        models.resolve_params(spec, params)


def test_dnn_inputs_are_the_encoded_columns_and_reload_without_custom_objects(tmp_path) -> None:
    import keras

    fmap = make_fmap()
    spec = models.get_model("dnn_binary_classifier")
    model = models.build_model(spec, fmap, models.resolve_params(spec, {"dropout": 0.2}))
    assert sorted(t.name for t in model.inputs) == sorted(fmap.input_columns())
    assert model.get_layer("score").activation.__name__ == "sigmoid"
    assert model.get_layer("user_embedding").input_dim == fmap.bucket("user").ctgs_vocab_size

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    batch = {
        "user_nums": np.full((4, 2), 0.5, np.float32),
        "user_ctgs": np.array([[1, 6]] * 4, np.int32),
        "item_ctgs": np.array([[2]] * 4, np.int32),
    }
    np.testing.assert_allclose(loaded(batch).numpy(), model(batch).numpy(), rtol=1e-6)
    assert loaded(batch).shape == (4, 1)


# ---------------------------------------------------------------- tasks beyond one score

BATCH = {
    "user_nums": np.array([[0.1, 0.5], [0.5, 0.2], [0.9, 0.9], [0.3, 0.0]], np.float32),
    "user_ctgs": np.array([[1, 6], [2, 7], [5, 8], [4, 9]], np.int32),
    "item_ctgs": np.array([[2], [0], [1], [4]], np.int32),
}


def _build_and_reload(tmp_path, task: str, params: dict | None = None):
    """The task's built-in model, and the same model saved and loaded without custom objects."""
    import keras

    fmap = task_fmap(task)
    spec = models.get_model(TASK_MODELS[task])
    assert spec.task == task
    model = models.build_model(spec, fmap, models.resolve_params(spec, params or {}))
    path = tmp_path / "model.keras"
    model.save(path)
    return fmap, model, keras.models.load_model(path, compile=False)


def test_dnn_classifier_gives_one_probability_per_class(tmp_path) -> None:
    fmap, model, loaded = _build_and_reload(tmp_path, "multiclass")
    assert model.get_layer("score").activation.__name__ == "softmax"
    assert model.loss == "sparse_categorical_crossentropy"
    scores = loaded(BATCH).numpy()
    assert scores.shape == (4, len(CLASSES))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scores, model(BATCH).numpy(), rtol=1e-6)
    (head,) = fmap.heads("multiclass")
    assert head_labels.split_outputs(scores, [head])["score"].shape == (4, 3)


def test_dnn_multilabel_classifier_gives_one_sigmoid_per_label(tmp_path) -> None:
    fmap, model, loaded = _build_and_reload(tmp_path, "multilabel")
    assert model.get_layer("score").activation.__name__ == "sigmoid"
    assert model.loss == "binary_crossentropy"
    scores = loaded(BATCH).numpy()
    assert scores.shape == (4, len(MULTILABEL_LABELS))
    assert ((scores > 0) & (scores < 1)).all()
    split = head_labels.split_outputs(scores, fmap.heads("multilabel"))
    assert sorted(split) == sorted(MULTILABEL_LABELS)


@pytest.mark.parametrize("experts", [0, 3])
def test_dnn_multitask_has_one_output_per_label(tmp_path, experts: int) -> None:
    fmap, model, loaded = _build_and_reload(
        tmp_path, "multitask", {"experts": experts, "dropout": 0.1}
    )
    assert model.loss == {"click": "binary_crossentropy", "dwell": "mse"}
    assert model.get_layer("click").activation.__name__ == "sigmoid"
    assert model.get_layer("dwell").activation.__name__ == "linear"
    names = {layer.name for layer in model.layers}
    if experts:  # MMoE: three experts, one softmax gate per head
        assert {"expert_0_hidden_0", "expert_2_hidden_0", "click_gate", "dwell_gate"} <= names
        assert model.get_layer("click_gate").units == 3
    else:  # shared bottom
        assert "hidden_0" in names and not any(n.startswith("expert_") for n in names)
    outputs = loaded(BATCH)
    assert sorted(outputs) == ["click", "dwell"]
    assert all(tuple(v.shape) == (4, 1) for v in outputs.values())
    expected = model(BATCH)
    for name in outputs:
        np.testing.assert_allclose(outputs[name].numpy(), expected[name].numpy(), rtol=1e-6)
    split = head_labels.split_outputs(
        {k: v.numpy() for k, v in outputs.items()}, fmap.heads("multitask")
    )
    assert {k: v.shape for k, v in split.items()} == {"click": (4,), "dwell": (4,)}


def test_builders_read_their_heads_from_the_fmap() -> None:
    # An fmap fitted for a binary model cannot feed a multiclass one: refit it.
    spec = models.get_model("dnn_classifier")
    with pytest.raises(TaskError, match="refit the fmap"):
        models.build_model(spec, task_fmap("binary"), models.resolve_params(spec, {}))
    one_class = replace(
        task_fmap("multiclass"),
        label_encodings=(LabelEncoding("label", "multiclass", ("cat",), (5,)),),
    )
    with pytest.raises(ModelConfigError, match="at least 2"):
        models.build_model(spec, one_class, models.resolve_params(spec, {}))
