"""Placeholders: DLFlow's and dmflow's, turned into ours.

- DLFlow config values reference other top-level keys (``$LOCAL_WORKSPACE/x``,
  ``${MODEL_TAG}``) and format dates with macros (``<dt=$FEATURE_DATE:yyyy-mm-dd>``).
  The feature date is the run's date here: ``<dt=$FEATURE_DATE:yyyymmdd>`` and a
  bare ``$FEATURE_DATE`` become ``{date_nodash}``, ``...:yyyy-mm-dd>`` becomes
  ``{date}``. Any other date shape has no placeholder of ours.
- dmflow paths use ``${YYYY}``, ``${MM}``, ``${DD}`` (or lower case); SQL files
  use ``${KEY}`` for the keys of ``dependencies``.
- Our templates are Python format strings: a literal ``{`` or ``}`` is doubled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

# Placeholders travel as sentinels until the text is finished, so that the
# braces of the literal text can be escaped without touching them.
_OPEN, _CLOSE = "\x00", "\x01"
_DOLLAR = "\x02"
_SENTINEL = re.compile(f"{_OPEN}([A-Za-z_][A-Za-z0-9_]*){_CLOSE}")

_DLFLOW_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_DATE_MACRO = re.compile(r"<dt=([^:>]+):([^>]+)>")
_FEATURE_DATE = re.compile(r"^\$(?:\{FEATURE_DATE\}|FEATURE_DATE)$")
# DLFlow's date tokens (dlflow.utils.datetools): only the day-level ones have a placeholder.
_DLFLOW_DATE_TOKENS = {"yyyy": "%Y", "mm": "%m", "dd": "%d"}
_DLFLOW_OTHER_TOKENS = ("HH", "MM", "SS", "ww", "WW")
_DMFLOW_REF = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
_DMFLOW_DATE_FORMATS = {"yyyy": "%Y", "MM": "%m", "dd": "%d"}


class TemplateError(ValueError):
    """A placeholder or macro with no equivalent here (the message says which)."""


def placeholder(name: str) -> str:
    return f"{_OPEN}{name}{_CLOSE}"


def has_placeholder(text: str) -> bool:
    """Whether a resolved text depends on the run (holds one of our placeholders)."""
    return _SENTINEL.search(text) is not None


def as_template(text: str) -> str:
    """Finish a text for one of our path/SQL templates: literal braces doubled."""
    escaped = text.replace("{", "{{").replace("}", "}}")
    return _SENTINEL.sub(r"{\1}", escaped)


def as_literal(text: str, what: str) -> str:
    """Finish a text that takes no placeholder (a tag, a workspace).

    :raises TemplateError: it depends on the run's date.
    """
    if _SENTINEL.search(text):
        shown = _SENTINEL.sub(r"{\1}", text)
        raise TemplateError(f"{what} depends on the feature date ({shown!r}); it must be fixed")
    return text


# --- DLFlow config values ------------------------------------------------------------------


def resolve_dlflow(text: str, scalars: Mapping[str, object], depth: int = 0) -> str:
    """``text`` with DLFlow's references and date macros resolved (placeholders as sentinels).

    :param scalars: the config's top-level scalar values, by key.
    :raises TemplateError: an unknown key, a reference cycle or a date shape we lack.
    """
    if depth > 20:
        raise TemplateError(f"references nest too deeply (a cycle?) in {text!r}")
    text = _DATE_MACRO.sub(lambda m: _date_macro(m, scalars, depth), text)
    escaped = text.replace("$$", _DOLLAR)  # string.Template's escaped dollar
    resolved = _DLFLOW_REF.sub(lambda m: _reference(m, scalars, depth), escaped)
    return resolved.replace(_DOLLAR, "$")


def _reference(match: re.Match[str], scalars: Mapping[str, object], depth: int) -> str:
    name = match.group(1) or match.group(2)
    if name == "FEATURE_DATE":
        return placeholder("date_nodash")
    if name not in scalars:
        raise TemplateError(f"${name} names no top-level key of the config")
    return resolve_dlflow(str(scalars[name]), scalars, depth + 1)


def _date_macro(match: re.Match[str], scalars: Mapping[str, object], depth: int) -> str:
    source, shape = match.group(1).strip(), match.group(2)
    if _FEATURE_DATE.match(source):
        return run_date_shape(shape)
    day = resolve_dlflow(source, scalars, depth + 1)
    try:
        parsed = datetime.strptime(day, "%Y%m%d")
    except ValueError:
        raise TemplateError(f"<dt={source}:{shape}>: {day!r} is not a date YYYYMMDD") from None
    return parsed.strftime(dlflow_strftime(shape))


def dlflow_strftime(shape: str) -> str:
    """A DLFlow date shape (``yyyy/mm/dd``) as a strftime format."""
    for token in _DLFLOW_OTHER_TOKENS:
        if token in shape:
            raise TemplateError(f"date shape {shape!r}: {token} (a time of day) has no equivalent")
    for token, code in _DLFLOW_DATE_TOKENS.items():
        shape = shape.replace(token, code)
    return shape


def run_date_shape(shape: str) -> str:
    """The run's date in a DLFlow shape as placeholders: ``dt=yyyy-mm-dd`` -> ``dt={date}``."""
    text = shape.replace("yyyy-mm-dd", placeholder("date")).replace(
        "yyyymmdd", placeholder("date_nodash")
    )
    if any(token in text for token in (*_DLFLOW_DATE_TOKENS, *_DLFLOW_OTHER_TOKENS)):
        raise TemplateError(
            f"the feature date as {shape!r}: only yyyymmdd ({{date_nodash}}) and "
            "yyyy-mm-dd ({date}) have a placeholder"
        )
    return text


# --- dmflow --------------------------------------------------------------------------------


def dmflow_path(template: str) -> str:
    """A dmflow ``pathTemplate`` as our dependency path.

    ``${YYYY}${MM}${DD}`` is ``{date_nodash}``, ``${YYYY}-${MM}-${DD}`` is ``{date}``,
    and parts on their own (``${YYYY}/${MM}/${DD}``) are ``{year}``, ``{month}``, ``{day}``.

    :raises TemplateError: it names another placeholder.
    """
    text = template
    for year, month, day in (("YYYY", "MM", "DD"), ("yyyy", "mm", "dd")):
        text = text.replace(f"${{{year}}}${{{month}}}${{{day}}}", placeholder("date_nodash"))
        text = text.replace(f"${{{year}}}-${{{month}}}-${{{day}}}", placeholder("date"))
        for token, ours in ((year, "year"), (month, "month"), (day, "day")):
            text = text.replace(f"${{{token}}}", placeholder(ours))
    left = _DMFLOW_REF.findall(text)
    if left:
        raise TemplateError(
            f"pathTemplate {template!r}: ${{{left[0]}}} has no placeholder here; a path "
            "holds the date as {date}, {date_nodash} or {year}/{month}/{day}"
        )
    return as_template(text)


def dmflow_text(text: str, known: Mapping[str, str], unknown: Callable[[str], None]) -> str:
    """A dmflow SQL (or parameter) template as ours: ``${KEY}`` becomes ``{name}``.

    :param known: dmflow dependency key -> our dependency name.
    :param unknown: called with each other ``${X}``, which is kept as text.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in known:
            return placeholder(known[name])
        unknown(name)
        return match.group(0)

    return as_template(_DMFLOW_REF.sub(replace, text))


def dmflow_strftime(formatter: str) -> str:
    """A dmflow ``formatter`` (``yyyyMMdd``, ``yyyy-MM-dd``, ``yyyy/MM/dd``...) as strftime."""
    text = formatter
    for token, code in _DMFLOW_DATE_FORMATS.items():
        text = text.replace(token, code)
    if re.search(r"[A-Za-z]", text.replace("%Y", "").replace("%m", "").replace("%d", "")):
        raise TemplateError(f"formatter {formatter!r}: only yyyy, MM and dd are known")
    return text
