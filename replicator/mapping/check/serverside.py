"""What a server does to mapped tables on its own: foreign keys with actions and triggers, read for `check`.

MariaDB runs ON DELETE / ON UPDATE CASCADE and SET NULL inside InnoDB: the child rows they change are not in the
binlog (binlog_format=ROW, MariaDB 10.11). PostgreSQL's are in the WAL, but those a write of replicator's causes
carry its loop tag and are dropped like the write. A trigger on a table replicator writes runs inside its
transaction: its writes are tagged too. `cascades` and `triggers` judge what is read here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from replicator.changes import TableRef
from replicator.identifiers import unquote_ident

# actions that change child rows; RESTRICT and NO ACTION only refuse
ACTING = ("CASCADE", "SET NULL", "SET DEFAULT")
_PG_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


@dataclass(frozen=True)
class ForeignKey:
    name: str
    child: TableRef
    columns: tuple[str, ...]
    parent: TableRef
    parent_columns: tuple[str, ...]
    on_delete: str  # CASCADE, SET NULL, SET DEFAULT, RESTRICT, NO ACTION
    on_update: str

    def action(self, event: str) -> str:
        return self.on_delete if event == "delete" else self.on_update

    def describe(self) -> str:
        return (f"{self.name} ({self.child}({', '.join(self.columns)}) REFERENCES "
                f"{self.parent}({', '.join(self.parent_columns)}) ON DELETE {self.on_delete} "
                f"ON UPDATE {self.on_update})")


@dataclass(frozen=True)
class Trigger:
    name: str
    table: TableRef
    timing: str  # BEFORE, AFTER, INSTEAD OF
    events: str  # INSERT, UPDATE, DELETE (PostgreSQL: several, joined by " OR ")
    body: str | None  # the statements it runs; None when they cannot be read as SQL (a C or PL/Python function)
    # why `body` is None: "" a function not in SQL or PL/pgSQL; HIDDEN: MariaDB showed the trigger's name but not
    # its statements (the account lacks the TRIGGER privilege on the table)
    unread: str = ""
    row: bool = True  # FOR EACH ROW (MariaDB's always are); a statement trigger's NEW and return are no row's

    @property
    def changes_row(self) -> bool:
        """A BEFORE ROW trigger on INSERT or UPDATE: what it does to NEW is what the server stores."""
        return self.row and self.timing == "BEFORE" and any(e in self.events for e in ("INSERT", "UPDATE"))


HIDDEN = "hidden"


@dataclass(frozen=True)
class ServerSide:
    """One side's foreign keys whose child is a mapped table, and its triggers on mapped tables. `unseen`: mapped
    MariaDB tables whose triggers the account cannot see at all (none of TRIGGER, INSERT, UPDATE, DELETE on them,
    as its grants say), `account` the account that read them. `any_case`: the server matches table names in any
    letter case (MariaDB's lower_case_table_names 1 or 2): a trigger's `INSERT INTO Audit` writes `audit`."""
    foreign_keys: tuple[ForeignKey, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    unseen: tuple[TableRef, ...] = ()
    account: str = ""
    any_case: bool = False


def read_server_side(engine: Any, tables: Iterable[TableRef]) -> ServerSide:
    """The foreign keys and triggers of `tables` on the server behind `engine` (a SQLAlchemy engine)."""
    import sqlalchemy

    wanted = set(tables)
    mariadb = engine.dialect.name in ("mysql", "mariadb")
    unseen: list[TableRef] = []
    account = ""
    any_case = False
    with engine.connect() as c:
        if mariadb:
            fks = _mariadb_foreign_keys(c, wanted)
            # MariaDB 10.11 lists a table's triggers to an account with INSERT, UPDATE or DELETE on it, but their
            # statements (ACTION_STATEMENT) only with TRIGGER: NULL otherwise; with SELECT alone it lists none
            trs = [Trigger(str(r[0]), TableRef(str(r[1]), str(r[2])), str(r[3]), str(r[4]),
                           None if r[5] is None else str(r[5]), "" if r[5] is not None else HIDDEN)
                   for r in c.execute(sqlalchemy.text(
                       "SELECT TRIGGER_NAME, EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE, ACTION_TIMING, "
                       "EVENT_MANIPULATION, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                       "ORDER BY TRIGGER_NAME")).fetchall()]
            # lower_case_table_names 1 or 2: information_schema gives the server's (lower-case) spelling of a
            # table the mappings may spell `Customers`; the stream reads it so too (BinlogSource.names_as_server)
            any_case = bool(int(c.execute(sqlalchemy.text("SELECT @@lower_case_table_names")).scalar() or 0))
            if any_case:
                fks, trs = _as_mapped(wanted, fks, trs)
            account = str(c.execute(sqlalchemy.text("SELECT CURRENT_USER()")).scalar() or "")
            grants = [str(r[0]) for r in c.execute(sqlalchemy.text("SHOW GRANTS")).fetchall()]
            unseen = [t for t in sorted(wanted) if not may_see_triggers(grants, t)]
        else:
            fks = _postgres_foreign_keys(c, wanted)
            trs = [Trigger(str(r[0]), TableRef(str(r[1]), str(r[2])), str(r[3]), str(r[4]),
                           str(r[6]) if str(r[5]) in ("plpgsql", "sql") else None, row=bool(r[7]))
                   for r in c.execute(sqlalchemy.text(_PG_TRIGGERS)).fetchall()]
    return ServerSide(tuple(fk for fk in fks if fk.child in wanted),
                      tuple(t for t in trs if t.table in wanted), tuple(unseen), account, any_case)


# ---------------------------------------------------------------- which MariaDB triggers an account sees

_GRANT = re.compile(r"^GRANT\s+(.*?)\s+ON\s+(?:(?:TABLE|FUNCTION|PROCEDURE|PACKAGE(?:\s+BODY)?)\s+)?"
                    r"((?:`(?:[^`]|``)*`|[^\s.`]+))\.((?:`(?:[^`]|``)*`|[^\s`]+))\s+TO\s", re.I | re.S)
# the privileges that make information_schema.TRIGGERS list a table's triggers (measured on 10.11: INSERT, UPDATE
# or DELETE list them without their statements; TRIGGER with them)
_SEEING = ("ALL PRIVILEGES", "TRIGGER", "INSERT", "UPDATE", "DELETE")


def may_see_triggers(grants: Iterable[str], table: TableRef) -> bool:
    """Whether SHOW GRANTS lines `grants` (the account's and its enabled role's) give a privilege on `table` that
    makes MariaDB list its triggers. A column-level grant (`INSERT (a)`) is not counted; a database name with
    wildcards (`erp\\_%`) matches as GRANT does."""
    for line in grants:
        m = _GRANT.match(line.strip())
        if m is None or not m.group(2) or m.group(1).upper().startswith("PROXY"):
            continue
        privs = [p.strip().upper() for p in _split_privileges(m.group(1))]
        if not any(p in _SEEING for p in privs):
            continue
        db, tbl = _grant_name(m.group(2)), _grant_name(m.group(3))
        if db == "*" or (_like(db, table.schema) and tbl in ("*", table.name)):
            return True
    return False


def _split_privileges(text: str) -> list[str]:
    """`SELECT, INSERT (a, b), UPDATE` -> ['SELECT', '', 'UPDATE']: a privilege on some columns counts as none."""
    out: list[str] = []
    depth, cur, columns = 0, "", False
    for ch in text + ",":
        if ch in "()":
            depth += 1 if ch == "(" else -1
            columns = True
        elif depth:
            continue
        elif ch == ",":
            out.append("" if columns else cur.strip())
            cur, columns = "", False
        else:
            cur += ch
    return out


def _grant_name(name: str) -> str:
    return name[1:-1].replace("``", "`") if name[:1] == "`" else name


def _like(pattern: str, name: str) -> bool:
    """A database-level grant's name as GRANT matches it: `%` and `_` wildcards, `\\` escaping them."""
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.fullmatch(out, name, re.S) is not None


def _mariadb_foreign_keys(c: Any, wanted: set[TableRef]) -> list[ForeignKey]:
    import sqlalchemy

    schemas = sorted({t.schema or "" for t in wanted} | {(t.schema or "").lower() for t in wanted})
    if not schemas:
        return []
    rows = c.execute(sqlalchemy.text(
        "SELECT r.CONSTRAINT_SCHEMA, r.TABLE_NAME, r.CONSTRAINT_NAME, k.REFERENCED_TABLE_SCHEMA, "
        "r.REFERENCED_TABLE_NAME, r.DELETE_RULE, r.UPDATE_RULE, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME "
        "FROM information_schema.REFERENTIAL_CONSTRAINTS r JOIN information_schema.KEY_COLUMN_USAGE k "
        "ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA AND k.TABLE_NAME = r.TABLE_NAME "
        "AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME AND k.REFERENCED_TABLE_NAME IS NOT NULL "
        "WHERE r.CONSTRAINT_SCHEMA IN :schemas ORDER BY r.CONSTRAINT_SCHEMA, r.TABLE_NAME, r.CONSTRAINT_NAME, "
        "k.ORDINAL_POSITION").bindparams(sqlalchemy.bindparam("schemas", expanding=True)),
        {"schemas": schemas}).fetchall()
    return _group(rows)


# the keys whose child or parent is a mapped table, filtered on pg_constraint before the per-key joins
_PG_FOREIGN_KEYS = """
WITH wanted AS (
  SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(CAST(:schemas AS text[]), CAST(:names AS text[]))))
SELECT cn.nspname, cc.relname, con.conname, pn.nspname, pc.relname, con.confdeltype, con.confupdtype,
       a.attname, pa.attname
FROM pg_constraint con
JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(child_col, parent_col, n)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.child_col
JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.parent_col
WHERE con.contype = 'f' AND cn.nspname NOT IN ('pg_catalog', 'information_schema')
  AND (con.conrelid IN (SELECT oid FROM wanted) OR con.confrelid IN (SELECT oid FROM wanted))
ORDER BY 1, 2, 3, k.n
"""

# user triggers (not the internal ones that implement foreign keys), enabled for an ordinary session (the
# daemon's: session_replication_role stays `origin`), with their function's language and source
_PG_TRIGGERS = """
SELECT t.tgname, n.nspname, c.relname,
       CASE WHEN t.tgtype & 2 <> 0 THEN 'BEFORE' WHEN t.tgtype & 64 <> 0 THEN 'INSTEAD OF' ELSE 'AFTER' END,
       concat_ws(' OR ', CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END, CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END,
                 CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END, CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END),
       l.lanname, p.prosrc, t.tgtype & 1 <> 0
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang
WHERE NOT t.tgisinternal AND t.tgenabled IN ('O', 'A')
ORDER BY t.tgname
"""


def _postgres_foreign_keys(c: Any, wanted: set[TableRef]) -> list[ForeignKey]:
    """The foreign keys whose child or parent is one of `wanted`, read in one statement that filters in the server
    (a database may hold thousands of keys between tables no mapping names)."""
    import sqlalchemy

    if not wanted:
        return []
    tables = sorted((t.schema or "", t.name) for t in wanted)
    rows = c.execute(sqlalchemy.text(_PG_FOREIGN_KEYS), {"schemas": [s for s, _ in tables],
                                                         "names": [n for _, n in tables]}).fetchall()
    return _group([(*r[:5], _PG_ACTIONS.get(str(r[5]), str(r[5])), _PG_ACTIONS.get(str(r[6]), str(r[6])), *r[7:])
                   for r in rows])


def _as_mapped(wanted: set[TableRef], fks: list[ForeignKey],
               trs: list[Trigger]) -> tuple[list[ForeignKey], list[Trigger]]:
    """Foreign keys and triggers with each table the server names in another letter case than a mapping spelled
    as the mapping spells it (a server with lower_case_table_names 1 or 2 matches names in any case)."""
    from dataclasses import replace

    by_fold = {(t.schema.lower(), t.name.lower()): t for t in wanted}

    def mapped(t: TableRef) -> TableRef:
        return by_fold.get((t.schema.lower(), t.name.lower()), t)

    return ([replace(fk, child=mapped(fk.child), parent=mapped(fk.parent)) for fk in fks],
            [replace(tr, table=mapped(tr.table)) for tr in trs])


def _group(rows: Iterable[Any]) -> list[ForeignKey]:
    """Rows of (schema, table, constraint, parent schema, parent table, delete rule, update rule, column,
    parent column), one per column in order, as ForeignKeys."""
    out: dict[tuple[str, str, str], ForeignKey] = {}
    for schema, table, name, pschema, ptable, on_delete, on_update, col, pcol in rows:
        k = (str(schema), str(table), str(name))
        fk = out.get(k)
        if fk is None:
            out[k] = ForeignKey(str(name), TableRef(str(schema), str(table)), (str(col),),
                                TableRef(str(pschema), str(ptable)), (str(pcol),),
                                str(on_delete).upper(), str(on_update).upper())
        else:
            out[k] = ForeignKey(fk.name, fk.child, fk.columns + (str(col),), fk.parent,
                                fk.parent_columns + (str(pcol),), fk.on_delete, fk.on_update)
    return list(out.values())


# ---------------------------------------------------------------- what a trigger's statements write

_NAME = r'(?:`(?:[^`]|``)+`|"(?:[^"]|"")+"|[\w$]+)'
_WRITE = re.compile(
    r"\b(?:INSERT\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?|REPLACE\s+(?:INTO\s+)?|"
    r"UPDATE\s+(?:(?:LOW_PRIORITY|IGNORE|ONLY)\s+)*|DELETE\s+(?:(?:LOW_PRIORITY|QUICK|IGNORE)\s+)*FROM\s+(?:ONLY\s+)?|"
    r"MERGE\s+INTO\s+|TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?)"
    rf"({_NAME}(?:\s*\.\s*{_NAME})?)", re.I)
# what makes a body's writes unknowable from its text
_OPAQUE = re.compile(r"\b(?:EXECUTE|CALL|PREPARE)\b", re.I)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def written_tables(body: str, default_schema: str, dialect: str) -> tuple[set[TableRef], bool]:
    """The tables a trigger's statements write (INSERT, REPLACE, UPDATE, DELETE, MERGE, TRUNCATE), and whether
    its text can hide others (dynamic SQL: EXECUTE, a CALL of a procedure). Names are read as `dialect`
    ("postgresql" or "mariadb") reads them; a name without a schema is in `default_schema`. A MariaDB body's
    `"x"` in a table's place is a name: the server stored the body, so it parsed it under ANSI_QUOTES."""
    text = _COMMENT.sub(" ", body)
    out: set[TableRef] = set()
    for m in _WRITE.finditer(text):
        parts = [unquote_ident(p, dialect, ansi_quotes=True) for p in re.split(r"\s*\.\s*(?=[`\"\w$])", m.group(1))]
        # `UPDATE x SET`, `NEW.col := ...`: a PL/pgSQL assignment is no write; `UPDATE OF col` in a trigger
        # definition is not in the body
        schema, name = (parts[0], parts[1]) if len(parts) == 2 else (default_schema, parts[0])
        if name.upper() in ("SET", "OF") or schema.upper() in ("NEW", "OLD"):
            continue
        out.add(TableRef(schema, name))
    return out, bool(_OPAQUE.search(text))


# ---------------------------------------------------------------- which columns a BEFORE trigger assigns

_NEW_COL = rf"\bNEW\s*\.\s*({_NAME})"
# where a statement starts in a body: an assignment `NEW.x = ...` there is no comparison (`IF NEW.x = 1 THEN`)
_STATEMENT = r"(?:^|;|\bBEGIN\b|\bTHEN\b|\bELSE\b|\bLOOP\b|>>)\s*"
_PG_ASSIGN = re.compile(rf"{_NEW_COL}\s*:=|{_STATEMENT}{_NEW_COL}\s*=(?!=)|\bINTO\s+(?:STRICT\s+)?{_NEW_COL}", re.I)
_PG_WHOLE = re.compile(rf"{_STATEMENT}NEW\s*:?=(?!=)|\bINTO\s+(?:STRICT\s+)?NEW\b(?!\s*\.)|"
                       r"\bRETURN\s+(?!NEW\s*;|NEW\s*$|OLD\b|NULL\b|NEXT\b|QUERY\b|;)", re.I)
# MariaDB: `SET NEW.a = 1, NEW.b := 2` (a comma before the next assignment of the same SET), `SELECT .. INTO NEW.a`
_MY_ASSIGN = re.compile(rf"(?:\bSET\s+|,\s*){_NEW_COL}\s*:?=(?!=)|\bINTO\s+{_NEW_COL}", re.I)
_STRING = re.compile(r"'(?:[^']|'')*'")


_RETURN_NULL = re.compile(r"\bRETURN\s+NULL\b", re.I)
_RETURN_OLD = re.compile(r"\bRETURN\s+OLD\b", re.I)


def skipped_events(tr: Trigger) -> tuple[str, ...]:
    """The events on which a PostgreSQL BEFORE ROW trigger's PL/pgSQL may skip the row without an error, by its
    text: `RETURN NULL` (any event), `RETURN OLD` on an INSERT or UPDATE (OLD is NULL in an INSERT, the row as
    it was in an UPDATE; a function that also serves DELETE returns OLD there, as it must, so then it is not
    read as a skip). Empty for MariaDB (a trigger can only refuse a row there, with an error) and unread bodies."""
    if tr.body is None or not tr.row or tr.timing != "BEFORE":
        return ()
    text = _STRING.sub("''", _COMMENT.sub(" ", tr.body))
    nulls = _RETURN_NULL.search(text) is not None
    olds = _RETURN_OLD.search(text) is not None and "DELETE" not in tr.events
    return tuple(e for e in ("INSERT", "UPDATE", "DELETE") if e in tr.events and (nulls or (olds and e != "DELETE")))


def assigned_columns(body: str, postgres: bool) -> tuple[set[str], str]:
    """The columns of NEW a BEFORE trigger's statements assign (PL/pgSQL `NEW.x := ...`, `NEW.x = ...` as a
    statement, `SELECT ... INTO NEW.x`; MariaDB `SET NEW.x = ...`), unquoted (PostgreSQL's unquoted names
    lower-cased), and why the text cannot tell them all ("" when it can): the whole NEW assigned, a row other
    than NEW returned. (Dynamic SQL and a CALL, which may take NEW.x as an OUT parameter: `written_tables`.)"""
    text = _STRING.sub("''", _COMMENT.sub(" ", body))
    out: set[str] = set()
    for m in (_PG_ASSIGN if postgres else _MY_ASSIGN).finditer(text):
        name = next(g for g in m.groups() if g)
        out.add(unquote_ident(name, "postgresql" if postgres else "mariadb", ansi_quotes=True))
    if postgres:
        whole = _PG_WHOLE.search(text)
        if whole is None:
            why = ""
        elif whole.group(0).strip().upper().startswith("RETURN"):
            why = "it returns a row other than NEW"
        else:
            why = "it assigns the whole NEW row"
    else:
        why = ""
    return out, why
