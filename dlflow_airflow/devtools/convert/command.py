"""``dlflow-airflow convert``: read, map, check, write and report."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from dlflow_airflow.devtools.convert.context import Context
from dlflow_airflow.devtools.convert.findings import Findings
from dlflow_airflow.devtools.convert.hocon import HoconError, read_hocon
from dlflow_airflow.devtools.convert.mapping import ConvertOptions, read_config
from dlflow_airflow.devtools.convert.output import render_yaml, validation_problems


@dataclass(frozen=True)
class Conversion:
    """A converted config: the pipeline document, the SQL files it names, the findings."""

    document: dict[str, object]
    files: dict[Path, str]
    findings: Findings


def convert(config: Path, options: ConvertOptions) -> Conversion:
    """Map the DLFlow config ``config`` (and its merge flow) onto a pipeline document.

    :raises HoconError: the config cannot be read.
    """
    ctx = Context(sql_dir=options.sql_dir)
    document = read_config(read_hocon(config), ctx, options)
    return Conversion(document, ctx.files, ctx.findings)


def default_sql_dir(config: Path, output: Path | None) -> Path:
    """Beside the YAML (``<name>_sql/``), or in the current folder when it goes to stdout."""
    if output is not None:
        return output.parent / f"{output.stem}_sql"
    return Path.cwd() / f"{config.stem}_sql"


def run(
    config: Path,
    output: Path | None,
    *,
    sql_dir: Path | None = None,
    workspace: str | None = None,
    dag_id: str | None = None,
) -> int:
    """Convert, write the YAML (and SQL files), print the report; 0 when the YAML validates."""
    options = ConvertOptions(
        sql_dir=(sql_dir or default_sql_dir(config, output)).resolve(),
        workspace=workspace,
        dag_id=dag_id,
    )
    try:
        conversion = convert(config, options)
    except HoconError as exc:
        print(f"dlflow-airflow convert: {exc}", file=sys.stderr)
        return 1
    source = str(output) if output is not None else "<stdout>"
    text = render_yaml(conversion.document, conversion.findings, str(config), [])
    problems = validation_problems(text, source)
    text = render_yaml(conversion.document, conversion.findings, str(config), problems)
    write_files(conversion.files)
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    report(conversion, output, problems)
    return 1 if problems else 0


def write_files(files: dict[Path, str]) -> None:
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def report(conversion: Conversion, output: Path | None, problems: list[str]) -> None:
    """The findings, the files written and the validation result, on stderr."""
    lines = conversion.findings.lines() or ["Every key was mapped."]
    lines += [f"wrote {path}" for path in (*conversion.files, *([output] if output else []))]
    if problems:
        lines += ["The pipeline does not validate:", *(f"  {p}" for p in problems)]
    else:
        lines.append(f"ok {output or '<stdout>'}: the pipeline validates")
    print("\n".join(lines), file=sys.stderr)
