"""sources/shape: a table's columns as its change stream describes them, spelled for comparing and messages."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pymysqlreplication.constants import FIELD_TYPE

from replicator.changes import TableRef
from replicator.sources.shape import mariadb_shape, mariadb_type, pg_shape, pg_type


@pytest.mark.parametrize("oid, typmod, text", [
    (23, -1, "integer"), (20, -1, "bigint"), (25, -1, "text"),
    (1043, 54, "character varying(50)"), (1043, -1, "character varying"), (1042, 14, "character(10)"),
    (1700, ((12 << 16) | 2) + 4, "numeric(12,2)"), (1700, ((14 << 16) | 4) + 4, "numeric(14,4)"), (1700, -1, "numeric"),
    (1114, 0, "timestamp(0) without time zone"), (1114, 6, "timestamp(6) without time zone"),
    (1114, -1, "timestamp without time zone"), (1184, 3, "timestamp(3) with time zone"),
    (16384, -1, "oid 16384"),  # an enum or a domain: its OID changes with ALTER ... TYPE
])
def test_pgoutput_types_are_spelled_as_format_type_does(oid: int, typmod: int, text: str) -> None:
    assert pg_type(oid, typmod) == text


def test_a_pg_shape_keeps_the_column_order_and_names() -> None:
    columns = [SimpleNamespace(name="b", type_oid=23, type_modifier=-1),
               SimpleNamespace(name="a", type_oid=1700, type_modifier=((10 << 16) | 0) + 4)]
    assert pg_shape(columns) == (("b", "integer"), ("a", "numeric(10,0)"))


def my(type_: int, name: str = "c", **attrs: object) -> SimpleNamespace:
    return SimpleNamespace(name=name, type=type_, **attrs)


@pytest.mark.parametrize("column, text", [
    (my(FIELD_TYPE.LONG), "int"), (my(FIELD_TYPE.LONGLONG, unsigned=True), "bigint unsigned"),
    (my(FIELD_TYPE.NEWDECIMAL, precision=12, decimals=2), "decimal(12,2)"),
    (my(FIELD_TYPE.NEWDECIMAL, precision=14, decimals=4), "decimal(14,4)"),
    (my(FIELD_TYPE.VARCHAR, max_length=200, character_set_name="utf8mb4"), "varchar(200 bytes) character set utf8mb4"),
    (my(FIELD_TYPE.VARCHAR, max_length=16, character_set_name="binary"), "varbinary(16 bytes)"),
    (my(FIELD_TYPE.DATETIME2, fsp=0), "datetime"), (my(FIELD_TYPE.DATETIME2, fsp=6), "datetime(6)"),
    (my(FIELD_TYPE.STRING, enum_values=["a", "b"], character_set_name="utf8mb4"),
     "enum('a','b') character set utf8mb4"),
    (my(FIELD_TYPE.BLOB, length_size=4, character_set_name="utf8mb4"), "longtext character set utf8mb4"),
])
def test_table_map_types_carry_what_decides_their_values(column: SimpleNamespace, text: str) -> None:
    assert mariadb_type(column) == text


def test_a_mariadb_shape_differs_when_only_a_decimal_scale_changes() -> None:
    before = mariadb_shape([my(FIELD_TYPE.NEWDECIMAL, "credit", precision=12, decimals=2)])
    after = mariadb_shape([my(FIELD_TYPE.NEWDECIMAL, "credit", precision=12, decimals=4)])
    assert before != after and dict(after) == {"credit": "decimal(12,4)"}


class Watch:
    """A ShapeWatch for reader tests: what the reader told it."""

    def __init__(self, on_seen: Any = None):
        self.on_seen = on_seen
        self.gone: list[tuple[TableRef, str]] = []

    def seen(self, table: TableRef, shape: Any) -> None:
        if self.on_seen is not None:
            self.on_seen((table, shape))

    def left(self, table: TableRef, how: str) -> None:
        self.gone.append((table, how))
