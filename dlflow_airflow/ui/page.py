"""The run report as one small server-rendered HTML page.

Every value from the workspace or Airflow goes through :func:`esc` (task ids,
partition URIs, metric names, fmap vocabularies, manifest entries are all
data, never markup). The page loads nothing but its own plots: no script, no
external style (the app's Content-Security-Policy says so too).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dlflow_airflow.contract.fmap import Bucket, Feature, Normalizers
from dlflow_airflow.ui.partitions import PartitionState
from dlflow_airflow.ui.run_report import (
    DriftView,
    Evaluation,
    FmapView,
    ModelView,
    RunReport,
    StageView,
)

PlotUrl = Callable[[str, str], str]
"""``(stage, plot name) -> URL`` of a plot image (the app's route)."""

MAX_SHOWN = 12
"""Vocabulary entries, statistics and list items shown before '…'."""
MAX_VALUE_CHARS = 400
"""Longest manifest value shown."""

STYLE = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; font-size: 14px; }
body { margin: 1rem 1.5rem; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.1rem; margin-top: 1.8rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #8884; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #8882; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.task { white-space: nowrap; } td.why { max-width: 24rem; }
code { font-size: .9em; word-break: break-all; }
ul.partitions { list-style: none; margin: 0; padding: 0; }
.status { font-weight: 600; }
.status-ok, .state-success, .blessed { color: #1a7f37; }
.status-reused, .state-skipped { color: #0969da; }
.status-missing, .status-unresolved, .status-blocked, .state-failed, .state-upstream_failed,
.missed { color: #cf222e; }
.note { color: #8b8b8b; font-style: italic; }
figure { display: inline-block; margin: 0 1rem 1rem 0; }
figure img { max-width: 420px; border: 1px solid #8884; background: #fff; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render_page(report: RunReport, plot_url: PlotUrl) -> str:
    run = report.run
    title = f"DLFlow run report: {run.dag_id} / {run.run_id}"
    head = (
        f"<p class='run'>DAG <code>{esc(run.dag_id)}</code> · run <code>{esc(run.run_id)}</code>"
        f" · partition date <code>{esc(run.date or 'unknown')}</code>"
        f" · state {_state(run.state)}</p>"
    )
    body = [
        f"<h1>{esc('DLFlow run report')}</h1>",
        head,
        _section("stages", "Stages", _stages(report.stages)),
        _section(
            "evaluation", "Evaluation", [_evaluation(e, plot_url) for e in report.evaluations]
        ),
        _section("drift", "Drift", [_drift(d) for d in report.drifts]),
        _section("fmap", "Feature map", [_fmap(f) for f in report.fmaps]),
        _section("model", "Model", [_model(m) for m in report.models]),
    ]
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _section(anchor: str, heading: str, parts: Sequence[str] | str) -> str:
    content = parts if isinstance(parts, str) else "\n".join(parts)
    if not content:
        content = _note("nothing in this run")
    return f"<section id='{anchor}'><h2>{esc(heading)}</h2>\n{content}\n</section>"


def _note(text: str) -> str:
    return f"<p class='note'>{esc(text)}</p>" if text else ""


def _state(state: str | None) -> str:
    shown = state or "no status"
    return f"<span class='state state-{esc(shown.replace(' ', '_'))}'>{esc(shown)}</span>"


def _table(css: str, header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table; ``rows`` hold cells already rendered (``<td>...</td>``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "\n".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return f"<table class='{css}'><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _td(text: Any, css: str = "", **data: Any) -> str:
    attrs = f" class='{css}'" if css else ""
    attrs += "".join(f" data-{k}='{esc(v)}'" for k, v in data.items())
    return f"<td{attrs}>{esc(text)}</td>"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.4g}"


def _shorten(values: Sequence[Any], render: Callable[[Any], str] = str) -> str:
    shown = ", ".join(render(v) for v in values[:MAX_SHOWN])
    return shown + (f", … ({len(values)} in all)" if len(values) > MAX_SHOWN else "")


# ------------------------------------------------------------------ stages


def _stages(stages: Sequence[StageView]) -> str:
    if not stages:
        return _note("no tasks in this run")
    rows = [
        [
            f"<td class='task'><code>{esc(s.task_id)}</code></td>",
            f"<td>{_state(s.state)}</td>",
            _td(s.reason, "why"),
            f"<td>{_partitions(s.partitions)}{_note(s.note)}</td>",
        ]
        for s in stages
    ]
    return _table("stages", ("task", "state", "why", "partitions"), rows)


def _partitions(parts: Sequence[PartitionState]) -> str:
    if not parts:
        return ""
    items = []
    for p in parts:
        extra = f" ({esc(p.approval)})" if p.approval and p.status != "blocked" else ""
        items.append(
            f"<li><span class='status status-{esc(p.status)}'>{esc(p.label)}</span> "
            f"{esc(p.artifact)} <code>{esc(p.where)}</code>{extra}</li>"
        )
    return f"<ul class='partitions'>{''.join(items)}</ul>"


# ------------------------------------------------------------------ evaluation


def _evaluation(e: Evaluation, plot_url: PlotUrl) -> str:
    out = [f"<h3><code>{esc(e.stage)}</code>: <code>{esc(e.partition)}</code></h3>"]
    if e.note:
        return "\n".join([*out, _note(e.note)])
    out.append(_gate(e.gate))
    rows = [
        [f"<th>{esc(k)}</th>", _td(_number(v), "num", metric=k, value=repr(v))]
        for k, v in e.metrics.items()
    ]
    out.append(_table("metrics", ("metric", "value"), rows))
    for name in e.plots:
        out.append(
            f"<figure><img src='{esc(plot_url(e.stage, name))}' alt='{esc(name)}'>"
            f"<figcaption>{esc(name)}</figcaption></figure>"
        )
    return "\n".join(out)


def _gate(gate: Mapping[str, Any]) -> str:
    if not gate:
        return ""
    missed = [str(m) for m in gate.get("missed") or []]
    if missed:
        verdict = f"<span class='missed'>missed the gate</span>: {esc('; '.join(missed))}"
    elif gate.get("awaiting_approval"):
        verdict = "met the gate, <span class='missed'>awaiting approval</span>"
    elif gate.get("blessed"):
        verdict = "<span class='blessed'>blessed</span>"
    else:
        verdict = "not blessed"
    bounds = gate.get("bounds")
    shown = f" (bounds <code>{esc(_json(bounds))}</code>)" if bounds else ""
    return f"<p class='gate'>Gate: {verdict}{shown}</p>"


# ------------------------------------------------------------------ drift


def _drift(d: DriftView) -> str:
    out = [f"<h3><code>{esc(d.stage)}</code>: <code>{esc(d.partition)}</code></h3>"]
    if d.doc is None:
        return "\n".join([*out, _note(d.note)])
    doc = d.doc
    out.append(
        f"<p>{esc(doc.get('rows', '?'))} rows against {esc(doc.get('rows_fit', '?'))} at the "
        f"fit of <code>{esc(doc.get('fmap', ''))}</code> (model date "
        f"{esc(doc.get('model_date', '?'))}); on a breach: {esc(doc.get('on_breach', 'warn'))}</p>"
    )
    breaches = [str(b) for b in doc.get("breaches") or []]
    if breaches:
        items = "".join(f"<li>{esc(b)}</li>" for b in breaches)
        out.append(f"<p class='missed'>Breaches:</p><ul class='breaches'>{items}</ul>")
    rows = []
    for f in doc.get("features") or []:
        if not isinstance(f, Mapping):
            continue
        kind = f.get("kind", "")
        if f.get("position") is not None:
            kind = f"{kind}[{f['position']}]"
        rows.append(
            [
                f"<td><code>{esc(f.get('feature', ''))}</code></td>",
                _td(kind),
                *(
                    _td(_number(f.get(k)), "num")
                    for k in (
                        "null_rate_fit",
                        "null_rate",
                        "null_rate_change",
                        "unseen_rate",
                        "psi",
                    )
                ),
            ]
        )
    header = ("feature", "kind", "null fit", "null now", "change", "unseen", "psi")
    out.append(_table("drift", header, rows))
    for key, label in (("new_columns", "New columns (not encoded)"), ("vanished_columns", "Gone")):
        if doc.get(key):
            out.append(f"<p>{esc(label)}: {esc(', '.join(map(str, doc[key])))}</p>")
    return "\n".join(out)


# ------------------------------------------------------------------ fmap


def _fmap(view: FmapView) -> str:
    out = [f"<h3><code>{esc(view.partition)}</code></h3>"]
    fmap = view.fmap
    if fmap is None:
        return "\n".join([*out, _note(view.note)])
    out.append(
        f"<p>feature tag <code>{esc(fmap.feature_tag)}</code>, model date "
        f"{esc(fmap.model_date)}, primary keys {esc(', '.join(fmap.primary_keys))}, labels "
        f"{esc(', '.join(fmap.labels))}</p>"
    )
    for enc in fmap.label_encodings:
        classes = f": {len(enc.classes)} classes ({_shorten(enc.classes)})" if enc.classes else ""
        out.append(f"<p>label <code>{esc(enc.name)}</code> {esc(enc.kind)}{esc(classes)}</p>")
    rows = [
        _feature_row(bucket, kind, feature, view.normalizers)
        for bucket in fmap.buckets
        for kind, features in bucket.fields.items()
        for feature in features
    ]
    header = ("bucket", "normaliser", "kind", "feature", "dtype", "width / ids", "vocabulary")
    out.append(_table("fmap", (*header, "statistics"), rows))
    out.append(_note(view.note))
    return "\n".join(out)


def _feature_row(
    bucket: Bucket, kind: str, feature: Feature, normalizers: Normalizers | None
) -> list[str]:
    method = bucket.method if bucket.encode else f"{bucket.method} (not encoded)"
    if bucket.params:
        method += f" {_json(bucket.params)}"
    vocab = feature.meta.get("vocab")
    keys = feature.meta.get("keys")
    if isinstance(vocab, list):
        vocabulary = f"{len(vocab)}: {_shorten(vocab)}"
    elif isinstance(keys, list):
        vocabulary = f"{len(keys)} keys: {_shorten(keys)}"
    else:
        vocabulary = ""
    stats = normalizers.of(bucket.name, feature.name) if normalizers else {}
    shown = "; ".join(
        f"{name} {_shorten(values, _number)}"
        for name, values in stats.items()
        if isinstance(values, list)
    )
    return [
        _td(bucket.name),
        _td(method),
        _td("numeric" if kind == "nums" else "categorical"),
        f"<td><code>{esc(feature.name)}</code></td>",
        _td(feature.dtype),
        _td(feature.size, "num"),
        _td(vocabulary, "vocab", feature=feature.name),
        _td(shown),
    ]


# ------------------------------------------------------------------ model


def _model(view: ModelView) -> str:
    blessed = "<span class='blessed'>blessed</span>" if view.blessed else "not blessed"
    out = [f"<h3><code>{esc(view.partition)}</code> ({blessed})</h3>"]
    if view.manifest is None:
        return "\n".join([*out, _note(view.note)])
    rows = [[f"<th>{esc(k)}</th>", _td(_value(v))] for k, v in view.manifest.items()]
    out.append(_table("manifest", ("entry", "value"), rows))
    return "\n".join(out)


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else _json(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
