"""The one plugin lookup: a built-in name, an entry point, or ``package.module:attr``.

Stage kinds (at parse time) and models (in the TF jobs) are both found this
way; each caller checks the type of what it got.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any


class PluginLookupError(LookupError):
    """Nothing of that name; the message lists what exists and the closest match."""


def lookup(
    name: str,
    *,
    what: str,
    builtins: Mapping[str, Any],
    entry_point_group: str,
    hint: str = "",
) -> Any:
    """The object called ``name``.

    :param what: how messages name the thing (``stage kind``, ``model``).
    :param builtins: the built-in objects by name (searched first).
    :param entry_point_group: the entry-point group searched next.
    :param hint: appended to the "unknown" message (how a user plugin is written).
    :raises PluginLookupError: unknown name, unimportable module or missing attribute.
    """
    if name in builtins:
        return builtins[name]
    group = _group(entry_point_group)
    if name in group:
        try:
            return group[name].load()
        except Exception as exc:  # a broken plugin is the caller's error, not a crash
            raise PluginLookupError(
                f"{what} {name!r}: entry point {group[name].value} failed to load: {exc}"
            ) from None
    if ":" in name:
        return _import_attr(name, what)
    known = sorted({*builtins, *group})
    message = f"unknown {what} {name!r}; known {what}s: {', '.join(known)}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    if hint:
        message += f" ({hint})"
    raise PluginLookupError(message)


@cache
def _group(name: str) -> dict[str, Any]:
    """An entry-point group by name (read once per process: DAG files are parsed often)."""
    return {ep.name: ep for ep in entry_points(group=name)}


def _import_attr(name: str, what: str) -> Any:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr or module_name.startswith("."):
        raise PluginLookupError(
            f"{what} {name!r}: expected 'package.module:attr' with an absolute module path"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failed while importing
        raise PluginLookupError(
            f"{what} {name!r}: cannot import module {module_name!r}: {exc}"
        ) from None
    if not hasattr(module, attr):
        raise PluginLookupError(f"{what} {name!r}: module {module_name!r} has no {attr!r}")
    return getattr(module, attr)
