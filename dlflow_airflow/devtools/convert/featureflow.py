"""A dmflow FeatureFlow config (``MERGE.config_file``) as our merge options.

``settings`` give the default checker; ``dependencies`` become named
dependencies (hive, hdfs, date, static); ``steps`` become merge steps
(``SQL_Assembler`` -> ``sql``, ``MissingValueCounter`` -> ``count_missing``,
``MissingValueFiller`` -> ``fill_missing``) or, for dmflow's own ``HdfsReader``
UDF, a source. SQL files are rewritten (``${KEY}`` -> ``{KEY}``) into the
conversion's SQL folder.
"""

from __future__ import annotations

from typing import Any

from dlflow_airflow.devtools.convert.context import Source
from dlflow_airflow.devtools.convert.flowbase import NO_CHECKPOINTS, Flow, Json
from dlflow_airflow.devtools.convert.flowdeps import DependencyReader
from dlflow_airflow.devtools.convert.flowsteps import StepReader


class FlowReader(DependencyReader, StepReader):
    """Converts one FeatureFlow document: settings, then dependencies, then steps."""

    # The dataclass fields (doc, ctx, primary_keys, flow) come from FlowBase.

    def read(self) -> Flow:
        data = self.doc.data
        default_check = self.settings(self.part("settings", dict))
        self.dependencies(self.part("dependencies", dict), default_check)
        for index, step in enumerate(self.part("steps", list)):
            self.step(index, step)
        self.unknown_keys(data, {"settings", "dependencies", "steps"}, (), "FeatureFlow")
        return self.flow

    def part(self, name: str, kind: type[dict] | type[list]) -> Any:
        """A top-level part of the flow; absent or of another shape (reported): empty."""
        value = self.doc.data.get(name)
        if value is None or isinstance(value, kind):
            return value or kind()
        self.unmapped((name,), f"expected {'an object' if kind is dict else 'a list'}; left out")
        return kind()

    def settings(self, settings: Json) -> Json:
        """The default checker; the rest is reported."""
        check: Json = {}
        for name, value in settings.items():
            key = ("settings", name)
            if name == "checker":
                check = self.checker(value, key)
            elif name in ("checkpoint", "enableOverride"):
                self.unmapped(key, NO_CHECKPOINTS)
            elif name == "parallelism":
                self.unmapped(
                    key,
                    f"join parallelism {value}: Spark's own settings decide it here; "
                    f"to keep it, set spark.conf spark.sql.shuffle.partitions: {value}",
                )
            else:
                self.unmapped(key, "not a FeatureFlow settings key this converter knows")
        return check


def read_flow(src: Source, primary_keys: tuple[str, ...]) -> Flow:
    """The dependencies, sources and steps of a FeatureFlow (findings go to its conversion)."""
    return FlowReader(src.doc, src.ctx, primary_keys).read()
