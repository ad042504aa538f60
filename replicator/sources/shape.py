"""A source table's shape as its change stream describes it: (column name, type) pairs.

A reader hands the shape of a mapped table to its `ShapeWatch` each time the stream describes the table
anew -- a pgoutput Relation message, a new binlog table map -- never per row. The stream
(`stream/shapes.py`) compares it with the shape it saw before: a DBA's ALTER TABLE shows there first. The
type is the source's own spelling with what decides which values it holds (precision, scale, length,
fractional digits, signedness, character set), for comparing two shapes and for messages; it is not parsed.
"""
from __future__ import annotations

from typing import Any, Iterable, Protocol

from pymysqlreplication.constants import FIELD_TYPE

from replicator.changes import TableRef

Shape = tuple[tuple[str, str], ...]  # (column, type) in the stream's column order


class ShapeWatch(Protocol):
    """Told by a reader what the stream says of a mapped table's columns and name; either may raise to stop it."""

    def seen(self, table: TableRef, shape: Shape) -> None:
        """The stream describes `table` as `shape` (again, or anew after an ALTER TABLE)."""

    def left(self, table: TableRef, how: str) -> None:
        """A DDL took `table` away under this name (`how`: 'renamed to db.t'); its rows no longer come as its."""

# pgoutput's type OIDs of the built-in types, as format_type() spells them
_PG_NAMES = {
    16: "boolean", 17: "bytea", 18: "\"char\"", 20: "bigint", 21: "smallint", 23: "integer", 25: "text", 26: "oid",
    114: "json", 700: "real", 701: "double precision", 790: "money", 869: "inet", 650: "cidr", 1042: "character",
    1043: "character varying", 1082: "date", 1083: "time without time zone", 1114: "timestamp without time zone",
    1184: "timestamp with time zone", 1186: "interval", 1266: "time with time zone", 1560: "bit",
    1562: "bit varying", 1700: "numeric", 2950: "uuid", 3802: "jsonb",
}
_PG_LENGTH = {1042, 1043}  # typmod = length + 4
_PG_PRECISION = {1083, 1114, 1184, 1266, 1186}  # typmod = fractional digits
_PG_BITS = {1560, 1562}  # typmod = bits


def pg_type(oid: int, typmod: int) -> str:
    """A pgoutput Relation column's type: format_type()'s spelling for the built-in types, `oid N` for others
    (an enum, a domain, an array: compared by OID, which an ALTER ... TYPE changes)."""
    name = _PG_NAMES.get(oid)
    if name is None:
        return f"oid {oid}" + (f" ({typmod})" if typmod >= 0 else "")
    if typmod < 0:
        return name
    if oid == 1700:
        n = typmod - 4
        return f"numeric({(n >> 16) & 0xFFFF},{n & 0xFFFF})"
    if oid in _PG_LENGTH:
        return f"{name}({typmod - 4})"
    if oid in _PG_PRECISION or oid in _PG_BITS:
        if " " in name and oid != 1186:  # time(3) with time zone, as format_type puts it
            head, tail = name.split(" ", 1)
            return f"{head}({typmod}) {tail}"
        return f"{name}({typmod})"
    return f"{name} ({typmod})"


def pg_shape(columns: Iterable[Any]) -> Shape:
    """The shape of a pgoutput Relation's columns (objects with name, type_oid, type_modifier)."""
    return tuple((c.name, pg_type(c.type_oid, c.type_modifier)) for c in columns)


_MY_NAMES = {
    FIELD_TYPE.TINY: "tinyint", FIELD_TYPE.SHORT: "smallint", FIELD_TYPE.INT24: "mediumint", FIELD_TYPE.LONG: "int",
    FIELD_TYPE.LONGLONG: "bigint", FIELD_TYPE.FLOAT: "float", FIELD_TYPE.DOUBLE: "double", FIELD_TYPE.DATE: "date",
    FIELD_TYPE.NEWDATE: "date", FIELD_TYPE.YEAR: "year", FIELD_TYPE.TIMESTAMP: "timestamp",
    FIELD_TYPE.TIMESTAMP2: "timestamp", FIELD_TYPE.DATETIME: "datetime", FIELD_TYPE.DATETIME2: "datetime",
    FIELD_TYPE.TIME: "time", FIELD_TYPE.TIME2: "time", FIELD_TYPE.JSON: "json", FIELD_TYPE.GEOMETRY: "geometry",
    FIELD_TYPE.BIT: "bit", FIELD_TYPE.NEWDECIMAL: "decimal", FIELD_TYPE.DECIMAL: "decimal",
    FIELD_TYPE.VARCHAR: "varchar", FIELD_TYPE.VAR_STRING: "varchar", FIELD_TYPE.STRING: "char",
    FIELD_TYPE.ENUM: "enum", FIELD_TYPE.SET: "set", FIELD_TYPE.BLOB: "blob", FIELD_TYPE.TINY_BLOB: "blob",
    FIELD_TYPE.MEDIUM_BLOB: "blob", FIELD_TYPE.LONG_BLOB: "blob",
}
_BLOB_SIZES = {1: "tiny", 2: "", 3: "medium", 4: "long"}


def mariadb_type(column: Any) -> str:
    """A binlog table map column's type (mysql-replication's Column, metadata FULL): its kind with what the
    table map says of its size. Lengths are the table map's, in bytes (a VARCHAR(50) of utf8mb4 is 200)."""
    d = column.__dict__
    code = column.type
    name = _MY_NAMES.get(code, f"type {code}")
    if d.get("enum_values"):
        name = "enum(" + ",".join(repr(v) for v in d["enum_values"]) + ")"
    elif d.get("set_values"):
        name = "set(" + ",".join(repr(v) for v in d["set_values"]) + ")"
    elif code == FIELD_TYPE.NEWDECIMAL:
        name = f"decimal({d.get('precision')},{d.get('decimals')})"
    elif code in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING):
        binary = d.get("character_set_name") in (None, "binary")
        name = f"{'var' if code != FIELD_TYPE.STRING else ''}{'binary' if binary else 'char'}" \
               f"({d.get('max_length')} bytes)"
    elif code in (FIELD_TYPE.BLOB, FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB):
        text = d.get("character_set_name") not in (None, "binary")
        name = _BLOB_SIZES.get(d.get("length_size") or 2, "") + ("text" if text else "blob")
    elif code in (FIELD_TYPE.DATETIME2, FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIME2) and d.get("fsp"):
        name = f"{name}({d['fsp']})"
    elif code == FIELD_TYPE.BIT:
        name = f"bit({d.get('bits')})"
    elif code in (FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE) and d.get("size") not in (None, 4, 8):
        name = f"{name}({d['size']})"
    if d.get("unsigned"):
        name += " unsigned"
    charset = d.get("character_set_name")
    if charset not in (None, "binary") and code not in (FIELD_TYPE.JSON,):
        name += f" character set {charset}"
    return name


def mariadb_shape(columns: Iterable[Any]) -> Shape:
    """The shape of a binlog table map's columns."""
    return tuple((str(c.name), mariadb_type(c)) for c in columns)
