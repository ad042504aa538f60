"""Mappings against the column types of both live catalogs (`replicator check`).

`read_catalog(engine, tables)` reads the columns of the mapped tables through a SQLAlchemy Inspector
into `ColumnInfo`s; `check_types(mset, catalogs, kinds, specs)` compares every field plan of every
flow and returns `Finding`s naming file:line, the field's key path and how to fix it.
`check_config(config, mset)` does both for a configuration (what `preflight.run_checks` calls).

Arguments of `check_types`:

- `catalogs`: `{side: {TableRef: {column: ColumnInfo}}}`. A side or table missing from it (the
  server was unreachable, the table does not exist) is skipped: `preflight._catalog` reports it.
  A missing column is skipped for the same reason.
- `kinds`: `{side: "postgresql" | "mariadb"}`, for the wording of fixes.
- `specs` (optional): `{(mapping name, field name): raw YAML spec of the field}` (the value under
  `fields:`, `None` for `~`), as `field_specs(directory)` builds it from the mapping files. The
  compiled model keeps only closures for maps, transforms, defaults and constants; with the raw
  specs the check also sees map values, the `unmapped:` policy, `default:` and `constant:`, and
  rules marked (spec) below apply. Without them only a constant (evaluated through its plan)
  is checked against its target column.

Rules for a cast from the source column to the target column of one field plan ("fit": the value
always fits; "lossy": refused unless the field says `lossy: allow`, then an ok finding records it;
"error": refused even with `lossy: allow`, the cast cannot work; "?": not checked, an ok finding):

| source \\ target | int | decimal | float | text | enum | bool | date | datetime | time | json | bytes | uuid |
| --------------- | --- | ------- | ----- | ---- | ---- | ---- | ---- | -------- | ---- | ---- | ----- | ---- |
| int             | R   | D       | M     | W    | error | lossy | error | error  | error | error | error | error |
| decimal         | R'  | D       | P     | W    | error | lossy | error | error  | error | error | error | error |
| float           | lossy | lossy | B     | W    | error | lossy | error | error  | error | error | error | error |
| text            | lossy | lossy | lossy | L    | lossy | lossy | lossy | lossy  | lossy | lossy | lossy | lossy |
| enum            | lossy | lossy | lossy | W    | S    | lossy | lossy | lossy  | lossy | lossy | lossy | lossy |
| bool            | fit | D       | fit   | W    | error | fit  | error | error  | error | error | error | error |
| date            | error | error | error | W    | error | error | fit  | T      | error | error | error | error |
| datetime        | error | error | error | W    | error | error | lossy | F, T  | lossy | error | error | error |
| time            | error | error | error | W    | error | error | error | error  | F    | error | error | error |
| json            | error | error | error | W    | error | error | error | error  | error | fit  | error | error |
| bytes           | error | error | error | lossy | error | error | error | error | error | lossy | L    | U    |
| uuid            | error | error | error | W    | error | error | error | error  | error | error | W    | fit  |

- R: fits when the target's range holds the source's (bits and signedness: BIGINT UNSIGNED into a
  signed BIGINT, or any signed integer into an UNSIGNED one, is lossy). R': a decimal into an
  integer fits when its scale is 0 and its integer digits fit the range.
- D: fits when the target decimal has at least the source's integer digits (precision - scale)
  and scale (an unbounded PostgreSQL `numeric` holds anything; an unbounded source into a bounded
  target is lossy); a signed source into a MariaDB `DECIMAL UNSIGNED` is lossy. A bool needs one
  integer digit.
- M: an integer into a float fits when the float's mantissa holds it (up to 16 bits into REAL /
  FLOAT, up to 32 bits into DOUBLE). P: a decimal into a float fits up to 6 (REAL) / 15 (DOUBLE)
  digits. B: DOUBLE into REAL / FLOAT is lossy.
- W: fits when the target text is unbounded or at least as long as the longest text of the
  source (integer: digits and sign; decimal(p, s): p + 2; float: 24; bool: 5; date: 10; datetime:
  26, 32 with a time zone; time: 15; uuid: 36; enum: its longest value; json: unbounded only).
  For bytes, W means a uuid into BINARY / VARBINARY of at least 16 bytes.
- L: fits when the target is unbounded or at least as long as the source; an unbounded source
  into a bounded target is lossy. Lengths are characters (VARCHAR/CHAR) or bytes (VARBINARY).
  MariaDB TINYTEXT counts as 255; TEXT, MEDIUMTEXT and LONGTEXT count as unbounded (a value
  beyond 64 KiB in a TEXT is a row error at run time, strict mode).
- S: an enum into an enum fits when every source value is a target value.
- F: fits unless the target keeps fewer fractional-second digits (PostgreSQL default 6, MariaDB
  default 0: DATETIME(6) is needed for microseconds). T: a time zone on either side is fine
  (values are UTC; timestamptz into a naive DATETIME is stored as UTC); a MariaDB TIMESTAMP
  (1970..2038) target is lossy for a date or any other datetime source.
- U: bytes into a uuid fit from BINARY(16) only.
- CHECK domains: a CHECK that restricts one column to a list (`c IN (...)`, `c = v`) or an integer
  range (`BETWEEN`, `>=`/`<=`/`>`/`<`), on the column, the table or a PostgreSQL domain, is read
  into the ColumnInfo. A text column with a list is treated as an enum (S, value maps, gates); a
  text target with a list accepts only an enum / listed source within it (otherwise lossy); an
  integer range replaces the type's range in R, R', D and W, on either side.
- MariaDB `TINYINT(1)` (what `BOOLEAN` creates there) is a bool; a MariaDB JSON column (a LONGTEXT
  with a `json_valid` check) is json. Other types (interval, arrays, SET, YEAR, BIT, money, ...)
  are "other": casts from or to them are "?".

A field with a value map or transforms (`plan.convert` is not None) is not kind-checked: the map or
transform decides what arrives. A field whose only conversion is `default:` (spec) is still
checked. Values the mapping spells out are checked against the target column, and a value that
cannot fit is an error whatever `lossy` says (it fails every row that carries it): a `constant:`,
`default:` (spec), `unmapped: {default: v}` (spec), and the map's target values when no transform
follows the map in that direction (spec): text longer than the target, a value outside the target
enum, a number outside the target range or not a number, NULL into NOT NULL (constant only).

Further rules:

- A target column that is computed (`GENERATED ALWAYS AS (expression)`) or a PostgreSQL
  `GENERATED ALWAYS AS IDENTITY` column cannot be written by a field (except the key of a
  crosswalk mapping, which replicator leaves to the database).
- Every NOT NULL target column without a default, not generated, not computed, must be filled by
  a plan of every flow that can create rows (a flow creates rows unless `created_by` names the
  other side).
- Value maps (spec): when the source column is an enum (MariaDB ENUM, PostgreSQL enum type, or
  a text column with a CHECK list),
  every enum value must appear on the map's source side unless `unmapped` is `pass` or
  `{default: v}`; with `pass`, the values that pass unchanged must fit the target (an enum target
  must list them). The map's target values must be values of an enum target.
- A gate's column exists in the source table (and its values are values of an enum column or of
  a CHECK list).
- Natural key fields have a column on both sides that exists, and every flow carries them (an
  `owner` on a natural key field keeps it out of the other direction).
- A crosswalk mapping's target key columns are generated by the database (identity, serial,
  AUTO_INCREMENT, or a per-row default such as nextval() or gen_random_uuid()) in every direction
  that creates rows.
- `references: m` names a mapping whose key is a single column on both sides. The value written is
  the referenced mapping's key: for a crosswalk mapping, its target-side key column is compared
  with the field's target column instead of the field's source column.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from replicator.changes import TableRef
from replicator.errors import Where

if TYPE_CHECKING:
    from replicator.config import Config
    from replicator.mapping.model import Field, FieldPlan, Flow, Mapping, MappingSet


@dataclass(frozen=True)
class Finding:
    ok: bool
    side: str
    what: str
    fix: str = ""
    warning: bool = False  # worth knowing, not a reason to refuse to start

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "warn" if self.warning else "FAIL"
        return f"[{mark}] {self.side}: {self.what}" + (f"\n        fix: {self.fix}" if not self.ok and self.fix else "")


KINDS = ("int", "decimal", "float", "text", "enum", "bool", "date", "datetime", "time", "json", "bytes", "uuid",
         "other")


@dataclass(frozen=True)
class ColumnInfo:
    """What the check needs to know of one column."""

    kind: str  # one of KINDS
    bits: int | None = None  # int: 8/16/24/32/64; float: 32/64; datetime: 32 for a MariaDB TIMESTAMP
    unsigned: bool = False  # MariaDB UNSIGNED (int, decimal)
    precision: int | None = None  # decimal: total digits (None: unbounded); datetime/time: fractional digits
    scale: int | None = None  # decimal
    length: int | None = None  # text: characters, bytes: bytes; None: unbounded (bytes: precision = n of BINARY(n))
    enums: tuple[str, ...] = ()  # enum values; for text, the values a CHECK (column IN (...)) allows
    bounds: tuple[int, int] | None = None  # int: the range a CHECK (BETWEEN, >=, <=, IN) allows
    nullable: bool = True
    has_default: bool = False
    generated: bool = False  # the database fills it per row: identity, serial, AUTO_INCREMENT, nextval()
    computed: bool = False  # GENERATED ALWAYS AS (expression): never written
    identity_always: bool = False  # PostgreSQL GENERATED ALWAYS AS IDENTITY: written only by the database
    timezone: bool = False  # datetime / time with time zone
    type_name: str = ""  # as the database spells it, for messages

    def describe(self) -> str:
        """The type as the database spells it, with a CHECK domain if there is one."""
        text = self.base_type()
        if self.bounds is not None:
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
        return k.upper()


Catalog = dict[TableRef, dict[str, ColumnInfo]]
Specs = dict[tuple[str, str], Any]

# ---------------------------------------------------------------- reading catalogs

_GENERATING_DEFAULT = re.compile(r"^\s*(nextval\(|gen_random_uuid\(|uuid_generate_v\d\(|uuid\(\)|uuid_v[47]\()", re.I)


def read_catalog(engine: Any, tables: Iterable[TableRef]) -> Catalog:
    """The columns of `tables` (those that exist) through a SQLAlchemy Inspector on `engine`."""
    import sqlalchemy

    insp = sqlalchemy.inspect(engine)
    dialect = engine.dialect
    mariadb = dialect.name in ("mysql", "mariadb")
    out: Catalog = {}
    for t in tables:
        if not insp.has_table(t.name, schema=t.schema):
            continue
        clauses = _mariadb_checks(engine, t) if mariadb else _checks(insp, t)
        json_columns: set[str] = set()
        domains: dict[str, Check] = {}
        for clause in clauses:
            m = re.fullmatch(r"\s*json_valid\(\s*`?([^`()]+)`?\s*\)\s*", clause, re.I)
            if m:
                json_columns.add(m.group(1))
                continue
            parsed = parse_check(clause)
            if parsed:
                domains[parsed[0]] = _narrow(domains.get(parsed[0]), parsed[1])
        cols: dict[str, ColumnInfo] = {}
        for col in insp.get_columns(t.name, schema=t.schema):
            cols[col["name"]] = column_info(col, dialect, json=col["name"] in json_columns,
                                            check=domains.get(col["name"]))
        out[t] = cols
    return out


def _checks(insp: Any, t: TableRef) -> list[str]:
    try:
        return [str(c.get("sqltext") or "") for c in insp.get_check_constraints(t.name, schema=t.schema)]
    except NotImplementedError:
        return []


def _mariadb_checks(engine: Any, t: TableRef) -> list[str]:
    """Column and table CHECK clauses (the Inspector returns table-level ones only). MariaDB's JSON is
    a LONGTEXT with a CHECK (json_valid(`column`))."""
    import sqlalchemy

    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = :s AND TABLE_NAME = :t"), {"s": t.schema, "t": t.name}).fetchall()
    except sqlalchemy.exc.SQLAlchemyError:  # MySQL before 8.0.16: JSON columns read as text, no domains
        return []
    return [str(r[0]) for r in rows]


# (values a text / int column may hold, or None; (lo, hi) bounds of an int column, or None)
Check = tuple["tuple[Any, ...] | None", "tuple[int | None, int | None] | None"]
_LITERAL = re.compile(r"'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?)")
_CAST = re.compile(r"::\s*(?:character varying|double precision|bit varying|"
                   r"(?:timestamp|time)(?:\(\d\))? with(?:out)? time zone|[a-z_][a-z0-9_.]*)"
                   r"(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?", re.I)


def _unwrap(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _literals(body: str) -> tuple[Any, ...]:
    out: list[Any] = []
    for text, number in _LITERAL.findall(body):
        if number:
            out.append(int(number) if re.fullmatch(r"-?\d+", number) else Decimal(number))
        else:
            out.append(text.replace("''", "'"))
    return tuple(out)


def parse_check(clause: str) -> tuple[str, Check] | None:
    """A CHECK clause that restricts one column to a list of values or an integer range, as
    `(column, (values, bounds))`; None for anything else. Understands PostgreSQL's and MariaDB's
    spellings of `c IN (...)`, `c = v`, `c BETWEEN a AND b`, `c >= a AND c <= b` (and > <), each
    optionally `OR c IS NULL`."""
    text = _CAST.sub("", clause.replace("`", "").replace('"', ""))
    text = _unwrap(re.sub(r"(?<!\w)\(\s*([A-Za-z_]\w*)\s*\)", r"\1", text))  # (status) = ...
    m = re.fullmatch(r"(.*?)\s+or\s+\(?\s*(\w+)\s+is\s+null\s*\)?", text, re.I | re.S)
    if m:
        text = _unwrap(m.group(1))
    m = (re.fullmatch(r"(\w+)\s*=\s*any\s*\(\s*(?:\(\s*)?array\s*\[(.*)\]\s*(?:\)\s*)?\)", text, re.I | re.S)
         or re.fullmatch(r"(\w+)\s+in\s*\((.*)\)", text, re.I | re.S))
    if m:
        values = _literals(m.group(2))
        return (m.group(1), (values, None)) if values else None
    m = re.fullmatch(r"(\w+)\s*=\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?)", text)
    if m:
        return m.group(1), (_literals(m.group(2)), None)
    m = re.fullmatch(r"(\w+)\s+between\s+(-?\d+)\s+and\s+(-?\d+)", text, re.I)
    if m:
        return m.group(1), (None, (int(m.group(2)), int(m.group(3))))
    column, lo, hi = None, None, None
    for part in re.split(r"\s+and\s+", text, flags=re.I):
        m = re.fullmatch(r"(\w+)\s*(>=|>|<=|<)\s*(-?\d+)", _unwrap(part))
        if not m or column not in (None, m.group(1)):
            return None
        column, op, n = m.group(1), m.group(2), int(m.group(3))
        if op in (">=", ">"):
            lo = n + (op == ">") if lo is None else max(lo, n + (op == ">"))
        else:
            hi = n - (op == "<") if hi is None else min(hi, n - (op == "<"))
    return (column, (None, (lo, hi))) if column else None


def _narrow(old: Check | None, new: Check) -> Check:
    """Two CHECKs on one column: both hold."""
    if old is None:
        return new
    values = new[0] if old[0] is None else old[0] if new[0] is None else tuple(v for v in old[0] if v in new[0])
    bounds = new[1] if old[1] is None else old[1] if new[1] is None else (
        max((b for b in (old[1][0], new[1][0]) if b is not None), default=None),
        min((b for b in (old[1][1], new[1][1]) if b is not None), default=None))
    return values, bounds


def column_info(col: dict[str, Any], dialect: Any, json: bool = False, check: Check | None = None) -> ColumnInfo:
    """One `Inspector.get_columns` entry as a ColumnInfo (dialect: the engine's, for names and defaults;
    json: a MariaDB JSON column; check: the column's CHECK domain from `parse_check`)."""
    from sqlalchemy.dialects import postgresql

    info = _column_info(col, dialect, json)
    domain_check = getattr(col["type"], "check", None) if isinstance(col["type"], postgresql.DOMAIN) else None
    if domain_check is not None:  # CHECK (VALUE IN (...)) of a domain: as if on the column
        parsed = parse_check(re.sub(r"\bVALUE\b", col["name"], str(domain_check)))
        if parsed and parsed[0] == col["name"]:
            check = _narrow(check, parsed[1])
    if check is None:
        return info
    values, bounds = check
    if info.kind == "text" and values and all(isinstance(v, str) for v in values):
        return replace(info, enums=tuple(values))
    if info.kind == "int":
        lo, hi = _int_range(info)
        if values and all(isinstance(v, int) for v in values):
            bounds = (min(values), max(values))
        if bounds is not None:
            blo = lo if bounds[0] is None else max(lo, bounds[0])
            bhi = hi if bounds[1] is None else min(hi, bounds[1])
            return replace(info, bounds=(blo, bhi))
    return info


def _column_info(col: dict[str, Any], dialect: Any, json: bool) -> ColumnInfo:
    from sqlalchemy import types as st
    from sqlalchemy.dialects import mysql, postgresql

    t = col["type"]
    mariadb = getattr(dialect, "name", "") in ("mysql", "mariadb")
    default = col.get("default")
    if isinstance(t, postgresql.DOMAIN):
        if default is None and t.default is not None:
            default = str(t.default)
        t = t.data_type
    try:
        type_name = str(t.compile(dialect=dialect))
    except Exception:
        type_name = type(t).__name__
    if len(type_name) > 60:
        type_name = type_name[:57] + "..."
    identity = col.get("identity") or None
    computed = bool(col.get("computed"))
    default_text = None if default is None else str(default)
    if default_text is not None and mariadb and default_text.upper() == "NULL":
        default_text = None
    generated = bool(identity) or (col.get("autoincrement") is True and (mariadb or default_text is not None)) or (
        default_text is not None and bool(_GENERATING_DEFAULT.match(default_text)))
    common: dict[str, Any] = dict(
        nullable=bool(col.get("nullable", True)), has_default=default_text is not None, generated=generated,
        computed=computed, identity_always=bool(identity and identity.get("always")), type_name=type_name)
    unsigned = bool(getattr(t, "unsigned", False))

    if json or isinstance(t, st.JSON):
        return ColumnInfo("json", **common)
    if isinstance(t, st.NullType):
        return ColumnInfo("other", **common)
    if isinstance(t, st.Enum):
        return ColumnInfo("enum", enums=tuple(str(v) for v in t.enums), **common)
    if isinstance(t, mysql.SET):
        return ColumnInfo("other", **common)
    if isinstance(t, st.Boolean):
        return ColumnInfo("bool", **common)
    if isinstance(t, mysql.TINYINT) and getattr(t, "display_width", None) == 1 and not unsigned:
        return ColumnInfo("bool", bits=8, **common)
    if isinstance(t, st.Integer):
        if isinstance(t, mysql.TINYINT):
            bits = 8
        elif isinstance(t, mysql.MEDIUMINT):
            bits = 24
        elif isinstance(t, st.SmallInteger):
            bits = 16
        elif isinstance(t, st.BigInteger):
            bits = 64
        else:
            bits = 32
        return ColumnInfo("int", bits=bits, unsigned=unsigned, **common)
    if isinstance(t, st.Float):
        if mariadb:
            bits = 32 if isinstance(t, mysql.FLOAT) and (t.precision is None or t.precision <= 24) else 64
        else:
            bits = 32 if isinstance(t, st.REAL) or (t.precision is not None and t.precision <= 24) else 64
        return ColumnInfo("float", bits=bits, **common)
    if isinstance(t, st.Numeric):
        return ColumnInfo("decimal", precision=t.precision, scale=t.scale if t.precision is not None else None,
                          unsigned=unsigned, **common)
    if isinstance(t, st.DateTime):
        if mariadb:
            fsp = getattr(t, "fsp", None) or 0
        else:
            fsp = getattr(t, "precision", None)
            fsp = 6 if fsp is None else fsp
        return ColumnInfo("datetime", bits=32 if isinstance(t, mysql.TIMESTAMP) and mariadb else None,
                          precision=fsp, timezone=bool(getattr(t, "timezone", False)), **common)
    if isinstance(t, st.Date):
        return ColumnInfo("date", **common)
    if isinstance(t, st.Time):
        if mariadb:
            fsp = getattr(t, "fsp", None) or 0
        else:
            fsp = getattr(t, "precision", None)
            fsp = 6 if fsp is None else fsp
        return ColumnInfo("time", precision=fsp, timezone=bool(getattr(t, "timezone", False)), **common)
    if isinstance(t, st.Uuid):
        return ColumnInfo("uuid", **common)
    if isinstance(t, st.String):
        if isinstance(t, mysql.TINYTEXT):
            length: int | None = 255
        elif isinstance(t, st.Text):
            length = None
        else:
            length = t.length
        return ColumnInfo("text", length=length, **common)
    if isinstance(t, st._Binary):
        if isinstance(t, mysql.TINYBLOB):
            length = 255
        elif isinstance(t, st.LargeBinary):
            length = None
        else:
            length = getattr(t, "length", None)
        fixed = isinstance(t, mysql.BINARY)
        return ColumnInfo("bytes", length=length, precision=length if fixed else None, **common)
    return ColumnInfo("other", **common)


# ---------------------------------------------------------------- casts

FIT, LOSSY, ERROR, UNKNOWN = "fit", "lossy", "error", "unknown"


def _loud(s: "ColumnInfo", t: "ColumnInfo") -> bool:
    """A lossy cast the target refuses value by value (strict SQL mode, PostgreSQL): longer text,
    an integer out of range, a value outside a CHECK or enum domain, text that does not parse.
    Silent ones (a smaller decimal scale or fractional-second precision, a float rounded into a
    decimal, a datetime cut to a date) stay refused unless the field says `lossy: allow`."""
    if s.kind == "float" or t.kind in ("decimal", "float") and s.kind != "text":
        return False
    if t.kind == "date" and s.kind == "datetime":
        return False
    if t.kind == "int" and s.kind == "decimal" and (s.scale or 0) > 0:
        return False  # both servers round 1.5 into an integer column without complaint
    if t.kind in ("datetime", "time") and s.kind == t.kind and (t.precision or 0) < (s.precision or 0):
        return False  # fractional seconds rounded; a TIMESTAMP's 1970..2038 range is checked by the server
    return True


def _int_range(c: ColumnInfo) -> tuple[int, int]:
    if c.bounds is not None:
        return c.bounds
    bits = c.bits or 64
    return (0, (1 << bits) - 1) if c.unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _ranged(c: ColumnInfo) -> str:
    """An integer type with its range (a CHECK already shows its own)."""
    lo, hi = _int_range(c)
    return c.describe() if c.bounds is not None else f"{c.describe()} ({lo}..{hi})"


def _text_width(c: ColumnInfo) -> int | None:
    """The longest text a value of `c` renders as; None: unbounded."""
    k = c.kind
    if k == "int":
        lo, hi = _int_range(c)
        return max(len(str(lo)), len(str(hi)))
    if k == "decimal":
        return None if c.precision is None else c.precision + 2
    if k == "float":
        return 24
    if k == "bool":
        return 5
    if k == "date":
        return 10
    if k == "datetime":
        return 32 if c.timezone else 26
    if k == "time":
        return 15
    if k == "uuid":
        return 36
    if k == "enum":
        return max((len(v) for v in c.enums), default=0)
    return c.length  # text, bytes; json: None


def _int_digits(c: ColumnInfo) -> int | None:
    """Integer digits a decimal holds; None: unbounded."""
    if c.precision is None:
        return None
    return c.precision - (c.scale or 0)


def _cast(s: ColumnInfo, t: ColumnInfo) -> tuple[str, str]:
    """(verdict, why) for values of column type `s` written into column type `t`."""
    if s.kind == "text" and s.enums:  # a CHECK (column IN (...)): as an enum
        s = replace(s, kind="enum")
    sk, tk = s.kind, t.kind
    if sk == "other" or tk == "other":
        return UNKNOWN, "a type this check does not know"
    if tk == "text" and t.enums:
        if sk != "enum":
            return LOSSY, f"the target's CHECK allows only {', '.join(map(repr, t.enums))}"
        missing = [v for v in s.enums if v not in t.enums]
        if missing:
            return LOSSY, f"values {', '.join(map(repr, missing))} are not allowed by the target's CHECK"
    if tk == "text":
        if sk == "bytes":
            return LOSSY, "bytes that are not valid UTF-8 text cannot be stored as text"
        if sk == "json" and t.length is not None:
            return LOSSY, f"JSON documents are unbounded, the target holds {t.length} characters"
        need = _text_width(s)
        if t.length is None:
            return FIT, ""
        if need is None:
            return LOSSY, f"unbounded values into at most {t.length} characters"
        if need > t.length:
            what = "text" if sk == "text" else f"{sk} values"
            return LOSSY, f"{what} of up to {need} characters into at most {t.length}"
        return FIT, ""
    if sk in ("text", "enum"):
        if sk == "enum" and tk == "enum":
            missing = [v for v in s.enums if v not in t.enums]
            if missing:
                return LOSSY, f"values {', '.join(map(repr, missing))} are not values of the target enum"
            return FIT, ""
        if tk == "bytes":
            return LOSSY, "text into bytes: lengths count bytes, and PostgreSQL reads backslashes as bytea escapes"
        return LOSSY, f"text into {tk}: a text that is not a valid {tk} is a row error"
    if sk == "int":
        if tk == "int":
            lo, hi = _int_range(s)
            tlo, thi = _int_range(t)
            if lo < tlo or hi > thi:
                why = "negative values do not fit an UNSIGNED column" if lo < 0 <= tlo and hi <= thi else \
                    f"{_ranged(s)} into {_ranged(t)} narrows"
                return LOSSY, why
            return FIT, ""
        if tk == "decimal":
            if t.unsigned and not s.unsigned:
                return LOSSY, "negative values do not fit an UNSIGNED column"
            lo, hi = _int_range(s)
            need = max(len(str(abs(lo))), len(str(hi)))
            have = _int_digits(t)
            if have is not None and have < need:
                return LOSSY, f"integers of up to {need} digits into {have} integer digits"
            return FIT, ""
        if tk == "float":
            mantissa = 24 if t.bits == 32 else 53
            if (s.bits or 64) - (0 if s.unsigned else 1) > mantissa:
                return LOSSY, f"{s.describe()} into {t.describe()} rounds integers beyond 2^{mantissa}"
            return FIT, ""
        if tk == "bool":
            return LOSSY, "only 0 and 1 fit a boolean"
        return ERROR, f"an integer cannot become {_a(tk)}"
    if sk == "decimal":
        if tk == "int":
            if s.scale:
                return LOSSY, f"{s.describe()} has {s.scale} decimal places, an integer none"
            tlo, thi = _int_range(t)
            digits = _int_digits(s)
            if digits is None or 10 ** digits - 1 > thi or (not s.unsigned and -(10 ** digits - 1) < tlo):
                return LOSSY, f"{s.describe()} into {_ranged(t)} narrows"
            return FIT, ""
        if tk == "decimal":
            sd, td = _int_digits(s), _int_digits(t)
            if t.unsigned and not s.unsigned:
                return LOSSY, "negative values do not fit an UNSIGNED column"
            if td is not None and (sd is None or sd > td):
                return LOSSY, f"{s.describe()} into {t.describe()}: fewer integer digits"
            if t.precision is not None and (s.precision is None or (s.scale or 0) > (t.scale or 0)):
                return LOSSY, f"{s.describe()} into {t.describe()}: fewer decimal places (rounded)"
            return FIT, ""
        if tk == "float":
            digits = 6 if t.bits == 32 else 15
            if s.precision is None or s.precision > digits:
                return LOSSY, f"{s.describe()} into {t.describe()} keeps only {digits} significant digits"
            return FIT, ""
        if tk == "bool":
            return LOSSY, "only 0 and 1 fit a boolean"
        return ERROR, f"a number cannot become {_a(tk)}"
    if sk == "float":
        if tk in ("int", "decimal"):
            return LOSSY, f"a floating-point number into {t.describe()} is rounded"
        if tk == "float":
            if (s.bits or 64) > (t.bits or 64):
                return LOSSY, f"{s.describe()} into {t.describe()} loses precision"
            return FIT, ""
        if tk == "bool":
            return LOSSY, "only 0 and 1 fit a boolean"
        return ERROR, f"a number cannot become {_a(tk)}"
    if sk == "bool":
        if tk in ("bool", "int", "float"):
            return FIT, ""
        if tk == "decimal":
            have = _int_digits(t)
            return (FIT, "") if have is None or have >= 1 else (LOSSY, f"1 does not fit {t.describe()}")
        return ERROR, f"a boolean cannot become {_a(tk)}"
    if sk == "date":
        if tk in ("date", "datetime"):
            if tk == "datetime" and t.bits == 32:
                return LOSSY, f"{t.describe()} holds 1970..2038 only"
            return FIT, ""
        return ERROR, f"a date cannot become {_a(tk)}"
    if sk == "datetime":
        if tk == "datetime":
            if t.bits == 32 and s.bits != 32:
                return LOSSY, f"{t.describe()} holds 1970..2038 only"
            if (t.precision or 0) < (s.precision or 0):
                return LOSSY, (f"{t.describe()} keeps {t.precision or 0} fractional-second digits, "
                               f"{s.describe()} {s.precision}")
            return FIT, ""
        if tk == "date":
            return LOSSY, "a datetime into a date loses the time of day"
        if tk == "time":
            return LOSSY, "a datetime into a time loses the date"
        return ERROR, f"a datetime cannot become {_a(tk)}"
    if sk == "time":
        if tk == "time":
            if (t.precision or 0) < (s.precision or 0):
                return LOSSY, (f"{t.describe()} keeps {t.precision or 0} fractional-second digits, "
                               f"{s.describe()} {s.precision}")
            return FIT, ""
        return ERROR, f"a time cannot become {_a(tk)}"
    if sk == "json":
        if tk == "json":
            return FIT, ""
        return ERROR, f"JSON cannot become {_a(tk)}"
    if sk == "bytes":
        if tk == "bytes":
            if t.length is not None and (s.length is None or s.length > t.length):
                what = "unbounded bytes" if s.length is None else f"bytes of up to {s.length}"
                return LOSSY, f"{what} into at most {t.length} bytes"
            return FIT, ""
        if tk == "json":
            return LOSSY, "bytes that are not a UTF-8 JSON document are a row error"
        if tk == "uuid":
            if s.precision == 16:  # BINARY(16)
                return FIT, ""
            return LOSSY, "only 16-byte values become a uuid"
        return ERROR, f"bytes cannot become {_a(tk)}"
    if sk == "uuid":
        if tk == "uuid":
            return FIT, ""
        if tk == "bytes":
            if t.length is not None and t.length < 16:
                return LOSSY, f"a uuid is 16 bytes, the target holds {t.length}"
            return FIT, ""
        return ERROR, f"a uuid cannot become {_a(tk)}"
    return UNKNOWN, "a type this check does not know"


def _a(kind: str) -> str:
    return {"int": "an integer", "enum": "an enum value", "json": "JSON", "bytes": "bytes", "uuid": "a uuid",
            "date": "a date", "datetime": "a datetime", "time": "a time", "bool": "a boolean",
            "decimal": "a decimal", "float": "a float", "text": "text"}.get(kind, kind)


# ---------------------------------------------------------------- values spelled out in the mapping


def _value_problem(value: Any, t: ColumnInfo) -> str | None:
    """Why `value` can never be stored in a column of type `t`, or None."""
    if value is None:
        return None
    k = t.kind
    if k == "enum":
        if isinstance(value, bool) or str(value) not in t.enums:
            return f"{value!r} is not a value of {t.describe()}"
        return None
    if k == "text" and t.enums and not (isinstance(value, str) and value in t.enums):
        return f"{value!r} is not allowed by the CHECK of {t.describe()}"
    if k == "text":
        text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        if t.length is not None and len(text) > t.length:
            return f"{value!r} is {len(text)} characters, the column holds {t.length}"
        return None
    if k in ("int", "decimal", "float"):
        if isinstance(value, bool):
            return None
        try:
            number = Decimal(str(value).strip()) if isinstance(value, (str, int, float)) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            return f"{value!r} is not a number"
        if k == "int":
            lo, hi = _int_range(t)
            if number != number.to_integral_value():
                return f"{value!r} is not a whole number"
            if not lo <= number <= hi:
                return f"{value!r} is outside {t.describe()} ({lo}..{hi})"
        if k == "decimal":
            if t.unsigned and number < 0:
                return f"{value!r} is negative, the column is UNSIGNED"
            digits = _int_digits(t)
            if digits is not None and abs(number) >= Decimal(10) ** digits:
                return f"{value!r} has more than {digits} integer digits ({t.describe()})"
        return None
    if k in ("date", "datetime") and isinstance(value, str):
        try:
            (_dt.date if k == "date" else _dt.datetime).fromisoformat(value)
        except ValueError:
            return f"{value!r} is not a {k}"
    return None


# ---------------------------------------------------------------- reading the raw field specs


def field_specs(directory: Path) -> Specs:
    """`{(mapping, field): raw spec}` from the *.yaml files of a mapping directory (for `check_types`).
    A file that does not load is left out (loading the mappings reports it)."""
    from replicator.yamlfile import load_file

    out: Specs = {}
    if not Path(directory).is_dir():
        return out
    for path in sorted(p for p in Path(directory).iterdir() if p.suffix in (".yaml", ".yml")):
        try:
            data = load_file(path)
        except Exception:
            continue
        body = data.get("mappings") if isinstance(data, dict) else None
        if not isinstance(body, dict):
            continue
        for name, m in body.items():
            fields = m.get("fields") if isinstance(m, dict) else None
            if isinstance(fields, dict):
                for fname, spec in fields.items():
                    out[(str(name), str(fname))] = spec
    return out


def _direction_transform(spec: Any, stream: str) -> Any:
    """The transform list that applies in `stream` (None: none)."""
    t = spec.get("transform") if isinstance(spec, dict) else None
    if isinstance(t, dict):
        t = t.get(stream)
    return t or None


# ---------------------------------------------------------------- the check

_NO_SPEC: Any = object()


def check_types(mset: MappingSet, catalogs: dict[str, Catalog], kinds: dict[str, str],
                specs: Specs | None = None) -> list[Finding]:
    """Findings for every mapping of `mset` against the catalogs (module docstring: the rules)."""

    return _Checker(mset, catalogs, kinds, specs, Finding).run()


def check_config(config: Config, mset: MappingSet) -> list[Finding]:
    """`check_types` against the live catalogs of the configuration's connections. A server that cannot be
    reached is skipped (run_checks reports it)."""
    import sqlalchemy

    from replicator.errors import ReplicatorError
    from replicator.connect import sql_engine

    catalogs: dict[str, Catalog] = {}
    for conn in config.connections:
        engine = sql_engine(conn)
        try:
            catalogs[conn.name] = read_catalog(engine, mset.tables(conn.name))
        except (ReplicatorError, sqlalchemy.exc.SQLAlchemyError, OSError):
            pass  # unreachable or no access: already a finding of run_checks
        finally:
            engine.dispose()
    kinds = {c.name: c.kind for c in config.connections}
    return check_types(mset, catalogs, kinds, field_specs(config.mappings_dir))


def _at(where: Where, suffix: str = "", line: int | None = None) -> str:
    return f"{where.file}:{line or where.line}: {where.key}{suffix}"


def _col(side: str, table: TableRef, column: str) -> str:
    return f"{side}.{table}.{column}"


class _Checker:
    def __init__(self, mset: MappingSet, catalogs: dict[str, Catalog], kinds: dict[str, str],
                 specs: Specs | None, finding: Any):
        self.mset = mset
        self.catalogs = catalogs
        self.kinds = kinds
        self.specs = specs
        self.F = finding
        self.out: list[Any] = []

    # -- helpers
    def fail(self, side: str, what: str, fix: str) -> None:
        self.out.append(self.F(False, side, what, fix))

    def warn(self, side: str, what: str, fix: str) -> None:
        self.out.append(self.F(False, side, what, fix, True))

    def ok(self, side: str, what: str) -> None:
        self.out.append(self.F(True, side, what))

    def table(self, side: str, table: TableRef) -> dict[str, ColumnInfo] | None:
        return self.catalogs.get(side, {}).get(table)

    def column(self, side: str, table: TableRef, column: str | None) -> ColumnInfo | None:
        cols = self.table(side, table)
        return None if cols is None or column is None else cols.get(column)

    def spec(self, m: Mapping, f: Field) -> Any:
        if self.specs is None:
            return _NO_SPEC
        return self.specs.get((m.name, f.name), _NO_SPEC)

    def generated_fix(self, side: str, table: TableRef, column: str, c: ColumnInfo | None) -> str:
        if self.kinds.get(side) == "mariadb":
            return (f"ALTER TABLE {table} MODIFY {column} {c.base_type() if c else 'BIGINT'} NOT NULL AUTO_INCREMENT "
                    f"(or drop link: crosswalk and share keys)")
        return (f"ALTER TABLE {table} ALTER COLUMN {column} ADD GENERATED BY DEFAULT AS IDENTITY "
                f"(or drop link: crosswalk and share keys)")

    # -- the run
    def run(self) -> list[Any]:
        for m in self.mset.mappings:
            fields = {f.name: f for f in m.fields}
            for flow in m.flows:
                if flow.target.side in self.catalogs and self.table(flow.target.side, flow.target.table) is not None:
                    self.flow_types(m, flow, fields)
                    self.not_null(m, flow, fields)
            self.links(m, fields)
        return self.out

    # rule 1 and 3: each plan
    def flow_types(self, m: Mapping, flow: Flow, fields: dict[str, Field]) -> None:
        stream = flow.stream
        checked = 0
        failed_before = sum(1 for f in self.out if not f.ok)
        for plan in flow.plans:
            f = fields[plan.name]
            tcol = self.column(flow.target.side, flow.target.table, plan.target)
            if tcol is None:
                continue
            tname = _col(flow.target.side, flow.target.table, plan.target)
            crosswalk_key = flow.link.crosswalk and plan.target in flow.target.key
            if tcol.computed:
                self.fail(flow.target.side, f"{_at(f.where)}: {tname} is a generated column (AS expression) "
                          f"and cannot be written ({stream})",
                          f"map the field to another column, or give it `{flow.target.side}: ~`")
                continue
            if tcol.identity_always and not crosswalk_key:
                self.fail(flow.target.side, f"{_at(f.where)}: {tname} is GENERATED ALWAYS AS IDENTITY and cannot be "
                          f"written ({stream})",
                          f"ALTER TABLE {flow.target.table} ALTER COLUMN {plan.target} SET GENERATED BY DEFAULT, "
                          f"or use link: {{crosswalk: true}} so the database numbers the rows")
                continue
            spec = self.spec(m, f)
            checked += 1
            self.plan_values(m, flow, f, plan, spec, tcol, tname)
            if plan.source is None:
                continue
            loose = plan.convert is not None
            if loose and isinstance(spec, dict) and not ({"map", "constant"} & set(spec)) \
                    and _direction_transform(spec, stream) is None:
                loose = False  # only `default:` (or a transform for the other direction): still a plain cast
            if loose:
                continue
            self.plan_cast(m, flow, f, plan, tcol, tname)
        if checked and sum(1 for f in self.out if not f.ok) == failed_before:
            self.ok(flow.target.side, f"{_at(m.where)}: {stream}: the types of {checked} field(s) fit "
                    f"{flow.target.table}")

    def plan_cast(self, m: Mapping, flow: Flow, f: Field, plan: FieldPlan, tcol: ColumnInfo, tname: str) -> None:
        stream = flow.stream
        scol = None
        sname = ""
        if plan.references:
            ref = self.mset.by_name.get(plan.references)
            if ref is None or any(len(e.key) != 1 for e in ref.endpoints):
                return  # reported by links()
            if ref.link.crosswalk:
                e = ref.endpoint(flow.target.side)
                scol = self.column(e.side, e.table, e.key[0])
                sname = f"{_col(e.side, e.table, e.key[0])} (the key of {ref.name}, through its crosswalk)"
                if scol is None:
                    return
        if scol is None:
            scol = self.column(flow.source.side, flow.source.table, plan.source)
            sname = _col(flow.source.side, flow.source.table, plan.source or "")
        if scol is None:
            return
        verdict, why = _cast(scol, tcol)
        head = f"{_at(f.where)}: {sname} {scol.describe()} -> {tname} {tcol.describe()} ({stream})"
        if verdict == FIT:
            return
        if verdict == UNKNOWN:
            self.ok(flow.target.side, f"{head}: not checked ({why})")
        elif verdict == ERROR:
            self.fail(flow.target.side, f"{head}: incompatible types: {why}",
                      "map the field to a column of a compatible type, or convert it with `map:` or `transform:` "
                      "(lossy: allow does not help)")
        elif f.lossy:
            self.ok(flow.target.side, f"{head}: lossy ({why}), allowed by lossy: allow")
        elif _loud(scol, tcol):
            # strict mode rejects a value that does not fit: a row error naming it, never a silent change
            self.warn(flow.target.side, f"{head}: lossy cast: {why}",
                      self.lossy_fix(scol, tcol, flow, plan))
        else:
            self.fail(flow.target.side, f"{head}: lossy cast: {why}", self.lossy_fix(scol, tcol, flow, plan))

    def lossy_fix(self, s: ColumnInfo, t: ColumnInfo, flow: Flow, plan: FieldPlan) -> str:
        allow = "or add `lossy: allow` to the field if the values always fit (one that does not is a row error)"
        table, col = flow.target.table, plan.target
        if t.bounds is not None or (t.kind == "text" and t.enums):
            return (f"add the same CHECK to {flow.source.table}.{plan.source} so its values always fit, relax the "
                    f"CHECK of {table}.{col}, {allow}")
        if s.kind == t.kind and s.kind in ("int", "decimal", "text", "bytes", "datetime", "time"):
            return f"widen {table}.{col} to hold {s.describe()}, {allow}"
        if t.kind == "text":
            need = _text_width(s)
            size = "an unbounded text" if need is None else f"at least {need} characters"
            return f"widen {table}.{col} to {size}, {allow}"
        return f"change {table}.{col} to a type that holds {s.describe()}, convert with `map:`/`transform:`, {allow}"

    def plan_values(self, m: Mapping, flow: Flow, f: Field, plan: FieldPlan, spec: Any, tcol: ColumnInfo,
                    tname: str) -> None:
        """Values spelled out in the mapping must fit the target column (errors whatever lossy says)."""
        side = flow.target.side
        stream = flow.stream
        if plan.source is None:  # a constant
            if isinstance(spec, dict) and "constant" in spec:
                value = spec["constant"]
            elif plan.convert is not None:
                try:
                    value = plan.convert(None, {})
                except Exception:
                    return
            else:
                return
            line = _line(spec, "constant", f.where)
            if value is None and not tcol.nullable:
                self.fail(side, f"{_at(f.where, '.constant', line)}: constant NULL into NOT NULL {tname}",
                          "give the constant a value")
            problem = _value_problem(value, tcol)
            if problem:
                self.fail(side, f"{_at(f.where, '.constant', line)}: constant into {tname} ({stream}): {problem}",
                          f"change the constant, or widen {flow.target.table}.{plan.target}")
            return
        if not isinstance(spec, dict):
            return
        if "default" in spec:
            problem = _value_problem(spec["default"], tcol)
            if problem:
                self.fail(side, f"{_at(f.where, '.default', _line(spec, 'default', f.where))}: default into "
                          f"{tname} ({stream}): {problem}",
                          f"change the default, or widen {flow.target.table}.{plan.target}")
        if "map" not in spec or not isinstance(spec["map"], list):
            return
        self.value_map(m, flow, f, plan, spec, tcol, tname)

    # rule 3
    def value_map(self, m: Mapping, flow: Flow, f: Field, plan: FieldPlan, spec: Any, tcol: ColumnInfo,
                  tname: str) -> None:
        src, dst = flow.source.side, flow.target.side
        stream = flow.stream
        pairs = [p for p in spec["map"] if isinstance(p, dict)]
        line = _line(spec, "map", f.where)
        at = _at(f.where, ".map", line)
        transformed = _direction_transform(spec, stream) is not None
        unmapped = spec.get("unmapped")
        policy = "pass" if unmapped == "pass" else "default" if isinstance(unmapped, dict) and "default" in unmapped \
            else "error"
        if not transformed:
            bad = []
            for p in pairs:
                problem = _value_problem(p.get(dst), tcol)
                if problem and problem not in bad:
                    bad.append(problem)
            if bad:
                self.fail(dst, f"{at}: map values for {tname} ({stream}): {'; '.join(bad)}",
                          f"use values of {tcol.describe()} on the {dst} side of the map"
                          + (f", or add them to {flow.target.table}.{plan.target}" if tcol.kind == "enum" else ""))
            if policy == "default":
                problem = _value_problem(unmapped["default"], tcol)
                if problem:
                    self.fail(dst, f"{_at(f.where, '.unmapped', _line(spec, 'unmapped', f.where))}: unmapped default "
                              f"into {tname} ({stream}): {problem}", f"use a value of {tcol.describe()}")
        scol = self.column(src, flow.source.table, plan.source)
        if scol is None or not scol.enums or scol.kind not in ("enum", "text"):
            return
        sname = _col(src, flow.source.table, plan.source or "")
        listed = [p.get(src) for p in pairs]
        missing = [v for v in scol.enums if not any(_same(x, v) for x in listed)]
        if not missing:
            return
        shown = ", ".join(map(repr, missing))
        if policy == "error":
            self.fail(src, f"{at}: values {shown} of {sname} {scol.describe()} are not in the map ({stream}); "
                      f"with unmapped: error each is a row error",
                      "add pairs for them, or set `unmapped: pass` or `unmapped: {default: value}`")
        elif policy == "pass" and not transformed:
            bad = [v for v in missing if _value_problem(v, tcol)]
            if bad:
                self.fail(dst, f"{at}: values {', '.join(map(repr, bad))} of {sname} pass unmapped (unmapped: pass) "
                          f"but do not fit {tname} {tcol.describe()} ({stream})",
                          "add pairs for them to the map, or use `unmapped: {default: value}`")

    # rule 2
    def not_null(self, m: Mapping, flow: Flow, fields: dict[str, Field]) -> None:
        if flow.created_by not in (None, flow.source.side):
            return  # this direction only updates
        cols = self.table(flow.target.side, flow.target.table) or {}
        filled = {p.target for p in flow.plans}
        side, table = flow.target.side, flow.target.table
        for name, c in cols.items():
            if c.nullable or c.has_default or c.generated or c.computed or name in filled:
                continue
            if flow.link.crosswalk and name in flow.target.key:
                continue  # the database must generate it: links()
            owned = [f for f in m.fields if f.column(side) == name]
            why = ""
            if owned:
                f = owned[0]
                why = f" (field {f.name} flows only from {f.owner})" if f.owner else \
                    f" (field {f.name} has no {flow.source.side} column)"
            other = [s for s in (e.side for e in m.endpoints) if s != flow.source.side]
            self.fail(side, f"{_at(m.where, '.fields')}: column {name} of {table} is NOT NULL and no field fills it "
                      f"when {flow.stream} creates rows{why}",
                      f"add a field for {name} (a source column or `constant:` with `{flow.source.side}: ~`), give "
                      f"{table}.{name} a DEFAULT or make it NULL, or set `created_by: {other[0]}` if {flow.stream} "
                      f"never creates rows")

    # rule 4
    def links(self, m: Mapping, fields: dict[str, Field]) -> None:
        for flow in m.flows:
            if flow.gate and self.table(flow.source.side, flow.source.table) is not None:
                column, values = flow.gate
                c = self.column(flow.source.side, flow.source.table, column)
                at = _at(m.where, f".gate.{flow.stream}")
                if c is None:
                    self.fail(flow.source.side, f"{at}: gate column {column} does not exist in {flow.source.table}",
                              f"name a column of {flow.source.table} in the gate")
                elif c.enums and c.kind in ("enum", "text"):
                    bad = [v for v in values if str(v) not in c.enums]
                    if bad:
                        self.fail(flow.source.side, f"{at}: gate values {', '.join(map(repr, bad))} are not values "
                                  f"of {flow.source.table}.{column} {c.describe()}: the gate never fires",
                                  "use values of the enum in `becomes`")
        for name in m.link.natural:
            f = fields.get(name)
            if f is None:
                continue
            for e in m.endpoints:
                col = f.column(e.side)
                cols = self.table(e.side, e.table)
                if col is None:
                    self.fail(e.side, f"{_at(f.where)}: natural key field {name} has no {e.side} column",
                              f"give the field a {e.side} column: a natural key identifies the record on both sides")
                elif cols is not None and col not in cols:
                    self.fail(e.side, f"{_at(f.where)}: natural key column {col} does not exist in {e.table}",
                              "fix the field's column name")
            for flow in m.flows:
                plan = flow.plan(name)
                if f.column(flow.target.side) is None or f.column(flow.source.side) is None:
                    continue  # reported above
                if plan is None or plan.source is None:
                    why = f" (owner: {f.owner})" if f.owner and f.owner != flow.source.side else ""
                    self.fail(flow.target.side, f"{_at(f.where)}: natural key field {name} is not sent "
                              f"{flow.stream}{why}: rows cannot be linked in that direction",
                              "remove `owner` from the natural key field: both directions must carry it")
        if m.link.crosswalk:
            for flow in m.flows:
                if flow.created_by not in (None, flow.source.side):
                    continue
                side, table = flow.target.side, flow.target.table
                cols = self.table(side, table)
                if cols is None:
                    continue
                for k in flow.target.key:
                    c = cols.get(k)
                    if c is None or c.generated:
                        continue
                    self.fail(side, f"{_at(m.where, '.link')}: crosswalk: key column {k} of {table} is not generated "
                              f"by the database, but {flow.stream} creates rows and leaves the key to it",
                              self.generated_fix(side, table, k, c))
        for f in m.fields:
            if not f.references:
                continue
            ref = self.mset.by_name.get(f.references)
            if ref is None:
                continue
            for e in ref.endpoints:
                if len(e.key) != 1:
                    self.fail(e.side, f"{_at(f.where, '.references')}: references {ref.name}, whose {e.side} key "
                              f"{list(e.key)} has {len(e.key)} columns; a reference holds one",
                              f"reference a mapping with a single-column key, or give {e.table} one")


def _line(spec: Any, key: str, where: Where) -> int | None:
    lines = getattr(spec, "key_lines", None) or {}
    return lines.get(key) or where.line


def _same(listed: Any, value: str) -> bool:
    """The value-map matching rule (transforms): text equal, or a number / boolean whose str() it equals."""
    if listed is None:
        return False
    return listed == value or str(listed) == value
