"""DLFlow's ``MERGE { config_file, seed_sql, fit }`` as the merge stage's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlflow_airflow.devtools.convert.context import Json, Key, Source, resolve_file
from dlflow_airflow.devtools.convert.featureflow import read_flow
from dlflow_airflow.devtools.convert.hocon import HoconError, read_hocon
from dlflow_airflow.devtools.convert.templates import as_template, has_placeholder

MERGE_KEYS = ("config_file", "seed_sql", "fit")


def convert_merge(src: Source, raw: Json, primary_keys: tuple[str, ...]) -> Json | None:
    """The merge options (seed, dependencies, sources, steps); None when there is no seed."""
    for name in raw:
        if name not in MERGE_KEYS:
            src.unmapped(("MERGE", name), f"not a DLFlow MERGE key ({', '.join(MERGE_KEYS)})")
    fit_note(src, raw)
    seed = convert_seed(src, raw.get("seed_sql"))
    if seed is None:
        return None
    options: Json = {"seed": {"sql": str(seed)}}
    flow = convert_flow(src, raw.get("config_file"), primary_keys)
    if flow is not None:
        options.update({k: v for k, v in flow.items() if v})
    return options


def fit_note(src: Source, raw: Json) -> None:
    if "fit" not in raw:
        return
    if raw["fit"]:
        message = (
            "fit true: the pipeline file is the stored flow; every run merges with it "
            "(dmflow's fit=false replays are simply later runs)"
        )
    else:
        message = (
            "fit false replayed a flow fitted earlier (saved on HDFS); this conversion "
            "read MERGE.config_file instead: check it is the flow that was fitted"
        )
    src.note(("MERGE", "fit"), message)


def convert_seed(src: Source, value: Any) -> Path | None:
    """The seed as a SQL file in the SQL folder (a file is copied, a query written)."""
    key = ("MERGE", "seed_sql")
    if value is None:
        src.unmapped(key, "no seed_sql: merge needs the seed; the merge stage is left out")
        return None
    text = src.resolved(value, key)
    if text is None:
        return None
    as_path = "\n" not in text and not has_placeholder(text)
    file = resolve_file(text, src.doc.path.parent, Path.cwd()) if as_path else None
    if file is not None:
        return seed_file(src, file, key)
    if _looks_like_file(text):
        src.unmapped(key, f"no seed SQL file {text!r}; the merge stage is left out")
        return None
    src.note(key, "the seed query -> a SQL file in the SQL folder")
    return src.ctx.add_file("seed.sql", as_template(text))


def seed_file(src: Source, file: Path, key: Key) -> Path:
    content = file.read_text(encoding="utf-8")
    if "$" in content or "<dt=" in content:
        src.note(key, f"{file}: '$' and '<dt=' in the seed SQL are kept as text")
    return src.ctx.add_file(file.name, as_template(content))


def _looks_like_file(text: str) -> bool:
    return not any(ch.isspace() for ch in text.strip()) or text.strip().endswith(".sql")


def convert_flow(src: Source, value: Any, primary_keys: tuple[str, ...]) -> Json | None:
    """The dependencies, sources and steps of the FeatureFlow ``value`` names."""
    key = ("MERGE", "config_file")
    if value is None:
        src.note(key, "no FeatureFlow: the merged table is the seed alone")
        return None
    text = src.resolved(value, key)
    file = resolve_file(text, src.doc.path.parent, Path.cwd()) if text else None
    if file is None:
        src.unmapped(key, f"no FeatureFlow config {value!r}; dependencies and steps left out")
        return None
    try:
        doc = read_hocon(file)
    except HoconError as exc:
        src.unmapped(key, f"{exc}; dependencies and steps left out")
        return None
    flow_src = Source(doc, src.ctx)
    flow_src.report_includes()
    flow = read_flow(flow_src, primary_keys)
    return {"dependencies": flow.dependencies, "sources": flow.sources, "steps": flow.steps}
