"""Spark SQL expression text for literals, built in Python and parsed once (``F.expr``).

Encode builds each bucket's numeric vector as one SQL expression: with
PySpark's Column API every literal and operator is a call to the JVM (~0.1-0.2 ms
each, ~35 per feature position), which made building the plan a noticeable
share of a small encode (measured: 80 ms for the 11 positions of
``bench/encode.py``'s table, 2 ms as text). Column names are quoted by
:func:`spark_jobs.columns.quote`; literals written here hold exactly the
Python value whatever the session's parser settings:

- doubles with the ``D`` suffix (``repr`` round-trips every finite double);
  infinities and NaN as casts of their names;
- strings as UTF-8 bytes in hex, cast to a string (no quoting or escaping rule
  applies to them; Spark folds the cast into a literal).
"""

from __future__ import annotations

import math


def double(value: float) -> str:
    """A DOUBLE literal of ``value`` (an int is taken as the double it converts to)."""
    value = float(value)
    if math.isnan(value):
        return "CAST('NaN' AS DOUBLE)"
    if math.isinf(value):
        return f"CAST('{'-' if value < 0 else ''}Infinity' AS DOUBLE)"
    return f"({value!r}D)"


def string(value: str) -> str:
    """A STRING literal of ``value``."""
    return f"CAST(X'{value.encode('utf-8').hex()}' AS STRING)"
