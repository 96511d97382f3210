"""``dlflow-airflow``: check pipeline files, show their graph, run them locally, run the demo."""

from __future__ import annotations

import argparse
import sys
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


def _schema(args: argparse.Namespace) -> int:
    import json

    from dlflow_airflow.pipeline.spec_schema import pipeline_json_schema

    text = json.dumps(pipeline_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


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


def _run(args: argparse.Namespace) -> int:
    from dlflow_airflow.devtools.local_run import (
        RunRequestError,
        pipeline_file,
        requested_dates,
    )

    try:
        dates = requested_dates(args.date, args.start, args.end)
        path = pipeline_file(args.pipeline, Path(args.dags))
    except RunRequestError as exc:
        print(f"dlflow-airflow run: {exc}", file=sys.stderr)
        return 2
    return _run_locally(args, path, dates)


def _demo(args: argparse.Namespace) -> int:
    path = Path(args.dags) / "pipelines" / f"{args.pipeline}.yaml"
    code = _run_locally(args, path, [args.date])
    if code == 0:
        print(f"To browse it in the Airflow UI: dlflow-airflow serve --home {args.home}")
    return code


def _run_locally(args: argparse.Namespace, path: Path, dates: list[str]) -> int:
    """Run the pipeline of ``path`` for ``dates`` on the local Airflow of ``--home``;
    print each date's report and ``<date> ok|failed in N s``; stop at the first failure."""
    import os

    from dlflow_airflow.devtools.demo import DemoSetup
    from dlflow_airflow.devtools.local_run import run_dates

    setup = DemoSetup(home=Path(args.home).resolve(), dags_folder=Path(args.dags).resolve())
    os.environ.update({"DLFLOW_WORKSPACE": str(setup.workspace)})
    pipeline = _load(path)
    if pipeline is None:
        return 1
    dag_id = pipeline.spec.dag_id
    if len(dates) > 1 and pipeline.spec.schedule not in (None, "@daily"):
        print(
            f"note: {dag_id} is scheduled {pipeline.spec.schedule}; this runs every date "
            "of the range (airflow backfill create follows the schedule)"
        )

    def starting(day: str, log: Path | None) -> None:
        where = f"Airflow's output goes to {log}" if log else "Airflow's output follows"
        print(
            f"Running {dag_id} for {day} through Airflow "
            f"(AIRFLOW_HOME={setup.airflow_home}); {where}",
            flush=True,
        )

    from dlflow_airflow.devtools.connect_server import ConnectServerError, local_connect_server

    spark = pipeline.spec.spark
    runs = []
    try:
        # Connect mode and no connection in the environment: the laptop case.
        with local_connect_server(
            [spark.conn_id] if spark.mode == "connect" else [], setup.home / "spark-connect.log"
        ) as connect:
            if connect is not None:
                print(f"Started a local Spark Connect server on {connect.url} for {spark.conn_id}")
            for run in run_dates(setup, pipeline, dates, verbose=args.verbose, starting=starting):
                runs.append(run)
                print(run.report)
                print(run.summary(), flush=True)
    except ConnectServerError as exc:
        print(f"dlflow-airflow: {exc}", file=sys.stderr)
        return 1
    if len(dates) > 1:
        print(f"{len([r for r in runs if r.ok])} of {len(dates)} dates ok:")
        for run in runs:
            print(f"  {run.summary()}")
    if all(run.ok for run in runs):
        return 0
    failed, rest = runs[-1], dates[len(runs) :]
    not_run = f"; not run: {rest[0]}" + (f"..{rest[-1]}" if len(rest) > 1 else "") if rest else ""
    where = failed.log or "the output above"
    print(f"{dag_id} failed for {failed.date}: see {where}{not_run}", file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace) -> int:
    import contextlib
    import signal

    from dlflow_airflow.contract.spark_connect import DEFAULT_CONNECT_CONN_ID
    from dlflow_airflow.devtools.connect_server import ConnectServerError, local_connect_server
    from dlflow_airflow.devtools.local_airflow import LocalAirflow, LocalAirflowError

    home = Path(args.home).resolve()
    connect_ids = [DEFAULT_CONNECT_CONN_ID] if args.spark_connect else []
    stack = contextlib.ExitStack()
    server = LocalAirflow(
        home=home / "airflow",
        dags_folder=Path(args.dags).resolve(),
        port=args.port,
        env={"DLFLOW_WORKSPACE": str(home / "workspace")},
        database=args.db,
    )
    # SIGTERM (docker stop, kill) stops the components like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # Before Airflow: its components inherit the connection.
        connect = stack.enter_context(local_connect_server(connect_ids, home / "spark-connect.log"))
        if connect is not None:
            print(f"Spark Connect server: {connect.url} ({DEFAULT_CONNECT_CONN_ID})")
        server.start()
        for note in server.notes:
            print(f"note: {note}")
        print(f"Airflow UI: {server.url} (logs in {server.home / 'logs'}); Ctrl-C stops it.")
        sys.stdout.flush()
        server.wait()
    except KeyboardInterrupt:
        return 0
    except (LocalAirflowError, ConnectServerError) as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        try:
            server.stop()
        finally:  # the Connect server runs in a session of its own: nothing else stops it
            stack.close()
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

    p = sub.add_parser("schema", help="print the JSON Schema of a pipeline file (for editors)")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead")
    p.set_defaults(func=_schema)

    p = sub.add_parser("graph", help="print a pipeline's task edges and the tags behind them")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=_graph)

    p = sub.add_parser("report", help="show a partition's outputs, metrics and predictions")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--date", required=True, help="partition date, YYYY-MM-DD")
    p.set_defaults(func=_report)

    p = sub.add_parser(
        "run",
        help="run a pipeline through a local Airflow (airflow dags test) for a date or a range",
    )
    p.add_argument(
        "pipeline", metavar="PIPELINE", help="a name in <dags>/pipelines/, or a YAML file there"
    )
    p.add_argument("--date", help="partition date, YYYY-MM-DD")
    p.add_argument("--from", dest="start", metavar="D1", help="first date of a range")
    p.add_argument("--to", dest="end", metavar="D2", help="last date of a range (included)")
    p.add_argument("--home", default=".demo", help="folder for AIRFLOW_HOME and the workspace")
    p.add_argument("--dags", default="dags", help="the DAG folder (default ./dags)")
    p.add_argument("--verbose", action="store_true", help="show Airflow's output")
    p.set_defaults(func=_run)

    p = sub.add_parser("demo", help="run the demo pipeline for one date (the quick start)")
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
    p.add_argument(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="metadata database: sqlite (default, nothing to set up) or postgres (a local "
        "server in <home>/airflow/postgres: backfills and concurrent runs as in production)",
    )
    p.add_argument(
        "--spark-connect",
        action="store_true",
        help="also start a local Spark Connect server, as the connection spark_connect_default "
        "(for pipelines with spark: {mode: connect}; dlflow-airflow run starts its own)",
    )
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
