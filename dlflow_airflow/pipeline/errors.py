"""Exceptions raised while turning a pipeline file into a DAG.

Every message names the file, the key path inside it and what was expected,
so a user can fix the YAML without reading our source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem at one key path (``stages.encode.tfrecord``)."""

    path: str
    message: str

    def render(self, source: str) -> str:
        where = f"{source}: {self.path}" if self.path else source
        return f"{where}: {self.message}"


class PipelineError(Exception):
    """Base class: a pipeline file cannot become a DAG."""

    def __init__(self, source: str, issues: Sequence[Issue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        super().__init__("\n".join(issue.render(source) for issue in self.issues))


class SpecError(PipelineError):
    """The YAML is not a valid pipeline spec (syntax, unknown key, wrong type or value)."""


class UnknownStageKindError(PipelineError):
    """A stage names a kind that is neither built in, an entry point, nor ``module:Class``."""


class GraphError(PipelineError):
    """The stages' needs and produces tags do not form a DAG."""


class CycleError(GraphError):
    """The stages depend on each other in a cycle."""


class MissingProducerError(GraphError):
    """A stage needs a tag that no stage produces."""
