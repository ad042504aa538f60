"""Reading the columns of the mapped tables through a SQLAlchemy Inspector into `ColumnInfo`s."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from replicator.changes import TableRef
from replicator.mapping.check.casts import _int_range
from replicator.mapping.check.checks import Check, _narrow, parse_check
from replicator.mapping.check.columns import Catalog, ColumnInfo

if TYPE_CHECKING:
    from replicator.config import Config, Connection

# ---------------------------------------------------------------- reading catalogs

CatalogError = Callable[["Connection", Exception], None]


def live_catalogs(config: Config, tables: Mapping[str, Iterable[TableRef]], on_error: CatalogError,
                  also: Callable[[Connection, Any, Catalog], None] | None = None) -> dict[str, Catalog]:
    """`{side: Catalog}` of `tables` (`{side: [TableRef]}`) read from the configuration's live servers, one
    engine per connection, disposed after its read. A connection not named in `tables` is not read. A server
    that cannot be read (unreachable, no access: a ReplicatorError, SQLAlchemyError or OSError) is handed to
    `on_error(connection, exc)`: it raises what its caller wants raised (the stream: a RetriableError), or
    returns and the side is left out of the result (`check`: run_checks reports the server itself).
    `also(connection, engine, catalog)`, when given, asks that server more on the same engine, before it is
    disposed (no second login: `check`'s sql_mode read and its look for stored zero dates), under the same error
    handling."""
    import sqlalchemy

    from replicator.connect import sql_engine
    from replicator.errors import ReplicatorError

    out: dict[str, Catalog] = {}
    for conn in config.connections:
        if conn.name not in tables:
            continue
        engine = sql_engine(conn)
        try:
            out[conn.name] = read_catalog(engine, tables[conn.name])
            if also is not None:
                also(conn, engine, out[conn.name])
        except (ReplicatorError, sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
            on_error(conn, exc)
        finally:
            engine.dispose()
    return out


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
            m = re.fullmatch(r"\s*json_valid\(\s*(?:`((?:[^`]|``)+)`|(\w+))\s*\)\s*", clause, re.I)
            if m:
                json_columns.add(m.group(1).replace("``", "`") if m.group(1) is not None else m.group(2))
                continue
            parsed = parse_check(clause)
            if parsed:
                domains[parsed[0]] = _narrow(domains.get(parsed[0]), parsed[1])
        raw_types = _mariadb_types(engine, t) if mariadb else {}
        cols: dict[str, ColumnInfo] = {}
        for col in inspected_columns(insp, t):
            if col["name"] in raw_types:
                data_type, charset, collation = raw_types[col["name"]]
                col = {**col, "data_type": data_type, "charset": charset, "collation": collation}
            cols[col["name"]] = column_info(col, dialect, json=col["name"] in json_columns,
                                            check=domains.get(col["name"]))
        out[t] = cols
    return out


def reflected_name(dialect: Any, name: str) -> str:
    """A column name as the database spells it. SQLAlchemy's MariaDB reflection (2.x) parses SHOW CREATE
    TABLE and leaves a backtick inside a name doubled: column `a``b` comes back as 'a``b'."""
    if getattr(dialect, "name", "") in ("mysql", "mariadb"):
        return name.replace("``", "`")
    return name


def inspected_columns(insp: Any, t: TableRef) -> list[dict[str, Any]]:
    """`Inspector.get_columns`, names as the database spells them. A type SQLAlchemy does not know
    (MariaDB's INET6, ...) is a NullType, read on by `_mariadb_types`; its warning is no news to a user."""
    import warnings

    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Did not recognize type", category=SAWarning)
        columns = insp.get_columns(t.name, schema=t.schema)
    return [{**c, "name": reflected_name(insp.dialect, c["name"])} for c in columns]


def inspected_primary_key(insp: Any, t: TableRef) -> tuple[str, ...]:
    pk = insp.get_pk_constraint(t.name, schema=t.schema).get("constrained_columns") or ()
    return tuple(reflected_name(insp.dialect, c) for c in pk)


def inspected_unique_keys(insp: Any, t: TableRef) -> list[tuple[str, ...]]:
    """The table's unique keys: its UNIQUE constraints and its unique indexes over plain columns without a WHERE
    (PostgreSQL's `CREATE UNIQUE INDEX company_entity_id_u ON company (entity_id)`, which a LedgerSMB DBA adds
    to key `company` by its entity: an upsert's ON CONFLICT and the table scan use such an index as they use a
    constraint). A partial index (`... WHERE entity_class = 2`) or one over an expression keys no row alone."""
    keys = [tuple(reflected_name(insp.dialect, c) for c in u["column_names"])
            for u in insp.get_unique_constraints(t.name, schema=t.schema)]
    for ix in insp.get_indexes(t.name, schema=t.schema):
        columns = ix.get("column_names") or []
        options = ix.get("dialect_options") or {}
        if (not ix.get("unique") or not columns or any(c is None for c in columns) or ix.get("expressions")
                or options.get("postgresql_where") is not None):
            continue
        key = tuple(reflected_name(insp.dialect, c) for c in columns)
        if key not in keys:
            keys.append(key)
    return keys


def _mariadb_types(engine: Any, t: TableRef) -> dict[str, tuple[str, str | None, str | None]]:
    """information_schema's DATA_TYPE, CHARACTER_SET_NAME and COLLATION_NAME per column: SQLAlchemy does not
    know MariaDB's INET6 / INET4, and reflects a column's character set only where it differs from the
    table's default."""
    import sqlalchemy

    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = :s AND TABLE_NAME = :t"), {"s": t.schema, "t": t.name}).fetchall()
    return {str(r[0]): (str(r[1]).lower(), None if r[2] is None else str(r[2]).lower(),
                        None if r[3] is None else str(r[3]).lower()) for r in rows}


# MariaDB character sets that hold every character (ColumnInfo.charset None)
_UNICODE_CHARSETS = frozenset({"utf8mb4", "utf16", "utf16le", "utf32"})
# the bytes a MariaDB TINYTEXT / TEXT / MEDIUMTEXT holds
_TEXT_OCTETS = {"tinytext": 255, "text": 65535, "mediumtext": 16777215}
_BLOB_OCTETS = {"tinyblob": 255, "blob": 65535, "mediumblob": 16777215}


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
    if info.kind == "bool" and info.bits:  # a MariaDB TINYINT(1) with CHECK (c IN (0, 1)) / BETWEEN 0 AND 1
        if values and all(isinstance(v, int) for v in values):
            bounds = (min(values), max(values))
        if bounds is not None and bounds[0] is not None and bounds[1] is not None:
            return replace(info, bounds=(bounds[0], bounds[1]))
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
        raw = col.get("data_type")
        if raw in ("inet6", "inet4"):  # MariaDB: 16 / 4 bytes on the stream
            return ColumnInfo("inet", bits=128 if raw == "inet6" else 32, **{**common, "type_name": raw.upper()})
        return ColumnInfo("other", **common)
    if isinstance(t, (postgresql.INET, postgresql.CIDR)):
        return ColumnInfo("inet", **common)
    if isinstance(t, (postgresql.INTERVAL, st.Interval)):
        return ColumnInfo("interval", **common)
    if isinstance(t, st.ARRAY):
        item = _column_info({"name": col["name"], "type": t.item_type}, dialect, False).kind
        return ColumnInfo("array", item=item, **common)
    # a MariaDB ENUM / SET's character set (when it is not a Unicode one): its member names travel in it
    member_charset = col.get("charset") if mariadb and col.get("charset") not in _UNICODE_CHARSETS else None
    if isinstance(t, st.Enum):
        return ColumnInfo("enum", enums=tuple(str(v) for v in t.enums), charset=member_charset, **common)
    if isinstance(t, mysql.SET):
        return ColumnInfo("other", enums=tuple(str(v) for v in t.values), charset=member_charset, **common)
    if isinstance(t, st.Boolean):
        return ColumnInfo("bool", **common)
    if isinstance(t, mysql.TINYINT) and getattr(t, "display_width", None) == 1 and not unsigned:
        return ColumnInfo("bool", bits=8, **common)  # bits: a TINYINT, which holds -128..127, not only 0 and 1
    if isinstance(t, mysql.YEAR):  # 1901..2155, and 0000 (0)
        return ColumnInfo("int", bits=16, unsigned=True, bounds=(0, 2155), **common)
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
            # DOUBLE(15,4) (Akaunting's amounts): MariaDB rounds every value to 4 decimal places, silently
            places = getattr(t, "scale", None)
            if places is not None and t.precision is not None:
                return ColumnInfo("float", bits=bits, precision=t.precision, scale=places, **common)
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
        return ColumnInfo("time", precision=fsp, timezone=bool(getattr(t, "timezone", False)),
                          bits=24 if mariadb else None, **common)  # MariaDB: -838:59:59..838:59:59
    if isinstance(t, st.Uuid):  # a MariaDB UUID travels as its 16 bytes (bits 128), as an INET6 does
        return ColumnInfo("uuid", bits=128 if mariadb else None, **common)
    if isinstance(t, st.String):
        # TINYTEXT, TEXT, MEDIUMTEXT hold bytes, not characters (LONGTEXT: 4 GiB, unbounded here)
        octets = _TEXT_OCTETS.get(str(col.get("data_type") or type(t).__name__).lower()) if mariadb else None
        length = None if octets is not None or isinstance(t, st.Text) else t.length
        charset = col.get("charset") if mariadb else None
        return ColumnInfo("text", length=length, padded=isinstance(t, (st.CHAR, mysql.NCHAR)), octets=octets,
                          charset=None if charset is None or charset in _UNICODE_CHARSETS else charset,
                          collation=col.get("collation") if mariadb else None, **common)
    if isinstance(t, st._Binary):
        blob = _BLOB_OCTETS.get(str(col.get("data_type") or type(t).__name__).lower()) if mariadb else None
        if isinstance(t, mysql.TINYBLOB):
            length = 255
        elif blob is not None:  # a BLOB holds 65,535 bytes, a MEDIUMBLOB 16 MiB (a LONGBLOB: unbounded here)
            length = blob
        elif isinstance(t, st.LargeBinary):
            length = None
        else:
            length = getattr(t, "length", None)
        fixed = isinstance(t, mysql.BINARY)
        return ColumnInfo("bytes", length=length, precision=length if fixed else None, **common)
    return ColumnInfo("other", **common)
