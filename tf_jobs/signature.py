"""A trained model's inputs and outputs, recorded in its manifest at train time.

Predict checks a model against the fmap and the encoded table on the Spark
driver before any task starts. Reading the signature from ``manifest.json``
spares the driver importing TensorFlow and loading the model (seconds of
every predict); a model trained before manifests recorded it is loaded once
on the driver to read it (:func:`signature_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SIGNATURE_KEY = "signature"


class SignatureError(ValueError):
    """The model's inputs or outputs cannot be named or sized."""


@dataclass(frozen=True)
class ModelOutput:
    """One model output: its column name and its width (values per row)."""

    name: str
    width: int


@dataclass(frozen=True)
class Signature:
    """What predict needs of a model.

    :param inputs: input name -> last dimension (None: unknown); None when the
        model does not name its inputs (the fmap's input columns are used).
    :param outputs: the outputs, in the model's order.
    """

    inputs: dict[str, int | None] | None
    outputs: tuple[ModelOutput, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "outputs": [{"name": out.name, "width": out.width} for out in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        inputs = data.get("inputs")
        return cls(
            inputs=None if inputs is None else {str(k): v for k, v in inputs.items()},
            outputs=tuple(ModelOutput(str(o["name"]), int(o["width"])) for o in data["outputs"]),
        )


def recorded_signature(manifest: Mapping[str, Any]) -> Signature | None:
    """The signature train recorded in the manifest; None for a model trained before."""
    data = manifest.get(SIGNATURE_KEY)
    if not isinstance(data, Mapping):
        return None
    try:
        return Signature.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # unreadable: the model itself is the authority


def signature_of(model: Any) -> Signature:
    """The signature of a loaded Keras model.

    :raises SignatureError: the model has unnamed outputs or an output of unknown size.
    """
    return Signature(_inputs(model), tuple(_outputs(model)))


def _inputs(model: Any) -> dict[str, int | None] | None:
    tensors = getattr(model, "inputs", None) or []
    named = {getattr(t, "name", None): t for t in tensors}
    if not tensors or None in named:
        return None
    return {name: _dim(tensor.shape[-1]) for name, tensor in named.items()}


def _dim(value: Any) -> int | None:
    return None if value is None else int(value)


def _outputs(model: Any) -> list[ModelOutput]:
    structure = getattr(model, "output", None)
    if isinstance(structure, dict):  # outputs given as a dict: its keys name them
        pairs = list(structure.items())
    else:
        tensors = list(getattr(model, "outputs", None) or [])
        names = list(getattr(model, "output_names", None) or [])
        if not tensors or len(names) != len(tensors):
            raise SignatureError(
                f"model {getattr(model, 'name', model)!r} has no named outputs; "
                "predict needs a functional Keras model"
            )
        pairs = list(zip(names, tensors, strict=True))
    outputs = []
    for name, tensor in pairs:
        width = 1
        for dim in tensor.shape[1:]:
            if dim is None:
                raise SignatureError(f"model output {name!r} has an unknown size {tensor.shape}")
            width *= int(dim)
        outputs.append(ModelOutput(str(name), width))
    return outputs
