"""The converted pipeline as YAML text: a header of findings, then the document; and its check."""

from __future__ import annotations

from typing import Any

import yaml

from dlflow_airflow.devtools.convert.findings import Findings


def render_yaml(
    document: dict[str, Any], findings: Findings, source: str, problems: list[str]
) -> str:
    """The YAML file: what was not mapped (and why) as comments on top, then the pipeline."""
    header = [f"Converted from the DLFlow config {source} by `dlflow-airflow convert`."]
    if problems:
        header += ["", "DOES NOT VALIDATE YET (`dlflow-airflow validate` says):"]
        header += [f"  {line}" for line in problems]
    if findings.items:
        header += ["", *findings.lines()]
    else:
        header += ["Every key was mapped."]
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header)
    body = yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None
    )
    return f"{comments}\n{body}"


def validation_problems(text: str, source: str) -> list[str]:
    """What ``dlflow-airflow validate`` would print for ``text`` (empty: it validates)."""
    from dlflow_airflow.pipeline.build import Pipeline
    from dlflow_airflow.pipeline.errors import PipelineError
    from dlflow_airflow.pipeline.loader import format_error, isolated

    try:
        with isolated(source):
            Pipeline.from_data(yaml.safe_load(text), source=source)
    except PipelineError as exc:
        return format_error(exc).splitlines()
    return []
