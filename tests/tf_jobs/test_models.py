from __future__ import annotations

import numpy as np
import pytest

from dlflow_airflow.contract import models as catalogue
from tests.tf_jobs.conftest import make_fmap
from tf_jobs import models
from tf_jobs.models import ModelConfigError

pytestmark = pytest.mark.tf


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(
        ModelConfigError, match="known models: deepfm, dnn_binary_classifier, dnn_regressor"
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
