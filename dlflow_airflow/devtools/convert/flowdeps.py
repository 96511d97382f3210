"""dmflow ``dependencies`` (hive, hdfs, date, static) as our named dependencies."""

from __future__ import annotations

from collections.abc import Callable

from dlflow_airflow.contract.dependencies import BASE_PLACEHOLDERS
from dlflow_airflow.devtools.convert.context import identifier
from dlflow_airflow.devtools.convert.flowbase import FlowBase, Json
from dlflow_airflow.devtools.convert.templates import (
    TemplateError,
    dmflow_path,
    dmflow_strftime,
)


class DependencyReader(FlowBase):
    """Each dependency ``key`` becomes a dependency name (a placeholder of merge's paths)."""

    def dependencies(self, raw: Json, default_check: Json) -> None:
        kinds: dict[str, Callable[[Json, tuple[str, ...], Json], None]] = {
            "hive": self.hive,
            "hdfs": self.hdfs,
            "date": self.date,
            "static": self.static,
        }
        for kind, entries in raw.items():
            if kind not in kinds:
                self.unmapped(("dependencies", kind), "not a dmflow dependency type")
                continue
            for index, entry in enumerate(entries or []):
                key = ("dependencies", kind, str(index))
                if isinstance(entry, dict):
                    kinds[kind](entry, key, default_check)
                else:
                    self.unmapped(key, f"expected an object, got {entry!r}; left out")

    def name_of(self, entry: Json, key: tuple[str, ...]) -> str:
        original = str(entry.get("key", ""))
        name = identifier(original, fallback="dependency")
        if name in BASE_PLACEHOLDERS:
            name = f"{name}_dep"
        if name != original:
            self.note((*key, "key"), f"{original!r} is named {name!r} here")
        self.flow.renames[original] = name
        return name

    def degrade(self, entry: Json) -> int:
        return int(entry.get("degradeDays", entry.get("maxDegradeDays", 0)) or 0)

    def path_dependency(self, entry: Json, key: tuple[str, ...], default_check: Json) -> Json:
        """offsetDays, degradeDays, pathTemplate and checker as a path dependency.

        :raises TemplateError: the path template has no equivalent.
        """
        path = dmflow_path(str(entry.get("pathTemplate", "")))
        checker = entry.get("checker")
        check = self.checker(checker, (*key, "checker")) if checker else dict(default_check)
        dependency: Json = {
            "path": path,
            "offset_days": int(entry.get("offsetDays", 0) or 0),
            "degrade_days": self.degrade(entry),
        }
        if "format" in check:
            dependency["format"] = check.pop("format")
        return {**dependency, "check": check}

    def hive(self, entry: Json, key: tuple[str, ...], default_check: Json) -> None:
        """The date string (formatted) as ``name``; the partition check as ``name_ready``."""
        known = {"key", "formatter", "offsetDays", "degradeDays", "maxDegradeDays"}
        self.unknown_keys(entry, known | {"pathTemplate", "checker"}, key, "hive dependency")
        name = self.name_of(entry, key)
        self.add_date(name, entry, key)
        if self.degrade(entry):
            self.unmapped(
                (*key, "degradeDays"),
                f"degrade {self.degrade(entry)} day(s): {{{name}}} is the offset date here, "
                "never an older ready day, so the check does not fall back (a missing "
                "partition fails the merge instead of reading an older day); a dependency "
                "gives merge its ready path, not the date it degraded to",
            )
        try:
            ready = self.path_dependency(entry, key, default_check)
        except TemplateError as exc:
            self.unmapped(
                (*key, "pathTemplate"),
                f"{exc}; the partition check (pathTemplate, checker) is left out: "
                f"{{{name}}} is the offset date, unchecked",
            )
            return
        self.flow.dependencies[f"{name}_ready"] = {**ready, "degrade_days": 0}
        self.note(
            key,
            f"hive dependency -> {{{name}}} (the formatted date) and {name}_ready "
            "(the partition check)",
        )

    def hdfs(self, entry: Json, key: tuple[str, ...], default_check: Json) -> None:
        known = {"key", "offsetDays", "degradeDays", "maxDegradeDays", "pathTemplate", "checker"}
        self.unknown_keys(entry, known, key, "hdfs dependency")
        name = self.name_of(entry, key)
        try:
            self.flow.dependencies[name] = self.path_dependency(entry, key, default_check)
        except TemplateError as exc:
            self.unmapped(
                (*key, "pathTemplate"),
                f"{exc}; the dependency {name!r} is left out",
            )
            del self.flow.renames[str(entry.get("key", ""))]  # so SQL keeps ${KEY} as text

    def date(self, entry: Json, key: tuple[str, ...], default_check: Json) -> None:
        self.unknown_keys(entry, {"key", "formatter", "offsetDays"}, key, "date dependency")
        self.add_date(self.name_of(entry, key), entry, key)

    def add_date(self, name: str, entry: Json, key: tuple[str, ...]) -> None:
        try:
            fmt = dmflow_strftime(str(entry.get("formatter", "yyyyMMdd")))
        except TemplateError as exc:
            self.unmapped((*key, "formatter"), f"{exc}; YYYYMMDD used")
            fmt = "%Y%m%d"
        offset = int(entry.get("offsetDays", 0) or 0)
        self.flow.dependencies[name] = {"date": {"offset_days": offset, "format": fmt}}

    def static(self, entry: Json, key: tuple[str, ...], default_check: Json) -> None:
        self.unknown_keys(entry, {"key", "value"}, key, "static dependency")
        self.flow.dependencies[self.name_of(entry, key)] = {"static": entry.get("value", "")}
