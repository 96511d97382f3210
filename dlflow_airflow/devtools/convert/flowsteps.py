"""dmflow ``steps`` as merge steps (or, for dmflow's ``HdfsReader``, a source)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlflow_airflow.devtools.convert.context import identifier, resolve_file
from dlflow_airflow.devtools.convert.flowbase import NO_CHECKPOINTS, FlowBase, Json
from dlflow_airflow.devtools.convert.templates import dmflow_text

_HDFS_READER = "com.didi.dm.dmflow.feature.extractor.udf.HdfsReader"
# dmflow's type groups of MissingValueFiller -> Spark's type names (DataType.simpleString).
_FILL_TYPES = {
    "int": "int",
    "long": "bigint",
    "float": "float",
    "double": "double",
    "str": "string",
}
_FILL_CAST: dict[str, Callable[[str], Any]] = {
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "str": str,
}
_STEP_KEYS = {"name", "desc", "opType", "checkpoint", "params"}


class StepReader(FlowBase):
    """``SQL_Assembler``, ``UDF_Assembler``, ``MissingValueCounter``, ``MissingValueFiller``."""

    def step(self, index: int, step: Json) -> None:
        key = ("steps", str(index))
        if not isinstance(step, dict):
            self.unmapped(key, f"expected an object, got {step!r}; left out")
            return
        op = str(step.get("opType", ""))
        converters: dict[str, Callable[[Json, tuple[str, ...], str], Json | None]] = {
            "SQL_Assembler": self.sql_step,
            "UDF_Assembler": self.udf_step,
            "MissingValueCounter": self.counter_step,
            "MissingValueFiller": self.filler_step,
        }
        self.unknown_keys(step, _STEP_KEYS, key, "step")
        checkpoint = step.get("checkpoint")
        if checkpoint and (not isinstance(checkpoint, dict) or checkpoint.get("enable")):
            self.unmapped((*key, "checkpoint"), NO_CHECKPOINTS)
        if op not in converters:
            self.unmapped((*key, "opType"), f"unknown operator {op!r}; the step is left out")
            return
        converted = converters[op](
            step.get("params") or {}, (*key, "params"), str(step.get("name", ""))
        )
        if converted is not None:
            self.steps_note(step, key, converted)

    def steps_note(self, step: Json, key: tuple[str, ...], converted: Json) -> None:
        if "path" in converted:
            self.flow.sources.append(converted)
            where = f"stages.merge.sources.{len(self.flow.sources) - 1}"
        else:
            self.flow.steps.append(converted)
            where = f"stages.merge.steps.{len(self.flow.steps) - 1}"
        label = " ".join(str(step.get(k, "")) for k in ("name", "desc") if step.get(k))
        self.note(key, f"{step.get('opType')} {label!r} -> {where}")

    def sql_step(self, params: Json, key: tuple[str, ...], label: str) -> Json | None:
        known = {"joinKeys", "sqlFile", "enableSubdir", "emptyCheck", "uniqueCheck"}
        self.unknown_keys(params, known | {"primaryKeys", "substitutions"}, key, "SQL_Assembler")
        file = resolve_file(str(params.get("sqlFile", "")), self.doc.path.parent, Path.cwd())
        if file is None:
            self.unmapped(
                (*key, "sqlFile"),
                f"no SQL file {params.get('sqlFile')!r} (looked beside {self.doc.path.name} "
                "and in the current folder); the step is left out",
            )
            return None
        self.check_substitutions(params, key)
        self.sql_checks(params, key)
        text = dmflow_text(
            file.read_text(encoding="utf-8"),
            self.flow.renames,
            lambda name: self.unmapped(
                (*key, "sqlFile"), f"{file}: ${{{name}}} is no dependency key; kept as text"
            ),
        )
        join_keys = [str(k) for k in params.get("joinKeys") or self.primary_keys]
        return {"sql": {"file": str(self.ctx.add_file(file.name, text)), "join_keys": join_keys}}

    def check_substitutions(self, params: Json, key: tuple[str, ...]) -> None:
        for name in params.get("substitutions") or []:
            if str(name) not in self.flow.renames:
                self.unmapped((*key, "substitutions"), f"{name!r} is no dependency key")

    def sql_checks(self, params: Json, key: tuple[str, ...]) -> None:
        """enableSubdir, emptyCheck, uniqueCheck and primaryKeys."""
        if params.get("enableSubdir"):
            self.ctx.spark_conf["spark.hadoop.hive.mapred.supports.subdirectories"] = "true"
            self.note(
                (*key, "enableSubdir"),
                "-> spark.conf spark.hadoop.hive.mapred.supports.subdirectories: 'true' "
                "(for the whole merge job, not one step)",
            )
        if params.get("emptyCheck"):
            self.unmapped(
                (*key, "emptyCheck"),
                "a SQL step's result is not checked for rows here (the merged table keeps "
                "one row per seed row; missing features are nulls)",
            )
        if not params.get("uniqueCheck"):
            self.note(key, "a SQL step's result with two rows for one join key is always refused")
        primary = params.get("primaryKeys")
        if primary and set(map(str, primary)) != set(map(str, params.get("joinKeys") or [])):
            self.note(
                (*key, "primaryKeys"),
                "uniqueness is checked on the join keys here, not on primaryKeys",
            )

    def udf_step(self, params: Json, key: tuple[str, ...], label: str) -> Json | None:
        """dmflow's HdfsReader (read a table, left-join it) is a source; other UDFs are not."""
        clazz = str(params.get("clazz", ""))
        if clazz != _HDFS_READER:
            self.unmapped(
                (*key, "clazz"),
                f"custom extractor {clazz!r} (Scala) has no equivalent; write it as a SQL "
                "step or a stage kind of your own (README.md, 'Your own stage kinds'); "
                "the step is left out",
            )
            return None
        self.unknown_keys(
            params,
            {"clazz", "joinKeys", "extraParams", "substitutions", "uniqueCheck", "primaryKeys"}
            | {"emptyCheck"},
            key,
            "UDF_Assembler",
        )
        if params.get("emptyCheck"):
            self.unmapped(
                (*key, "emptyCheck"),
                "a source is not checked for rows here (the merged table keeps one row per "
                "seed row; a feature it lacks is null)",
            )
        self.check_substitutions(params, key)
        extra = params.get("extraParams") or {}
        self.unknown_keys(extra, {"path", "format"}, (*key, "extraParams"), "HdfsReader")
        path = dmflow_text(
            str(extra.get("path", "")),
            self.flow.renames,
            lambda name: self.unmapped(
                (*key, "extraParams", "path"), f"${{{name}}} is no dependency key"
            ),
        )
        keys = [str(k) for k in params.get("joinKeys") or self.primary_keys]
        name = identifier(label, fallback=f"source_{len(self.flow.sources)}").lower()
        if self.flow.steps:
            self.note(key, "sources are joined before every step, so this one moves first")
        return {"name": name, "path": path, "format": extra.get("format", "parquet"), "keys": keys}

    def excluded(self, params: Json, key: tuple[str, ...], what: str) -> None:
        """dmflow's ``excludeCols``: columns the step leaves alone (keys and labels, its docs
        say). Ours leave out the primary keys only and take no exclude list."""
        extra = [str(c) for c in params.get("excludeCols") or [] if c not in self.primary_keys]
        if extra:
            self.unmapped(
                (*key, "excludeCols"),
                f"{extra} are not excluded: {what}. Not feature.drop_columns either: dmflow "
                "keeps these columns, it only leaves them out of this step",
            )

    def counter_step(self, params: Json, key: tuple[str, ...], label: str) -> Json:
        self.unknown_keys(params, {"excludeCols"}, key, "MissingValueCounter")
        self.excluded(
            params,
            key,
            "count_missing counts every column but the primary keys (a label's nulls too); "
            "to leave columns out, list the ones to count in its columns",
        )
        self.note(
            key,
            "count_missing adds missing_count and missing_ratio (nulls, and NaN in floats); "
            "dmflow's feature_stat_* columns per type (and its empty counts) are not made",
        )
        return {"count_missing": {}}

    def filler_step(self, params: Json, key: tuple[str, ...], label: str) -> Json:
        by_type: Json = {}
        columns: Json = {}
        for group, spec in params.items():
            if group == "excludeCols":
                continue
            if group not in _FILL_TYPES:
                self.unmapped(
                    (*key, group),
                    f"type group {group!r}: no single Spark type name to fill "
                    f"(known: {', '.join(_FILL_TYPES)})",
                )
                continue
            self.fill_group(group, spec or {}, (*key, group), by_type, columns)
        self.excluded(
            params, key, "fill_missing fills every column but the primary keys (a null label too)"
        )
        filled = {"by_type": by_type, "columns": columns}
        return {"fill_missing": {k: v for k, v in filled.items() if v}}

    def fill_group(
        self, group: str, spec: Json, key: tuple[str, ...], by_type: Json, columns: Json
    ) -> None:
        """``{default: v, "<value>": [columns]}`` (dmflow's inverted form) into ours."""
        for value, names in spec.items():
            if value == "default":
                by_type[_FILL_TYPES[group]] = names
                continue
            try:
                typed = _FILL_CAST[group](value)
            except ValueError:
                self.unmapped((*key, value), f"{value!r} is not a {group} value")
                continue
            for column in names if isinstance(names, list) else [names]:
                columns[str(column)] = typed
