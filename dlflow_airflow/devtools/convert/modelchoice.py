"""Which model a DLFlow ``MODEL`` block becomes, given the config's labels.

DLFlow had two built-in models (``DNNBinaryClassifier``, ``DNNRegression``);
any other ``model_name`` was a class of the user's own. Here each model has a
task (:mod:`dlflow_airflow.contract.tasks`), and the choice follows it:

- DLFlow's built-ins map by name. With several labels the binary classifier
  becomes ``dnn_multilabel_classifier`` (one sigmoid per label) and the
  regressor ``dnn_multitask`` with a regression head per label.
- A user model whose block says what it learns -- ``classes`` of 2 or more (a
  softmax classifier, like DLFlow's iris example), or a multi-task model (its
  name says multi-task, MMoE or shared bottom; or it sets ``heads``/``experts``)
  -- becomes that task's built-in when the built-in takes every parameter the
  block sets. Otherwise it is kept, and the note says what to port.

Every choice that is not a plain rename is a note naming ``MODEL.model_name``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dlflow_airflow.devtools.convert.context import Json, Source

DLFLOW_MODELS = {"DNNBinaryClassifier": "dnn_binary_classifier", "DNNRegression": "dnn_regressor"}
"""DLFlow's built-in models -> ours."""
MULTICLASS_BUILTIN = "dnn_classifier"
MULTILABEL_BUILTIN = "dnn_multilabel_classifier"
MULTITASK_BUILTIN = "dnn_multitask"
INPUT_PARAMS = {
    "parallel": "parallel file reads",
    "drop_remainder": "dropping the last short batch",
    "buffer_size": "the prefetch buffer",
}
"""Settings of DLFlow's input reader (NNDenseInput) with no equivalent here."""
PARAM_RENAMES = {"layers": "hidden_units", "num_experts": "experts"}
HANDLED_KEYS = frozenset({"model_name", "input_name", "shuffle_size", "classes", "heads"})
"""MODEL keys the converter handles itself (not model parameters)."""
_MULTITASK_NAMES = ("multitask", "mtl", "mmoe", "sharedbottom")
_KEY = ("MODEL", "model_name")


def choose_model(src: Source, raw: Json, labels: Sequence[str]) -> str | None:
    """Our ``model.name`` for the block ``raw`` (None: the default model)."""
    name = str(raw.get("model_name", ""))
    if not name:
        src.unmapped(_KEY, "no model name; the default model (dnn_binary_classifier) is used")
        return None
    builtin = builtin_model(name)
    if builtin is None:
        replacing = user_model(src, name, raw)
        return name if replacing is None else for_labels(src, name, replacing, labels)
    chosen = for_labels(src, name, builtin, labels)
    if chosen == builtin != name:
        src.note(_KEY, f"DLFlow's {name} -> the built-in {builtin}")
    return chosen


def user_model(src: Source, name: str, raw: Json) -> str | None:
    """The built-in replacing the user's model ``name``, when its block fits one."""
    found = task_of(name, raw)
    if found is None:
        src.note(_KEY, register_note(name))
        return None
    builtin, why = found
    misfits = [key for key, value in raw.items() if not fits(key, value, builtin)]
    if misfits:
        src.note(
            _KEY,
            register_note(name)
            + f" ({why}: the built-in {builtin} could replace it, but it does not take "
            f"{', '.join(misfits)})",
        )
        return None
    src.note(
        _KEY,
        f"{name!r} is not a built-in; {why}, and the built-in {builtin} takes every "
        f"parameter it sets -> {builtin}. If {name} is more than that (layers, loss or "
        "outputs of its own), port it instead (docs/models.md, 'The model contract (your "
        "own model)')",
    )
    return builtin


def task_of(name: str, raw: Json) -> tuple[str, str] | None:
    """The built-in a user model's block points to, and why; None if it says nothing."""
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(word in squashed for word in _MULTITASK_NAMES):
        return MULTITASK_BUILTIN, f"its name says a multi-task model ({name})"
    if "heads" in raw or "experts" in raw or "num_experts" in raw:
        return MULTITASK_BUILTIN, "it sets heads or experts (a multi-task model)"
    classes = raw.get("classes")
    if isinstance(classes, int) and not isinstance(classes, bool) and classes >= 2:
        return MULTICLASS_BUILTIN, f"classes {classes} is a multi-class (softmax) classifier"
    return None


def fits(key: str, value: Any, builtin: str) -> bool:
    """Whether the built-in takes the MODEL key ``key`` (as a parameter, or handles it)."""
    if key == "input_name":
        return value == "NNDenseInput"
    if key in HANDLED_KEYS or key in INPUT_PARAMS:
        return True
    return PARAM_RENAMES.get(key, key) in accepted_params(builtin)


def for_labels(src: Source, name: str, builtin: str, labels: Sequence[str]) -> str:
    """DLFlow's one-output built-ins, given several labels: their several-label built-ins."""
    if len(labels) < 2:
        return builtin
    shown = ", ".join(labels)
    if builtin == "dnn_binary_classifier":
        src.note(
            _KEY,
            f"{name}, a binary classifier, with {len(labels)} labels ({shown}) -> the built-in "
            f"{MULTILABEL_BUILTIN}: one sigmoid output per label over shared layers, each "
            "label 0/1",
        )
        return MULTILABEL_BUILTIN
    if builtin == "dnn_regressor":
        src.note(
            _KEY,
            f"{name}, a regressor, with {len(labels)} labels ({shown}) -> the built-in "
            f"{MULTITASK_BUILTIN} with a regression head per label (model.heads)",
        )
        return MULTITASK_BUILTIN
    return builtin


def builtin_model(name: str) -> str | None:
    """Our built-in model for a DLFlow model name, if one matches."""
    from dlflow_airflow.contract.models import MODELS

    ours = DLFLOW_MODELS.get(name) or _snake(name)
    return ours if ours in MODELS else None


def accepted_params(name: str) -> dict[str, Any]:
    from dlflow_airflow.contract.models import MODELS

    return MODELS[name].accepted()


def model_task(name: str) -> str:
    from dlflow_airflow.contract.models import MODELS

    return MODELS[name].task


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def register_note(name: str) -> str:
    from dlflow_airflow.contract.models import MODELS

    return (
        f"{name!r} is not a built-in model (built-ins: {', '.join(sorted(MODELS))}): port it to "
        "a ModelSpec (docs/models.md, 'The model contract (your own model)') and set "
        "model.name to 'package.module:ATTR', or register it under the entry-point group "
        "dlflow_airflow.models; its parameters are kept as they were"
    )
