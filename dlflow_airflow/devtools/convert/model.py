"""DLFlow's ``MODEL { ... }`` block as our ``model`` (and the train options it implies)."""

from __future__ import annotations

import re
from typing import Any

from dlflow_airflow.devtools.convert.context import Json, Key, Source

DLFLOW_MODELS = {"DNNBinaryClassifier": "dnn_binary_classifier", "DNNRegression": "dnn_regressor"}
"""DLFlow's built-in models -> ours."""
INPUT_PARAMS = {
    "parallel": "parallel file reads",
    "drop_remainder": "dropping the last short batch",
    "buffer_size": "the prefetch buffer",
}
"""Settings of DLFlow's input reader (NNDenseInput) with no equivalent here."""
PARAM_RENAMES = {"layers": "hidden_units"}
MULTICLASS_BUILTIN = "dnn_classifier"  # issue 12's multi-class built-in, once it is registered


def convert_model(src: Source, raw: Json) -> tuple[str | None, Json, Json]:
    """The model name, its params and the train options the block implies."""
    name = str(raw.get("model_name", ""))
    builtin = builtin_model(name)
    key = ("MODEL", "model_name")
    if not name:
        src.unmapped(key, "no model name; the default model is used")
    elif builtin is None:
        src.note(key, register_note(name, raw.get("classes")))
    elif builtin != name:
        src.note(key, f"DLFlow's {name} -> the built-in {builtin}")
    params, train = model_params(src, raw, builtin)
    return builtin or name or None, params, train


def model_params(src: Source, raw: Json, builtin: str | None) -> tuple[Json, Json]:
    accepted = accepted_params(builtin) if builtin else None
    params: Json = {}
    train: Json = {}
    for name, value in raw.items():
        key = ("MODEL", name)
        if name == "model_name":
            continue
        if name == "input_name":
            input_name(src, value, key)
        elif name == "shuffle_size":
            if value:
                train["shuffle_buffer"] = int(value)
                src.note(key, f"-> stages.train.shuffle_buffer {int(value)}")
        elif name in INPUT_PARAMS:
            src.unmapped(
                key, f"{INPUT_PARAMS[name]} of DLFlow's input reader: not configurable here"
            )
        elif accepted is None:
            params[name] = value
        else:
            builtin_param(src, name, value, accepted, params)
    return params, train


def input_name(src: Source, value: Any, key: Key) -> None:
    if value == "NNDenseInput":
        src.note(key, "NNDenseInput: the built-in input; our models read the encoded table")
    else:
        src.unmapped(
            key,
            f"input {value!r}: a model reads its inputs itself here (in its build "
            "function, from the fmap); port that reader into your model",
        )


def builtin_param(
    src: Source, name: str, value: Any, accepted: dict[str, Any], params: Json
) -> None:
    key = ("MODEL", name)
    ours = PARAM_RENAMES.get(name, name)
    if name == "classes" and value == 1:
        src.note(key, "classes 1: the built-in has one output; left out")
    elif ours in accepted:
        params[ours] = value
        if ours != name:
            src.note(key, f"-> model.params.{ours}")
    else:
        src.unmapped(
            key, f"not a parameter of the built-in model; it takes {', '.join(sorted(accepted))}"
        )


def builtin_model(name: str) -> str | None:
    """Our built-in model for a DLFlow model name, if one matches."""
    from dlflow_airflow.contract.models import MODELS

    ours = DLFLOW_MODELS.get(name) or _snake(name)
    return ours if ours in MODELS else None


def accepted_params(name: str) -> dict[str, Any]:
    from dlflow_airflow.contract.models import MODELS

    return MODELS[name].accepted()


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def register_note(name: str, classes: Any) -> str:
    from dlflow_airflow.contract.models import MODELS

    hint = ""
    if isinstance(classes, int) and classes > 1 and MULTICLASS_BUILTIN in MODELS:
        hint = f" (for a multi-class DNN, the built-in {MULTICLASS_BUILTIN} may replace it)"
    return (
        f"{name!r} is not a built-in model (built-ins: {', '.join(sorted(MODELS))}): port it to "
        "a ModelSpec (docs/models.md, 'The model contract (your own model)') and set "
        "model.name to 'package.module:ATTR', or register it under the entry-point group "
        f"dlflow_airflow.models; its parameters are kept as they were{hint}"
    )
