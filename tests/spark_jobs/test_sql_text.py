"""SQL literals built as text hold exactly the Python value, whatever the parser settings."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs import sql_text
from spark_jobs.feature_types import element_values

pytestmark = pytest.mark.spark

DOUBLES = [
    0.0,
    -0.0,
    1.0,
    -401.02952519770156,
    0.3189861929736961,
    1e-05,
    1e16,
    5e-324,
    1.7976931348623157e308,
    -2.2250738585072014e-308,
    math.inf,
    -math.inf,
    7,  # an int is taken as its double
]
STRINGS = [
    "",
    "it's",
    'say "x"',
    "back\\slash",
    "`tick`",
    "中文",
    "new\nline",
    "a' OR '1'='1",
    "$x",
]


@pytest.fixture(params=["false", "true"], ids=["escapes", "no-escapes"])
def escapes(spark: Any, request: pytest.FixtureRequest) -> Any:
    """The session with ``spark.sql.parser.escapedStringLiterals`` as given."""
    key = "spark.sql.parser.escapedStringLiterals"
    spark.conf.set(key, request.param)
    yield spark
    spark.conf.unset(key)


def test_doubles_are_exact(escapes: Any) -> None:
    row = escapes.range(1).select(*[F.expr(sql_text.double(v)) for v in DOUBLES]).first()
    for wanted, got in zip(DOUBLES, row, strict=True):
        assert isinstance(got, float)
        assert got == wanted and math.copysign(1, got) == math.copysign(1, wanted), (wanted, got)
    assert math.isnan(escapes.range(1).select(F.expr(sql_text.double(math.nan))).first()[0])


def test_strings_are_exact(escapes: Any) -> None:
    row = escapes.range(1).select(*[F.expr(sql_text.string(s)) for s in STRINGS]).first()
    assert list(row) == STRINGS


def test_map_keys_of_any_text_are_looked_up(escapes: Any) -> None:
    """A map feature's keys reach its positions as they are (quotes, backslashes...)."""
    data_type = T.MapType(T.StringType(), T.DoubleType())
    frame = escapes.createDataFrame(
        [({key: float(i) for i, key in enumerate(STRINGS)},)],
        T.StructType([T.StructField("m`x", data_type)]),
    )
    values = element_values("m`x", data_type, len(STRINGS), STRINGS)
    assert list(frame.select(*map(F.expr, values)).first()) == [float(i) for i in range(9)]
