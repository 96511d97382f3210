"""The model registry: model builders by name, with their parameters and defaults.

A builder gets the :class:`~dlflow_airflow.contract.fmap.FeatureMap` and the resolved
parameters and returns a compiled Keras model whose inputs are named after
the encoded columns (``<bucket>_nums``, ``<bucket>_ctgs``), so train,
evaluate and Spark predict can all feed it ``batches.inputs_from_arrow``.
Builders use built-in Keras layers only: ``keras.models.load_model(path,
compile=False)`` then needs no custom objects on Spark executors.

Built-ins: ``dnn_binary_classifier``, ``dnn_regressor`` (DLFlow's) and
``deepfm``. User models (see docs/models.md for the contract) are a
:class:`ModelSpec` named in YAML as ``package.module:ATTR`` or registered
under the entry-point group ``dlflow_airflow.models``::

    MY_MODEL = ModelSpec(name="my_model", build=build_my_model, defaults={"units": 16})

Keras is imported inside builders so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlflow_airflow.contract.fmap import FeatureMap, FmapError
from dlflow_airflow.contract.plugins import PluginLookupError, lookup

ENTRY_POINT_GROUP = "dlflow_airflow.models"
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
    """The model ``name``: a built-in, an entry point of ``dlflow_airflow.models``,
    or ``package.module:attr`` naming a :class:`ModelSpec`.

    :raises ModelConfigError: unknown name (the message lists the known ones),
        or an entry point / attribute that is not a :class:`ModelSpec`.
    """
    try:
        found = lookup(
            name,
            what="model",
            builtins=MODELS,
            entry_point_group=ENTRY_POINT_GROUP,
            hint="a user model is 'package.module:ATTR' naming a tf_jobs.models.ModelSpec",
        )
    except PluginLookupError as exc:
        raise ModelConfigError(str(exc)) from None
    return _check_spec(found, f"model {name!r}")


def _check_spec(obj: Any, what: str) -> ModelSpec:
    if not isinstance(obj, ModelSpec):
        raise ModelConfigError(f"{what} is a {type(obj).__name__}, not a tf_jobs.models.ModelSpec")
    return obj


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


# --- the built-ins ------------------------------------------------------------------------


def _positive_units(name: str, params: Mapping[str, Any]) -> None:
    if any(units < 1 for units in params["hidden_units"]):
        raise ModelConfigError(
            f"model {name!r}: hidden_units must be positive, got {params['hidden_units']}"
        )
    if params["embedding_dim"] < 1:
        raise ModelConfigError(
            f"model {name!r}: embedding_dim must be >= 1, got {params['embedding_dim']}"
        )
    if not 0.0 <= params["dropout"] < 1.0:
        raise ModelConfigError(
            f"model {name!r}: dropout must be in [0, 1), got {params['dropout']}"
        )
    if params["learning_rate"] <= 0.0:
        raise ModelConfigError(
            f"model {name!r}: learning_rate must be > 0, got {params['learning_rate']}"
        )


def model_inputs(fmap: FeatureMap) -> dict[str, Any]:
    """One ``keras.Input`` per encoded column, named after it (the model contract)."""
    import keras

    inputs: dict[str, Any] = {}
    for bucket in fmap.buckets:
        if bucket.nums:
            inputs[bucket.nums_column] = keras.Input(
                shape=(bucket.nums_width,), dtype="float32", name=bucket.nums_column
            )
        if bucket.ctgs:
            inputs[bucket.ctgs_column] = keras.Input(
                shape=(bucket.ctgs_width,), dtype="int32", name=bucket.ctgs_column
            )
    return inputs


def _dnn_tower(fmap: FeatureMap, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
    """Numeric vectors as they are + one embedding table per bucket -> dense layers."""
    import keras

    parts: list[Any] = []
    for bucket in fmap.buckets:
        if bucket.nums:
            parts.append(inputs[bucket.nums_column])
        if bucket.ctgs:
            # One table per bucket: the fmap gives every categorical feature of
            # the bucket its own id range inside bucket.ctgs_vocab_size.
            embedded = keras.layers.Embedding(
                bucket.ctgs_vocab_size, params["embedding_dim"], name=f"{bucket.name}_embedding"
            )(inputs[bucket.ctgs_column])
            parts.append(keras.layers.Flatten(name=f"{bucket.name}_embedding_flat")(embedded))
    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(params["hidden_units"]):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
        if params["dropout"] > 0.0:
            x = keras.layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
    return x


def _compile_binary(model: Any, learning_rate: float) -> Any:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model


def build_dnn_binary_classifier(fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """DLFlow's DNN: embeddings + numeric vectors -> MLP -> sigmoid ``score``."""
    import keras

    inputs = model_inputs(fmap)
    x = _dnn_tower(fmap, inputs, params)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    model = keras.Model(inputs=inputs, outputs=score, name="dnn_binary_classifier")
    return _compile_binary(model, params["learning_rate"])


def build_dnn_regressor(fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """DLFlow's DNN regression: the same tower, a linear ``score``, mean squared error."""
    import keras

    inputs = model_inputs(fmap)
    x = _dnn_tower(fmap, inputs, params)
    score = keras.layers.Dense(1, name="score")(x)
    model = keras.Model(inputs=inputs, outputs=score, name="dnn_regressor")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params["learning_rate"]),
        loss="mse",
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
    )
    return model


def build_deepfm(fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """DeepFM (Guo et al. 2017): first-order + factorisation machine + DNN, one sigmoid.

    Every categorical feature is a field; each bucket's numeric vector is one
    more field (projected to the embedding size). Built from stock Keras
    layers so the saved model loads without custom objects.
    """
    import keras

    k = params["embedding_dim"]
    inputs = model_inputs(fmap)
    fields: list[Any] = []  # each (batch, n, k)
    linear: list[Any] = []  # first-order terms
    for bucket in fmap.buckets:
        if bucket.nums:
            nums = inputs[bucket.nums_column]
            linear.append(nums)
            projected = keras.layers.Dense(k, name=f"{bucket.name}_nums_field")(nums)
            fields.append(keras.layers.Reshape((1, k), name=f"{bucket.name}_nums_1k")(projected))
        if bucket.ctgs:
            ids = inputs[bucket.ctgs_column]
            fields.append(
                keras.layers.Embedding(bucket.ctgs_vocab_size, k, name=f"{bucket.name}_embedding")(
                    ids
                )
            )
            weights = keras.layers.Embedding(
                bucket.ctgs_vocab_size, 1, name=f"{bucket.name}_first_order"
            )(ids)
            linear.append(keras.layers.Flatten(name=f"{bucket.name}_first_order_flat")(weights))
    n_fields = sum(int(f.shape[1]) for f in fields)
    stacked = (
        fields[0] if len(fields) == 1 else keras.layers.Concatenate(axis=1, name="fields")(fields)
    )

    # FM: 0.5 * sum_k((sum_i v_i)^2 - sum_i v_i^2), sums taken as n * mean.
    summed = keras.layers.Rescaling(float(n_fields))(keras.layers.GlobalAveragePooling1D()(stacked))
    square_of_sum = keras.layers.Multiply()([summed, summed])
    squares = keras.layers.Multiply()([stacked, stacked])
    sum_of_squares = keras.layers.Rescaling(float(n_fields))(
        keras.layers.GlobalAveragePooling1D()(squares)
    )
    pairwise = keras.layers.Subtract()([square_of_sum, sum_of_squares])
    fm_logit = keras.layers.Dense(
        1,
        use_bias=False,
        trainable=False,
        kernel_initializer=keras.initializers.Constant(0.5),
        name="fm",
    )(pairwise)

    first = linear[0] if len(linear) == 1 else keras.layers.Concatenate()(linear)
    linear_logit = keras.layers.Dense(1, name="linear")(first)

    x = keras.layers.Flatten(name="fields_flat")(stacked)
    for i, units in enumerate(params["hidden_units"]):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
        if params["dropout"] > 0.0:
            x = keras.layers.Dropout(params["dropout"], name=f"dropout_{i}")(x)
    deep_logit = keras.layers.Dense(1, name="deep")(x)

    logit = keras.layers.Add(name="logit")([linear_logit, fm_logit, deep_logit])
    score = keras.layers.Activation("sigmoid", name="score")(logit)
    model = keras.Model(inputs=inputs, outputs=score, name="deepfm")
    return _compile_binary(model, params["learning_rate"])


_DNN_DEFAULTS: dict[str, Any] = {
    "hidden_units": [64, 32],
    "embedding_dim": 8,
    "dropout": 0.0,
    "learning_rate": 0.001,
}

register_model(
    ModelSpec(
        name="dnn_binary_classifier",
        build=build_dnn_binary_classifier,
        defaults=_DNN_DEFAULTS,
        task=BINARY,
        validate=lambda p: _positive_units("dnn_binary_classifier", p),
    )
)
register_model(
    ModelSpec(
        name="dnn_regressor",
        build=build_dnn_regressor,
        defaults=_DNN_DEFAULTS,
        task=REGRESSION,
        validate=lambda p: _positive_units("dnn_regressor", p),
    )
)
register_model(
    ModelSpec(
        name="deepfm",
        build=build_deepfm,
        defaults={**_DNN_DEFAULTS, "hidden_units": [64, 32]},
        task=BINARY,
        validate=lambda p: _positive_units("deepfm", p),
    )
)
