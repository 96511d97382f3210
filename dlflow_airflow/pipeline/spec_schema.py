"""The JSON Schema of a pipeline file, for editors (``dlflow-airflow schema``).

Made from the same pydantic models that validate a file, so it cannot drift
from them: :class:`~dlflow_airflow.pipeline.spec.PipelineSpec`, and for
``stages`` each built-in kind's options with the keys every stage accepts
(:class:`~dlflow_airflow.stages.base.StageCommon`). A stage named after a
built-in kind gets that kind's keys; any other stage names its ``kind``.

A file with ``extends`` (or a base, without ``dag_id``) is a part of a
pipeline: its keys are checked, nothing is required. A file with ``dag_id``
and no ``extends`` is checked as a whole pipeline. ``dlflow-airflow validate``
remains the full check (model params, graph, paths); the schema is what an
editor can tell while you type.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, create_model
from pydantic.json_schema import models_json_schema

from dlflow_airflow.pipeline.extends import EXTENDS
from dlflow_airflow.pipeline.spec import PipelineSpec
from dlflow_airflow.stages.base import StageCommon, StageKind
from dlflow_airflow.stages.builtin import BUILTIN_KINDS

# Draft 7: the newest the YAML language server (VS Code, Neovim, Helix) has long
# supported. The schema uses nothing newer; ``$defs`` is only where its parts are.
SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"
_PIPELINE = PipelineSpec.__name__
_STAGE = "Stage"
_PART = "Part"  # suffix of the definitions a part of a pipeline is checked against
_USER_KIND = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


def pipeline_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 7) of a pipeline file, with or without ``extends``."""
    stage_models = {name: _stage_model(name, kind) for name, kind in BUILTIN_KINDS.items()}
    _, top = models_json_schema(
        [(model, "validation") for model in (PipelineSpec, *stage_models.values())],
        ref_template="#/$defs/{model}",
    )
    defs: dict[str, Any] = top["$defs"]
    defs[_STAGE] = _any_stage(stage_models)
    pipeline = defs[_PIPELINE]
    pattern = pipeline["properties"]["stages"].pop("patternProperties")
    pipeline["properties"]["stages"].update(
        propertyNames={"pattern": next(iter(pattern))},
        properties={
            name: _named_stage(_ref(model.__name__)) for name, model in stage_models.items()
        },
        additionalProperties=_nullable({"$ref": _ref(_STAGE)}),
    )
    defs = _mapping_or_value(defs)
    parts = {f"{name}{_PART}": _part(schema, defs) for name, schema in defs.items()}
    whole_file = parts[f"{_PIPELINE}{_PART}"]
    whole_file["properties"] = {EXTENDS: _EXTENDS_SCHEMA, **whole_file["properties"]}
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "dlflow-airflow pipeline",
        "description": "One pipeline = one Airflow DAG (dags/pipelines/*.yaml).",
        **{k: v for k, v in whole_file.items() if k not in ("title", "description")},
        # A whole pipeline: dag_id and no extends. Then every required key is required.
        "allOf": [
            {
                "if": {"required": ["dag_id"], "not": {"required": [EXTENDS]}},
                "then": {"$ref": _ref(_PIPELINE)},
            }
        ],
        "$defs": {**defs, **parts},
    }


_EXTENDS_SCHEMA = {
    "description": "Base file(s) merged under this one, relative to it (e.g. common/base.yaml): "
    "mappings merge, lists and values are replaced; a list of bases merges in order.",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ],
}


def _stage_model(name: str, kind: type[StageKind]) -> type[BaseModel]:
    """A stage of kind ``name`` as one model: the kind's options and the common keys."""
    fields: dict[str, Any] = {
        key: (field.annotation, field) for key, field in StageCommon.model_fields.items()
    }
    fields["kind"] = (Literal[name] | None, None)
    doc = (kind.__doc__ or "").strip().split("\n\n")[0]
    model = create_model(f"{name}_stage", __base__=kind.Options, __doc__=doc or None, **fields)
    return model


def _any_stage(stage_models: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """A stage of any name: it names its kind, a built-in one gets that kind's keys."""
    kinds = list(stage_models)
    return {
        "type": "object",
        "description": "A stage; its kind is a built-in kind, an entry point's name, "
        "or 'package.module:ClassName' (a user kind: its keys are not checked here).",
        "required": ["kind"],
        "properties": {
            "kind": {"anyOf": [{"enum": kinds}, {"type": "string", "pattern": _USER_KIND}]}
        },
        "allOf": [
            {
                "if": {
                    "type": "object",
                    "properties": {"kind": {"const": name}},
                    "required": ["kind"],
                },
                "then": {"$ref": _ref(model.__name__)},
            }
            for name, model in stage_models.items()
        ],
    }


def _named_stage(kind_ref: str) -> dict[str, Any]:
    """A stage named after a built-in kind: that kind, unless it names another."""
    return _nullable(
        {
            "if": {"type": "object", "required": ["kind"]},
            "then": {"$ref": _ref(_STAGE)},
            "else": {"$ref": kind_ref},
        }
    )


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``stage:`` with no value is a stage with no options (a condition: the errors stay
    those of ``schema``, where ``anyOf`` would only say "not valid under any")."""
    return {"if": {"type": "null"}, "else": schema}


def _mapping_or_value(schema: Any) -> Any:
    """A choice between one model (a mapping) and plain values (``schedule``: a cron
    string or ``{assets: [...]}``) as a condition on the type: an editor then names the
    wrong key or value inside, where ``oneOf`` would only say "not valid under any"."""
    if isinstance(schema, list):
        return [_mapping_or_value(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _mapping_or_value(value) for key, value in schema.items()}
    choices = out.get("oneOf") or []
    models = [c for c in choices if "$ref" in c]
    values = [c for c in choices if "$ref" not in c and c.get("type") not in (None, "object")]
    if len(models) == 1 and len(models) + len(values) == len(choices):
        del out["oneOf"]
        if len(values) == 1:
            value = values[0]
        elif all(set(v) == {"type"} for v in values):  # {"type": ["string", "null"]}
            value = {"type": [v["type"] for v in values]}
        else:
            value = {"anyOf": values}
        out.update({"if": {"type": "object"}, "then": models[0], "else": value})
    return out


def _part(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` for a part of a pipeline: nothing required, references to the parts."""
    if isinstance(schema, list):
        return [_part(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    part: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("required", "minProperties"):
            continue
        if key == "if":  # a condition, not a requirement: kept as it is
            part[key] = copy.deepcopy(value)
        elif key == "$ref" and value.removeprefix("#/$defs/") in defs:
            part[key] = f"{value}{_PART}"
        elif key in _NAMED:  # keys here are names (a field may be called "required")
            part[key] = {name: _part(sub, defs) for name, sub in value.items()}
        else:
            part[key] = _part(value, defs)
    return part


_NAMED = ("properties", "patternProperties", "$defs")


def _ref(name: str) -> str:
    return f"#/$defs/{name}"
