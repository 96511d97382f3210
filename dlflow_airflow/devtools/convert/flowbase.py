"""What reading a FeatureFlow builds (:class:`Flow`) and what every part of the reading shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlflow_airflow.devtools.convert.context import Json, Source

NO_CHECKPOINTS = (
    "no per-step checkpoints here: Spark runs the whole merge as one plan and the output "
    "partition is committed at once (a rerun starts the merge over)"
)


@dataclass
class Flow:
    """The merge options a FeatureFlow gives (everything but the seed)."""

    dependencies: dict[str, Json] = field(default_factory=dict)
    sources: list[Json] = field(default_factory=list)
    steps: list[Json] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)  # dmflow key -> our dependency name


@dataclass
class FlowBase(Source):
    """A FeatureFlow being read: the merge options so far, findings into its conversion."""

    primary_keys: tuple[str, ...]
    flow: Flow = field(default_factory=Flow)

    def unknown_keys(self, entry: Json, known: set[str], key: tuple[str, ...], what: str) -> None:
        for name in entry:
            if name not in known:
                self.unmapped((*key, name), f"not a {what} key this converter knows; left out")

    def checker(self, checker: Json, key: tuple[str, ...]) -> Json:
        """A dmflow checker as our ``check`` (and ``format`` for ``count``)."""
        method = str(checker.get("method", "_SUCCESS"))
        self.unknown_keys(checker, {"method", "threshold", "sourceType"}, key, "checker")
        threshold = checker.get("threshold")
        if method == "_SUCCESS":
            return {"success": True}
        if method == "capacity" and isinstance(threshold, int | float):
            return {"success": False, "min_size_mb": threshold}
        if method == "count" and isinstance(threshold, int | float):
            found: Json = {"success": False, "min_rows": max(int(threshold), 1)}
            if "sourceType" in checker:
                found["format"] = str(checker["sourceType"])
            return found
        self.unmapped(key, f"checker {checker!r}: unknown method or no threshold; _SUCCESS used")
        return {"success": True}
