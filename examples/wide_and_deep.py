"""An example user model: Wide & Deep (Cheng et al. 2016) following the model contract.

Use it from a pipeline with::

    model: {tag: wd_v1, name: "examples.wide_and_deep:WIDE_AND_DEEP", params: {deep_units: [32]}}

or register it under the entry-point group ``dlflow_airflow.models`` in your
package's ``pyproject.toml``::

    [project.entry-points."dlflow_airflow.models"]
    wide_and_deep = "examples.wide_and_deep:WIDE_AND_DEEP"

The contract (docs/models.md): ``build(fmap, params)`` returns a compiled
Keras model with one input per encoded column (``model_inputs(fmap)``) and
one output layer named ``score`` (a probability for ``task="binary"``).
Stock Keras layers only, so the saved model loads anywhere without this
module.

``dlflow-airflow validate`` (and the DAG parser) imports this module to check
``model.params`` against ``WIDE_AND_DEEP.defaults``: TensorFlow, Keras and
``tf_jobs`` are imported inside ``build`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dlflow_airflow.contract.models import BINARY, ModelConfigError, ModelSpec

if TYPE_CHECKING:
    from dlflow_airflow.contract.fmap import FeatureMap


def build(fmap: FeatureMap, params: Mapping[str, Any]) -> Any:
    """The compiled Wide & Deep model for ``fmap``."""
    import keras

    from tf_jobs.models import model_inputs

    inputs = model_inputs(fmap)
    wide: list[Any] = []
    deep: list[Any] = []
    for bucket in fmap.buckets:
        if bucket.nums:
            wide.append(inputs[bucket.nums_column])
            deep.append(inputs[bucket.nums_column])
        if bucket.ctgs:
            ids = inputs[bucket.ctgs_column]
            # Wide: one weight per category id (a linear model over one-hot ids).
            wide.append(
                keras.layers.Flatten()(
                    keras.layers.Embedding(bucket.ctgs_vocab_size, 1, name=f"{bucket.name}_wide")(
                        ids
                    )
                )
            )
            embedded = keras.layers.Embedding(
                bucket.ctgs_vocab_size, params["embedding_dim"], name=f"{bucket.name}_deep"
            )(ids)
            deep.append(keras.layers.Flatten()(embedded))
    x = deep[0] if len(deep) == 1 else keras.layers.Concatenate()(deep)
    for units in params["deep_units"]:
        x = keras.layers.Dense(units, activation="relu")(x)
    wide_x = wide[0] if len(wide) == 1 else keras.layers.Concatenate()(wide)
    logit = keras.layers.Add()([keras.layers.Dense(1)(wide_x), keras.layers.Dense(1)(x)])
    score = keras.layers.Activation("sigmoid", name="score")(logit)
    model = keras.Model(inputs=inputs, outputs=score, name="wide_and_deep")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params["learning_rate"]),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def validate(params: Mapping[str, Any]) -> None:
    """Range checks on the resolved params (types are checked against the defaults)."""
    if not params["deep_units"] or min(params["deep_units"]) < 1:
        raise ModelConfigError(
            f"deep_units must be positive, got {params['deep_units']}", param="deep_units"
        )


WIDE_AND_DEEP = ModelSpec(
    name="wide_and_deep",
    build=build,
    defaults={"deep_units": [32, 16], "embedding_dim": 8, "learning_rate": 0.005},
    task=BINARY,
    validate=validate,
)
