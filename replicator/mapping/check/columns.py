"""What the check knows of one column: `ColumnInfo`, the kinds it sorts types into, a catalog."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replicator.changes import TableRef


KINDS = ("int", "decimal", "float", "text", "enum", "bool", "date", "datetime", "time", "interval", "json", "bytes",
         "uuid", "inet", "array", "other")


@dataclass(frozen=True)
class ColumnInfo:
    """What the check needs to know of one column."""

    kind: str  # one of KINDS
    bits: int | None = None  # int: 8/16/24/32/64; float: 32/64; datetime: 32 for a MariaDB TIMESTAMP; inet: 128 / 32
    # for a MariaDB INET6 / INET4 (bytes on the stream), None for a PostgreSQL inet / cidr; time: 24 for a
    # MariaDB TIME (-838:59:59..838:59:59), None for a PostgreSQL time (a time of day)
    unsigned: bool = False  # MariaDB UNSIGNED (int, decimal)
    precision: int | None = None  # decimal: total digits (None: unbounded); datetime/time: fractional digits;
    # float: M of a MariaDB FLOAT(M,D) / DOUBLE(M,D), None for a plain one
    scale: int | None = None  # decimal; float: D of a MariaDB FLOAT(M,D) / DOUBLE(M,D), the places it rounds to
    length: int | None = None  # text: characters, bytes: bytes; None: unbounded (bytes: precision = n of BINARY(n))
    enums: tuple[str, ...] = ()  # enum values; for text, the values a CHECK (column IN (...)) allows
    bounds: tuple[int, int] | None = None  # int: the range a CHECK (BETWEEN, >=, <=, IN) allows
    nullable: bool = True
    has_default: bool = False
    generated: bool = False  # the database fills it per row: identity, serial, AUTO_INCREMENT, nextval()
    computed: bool = False  # GENERATED ALWAYS AS (expression): never written
    identity_always: bool = False  # PostgreSQL GENERATED ALWAYS AS IDENTITY: written only by the database
    timezone: bool = False  # datetime / time with time zone
    item: str | None = None  # array: the kind of its elements
    padded: bool = False  # text: CHAR(n), whose trailing spaces are not part of the value (read back without them)
    # text: a MariaDB character set that does not hold every character (latin1, utf8mb3, ascii...); None: all
    # of Unicode (utf8mb4, utf16, utf32, and every PostgreSQL text: the database encoding is UTF-8)
    charset: str | None = None
    octets: int | None = None  # text: the bytes a MariaDB TINYTEXT / TEXT / MEDIUMTEXT value holds at most
    collation: str | None = None  # text: a MariaDB column's collation (how its keys compare); None elsewhere
    type_name: str = ""  # as the database spells it, for messages

    def describe(self) -> str:
        """The type as the database spells it, with a CHECK domain if there is one."""
        text = self.base_type()
        if self.bounds is not None and not self.base_type().upper().startswith("YEAR"):  # a YEAR's own range
            text += f" CHECK {self.bounds[0]}..{self.bounds[1]}"
        if self.kind == "text" and self.enums:
            values = ",".join(repr(v) for v in self.enums)
            text += f" CHECK IN ({values if len(values) <= 40 else values[:37] + '...'})"
        return text

    def base_type(self) -> str:
        if self.type_name:
            return self.type_name
        k = self.kind
        if k == "int":
            names = {8: "TINYINT", 16: "SMALLINT", 24: "MEDIUMINT", 32: "INTEGER", 64: "BIGINT"}
            name = names.get(self.bits or 64, "INTEGER")
            return name + (" UNSIGNED" if self.unsigned else "")
        if k == "decimal":
            return "NUMERIC" if self.precision is None else f"NUMERIC({self.precision},{self.scale or 0})"
        if k == "float":
            return "REAL" if self.bits == 32 else "DOUBLE PRECISION"
        if k == "text":
            return "TEXT" if self.length is None else f"VARCHAR({self.length})"
        if k == "enum":
            return "ENUM(" + ",".join(repr(v) for v in self.enums) + ")"
        if k == "bytes":
            return "BYTEA" if self.length is None else f"VARBINARY({self.length})"
        if k == "datetime":
            return "TIMESTAMPTZ" if self.timezone else "TIMESTAMP"
        if k == "inet":
            return {128: "INET6", 32: "INET4"}.get(self.bits or 0, "INET")
        if k == "array":
            return f"{(self.item or 'other').upper()}[]"
        return k.upper()


# the most bytes a character takes in a MariaDB character set (a TEXT's limit counts bytes); a set not listed: 4
_BYTES_PER_CHAR = {"latin1": 1, "latin2": 1, "latin5": 1, "latin7": 1, "ascii": 1, "binary": 1, "cp1250": 1,
                   "cp1251": 1, "cp1256": 1, "cp1257": 1, "cp850": 1, "cp852": 1, "cp866": 1, "dec8": 1, "greek": 1,
                   "hebrew": 1, "hp8": 1, "keybcs2": 1, "koi8r": 1, "koi8u": 1, "macce": 1, "macroman": 1, "swe7": 1,
                   "tis620": 1, "armscii8": 1, "geostd8": 1, "ucs2": 2, "utf8mb3": 3, "utf8": 3}


def bytes_per_char(charset: str | None) -> int:
    """The most bytes one character takes in a MariaDB character set (None: utf8mb4)."""
    return 4 if charset is None else _BYTES_PER_CHAR.get(charset, 4)


Catalog = dict[TableRef, dict[str, ColumnInfo]]
Specs = dict[tuple[str, str], Any]
