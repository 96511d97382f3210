"""The model signature train records and predict's driver reads."""

from __future__ import annotations

import pytest

from tf_jobs.signature import (
    ModelOutput,
    Signature,
    SignatureError,
    recorded_signature,
    signature_of,
)

pytestmark = pytest.mark.tf


def _model(outputs: str):
    import keras

    nums = keras.Input(shape=(3,), name="nums")
    ids = keras.Input(shape=(2,), name="ids")
    hidden = keras.layers.Dense(4)(keras.layers.Concatenate()([nums, ids]))
    if outputs == "dict":
        out = {
            "click": keras.layers.Dense(1, name="click")(hidden),
            "probs": keras.layers.Dense(5, name="probs")(hidden),
        }
    else:
        out = [
            keras.layers.Dense(1, name="click")(hidden),
            keras.layers.Dense(5, name="probs")(hidden),
        ]
    return keras.Model({"nums": nums, "ids": ids}, out)


@pytest.mark.parametrize("outputs", ["dict", "list"])
def test_signature_of_a_keras_model_round_trips(outputs: str) -> None:
    signature = signature_of(_model(outputs))
    assert signature.inputs == {"nums": 3, "ids": 2}
    assert signature.outputs == (ModelOutput("click", 1), ModelOutput("probs", 5))
    assert Signature.from_dict(signature.to_dict()) == signature
    assert recorded_signature({"signature": signature.to_dict()}) == signature


def test_an_output_of_unknown_size_is_refused() -> None:
    import keras

    values = keras.Input(shape=(None,), name="values")
    model = keras.Model(values, keras.layers.Activation("relu", name="act")(values))
    with pytest.raises(SignatureError, match="unknown size"):
        signature_of(model)


@pytest.mark.parametrize(
    "manifest",
    [{}, {"signature": None}, {"signature": {"inputs": {}}}, {"signature": {"outputs": [1]}}],
    ids=["none", "null", "no-outputs", "bad-output"],
)
def test_a_manifest_without_a_readable_signature_gives_none(manifest: dict) -> None:
    assert recorded_signature(manifest) is None
