"""The model catalogue: every model's name, parameters, defaults and task, without TensorFlow.

The pipeline checks ``model.name`` and ``model.params`` against it at parse
time; the TF jobs (:mod:`tf_jobs.models`) build the Keras model from it. A
model's builder is a callable or an import string ``"package.module:function"``
resolved only when the model is built, so reading the catalogue never loads
TensorFlow.

Built-ins, built by :mod:`tf_jobs.models`: ``dnn_binary_classifier``,
``dnn_regressor`` (DLFlow's), ``deepfm``, ``dnn_classifier`` (multi-class
softmax, DLFlow's iris/MNIST), ``dnn_multilabel_classifier`` (one sigmoid per
label) and ``dnn_multitask`` (a shared bottom or MMoE, one head per label). A user model is a
:class:`ModelSpec` named in YAML as ``package.module:ATTR`` or registered under
the entry-point group ``dlflow_airflow.models``::

    MY_MODEL = ModelSpec(name="my_model", build="my_pkg.models:build", defaults={"units": 16})

Its module is imported when a pipeline is validated (at parse time), so it
must import TensorFlow / Keras only inside ``build``.

(Not to be confused with :class:`dlflow_airflow.contract.schema.ModelSpec`,
the ``model:`` block of a pipeline, which names one of these.)
"""

from __future__ import annotations

import copy
import difflib
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dlflow_airflow.contract.plugins import PluginLookupError, lookup
from dlflow_airflow.contract.tasks import (
    BINARY,
    MULTICLASS,
    MULTILABEL,
    MULTITASK,
    REGRESSION,
    TASKS,
)

if TYPE_CHECKING:
    from dlflow_airflow.contract.fmap import FeatureMap

ENTRY_POINT_GROUP = "dlflow_airflow.models"

TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 3, "batch_size": 512}
"""Parameters every model takes (read by the train job, whatever the builder)."""

Builder = Callable[["FeatureMap", Mapping[str, Any]], Any]
Validator = Callable[[Mapping[str, Any]], None]


class ModelConfigError(ValueError):
    """An unknown model name or a bad model parameter.

    :param param: the parameter at fault, when there is one.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelParamsError(ModelConfigError):
    """Bad parameters of one model; ``problems`` holds each one (with its parameter)."""

    def __init__(self, model: str, problems: Sequence[ModelConfigError]) -> None:
        super().__init__(f"model {model!r}: " + "; ".join(str(p) for p in problems))
        self.model = model
        self.problems = tuple(problems)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.model, self.problems)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the catalogue.

    :param name: the name used in ``model.name`` of a pipeline.
    :param build: ``(fmap, params) -> compiled keras.Model``, or the import
        string ``"package.module:function"`` of one (imported when building).
    :param defaults: the builder's own parameters and their defaults; the
        type of each default is the accepted type.
    :param task: what it learns, one of :data:`~dlflow_airflow.contract.tasks.TASKS`
        (binary, regression, multiclass, multilabel, multitask); the label checks,
        loss, metrics and predict's columns key on it.
    :param validate: optional range checks on the resolved parameters; raises
        :class:`ModelConfigError` (``param=`` names the parameter) or ValueError.
    """

    name: str
    build: Builder | str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    task: str = BINARY
    validate: Validator | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelConfigError(
                f"model {self.name!r}: unknown task {self.task!r}; tasks: {', '.join(TASKS)}"
            )

    def accepted(self) -> dict[str, Any]:
        """Every parameter this model takes, with its default."""
        return {**TRAIN_DEFAULTS, **self.defaults}

    def builder(self) -> Builder:
        """The build function (an import string is imported now).

        :raises ModelConfigError: the module or function cannot be found.
        """
        if callable(self.build):
            return self.build
        return _import_builder(self.name, self.build)


_SPEC_NAME = f"{ModelSpec.__module__}.{ModelSpec.__qualname__}"


def _import_builder(model: str, target: str) -> Builder:
    module_name, _, attr = target.partition(":")
    what = f"model {model!r}: builder {target!r}"
    if not module_name or not attr:
        raise ModelConfigError(f"{what}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failed while importing
        raise ModelConfigError(f"{what}: cannot import module {module_name!r}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ModelConfigError(f"{what}: module {module_name!r} has no function {attr!r}")
    return function


MODELS: dict[str, ModelSpec] = {}
"""The built-in models by name (searched before entry points)."""


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in MODELS:
        raise ModelConfigError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def get_model(name: str) -> ModelSpec:
    """The model ``name``: a built-in, an entry point of ``dlflow_airflow.models``,
    or ``package.module:attr`` naming a :class:`ModelSpec` (its module is imported).

    :raises ModelConfigError: unknown name (the message lists the known ones),
        or an entry point / attribute that is not a :class:`ModelSpec`.
    """
    try:
        found = lookup(
            name,
            what="model",
            builtins=MODELS,
            entry_point_group=ENTRY_POINT_GROUP,
            hint=f"a user model is 'package.module:ATTR' naming a {_SPEC_NAME}",
        )
    except PluginLookupError as exc:
        raise ModelConfigError(str(exc)) from None
    if not isinstance(found, ModelSpec):
        raise ModelConfigError(f"model {name!r} is a {type(found).__name__}, not a {_SPEC_NAME}")
    return found


def resolve_params(spec: ModelSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``, type-checked against the defaults.

    :raises ModelParamsError: every unknown name and every value of the wrong
        type or range, each with its parameter.
    """
    accepted = spec.accepted()
    resolved = copy.deepcopy(accepted)
    problems: list[ModelConfigError] = []
    for key, value in params.items():
        try:
            resolved[key] = _coerce(key, value, accepted)
        except ModelConfigError as exc:
            problems.append(exc)
    if not problems:
        problems = _check_ranges(spec, resolved)
    if problems:
        raise ModelParamsError(spec.name, problems)
    return resolved


def _check_ranges(spec: ModelSpec, resolved: dict[str, Any]) -> list[ModelConfigError]:
    problems = [
        ModelConfigError(f"param {key} must be >= 1, got {resolved[key]}", param=key)
        for key in TRAIN_DEFAULTS
        if resolved[key] < 1
    ]
    if problems or spec.validate is None:
        return problems
    try:
        spec.validate(resolved)
    except ModelConfigError as exc:
        return [ModelConfigError(_without_model(spec.name, str(exc)), param=exc.param)]
    except ValueError as exc:
        return [ModelConfigError(_without_model(spec.name, str(exc)))]
    return []


def _without_model(name: str, message: str) -> str:
    """A validator's message without its own ``model 'x': `` prefix (the error adds one)."""
    return message.removeprefix(f"model {name!r}: ")


def _coerce(key: str, value: Any, accepted: Mapping[str, Any]) -> Any:
    """``value`` checked against (and converted to) the type of the default of ``key``."""
    if key not in accepted:
        raise ModelConfigError(_unknown_param(key, accepted), param=key)
    default = accepted[key]
    for is_kind, expected, accepts, convert in _PARAM_TYPES:
        if is_kind(default):
            if not accepts(value):
                raise ModelConfigError(
                    f"param {key} must be {expected}, got {value!r} (default {default!r})",
                    param=key,
                )
            return convert(value)
    return value


def _unknown_param(key: str, accepted: Mapping[str, Any]) -> str:
    known = sorted(accepted)
    message = f"unknown param {key!r}"
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return f"{message}; accepted params: {', '.join(known)}"


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(map(_is_int, value))


def _same(value: Any) -> Any:
    return value


_Check = Callable[[Any], bool]
_PARAM_TYPES: tuple[tuple[_Check, str, _Check, Callable[[Any], Any]], ...] = (
    # (the default is of this kind, how messages name it, accepted values, conversion)
    (_is_bool, "true or false", _is_bool, _same),
    (_is_int, "an integer", _is_int, _same),
    (lambda d: isinstance(d, float), "a number", _is_number, float),
    (lambda d: isinstance(d, list), "a list of integers", _is_int_list, list),
    (lambda d: isinstance(d, str), "a string", lambda v: isinstance(v, str), _same),
)


# --- the built-ins (built by tf_jobs.models) ----------------------------------------------


def _dnn_ranges(params: Mapping[str, Any]) -> None:
    """Range checks shared by the DNN-style built-ins."""
    if any(units < 1 for units in params["hidden_units"]):
        raise ModelConfigError(
            f"hidden_units must be positive, got {params['hidden_units']}", param="hidden_units"
        )
    if params["embedding_dim"] < 1:
        raise ModelConfigError(
            f"embedding_dim must be >= 1, got {params['embedding_dim']}", param="embedding_dim"
        )
    if not 0.0 <= params["dropout"] < 1.0:
        raise ModelConfigError(
            f"dropout must be in [0, 1), got {params['dropout']}", param="dropout"
        )
    if params["learning_rate"] <= 0.0:
        raise ModelConfigError(
            f"learning_rate must be > 0, got {params['learning_rate']}", param="learning_rate"
        )


DNN_DEFAULTS: dict[str, Any] = {
    "hidden_units": [64, 32],
    "embedding_dim": 8,
    "dropout": 0.0,
    "learning_rate": 0.001,
}

register_model(
    ModelSpec(
        name="dnn_binary_classifier",
        build="tf_jobs.models:build_dnn_binary_classifier",
        defaults=DNN_DEFAULTS,
        task=BINARY,
        validate=_dnn_ranges,
    )
)
register_model(
    ModelSpec(
        name="dnn_regressor",
        build="tf_jobs.models:build_dnn_regressor",
        defaults=DNN_DEFAULTS,
        task=REGRESSION,
        validate=_dnn_ranges,
    )
)
register_model(
    ModelSpec(
        name="deepfm",
        build="tf_jobs.models:build_deepfm",
        defaults=DNN_DEFAULTS,
        task=BINARY,
        validate=_dnn_ranges,
    )
)

MULTITASK_DEFAULTS: dict[str, Any] = {
    **DNN_DEFAULTS,
    "head_units": [16],
    "experts": 0,
    "expert_units": [32],
}
"""``dnn_multitask``: ``experts`` 0 is a shared bottom (``hidden_units``), N > 0 is MMoE
(Ma et al. 2018): N experts of ``expert_units`` and one softmax gate per head."""


def _multitask_ranges(params: Mapping[str, Any]) -> None:
    _dnn_ranges(params)
    for key in ("head_units", "expert_units"):
        if any(units < 1 for units in params[key]):
            raise ModelConfigError(f"{key} must be positive, got {params[key]}", param=key)
    if params["experts"] < 0:
        raise ModelConfigError(f"experts must be >= 0, got {params['experts']}", param="experts")


register_model(
    ModelSpec(
        name="dnn_classifier",
        build="tf_jobs.models:build_dnn_classifier",
        defaults=DNN_DEFAULTS,
        task=MULTICLASS,
        validate=_dnn_ranges,
    )
)
register_model(
    ModelSpec(
        name="dnn_multilabel_classifier",
        build="tf_jobs.models:build_dnn_multilabel_classifier",
        defaults=DNN_DEFAULTS,
        task=MULTILABEL,
        validate=_dnn_ranges,
    )
)
register_model(
    ModelSpec(
        name="dnn_multitask",
        build="tf_jobs.models:build_dnn_multitask",
        defaults=MULTITASK_DEFAULTS,
        task=MULTITASK,
        validate=_multitask_ranges,
    )
)
