"""DLFlow's ``MODEL { ... }`` block as our ``model`` (and the train options it implies).

Which model it becomes is :mod:`.modelchoice`'s; here its keys become
``model.params``, ``model.heads`` (a multi-task model's) and train options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dlflow_airflow.devtools.convert.context import Json, Key, Source
from dlflow_airflow.devtools.convert.modelchoice import (
    INPUT_PARAMS,
    MULTITASK_BUILTIN,
    PARAM_RENAMES,
    accepted_params,
    builtin_model,
    choose_model,
    model_task,
)

HEAD_KINDS = {
    "binary": "binary",
    "classification": "binary",
    "classifier": "binary",
    "regression": "regression",
    "regressor": "regression",
}
"""A head's kind as a multi-task block may spell it -> ours (``model.heads``)."""


@dataclass(frozen=True)
class ModelMapping:
    """What the MODEL block gives: ``model.name``, ``.params``, ``.heads`` and train options."""

    name: str | None
    params: Json = field(default_factory=dict)
    heads: Json = field(default_factory=dict)
    train: Json = field(default_factory=dict)


def convert_model(src: Source, raw: Json, labels: Sequence[str]) -> ModelMapping:
    """The model of the block ``raw`` for a config whose labels are ``labels``."""
    name = choose_model(src, raw, labels)
    builtin = name if name is not None and builtin_model(name) == name else None
    params, train = model_params(src, raw, builtin)
    multitask = builtin == MULTITASK_BUILTIN
    heads = model_heads(src, raw, MULTITASK_BUILTIN, labels) if multitask else {}
    if multitask and "experts" not in params and _says_mmoe(raw):
        src.note(
            ("MODEL", "model_name"),
            "an MMoE: dnn_multitask is a shared bottom (experts 0) until model.params.experts "
            "says how many experts",
        )
    if builtin is not None and not multitask and "heads" in raw:
        src.unmapped(("MODEL", "heads"), f"read by multi-task models only; this one is {name}")
    return ModelMapping(name, params, heads, train)


def _says_mmoe(raw: Json) -> bool:
    return "mmoe" in str(raw.get("model_name", "")).lower()


def model_params(src: Source, raw: Json, builtin: str | None) -> tuple[Json, Json]:
    accepted = accepted_params(builtin) if builtin else {}
    params: Json = {}
    train: Json = {}
    for name, value in raw.items():
        key = ("MODEL", name)
        if name == "model_name" or (name == "heads" and builtin is not None):
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
        elif builtin is None:
            params[name] = value
        else:
            builtin_param(src, name, value, builtin, accepted, params)
    return params, train


def model_heads(src: Source, raw: Json, builtin: str, labels: Sequence[str]) -> Json:
    """``model.heads`` of a multi-task model: the block's ``heads``, else one kind for all."""
    given = raw.get("heads")
    if isinstance(given, dict):
        heads: Json = {}
        for label, kind in given.items():
            ours = HEAD_KINDS.get(str(kind).lower())
            if ours is None:
                src.unmapped(
                    ("MODEL", "heads", label),
                    f"{kind!r} is not a head kind ({', '.join(sorted(HEAD_KINDS))}); binary used",
                )
            else:
                heads[str(label)] = ours
        return heads
    if given is not None:
        src.unmapped(("MODEL", "heads"), f"expected {{label: binary|regression}}, got {given!r}")
    if builtin_model(str(raw.get("model_name", ""))) == "dnn_regressor":
        return dict.fromkeys(labels, "regression")
    if labels:
        src.note(
            ("MODEL", "model_name"),
            f"every head of {builtin} is binary (0/1 labels) unless model.heads says "
            "regression: set model.heads.<label>: regression for a numeric label",
        )
    return {}


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
    src: Source, name: str, value: Any, builtin: str, accepted: dict[str, Any], params: Json
) -> None:
    key = ("MODEL", name)
    ours = PARAM_RENAMES.get(name, name)
    if name == "classes" and model_task(builtin) == "multiclass":
        src.note(
            key,
            f"classes {value}: {builtin} takes its classes from the label's values at fit "
            "(recorded in the fmap; no classes parameter), so the count is not set here",
        )
    elif name == "classes" and value == 1:
        src.note(key, "classes 1: the built-in has one output per label; left out")
    elif name == "classes":
        src.unmapped(
            key,
            f"classes {value} for {builtin}, a {model_task(builtin)} model (one output per "
            "label): left out; a multi-class label wants model.name dnn_classifier",
        )
    elif ours in accepted:
        params[ours] = value
        if ours != name:
            src.note(key, f"-> model.params.{ours}")
    else:
        src.unmapped(
            key,
            f"not a parameter of the built-in {builtin}; it takes {', '.join(sorted(accepted))}",
        )
