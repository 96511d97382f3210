"""Which raw columns encode accepts, and how each becomes numbers or categories.

- scalar numbers (int, long, float, double, decimal) and booleans -> ``nums``, one position;
- ``array<number>`` of one fixed size ``n`` -> ``nums``, ``n`` positions;
- ``map<string, number>`` -> ``nums``, one position per key of its key vocabulary;
- strings -> ``ctgs``, one id.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract.schema import FeatureSpec
from spark_jobs import sql_text
from spark_jobs.columns import quote

SCALAR, ARRAY, MAP, STRING = "scalar", "array", "map", "string"
NUMERIC_TYPES = (
    T.BooleanType,
    T.ByteType,
    T.ShortType,
    T.IntegerType,
    T.LongType,
    T.FloatType,
    T.DoubleType,
    T.DecimalType,
)


class EncodeError(ValueError):
    """The raw table, bucket config or fmap cannot be encoded."""


class UnsupportedColumnTypeError(EncodeError):
    """A feature column has a type encode does not handle."""


class UnknownFeatureError(EncodeError):
    """A bucket or an fmap names a column the raw table does not have."""


def feature_fields(schema: T.StructType, feature: FeatureSpec) -> list[T.StructField]:
    """The raw columns that become features (not keys, labels or dropped), in table order."""
    reserved = {*feature.primary_keys, *feature.labels, *feature.drop_columns}
    return [f for f in schema.fields if f.name not in reserved]


def column_type(field: T.StructField) -> str:
    """:data:`SCALAR`, :data:`ARRAY`, :data:`MAP` or :data:`STRING`; raises for other types."""
    data_type = field.dataType
    if isinstance(data_type, NUMERIC_TYPES):
        return SCALAR
    if isinstance(data_type, T.StringType):
        return STRING
    if isinstance(data_type, T.ArrayType) and isinstance(data_type.elementType, NUMERIC_TYPES):
        return ARRAY
    if isinstance(data_type, T.MapType) and isinstance(data_type.valueType, NUMERIC_TYPES):
        if not isinstance(data_type.keyType, T.StringType):
            raise UnsupportedColumnTypeError(
                f"map column {field.name!r} has keys of type {data_type.keyType.simpleString()}; "
                "encode needs string keys (they become a vocabulary): cast the keys upstream"
            )
        return MAP
    raise UnsupportedColumnTypeError(
        f"feature column {field.name!r} has type {data_type.simpleString()}, which encode "
        "does not support: numbers, booleans, strings, array<number> and map<string, number> "
        "are (drop it with feature.drop_columns)"
    )


def dtype_category(dtype: str) -> str:
    """The :func:`column_type` of a type name stored in an fmap."""
    if dtype.startswith("array<"):
        return ARRAY
    if dtype.startswith("map<"):
        return MAP
    return STRING if dtype == "string" else SCALAR


def kind_of(field: T.StructField) -> str:
    """``nums`` or ``ctgs`` for a feature column; raises for other types."""
    return "ctgs" if column_type(field) == STRING else "nums"


def double_sql(value: str, data_type: T.DataType) -> str:
    """SQL text: the number ``value`` (SQL text of type ``data_type``) as a double,
    booleans 0/1, NaN as null."""
    if isinstance(data_type, T.BooleanType):
        value = f"CAST({value} AS INT)"
    value = f"CAST({value} AS DOUBLE)"
    if isinstance(data_type, (T.FloatType, T.DoubleType)):
        value = f"nanvl({value}, CAST(NULL AS DOUBLE))"
    return value


def as_double(value: str, data_type: T.DataType) -> Column:
    """:func:`double_sql` as a column."""
    return F.expr(double_sql(value, data_type))


def element_values(
    name: str, data_type: T.DataType, size: int, keys: list[str] | None = None
) -> list[str]:
    """SQL text of one double per position of a numeric feature (null where the
    value is missing).

    An array whose length is not ``size`` fails the Spark task with an error
    naming the column and both lengths.
    """
    column = quote(name)
    if isinstance(data_type, T.ArrayType):
        element = data_type.elementType
        values = [double_sql(f"try_element_at({column}, {i + 1})", element) for i in range(size)]
        message = sql_text.string(
            f"encode: array column {name!r} must hold {size} numbers (the fmap's size), "
            "a row holds "
        )
        wrong = f"{column} IS NOT NULL AND size({column}) != {size}"
        error = f"raise_error(concat({message}, CAST(size({column}) AS STRING)))"
        values[0] = f"CASE WHEN {wrong} THEN CAST({error} AS DOUBLE) ELSE {values[0]} END"
        return values
    if isinstance(data_type, T.MapType):
        value_type = data_type.valueType
        return [
            double_sql(f"try_element_at({column}, {sql_text.string(key)})", value_type)
            for key in keys or []
        ]
    return [double_sql(column, data_type)]
