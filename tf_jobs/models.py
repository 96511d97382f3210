"""The built-in model builders, and building a model from the catalogue.

The catalogue (names, parameters, defaults, tasks; user models and entry
points) is :mod:`dlflow_airflow.contract.models`, read without TensorFlow at
parse time; its names are re-exported here for the jobs and for user code
written against ``tf_jobs.models``.

A builder gets the :class:`~dlflow_airflow.contract.fmap.FeatureMap` and the resolved
parameters and returns a compiled Keras model whose inputs are named after
the encoded columns (``<bucket>_nums``, ``<bucket>_ctgs``), so train,
evaluate and Spark predict can all feed it ``batches.inputs_from_arrow``.
Its outputs follow its task's heads (:mod:`tf_jobs.heads`), which a builder
reads with ``fmap.heads(task)``: one ``score`` output for binary and regression
(one column), multiclass (one softmax column per class) and multilabel (one
sigmoid column per label); one output per label, named after it, for multitask.
Builders use built-in Keras layers only: ``keras.models.load_model(path,
compile=False)`` then needs no custom objects on Spark executors.

Keras is imported inside builders so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dlflow_airflow.contract.fmap import FeatureMap, FmapError
from dlflow_airflow.contract.models import (
    BINARY,
    ENTRY_POINT_GROUP,
    MODELS,
    MULTICLASS,
    MULTILABEL,
    MULTITASK,
    REGRESSION,
    TRAIN_DEFAULTS,
    Builder,
    ModelConfigError,
    ModelParamsError,
    ModelSpec,
    Validator,
    get_model,
    register_model,
    resolve_params,
)
from dlflow_airflow.contract.tasks import Head

__all__ = [
    "BINARY",
    "ENTRY_POINT_GROUP",
    "MODELS",
    "MULTICLASS",
    "MULTILABEL",
    "MULTITASK",
    "REGRESSION",
    "TRAIN_DEFAULTS",
    "Builder",
    "ModelConfigError",
    "ModelParamsError",
    "ModelSpec",
    "Validator",
    "build_deepfm",
    "build_dnn_binary_classifier",
    "build_dnn_classifier",
    "build_dnn_multilabel_classifier",
    "build_dnn_multitask",
    "build_dnn_regressor",
    "build_model",
    "get_model",
    "model_inputs",
    "register_model",
    "resolve_params",
]


def build_model(spec: ModelSpec, fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """The compiled Keras model of ``spec`` for ``fmap`` (``params`` already resolved)."""
    if not fmap.input_columns():
        raise FmapError(f"fmap {fmap.feature_tag}/{fmap.model_date} has no input features")
    return spec.builder()(fmap, params)


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
    x = _features(fmap, inputs, params)
    return _mlp(x, params["hidden_units"], params["dropout"], "")


def _features(fmap: FeatureMap, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
    """Every bucket's numeric vector and flattened embeddings, concatenated."""
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
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)


def _mlp(x: Any, units: Sequence[int], dropout: float, prefix: str) -> Any:
    """Dense relu layers ``<prefix>hidden_<i>`` (each followed by dropout, if any)."""
    import keras

    for i, width in enumerate(units):
        x = keras.layers.Dense(width, activation="relu", name=f"{prefix}hidden_{i}")(x)
        if dropout > 0.0:
            x = keras.layers.Dropout(dropout, name=f"{prefix}dropout_{i}")(x)
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


def build_dnn_classifier(fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """DLFlow's multi-class DNN: the same tower, a softmax ``score`` of one probability per
    class of the label (the fmap's classes, in their order), sparse categorical crossentropy
    on the encoded class index."""
    import keras

    (head,) = fmap.heads(MULTICLASS)
    if head.width < 2:
        raise ModelConfigError(
            f"label {head.label!r} had {head.width} class when its fmap was fitted; "
            "a multiclass model needs at least 2"
        )
    inputs = model_inputs(fmap)
    x = _dnn_tower(fmap, inputs, params)
    score = keras.layers.Dense(head.width, activation="softmax", name="score")(x)
    model = keras.Model(inputs=inputs, outputs=score, name="dnn_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def build_dnn_multilabel_classifier(fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """The same tower, one sigmoid ``score`` column per label (in the fmap's label order),
    binary crossentropy averaged over the labels."""
    import keras

    heads = fmap.heads(MULTILABEL)
    inputs = model_inputs(fmap)
    x = _dnn_tower(fmap, inputs, params)
    score = keras.layers.Dense(len(heads), activation="sigmoid", name="score")(x)
    model = keras.Model(inputs=inputs, outputs=score, name="dnn_multilabel_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params["learning_rate"]),
        loss="binary_crossentropy",
        metrics=[
            keras.metrics.AUC(name="auc", multi_label=True, num_labels=len(heads)),
            keras.metrics.BinaryAccuracy(name="accuracy"),
        ],
    )
    return model


def build_dnn_multitask(fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """One head per label over a shared bottom (``experts: 0``) or MMoE (Ma et al. 2018).

    Shared bottom: the DNN tower (``hidden_units``) feeds every head. MMoE:
    ``experts`` towers of ``expert_units`` read the features; each head mixes
    them with its own softmax gate. Each head then has a tower of
    ``head_units`` and one output named after its label: sigmoid and binary
    crossentropy for a binary head, linear and mean squared error for a
    regression head. The losses are summed with equal weights.
    """
    import keras

    heads = fmap.heads(MULTITASK)
    inputs = model_inputs(fmap)
    features = _features(fmap, inputs, params)
    if params["experts"]:
        experts = _experts(features, params)
        bottoms = {head.name: _gated(features, experts, head, params) for head in heads}
    else:
        shared = _mlp(features, params["hidden_units"], params["dropout"], "")
        bottoms = dict.fromkeys((head.name for head in heads), shared)
    outputs: dict[str, Any] = {}
    losses: dict[str, str] = {}
    metrics: dict[str, list[Any]] = {}
    for head in heads:
        x = _mlp(bottoms[head.name], params["head_units"], params["dropout"], f"{head.name}_")
        if head.kind == BINARY:
            outputs[head.name] = keras.layers.Dense(1, activation="sigmoid", name=head.name)(x)
            losses[head.name] = "binary_crossentropy"
            metrics[head.name] = [keras.metrics.AUC(name="auc")]
        else:
            outputs[head.name] = keras.layers.Dense(1, name=head.name)(x)
            losses[head.name] = "mse"
            metrics[head.name] = [keras.metrics.MeanAbsoluteError(name="mae")]
    try:
        model = keras.Model(inputs=inputs, outputs=outputs, name="dnn_multitask")
    except ValueError as exc:  # a label named like one of the model's layers
        raise ModelConfigError(
            f"cannot build dnn_multitask for labels {[h.label for h in heads]}: {exc}"
        ) from None
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params["learning_rate"]),
        loss=losses,
        metrics=metrics,
    )
    return model


def _experts(features: Any, params: Mapping[str, Any]) -> Any:
    """MMoE's experts, stacked: ``(rows, experts, expert_units[-1])``."""
    import keras

    width = params["expert_units"][-1]
    stacked = [
        keras.layers.Reshape((1, width), name=f"expert_{e}_out")(
            _mlp(features, params["expert_units"], params["dropout"], f"expert_{e}_")
        )
        for e in range(params["experts"])
    ]
    if len(stacked) == 1:
        return stacked[0]
    return keras.layers.Concatenate(axis=1, name="experts")(stacked)


def _gated(features: Any, experts: Any, head: Head, params: Mapping[str, Any]) -> Any:
    """One head's mix of the experts, weighted by its softmax gate on the features."""
    import keras

    gate = keras.layers.Dense(params["experts"], activation="softmax", name=f"{head.name}_gate")(
        features
    )
    # (rows, experts) . (rows, experts, width) -> (rows, width)
    return keras.layers.Dot(axes=(1, 1), name=f"{head.name}_mix")([gate, experts])


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
