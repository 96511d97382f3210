"""Spark column references by exact name, whatever characters the name holds.

``F.col("a.b")`` means the field ``b`` of a struct column ``a``, and a
backtick in a name is a syntax error; :func:`col` always means the column
named exactly so (``"mean radius"``, ``"a.b"``, ``"x`y"``).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def quote(name: str) -> str:
    """``name`` as a backtick-quoted identifier (inner backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def col(name: str) -> Column:
    """The top-level column named ``name``."""
    return F.col(quote(name))


def cols(names: tuple[str, ...] | list[str]) -> list[Column]:
    """:func:`col` of each name, in order."""
    return [col(name) for name in names]
