"""``dlflow-airflow``: check pipeline files, show their graph, run the demo."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dlflow_airflow.pipeline.errors import PipelineError

if TYPE_CHECKING:
    from dlflow_airflow.pipeline.build import Pipeline


def _validate(args: argparse.Namespace) -> int:
    """Check each file as the DAG folder loads it, and that no two define the same dag_id."""
    from dlflow_airflow.pipeline.errors import Issue
    from dlflow_airflow.pipeline.loader import format_error, load_pipeline

    failed = 0
    first_file: dict[str, str] = {}  # dag_id -> the file that defines it first
    for path in args.files:
        try:
            pipeline = load_pipeline(path)
            dag_id = pipeline.spec.dag_id
            if dag_id in first_file:
                used = f"{dag_id!r} is already used by {first_file[dag_id]}"
                raise PipelineError(path, [Issue("dag_id", used)])
        except PipelineError as exc:
            failed += 1
            print(format_error(exc), file=sys.stderr)
            continue
        first_file[dag_id] = path
        print(f"ok {path}: dag {dag_id}; order: {' -> '.join(pipeline.order)}")
    return 1 if failed else 0


def _load(path: str | Path) -> Pipeline | None:
    """The pipeline of ``path`` as the DAG folder loads it; else None, its problems printed.

    Each problem is one line, ``file: key.path: message``, whatever went wrong.
    """
    from dlflow_airflow.pipeline.loader import format_error, load_pipeline

    try:
        return load_pipeline(path)
    except PipelineError as exc:
        print(format_error(exc), file=sys.stderr)
        return None


def _graph(args: argparse.Namespace) -> int:
    from dlflow_airflow.contract.artifacts import stage_roles

    pipeline = _load(args.file)
    if pipeline is None:
        return 1
    for upstream, downstream in pipeline.edges:
        tags = sorted(
            set(pipeline.stages[upstream].produces) & set(pipeline.stages[downstream].needs)
        )
        print(f"{upstream} -> {downstream}  [{', '.join(tags)}]")
    print("partitions (from the artifact contract):")
    mode = pipeline.spec.model.date
    for name in pipeline.order:
        stage = pipeline.stages[name]
        roles = stage_roles(stage.needs, stage.produces, mode, stage.options)
        shown = [
            f"{r.role.value} {r.artifact.folder}"
            + (" (model date)" if r.artifact.model_dated else "")
            for r in roles
        ]
        print(f"  {name}: {'; '.join(shown) or 'no built-in artifact'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from dlflow_airflow.devtools.report import render

    pipeline = _load(args.file)
    if pipeline is None:
        return 1
    text, complete = render(pipeline, args.date)
    print(text)
    return 0 if complete else 1


def _demo(args: argparse.Namespace) -> int:
    import os

    from dlflow_airflow.devtools.demo import DemoSetup, run_dag
    from dlflow_airflow.devtools.report import render

    setup = DemoSetup(home=Path(args.home).resolve(), dags_folder=Path(args.dags).resolve())
    os.environ.update({"DLFLOW_WORKSPACE": str(setup.workspace)})
    pipeline = _load(setup.dags_folder / "pipelines" / f"{args.pipeline}.yaml")
    if pipeline is None:
        return 1
    log = setup.home / f"demo-{args.date}.log"
    setup.home.mkdir(parents=True, exist_ok=True)
    print(
        f"Running {pipeline.spec.dag_id} for {args.date} through Airflow "
        f"(AIRFLOW_HOME={setup.airflow_home}); Airflow's output goes to {log}"
    )
    started = time.monotonic()
    code = run_dag(setup, pipeline.spec.dag_id, args.date, log=None if args.verbose else log)
    text, complete = render(pipeline, args.date)
    print(text)
    print(f"Finished in {time.monotonic() - started:.0f} s.")
    print(f"To browse it in the Airflow UI: dlflow-airflow serve --home {args.home} (port 8080)")
    if code != 0 or not complete:
        print(f"The run did not complete (airflow exit code {code}); see {log}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    import signal

    from dlflow_airflow.devtools.local_airflow import LocalAirflow, LocalAirflowError

    home = Path(args.home).resolve()
    server = LocalAirflow(
        home=home / "airflow",
        dags_folder=Path(args.dags).resolve(),
        port=args.port,
        env={"DLFLOW_WORKSPACE": str(home / "workspace")},
    )
    # SIGTERM (docker stop, kill) stops the components like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
        print(f"Airflow UI: {server.url} (logs in {server.home / 'logs'}); Ctrl-C stops it.")
        sys.stdout.flush()
        server.wait()
    except KeyboardInterrupt:
        return 0
    except LocalAirflowError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0


def _convert(args: argparse.Namespace) -> int:
    from dlflow_airflow.devtools.convert.command import run

    output = Path(args.output) if args.output else None
    sql_dir = Path(args.sql_dir) if args.sql_dir else None
    return run(
        Path(args.config), output, sql_dir=sql_dir, workspace=args.workspace, dag_id=args.dag_id
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlflow-airflow", description=__doc__)
    parser.add_argument(
        "--traceback", action="store_true", help="show the Python traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check pipeline files (schema + graph); print stage order")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_validate)

    p = sub.add_parser("graph", help="print a pipeline's task edges and the tags behind them")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=_graph)

    p = sub.add_parser("report", help="show a partition's outputs, metrics and predictions")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--date", required=True, help="partition date, YYYY-MM-DD")
    p.set_defaults(func=_report)

    p = sub.add_parser("demo", help="run a pipeline of dags/pipelines end to end through Airflow")
    p.add_argument("--date", default="2026-01-01", help="partition date (default 2026-01-01)")
    p.add_argument("--home", default=".demo", help="folder for AIRFLOW_HOME and the workspace")
    p.add_argument("--dags", default="dags", help="the DAG folder (default ./dags)")
    p.add_argument("--pipeline", default="demo_ctr", help="pipeline file name without .yaml")
    p.add_argument("--verbose", action="store_true", help="show Airflow's output")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "serve", help="keep a local Airflow (UI, scheduler) running on the demo's home"
    )
    p.add_argument("--home", default=".demo", help="the demo's folder (default .demo)")
    p.add_argument("--dags", default="dags", help="the DAG folder (default ./dags)")
    p.add_argument("--port", type=int, default=8080, help="UI and API port (default 8080)")
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "convert", help="turn a DLFlow HOCON config (and its merge flow) into a pipeline YAML"
    )
    p.add_argument("config", metavar="DLFLOW.conf")
    p.add_argument("-o", "--output", help="the pipeline YAML to write (default: standard output)")
    p.add_argument(
        "--sql-dir", help="where rewritten SQL files go (default: <output name>_sql beside it)"
    )
    p.add_argument("--workspace", help="the pipeline's workspace (default: from HDFS_WORKSPACE)")
    p.add_argument("--dag-id", help="the DAG id (default: dlflow_<config file name>)")
    p.set_defaults(func=_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # a bug or the environment: one line, unless asked for more
        if args.traceback:
            raise
        print(f"dlflow-airflow {args.command}: {_one_line(exc)}", file=sys.stderr)
        print("(run with --traceback for the details)", file=sys.stderr)
        return 1


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
