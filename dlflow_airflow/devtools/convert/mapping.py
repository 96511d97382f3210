"""A DLFlow config as a pipeline document: the top-level keys here, the blocks elsewhere.

``MODEL`` -> :mod:`.model`, ``BUCKET`` -> :mod:`.buckets`, ``SPARK`` ->
:mod:`.sparkconf`, ``MERGE`` -> :mod:`.merge` (its FeatureFlow: :mod:`.featureflow`).
:data:`LAYOUT_KEYS` and any key nobody knows are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from dlflow_airflow.devtools.convert.buckets import convert_buckets
from dlflow_airflow.devtools.convert.context import Context, Json, Source
from dlflow_airflow.devtools.convert.hocon import HoconDocument
from dlflow_airflow.devtools.convert.merge import convert_merge
from dlflow_airflow.devtools.convert.model import convert_model
from dlflow_airflow.devtools.convert.sparkconf import convert_spark
from dlflow_airflow.devtools.convert.templates import TemplateError, as_literal

STAGE_ORDER = ("merge", "encode", "train", "evaluate", "predict")
# DLFlow's task names and aliases (its built-in tasks' registered names) -> our stage kinds.
STEP_ALIASES = {
    "merge": "merge",
    "encode": "encode",
    "encoding": "encode",
    "train": "train",
    "training": "train",
    "evaluate": "evaluate",
    "evaluating": "evaluate",
    "eval": "evaluate",
    "test": "evaluate",
    "predict": "predict",
    "predicting": "predict",
    "pred": "predict",
}
LAYOUT_KEYS = re.compile(r"^(HDFS|LOCAL)_[A-Z_]+_DIR$")
_TAG_OUTSIDE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ConvertOptions:
    """:param sql_dir: where rewritten SQL files go.
    :param workspace: the pipeline's workspace (instead of HDFS_WORKSPACE).
    :param dag_id: the DAG id (default ``dlflow_<config file name>``)."""

    sql_dir: Path
    workspace: str | None = None
    dag_id: str | None = None


@dataclass
class ConfigReader(Source):
    """Converts one DLFlow config, reporting into its conversion."""

    options: ConvertOptions
    used: set[str] = field(default_factory=set)
    primary_keys: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def take(self, name: str) -> Any:
        """The top-level value ``name`` (None when absent), marked as handled."""
        self.used.add(name)
        return self.doc.data.get(name)

    def block(self, name: str) -> Json:
        """A top-level object (``MODEL { ... }``); anything else is reported and read as empty."""
        value = self.take(name)
        if value is None or isinstance(value, dict):
            return value or {}
        self.unmapped((name,), f"expected an object {{ ... }}, got {value!r}; left out")
        return {}

    def literal(self, name: str) -> str | None:
        """A top-level value that must not depend on the run's date."""
        value = self.take(name)
        if value is None:
            return None
        text = self.resolved(value, (name,))
        try:
            return None if text is None else as_literal(text, name)
        except TemplateError as exc:
            self.unmapped((name,), str(exc))
            return None

    def names(self, name: str) -> list[str]:
        """A comma-separated (or list) value as names."""
        value = self.take(name)
        items = value if isinstance(value, list) else str(value or "").split(",")
        return [str(item).strip() for item in items if str(item).strip()]

    # --- the whole config -----------------------------------------------------------------

    def read(self) -> Json:
        data: Json = {
            "dag_id": self.dag_id(),
            "description": f"Converted from the DLFlow config {self.doc.path.name}",
            "schedule": "@daily",
            "start_date": self.start_date(),
            "catchup": False,
            "tags": ["dlflow"],
            "workspace": self.workspace(),
            "feature": self.feature(),
        }
        data["model"], train = self.model()
        data["buckets"] = convert_buckets(self, self.block("BUCKET"))
        merge = self.merge()
        stages, external = self.stages(merge, train)
        data["spark"] = {"conf": convert_spark(self, self.block("SPARK"), self.ctx.spark_conf)}
        data["external"] = external
        data["stages"] = stages
        self.leftovers()
        return {k: v for k, v in data.items() if v not in (None, [], {}, {"conf": {}})}

    def model(self) -> tuple[Json, Json]:
        """The model block, and the train options it implies (the input reader's)."""
        found = convert_model(self, self.block("MODEL"), self.labels)
        model = {
            "tag": self.tag("MODEL_TAG"),
            "name": found.name,
            "date": self.model_date(),
            "params": found.params,
            "heads": found.heads,
        }
        return {k: v for k, v in model.items() if v not in (None, {})}, found.train

    def model_date(self) -> str | None:
        model_date = self.date_of("MODEL_DATE")
        feature_date = self.doc.data.get("FEATURE_DATE")
        if model_date is None:
            return None
        if str(feature_date).replace("-", "") == model_date.strftime("%Y%m%d"):
            self.note(("MODEL_DATE",), "equal to FEATURE_DATE -> model.date same (each run's date)")
            return "same"
        self.note(
            ("MODEL_DATE",),
            f"-> model.date {model_date}: every run uses (or trains) the model of that date; "
            "'same' dates it by each run, 'latest' scores with the newest blessed one",
        )
        return model_date.isoformat()

    def merge(self) -> Json | None:
        if self.doc.data.get("MERGE") is None:
            self.used.add("MERGE")
            return None
        return convert_merge(self, self.block("MERGE"), tuple(self.primary_keys))

    def dag_id(self) -> str:
        if self.options.dag_id:
            return self.options.dag_id
        return f"dlflow_{_TAG_OUTSIDE.sub('_', self.doc.path.stem)}"

    def leftovers(self) -> None:
        for name in self.doc.data:
            if name in self.used:
                continue
            if LAYOUT_KEYS.match(name):
                self.unmapped(
                    (name,),
                    "a folder of DLFlow's layout: the layout is fixed here, under the workspace "
                    "(<workspace>/<artifact>/TAG=<tag>/dt=<date>; README.md, 'Storage layout')",
                )
            else:
                self.unmapped(
                    (name,),
                    "not a DLFlow key this converter knows (a user task's or model's own "
                    "setting?); nothing reads it here",
                )

    # --- dates, tags, keys, workspace -----------------------------------------------------

    def date_of(self, name: str) -> date | None:
        text = self.literal(name)
        if text is None:
            return None
        for shape in ("%Y%m%d", "%Y-%m-%d"):
            try:
                return datetime.strptime(text, shape).date()
            except ValueError:
                continue
        self.unmapped((name,), f"{text!r} is not a date YYYYMMDD")
        return None

    def start_date(self) -> date | None:
        feature_date = self.date_of("FEATURE_DATE")
        if feature_date is not None:
            self.note(
                ("FEATURE_DATE",),
                f"-> start_date {feature_date}: the first run; each run's feature date is "
                "then its own date ({date} in paths)",
            )
        return feature_date

    def tag(self, name: str) -> str | None:
        text = self.literal(name)
        if text is None:
            return None
        tag = _TAG_OUTSIDE.sub("_", text).lstrip("_.-") or "tag"
        if tag != text:
            self.note((name,), f"{text!r} -> {tag!r} (a tag is letters, digits and _.-)")
        return tag

    def feature(self) -> Json:
        labels = self.names("LABELED_KEYS")
        others = self.names("LABELS")
        if labels and others and labels != others:
            self.unmapped(("LABELS",), f"both LABELED_KEYS and LABELS are set; {labels} used")
        self.primary_keys = self.names("PRIMARY_KEYS")
        self.labels = labels or others
        feature: Json = {
            "tag": self.tag("FEATURE_TAG"),
            "primary_keys": self.primary_keys,
            "labels": self.labels,
        }
        drop = self.names("DROP_COLUMNS")
        if drop:
            feature["drop_columns"] = drop
        return {k: v for k, v in feature.items() if v is not None}

    def workspace(self) -> str:
        given = self.literal("HDFS_WORKSPACE")
        self.local_keys()
        if self.options.workspace:
            return self.options.workspace
        if given and "://" in given:
            return given
        if given and given.startswith("/"):
            self.note(
                ("HDFS_WORKSPACE",),
                f"-> workspace hdfs://{given} (a DLFlow path without a scheme is on HDFS)",
            )
            return f"hdfs://{given}"
        problem = "no HDFS_WORKSPACE" if given is None else f"{given!r} is not an absolute path"
        self.unmapped(
            ("HDFS_WORKSPACE",),
            f"{problem}: the workspace is ${{DLFLOW_WORKSPACE}} (or give --workspace)",
        )
        return "${DLFLOW_WORKSPACE:-/tmp/dlflow-workspace}"

    def local_keys(self) -> None:
        reasons = {
            "LOCAL_WORKSPACE": "no local mirror here: every stage reads and writes the "
            "workspace itself (HDFS included)",
            "MODELS_DIR": "user models are not loaded from a folder: register each one "
            "(see the MODEL note, docs/models.md)",
            "TASKS_DIR": "user tasks are not loaded from a folder: a stage kind of your own "
            "is a Python class named in the YAML (README.md, 'Your own stage kinds')",
        }
        for name, reason in reasons.items():
            if self.take(name) is not None:
                self.unmapped((name,), reason)

    # --- merge and stages -----------------------------------------------------------------

    def stages(self, merge: Json | None, train: Json) -> tuple[Json, list[str]]:
        from dlflow_airflow.contract.artifacts import job_tags

        chosen = self.steps()
        stages: Json = {}
        for name in STAGE_ORDER:
            if name not in chosen:
                continue
            if name == "merge" and merge is None:
                self.unmapped(
                    ("STEPS",), "merge has no usable MERGE block (see MERGE above); left out"
                )
                continue
            stages[name] = merge if name == "merge" else (train if name == "train" else {})
        if merge is not None and "merge" not in chosen:
            self.unmapped(("MERGE",), "STEPS has no merge: the MERGE block is not used")
        if train and "train" not in stages:
            self.unmapped(("MODEL", "shuffle_size"), "no train stage to take it")
        if "encode" in stages:
            self.note(
                ("STEPS",),
                "encode writes the encoded Parquet table train reads; for DLFlow's "
                "TFRecords as well, set stages.encode.tfrecord: true",
            )
        self.check_labels(stages)
        needs = {t for name in stages for t in job_tags(name).needs}
        produced = {t for name in stages for t in job_tags(name).produces}
        external = sorted(needs - produced)
        if external:
            self.note(
                ("STEPS",),
                f"no stage here produces {', '.join(external)}: listed as external (they must "
                "already be in the workspace, see `dlflow-airflow graph`)",
            )
        return stages, external

    def check_labels(self, stages: Json) -> None:
        """No labels, but a stage that reads them: reported (validation refuses it too)."""
        from dlflow_airflow.contract.artifacts import job_tags
        from dlflow_airflow.pipeline.build import LABEL_READERS

        readers = [n for n in stages if set(job_tags(n).produces) & set(LABEL_READERS)]
        if readers and not self.labels:
            self.unmapped(
                ("LABELED_KEYS",),
                f"no LABELED_KEYS (nor LABELS), but {', '.join(readers)} read(s) the labels "
                "(encode fits their encoding, train learns them, evaluate scores them): "
                "feature.labels is left empty and the pipeline does not validate until you "
                "set it (one label for a binary, regression or multi-class model)",
            )

    def steps(self) -> set[str]:
        chosen: set[str] = set()
        names = self.names("STEPS")
        if not names:
            self.unmapped(("STEPS",), "no steps: the pipeline has no stages")
        for name in names:
            stage = STEP_ALIASES.get(name.lower())
            if stage is None:
                self.unmapped(
                    ("STEPS",),
                    f"{name!r}: a user task (UDT); write it as a stage kind of your own "
                    "(README.md, 'Your own stage kinds') and add it to stages",
                )
            else:
                chosen.add(stage)
        return chosen


def read_config(doc: HoconDocument, ctx: Context, options: ConvertOptions) -> Json:
    """The pipeline document of a DLFlow config (findings and SQL files go into ``ctx``)."""
    reader = ConfigReader(doc, ctx, options)
    reader.report_includes()
    return reader.read()
