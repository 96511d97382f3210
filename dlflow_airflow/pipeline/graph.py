"""Task order from tags: a stage runs after every stage producing a tag it needs."""

from __future__ import annotations

import difflib
import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dlflow_airflow.pipeline.errors import CycleError, Issue, MissingProducerError


@dataclass(frozen=True)
class StageTags:
    needs: tuple[str, ...]
    produces: tuple[str, ...]


Edge = tuple[str, str]


def build_edges(
    stages: Mapping[str, StageTags], *, external: Iterable[str] = (), source: str = "<pipeline>"
) -> list[Edge]:
    """Edges ``(upstream, downstream)``, sorted; refuses needs without a producer.

    :raises MissingProducerError: a stage needs a tag no stage produces and
        the pipeline does not declare it ``external``.
    """
    producers: dict[str, list[str]] = {}
    for name in sorted(stages):
        for tag in stages[name].produces:
            producers.setdefault(tag, []).append(name)
    provided = set(external)
    edges: set[Edge] = set()
    issues: list[Issue] = []
    for name in sorted(stages):
        for tag in stages[name].needs:
            if tag in producers:
                edges.update((p, name) for p in producers[tag] if p != name)
            elif tag not in provided:
                issues.append(Issue(f"stages.{name}", _missing_message(tag, producers, provided)))
    if issues:
        raise MissingProducerError(source, issues)
    return sorted(edges)


def _missing_message(tag: str, producers: Mapping[str, list[str]], provided: set[str]) -> str:
    known = sorted({*producers, *provided})
    message = f"needs {tag}, which no stage produces"
    hint = difflib.get_close_matches(tag, known, n=1)
    if hint:
        message += f"; did you mean {hint[0]}?"
    if known:
        message += f" (produced here: {', '.join(known)})"
    return message + "; list it under 'external' if another pipeline produces it"


def topological_order(names: Iterable[str], edges: Iterable[Edge], *, source: str) -> list[str]:
    """A deterministic order of the stages; :class:`CycleError` names the cycle."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(names):
        sorter.add(name)
    for upstream, downstream in sorted(edges):
        sorter.add(downstream, upstream)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise CycleError(
            source, [Issue("stages", f"the stages form a cycle: {' -> '.join(cycle)}")]
        ) from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order
