"""The model registry: model builders by name, with their parameters and defaults.

A builder gets the :class:`~dlflow_airflow.fmap.FeatureMap` and the resolved
parameters and returns a compiled Keras model whose inputs are named after
the encoded columns (``<bucket>_nums``, ``<bucket>_ctgs``), so train,
evaluate and Spark predict can all feed it ``batches.inputs_from_arrow``.
Builders use built-in Keras layers only: ``keras.models.load_model(path,
compile=False)`` then needs no custom objects on Spark executors.

Adding a model::

    register_model(ModelSpec(name="my_model", build=build_my_model, defaults={"units": 16}))

Keras is imported inside builders so importing this module stays cheap.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlflow_airflow.fmap import FeatureMap, FmapError

BINARY = "binary"
REGRESSION = "regression"

# Read by train.py for every model, whatever its builder.
TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 3, "batch_size": 512}

Builder = Callable[[FeatureMap, Mapping[str, Any]], Any]
Validator = Callable[[Mapping[str, Any]], None]


class ModelConfigError(ValueError):
    """An unknown model name or a bad model parameter."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    :param name: the name used in ``model.name`` of a pipeline.
    :param build: ``(fmap, params) -> compiled keras.Model``.
    :param defaults: the builder's own parameters and their defaults; the
        type of each default is the accepted type.
    :param task: the label kind it learns (``binary`` labels must be 0/1).
    :param validate: optional range checks on the resolved parameters.
    """

    name: str
    build: Builder
    defaults: Mapping[str, Any] = field(default_factory=dict)
    task: str = BINARY
    validate: Validator | None = None

    def accepted(self) -> dict[str, Any]:
        """Every parameter this model takes, with its default."""
        return {**TRAIN_DEFAULTS, **self.defaults}


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in MODELS:
        raise ModelConfigError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def get_model(name: str) -> ModelSpec:
    """The registered model ``name``.

    :raises ModelConfigError: unknown name (the message lists the known ones).
    """
    try:
        return MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ModelConfigError(
            f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}.{hint}"
        ) from None


def resolve_params(spec: ModelSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``, type-checked against the defaults.

    :raises ModelConfigError: an unknown name or a value of the wrong type or range.
    """
    accepted = spec.accepted()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ModelConfigError(
            f"model {spec.name!r}: unknown params {unknown}; "
            f"accepted params: {', '.join(sorted(accepted))}"
        )
    resolved = dict(accepted)
    for key, value in params.items():
        resolved[key] = _coerce(spec.name, key, value, accepted[key])
    for key in TRAIN_DEFAULTS:
        if resolved[key] < 1:
            raise ModelConfigError(
                f"model {spec.name!r}: param {key} must be >= 1, got {resolved[key]}"
            )
    if spec.validate:
        spec.validate(resolved)
    return resolved


def build_model(spec: ModelSpec, fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """The compiled Keras model of ``spec`` for ``fmap`` (``params`` already resolved)."""
    if not fmap.input_columns():
        raise FmapError(f"fmap {fmap.feature_tag}/{fmap.model_date} has no input features")
    return spec.build(fmap, params)


def _coerce(model: str, key: str, value: Any, default: Any) -> Any:
    def fail(expected: str) -> ModelConfigError:
        return ModelConfigError(
            f"model {model!r}: param {key} must be {expected}, got {value!r} (default {default!r})"
        )

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("a number")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise fail("a list of integers")
        return list(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise fail("a string")
        return value
    return value


# --- dnn_binary_classifier ----------------------------------------------------------------


def _validate_dnn(params: Mapping[str, Any]) -> None:
    if any(units < 1 for units in params["hidden_units"]):
        raise ModelConfigError(
            f"model 'dnn_binary_classifier': hidden_units must be positive, "
            f"got {params['hidden_units']}"
        )
    if params["embedding_dim"] < 1:
        raise ModelConfigError(
            f"model 'dnn_binary_classifier': embedding_dim must be >= 1, "
            f"got {params['embedding_dim']}"
        )
    if not 0.0 <= params["dropout"] < 1.0:
        raise ModelConfigError(
            f"model 'dnn_binary_classifier': dropout must be in [0, 1), got {params['dropout']}"
        )
    if params["learning_rate"] <= 0.0:
        raise ModelConfigError(
            f"model 'dnn_binary_classifier': learning_rate must be > 0, "
            f"got {params['learning_rate']}"
        )


def build_dnn_binary_classifier(fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """Numeric vectors as they are + one embedding table per bucket -> MLP -> sigmoid ``score``."""
    import keras

    inputs: dict[str, Any] = {}
    parts: list[Any] = []
    for bucket in fmap.buckets:
        if bucket.nums:
            nums = keras.Input(shape=(bucket.nums_width,), dtype="float32", name=bucket.nums_column)
            inputs[bucket.nums_column] = nums
            parts.append(nums)
        if bucket.ctgs:
            ids = keras.Input(shape=(bucket.ctgs_width,), dtype="int32", name=bucket.ctgs_column)
            inputs[bucket.ctgs_column] = ids
            # One table per bucket: the fmap gives every categorical feature of
            # the bucket its own id range inside bucket.ctgs_vocab_size.
            embedded = keras.layers.Embedding(
                bucket.ctgs_vocab_size, params["embedding_dim"], name=f"{bucket.name}_embedding"
            )(ids)
            parts.append(keras.layers.Flatten(name=f"{bucket.name}_embedding_flat")(embedded))

    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(params["hidden_units"]):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
        if params["dropout"] > 0.0:
            x = keras.layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(x)

    model = keras.Model(inputs=inputs, outputs=score, name="dnn_binary_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params["learning_rate"]),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model


register_model(
    ModelSpec(
        name="dnn_binary_classifier",
        build=build_dnn_binary_classifier,
        defaults={
            "hidden_units": [64, 32],
            "embedding_dim": 8,
            "dropout": 0.0,
            "learning_rate": 0.001,
        },
        task=BINARY,
        validate=_validate_dnn,
    )
)
