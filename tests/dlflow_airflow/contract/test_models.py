"""The model catalogue: names, parameters and checks, read without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from dlflow_airflow.contract.models import (
    MODELS,
    REGRESSION,
    TRAIN_DEFAULTS,
    ModelConfigError,
    ModelParamsError,
    ModelSpec,
    get_model,
    register_model,
    resolve_params,
)
from tests.conftest import REPO

EXAMPLE = "examples.wide_and_deep:WIDE_AND_DEEP"


def test_built_ins_declare_params_defaults_and_task() -> None:
    assert sorted(MODELS) == [
        "deepfm",
        "dnn_binary_classifier",
        "dnn_classifier",
        "dnn_multilabel_classifier",
        "dnn_multitask",
        "dnn_regressor",
    ]
    assert get_model("dnn_regressor").task == REGRESSION
    assert [get_model(n).task for n in ("dnn_classifier", "dnn_multitask")] == [
        "multiclass",
        "multitask",
    ]
    assert get_model("deepfm").accepted() == {
        **TRAIN_DEFAULTS,
        "hidden_units": [64, 32],
        "embedding_dim": 8,
        "dropout": 0.0,
        "learning_rate": 0.001,
    }
    # Builders are import strings of tf_jobs, resolved only when a model is built.
    assert all(isinstance(spec.build, str) for spec in MODELS.values())


def test_unknown_model_suggests_the_closest() -> None:
    with pytest.raises(ModelConfigError, match="known models: deepfm, dnn_binary_classifier") as e:
        get_model("deep_fm")
    assert "did you mean 'deepfm'?" in str(e.value)


def test_user_model_by_module_attr() -> None:
    spec = get_model(EXAMPLE)
    assert spec.name == "wide_and_deep"
    assert resolve_params(spec, {"deep_units": [8]})["deep_units"] == [8]
    with pytest.raises(ModelConfigError, match="is a dict, not a dlflow_airflow"):
        get_model("dlflow_airflow.contract.models:TRAIN_DEFAULTS")


def test_resolve_params_converts_and_copies_defaults() -> None:
    spec = get_model("dnn_binary_classifier")
    params = resolve_params(spec, {"dropout": 0, "hidden_units": (16,)})
    assert params["dropout"] == 0.0 and isinstance(params["dropout"], float)
    assert params["hidden_units"] == [16]
    params = resolve_params(spec, {})
    params["hidden_units"].append(1)
    assert spec.defaults["hidden_units"] == [64, 32]


def test_every_bad_param_is_a_problem_with_its_key() -> None:
    spec = get_model("dnn_binary_classifier")
    with pytest.raises(ModelParamsError) as info:
        resolve_params(spec, {"hiden_units": [8], "epochs": "one", "dropout": True})
    problems = {p.param: str(p) for p in info.value.problems}
    assert problems == {
        "hiden_units": "unknown param 'hiden_units' (did you mean 'hidden_units'?); accepted "
        "params: batch_size, dropout, embedding_dim, epochs, hidden_units, learning_rate",
        "epochs": "param epochs must be an integer, got 'one' (default 3)",
        "dropout": "param dropout must be a number, got True (default 0.0)",
    }
    assert str(info.value).startswith("model 'dnn_binary_classifier': unknown param")


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"epochs": 0}, "epochs", "param epochs must be >= 1, got 0"),
        ({"hidden_units": [8, 0]}, "hidden_units", "hidden_units must be positive, got [8, 0]"),
        ({"learning_rate": 0}, "learning_rate", "learning_rate must be > 0, got 0.0"),
    ],
)
def test_range_checks(params: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(ModelParamsError) as info:
        resolve_params(get_model("deepfm"), params)
    assert [(p.param, str(p)) for p in info.value.problems] == [(param, message)]


def _plain_value_error(params: Mapping[str, Any]) -> None:
    raise ValueError(f"model 'mine': units {params['units']} is odd")


def test_a_validators_plain_value_error_is_a_problem_of_the_params() -> None:
    spec = ModelSpec(
        name="mine", build="json:dumps", defaults={"units": 3}, validate=_plain_value_error
    )
    with pytest.raises(ModelParamsError) as info:
        resolve_params(spec, {})
    assert [(p.param, str(p)) for p in info.value.problems] == [(None, "units 3 is odd")]
    assert str(info.value) == "model 'mine': units 3 is odd"


def test_builder_is_imported_only_when_asked() -> None:
    assert ModelSpec(name="m", build="json:dumps").builder() is json.dumps
    assert ModelSpec(name="m", build=json.loads).builder() is json.loads
    for target, message in [
        ("no_such_module_x:build", "cannot import module 'no_such_module_x'"),
        ("json:no_such_function", "module 'json' has no function 'no_such_function'"),
        ("json", "expected 'package.module:function'"),
    ]:
        with pytest.raises(ModelConfigError, match=message):
            ModelSpec(name="m", build=target).builder()


def test_a_name_registers_once() -> None:
    with pytest.raises(ModelConfigError, match="'deepfm' is already registered"):
        register_model(ModelSpec(name="deepfm", build="json:dumps"))


_PROBE = """
import sys
from dlflow_airflow.contract.models import MODELS, get_model, resolve_params
for name in [*MODELS, sys.argv[1]]:
    resolve_params(get_model(name), {})
print(sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tf_jobs"}))
"""


def test_reading_the_catalogue_loads_no_tensorflow() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, EXAMPLE],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stderr
