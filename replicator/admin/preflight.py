"""`replicator check`: every server setting, privilege and catalog fact the daemon relies on.

Each finding says what is wrong and how to fix it. `run` performs the same checks and refuses
to start on any error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import psycopg2
import psycopg2.errors
import psycopg2.sql
import pymysql
import sqlalchemy
from sqlalchemy.engine import Inspector

from replicator import checkpoint as ckpt
from replicator.changes import LSN, BinlogPosition, Position, TableRef, position_from_json
from replicator.identifiers import for_params, my_ident, pg_ident
from replicator.connect import my_connect
from replicator.connect import ACCESS, DRIVER_ERRORS, driver_error, error_class, pg_connect, sql_engine
from replicator.config import Config, Connection
from replicator.errors import CheckpointError, ReplicatorError, RetriableError, SourceLostError
from replicator.loopguard import stream_name
from replicator.mapping.model import Mapping, MappingSet
from replicator.mapping.check import (Finding, check_config, inspected_columns, inspected_primary_key,
                                      inspected_unique_keys)
from replicator.admin.provision import delete_filter_tables, replica_identity_sql, two_way_tables
from replicator.sources.binlog import binlog_files


@dataclass(frozen=True)
class LostPosition(Finding):
    """A failed check saying the source no longer holds what a stored checkpoint needs (a dropped or
    invalidated slot, a purged binlog, a slot ahead of the checkpoint). Not a configuration error:
    `check` and `run` exit 79 on it, as the stream itself does, so that systemd does not restart."""


_AGAIN = "run `replicator check` again once the server is up (a restart ends the session)"


def run_checks(config: Config, mset: MappingSet, *, raise_unreachable: bool = False,
               catalog_only: bool = False) -> list[Finding]:
    """All findings. With `raise_unreachable`, a server that cannot be reached raises
    RetriableError instead of becoming a finding (the daemon waits for it rather than exiting)."""
    out: list[Finding] = []
    for conn in config.connections:
        session = _ApplySession(conn)
        try:
            if not catalog_only:
                out += _postgres(conn, session) if conn.kind == "postgresql" else _mariadb(conn)
            out += _catalog(conn, mset)
            out += _write_privileges(conn, mset, session)
            out += _row_security(conn, mset, session)
            if conn.kind == "postgresql":
                out += _publication(conn, mset, session)
                out += _replica_identity(conn, mset, session)
            if not catalog_only:
                out += _position(conn, next(c for c in config.connections if c is not conn))
        except RetriableError as exc:
            if raise_unreachable:
                raise
            if str(exc).startswith("cannot connect"):
                out.append(Finding(False, conn.name, f"cannot connect to {conn.describe()}",
                                   "check host, port, user and password"))
            else:  # reached, then lost in the middle of a check
                out.append(Finding(False, conn.name, f"cannot check: {exc}", _AGAIN))
        except ReplicatorError as exc:
            out.append(Finding(False, conn.name, f"cannot check: {exc}", "check host, port, user and password"))
        except DRIVER_ERRORS as exc:
            # a server lost in the middle of a check (it is restarting): the daemon waits for it, `check` says so
            error = driver_error(conn, exc, "checking")
            if raise_unreachable and isinstance(error, RetriableError):
                raise error from None
            out.append(Finding(False, conn.name, f"cannot check: {error}",
                               _AGAIN if isinstance(error, RetriableError) else "see the server's message"))
        finally:
            session.close()
    out += check_config(config, mset)
    return out


class _ApplySession:
    """The apply account's PostgreSQL session that one connection's checks share: one login instead of one
    per check (a login is a server process and a SCRAM exchange, ~10 ms of start-up each). A check ends
    with a rollback, as it did on a session of its own; one that fails drops the session (the next check
    logs in anew), as closing its own did."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.db: Any = None

    def __enter__(self) -> Any:
        if self.db is None:
            self.db = pg_connect(self.conn, self.conn.apply)
        return self.db

    def __exit__(self, exc_type: Any, *_exc: Any) -> None:
        if exc_type is None:
            self.db.rollback()
        else:
            self.close()

    def close(self) -> None:
        db, self.db = self.db, None
        if db is not None:
            db.close()


def _publication(conn: Connection, mset: MappingSet, session: _ApplySession) -> list[Finding]:
    """Every PostgreSQL table a mapping reads must be published, or its changes never arrive."""
    wanted = mset.source_tables(conn.name)
    if not wanted:
        return []
    with session as db:
        with db.cursor() as cur:
            cur.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                        (conn.publication,))
            published = {(s, t) for s, t in cur.fetchall()}
    missing = [t for t in wanted if (t.schema, t.name) not in published]
    if not missing:
        return [Finding(True, conn.name, f"publication {conn.publication} covers the {len(wanted)} mapped table(s)")]
    return [Finding(False, conn.name, f"publication {conn.publication} lacks {', '.join(map(str, missing))}",
                    "run `replicator setup` (it updates the publication)")]


def _replica_identity(conn: Connection, mset: MappingSet, session: _ApplySession) -> list[Finding]:
    """A two-way mapping's PostgreSQL tables need REPLICA IDENTITY FULL: without the whole old row an
    update cannot be reduced to what changed, nor checked for a conflict (it is then written whole). A
    filter on a non-key column needs it too: a DELETE's old row would hold only the key, fail the filter
    and be dropped, and an UPDATE leaving the filter could not be told, so such a mapping is refused until
    the table has FULL (unless its deletes and leaves are both `ignore`)."""
    tables = two_way_tables(conn, mset)
    filtered = delete_filter_tables(conn, mset)
    if not tables and not filtered:
        return []
    with session as db:
        with db.cursor() as cur:
            cur.execute("SELECT n.nspname, c.relname, c.relreplident FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')")
            ident = {(n, t): r for n, t, r in cur.fetchall()}
    out = []
    names = {"d": "DEFAULT", "n": "NOTHING", "i": "INDEX", "f": "FULL"}
    for t, why in sorted(filtered.items()):
        r = ident.get((t.schema, t.name))
        if r is None or r == "f" or t in tables:
            continue  # FULL, missing (the catalog check says so) or reported below
        out.append(Finding(False, conn.name, f"{t} has REPLICA IDENTITY {names.get(r, r)}: {why}, which a deleted "
                           f"row carries only with FULL, and so does the old row of an update that takes the row "
                           f"out of the filter (without it every delete would be filtered out and lost, and such "
                           f"an update stops the stream)",
                           f"run `replicator setup`, or: {replica_identity_sql(t)}"))
    for t in tables:
        r = ident.get((t.schema, t.name))
        if r is None:
            continue  # the catalog check reports a missing table
        if r == "f":
            out.append(Finding(True, conn.name, f"{t} has REPLICA IDENTITY FULL (two-way mapping)"))
        else:
            out.append(Finding(False, conn.name, f"{t} has REPLICA IDENTITY {names.get(r, r)}: a two-way mapping "
                               "needs FULL to write only what changed and to detect conflicts",
                               f"run `replicator setup`, or: {replica_identity_sql(t)}"))
    return out


def _setting(side: str, name: str, value: Any, want: Any, fix: str) -> Finding:
    ok = str(value).upper() == str(want).upper()
    return Finding(ok, side, f"{name} = {value}" + ("" if ok else f" (needs {want})"), fix)


def _postgres(conn: Connection, session: _ApplySession) -> list[Finding]:
    out = []
    with session as db:
        with db.cursor() as cur:
            cur.execute("SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int, "
                        "current_setting('max_wal_senders')::int, current_setting('max_slot_wal_keep_size'), "
                        "current_setting('server_version_num')::int")
            wal_level, slots, senders, keep, version = cur.fetchone()
            out.append(_setting(conn.name, "wal_level", wal_level, "logical",
                                "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"))
            out.append(Finding(slots > 0, conn.name, f"max_replication_slots = {slots}",
                               "ALTER SYSTEM SET max_replication_slots = 10; restart"))
            out.append(Finding(senders > 0, conn.name, f"max_wal_senders = {senders}",
                               "ALTER SYSTEM SET max_wal_senders = 10; restart"))
            out.append(Finding(True, conn.name, f"max_slot_wal_keep_size = {keep}"
                               + (" (unlimited: an idle slot keeps WAL without bound; watch replicator_slot_retained_wal_bytes)" if keep == "-1" else "")))
            out.append(Finding(version >= 100000, conn.name, f"server version {version}", "PostgreSQL 10 or newer"))
            cur.execute("SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = %s", (conn.capture.user,))
            row = cur.fetchone()
            out.append(Finding(bool(row and row[0]), conn.name, f"capture role {conn.capture.user} has REPLICATION",
                               f"ALTER ROLE {conn.capture.user} REPLICATION"))
            cur.execute("SELECT plugin, wal_status, database FROM pg_replication_slots WHERE slot_name = %s",
                        (conn.slot,))
            row = cur.fetchone()
            if row is not None and row[2] != conn.database:
                out.append(Finding(False, conn.name, f"replication slot {conn.slot} belongs to database {row[2]}, "
                                   f"not {conn.database} (a slot is one database's; this name is taken on the server)",
                                   f"give connection {conn.name} its own `slot:` in replicator.yaml"))
            elif row is None:
                out.append(Finding(False, conn.name, f"replication slot {conn.slot} does not exist",
                                   "new installation: run `replicator setup`. If replicator ran before, the slot "
                                   "was dropped and the changes it held are lost: `replicator setup --reset`, then "
                                   "re-sync the mapped tables with `replicator sync`"))
            else:
                out.append(Finding(row[0] == "pgoutput" and row[1] != "lost", conn.name,
                                   f"replication slot {conn.slot} (plugin {row[0]}, wal_status {row[1]})",
                                   "`replicator setup --reset` recreates it; then re-sync with `replicator sync`"))
            cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (conn.publication,))
            out.append(Finding(cur.fetchone() is not None, conn.name, f"publication {conn.publication} exists",
                               "run `replicator setup`"))
    return out


def _mariadb(conn: Connection) -> list[Finding]:
    out = []
    db = my_connect(conn, conn.apply)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id, @@version")
            log_bin, fmt, image, server_id, version = cur.fetchone()
            try:
                cur.execute("SELECT @@binlog_row_metadata")
                metadata = cur.fetchone()[0]
            except Exception:
                metadata = "unsupported"
            out.append(Finding(bool(log_bin), conn.name, f"log_bin = {'ON' if log_bin else 'OFF'}",
                               "set log_bin in the server configuration (deploy/mariadb-server.cnf); restart"))
            out.append(_setting(conn.name, "binlog_format", fmt, "ROW", "SET GLOBAL binlog_format = ROW and in my.cnf"))
            out.append(_setting(conn.name, "binlog_row_image", image, "FULL",
                                "SET GLOBAL binlog_row_image = FULL and in my.cnf (MINIMAL makes missing columns look NULL)"))
            out.append(_setting(conn.name, "binlog_row_metadata", metadata, "FULL",
                                "SET GLOBAL binlog_row_metadata = FULL and in my.cnf (without it rows have no column names)"))
            out.append(Finding(server_id != conn.server_id, conn.name,
                               f"server_id {server_id} differs from the reader's server_id {conn.server_id}",
                               "set another `server_id` for this connection in replicator.yaml"))
            out.append(Finding(True, conn.name, f"server version {version}"))
        db.rollback()
    finally:
        db.close()
    cap = my_connect(conn, conn.capture, database=None)
    try:
        with cap.cursor() as cur:
            cur.execute("SHOW GRANTS")
            grants = " ".join(r[0].upper() for r in cur.fetchall())

        def has(p: str) -> bool:
            return p in grants or "ALL PRIVILEGES ON *.*" in grants or "SUPER" in grants
        out.append(Finding(has("REPLICATION SLAVE") or has("REPLICATION REPLICA"), conn.name,
                           f"capture user {conn.capture.user} has REPLICATION SLAVE",
                           f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{conn.capture.user}'@'%'"))
        out.append(Finding(has("BINLOG MONITOR") or has("REPLICATION CLIENT"), conn.name,
                           f"capture user {conn.capture.user} has BINLOG MONITOR",
                           f"GRANT BINLOG MONITOR ON *.* TO '{conn.capture.user}'@'%'"))
    finally:
        cap.close()
    return out


def _write_privileges(conn: Connection, mset: MappingSet, session: _ApplySession) -> list[Finding]:
    """The apply account may write every table mappings write into (checked on PostgreSQL, where the
    catalog answers for another role; on MariaDB a missing grant surfaces at the first apply)."""
    if conn.kind != "postgresql":
        return []
    targets = sorted({e.table for e in mset.target_endpoints(conn.name)})
    out = []
    with session as db:
        with db.cursor() as cur:
            for t in targets:
                name = f"{pg_ident(t.schema)}.{pg_ident(t.name)}"
                cur.execute("SELECT to_regclass(%s) IS NULL OR has_table_privilege(%s, to_regclass(%s), "
                            "'SELECT, INSERT, UPDATE, DELETE')", (name, conn.apply.user, name))
                if not cur.fetchone()[0]:
                    out.append(Finding(False, conn.name, f"apply user {conn.apply.user} cannot write {t}",
                                       f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {conn.apply.user}"))
    return out


# the mapped tables with row-level security on, and for each account whether its policies apply to it: they do not
# to a superuser, a BYPASSRLS role, nor the table's owner (or a member of it) unless the table FORCEs them
_ROW_SECURITY = """
SELECT n.nspname, c.relname, u.name, u.rolsuper OR u.rolbypassrls
       OR (pg_has_role(u.oid, c.relowner, 'USAGE') AND NOT c.relforcerowsecurity)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN unnest(%s::text[], %s::text[]) AS w(schema, name) ON w.schema = n.nspname AND w.name = c.relname
CROSS JOIN (SELECT r.oid, r.rolname AS name, r.rolsuper, r.rolbypassrls FROM pg_roles r
            WHERE r.rolname = ANY(%s::text[])) u
WHERE c.relrowsecurity
"""


def _row_security(conn: Connection, mset: MappingSet, session: _ApplySession) -> list[Finding]:
    """A PostgreSQL table with row-level security shows and lets an account write only the rows its policies
    allow: an UPDATE or DELETE of a row they hide touches nothing and raises nothing (a delete lost without a
    word), and `sync` copies only the rows they show. PostgreSQL's own logical replication refuses such a table
    to a role its policies apply to, and so does `check`: the apply account for every mapped table (it writes
    them, and verify reads them), the capture account for the tables read from here (it reads them for `sync`;
    the WAL itself holds every row)."""
    if conn.kind != "postgresql":
        return []
    tables = mset.tables(conn.name)
    if not tables:
        return []
    sources = set(mset.source_tables(conn.name))
    with session as db:
        with db.cursor() as cur:
            cur.execute(_ROW_SECURITY, ([t.schema for t in tables], [t.name for t in tables],
                                        [conn.apply.user, conn.capture.user]))
            rows = cur.fetchall()
    out = []
    for schema, name, user, exempt in sorted(rows):
        table = TableRef(schema, name)
        roles = [r for r, u in (("apply", conn.apply.user), ("capture", conn.capture.user)) if u == user]
        if "capture" in roles and "apply" not in roles and table not in sources:
            continue  # the capture account never reads a table only written here
        what = ("replicator's updates and deletes of a row they hide touch nothing and say nothing, and verify "
                "does not see it" if "apply" in roles else "")
        if table in sources and "capture" in roles:
            what += ("; " if what else "") + "`sync` copies only the rows they show"
        role = " and ".join(roles)
        ok = bool(exempt)
        out.append(Finding(ok, conn.name, f"{table} has row-level security: its policies "
                                          f"{'do not apply' if ok else 'apply'} to the {role} account {user}"
                                          + ("" if ok else f": {what}"),
                           f"ALTER ROLE {user} BYPASSRLS (as a superuser), or make {user} the owner of {table} "
                           f"(without FORCE ROW LEVEL SECURITY), or ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
    return out


def _catalog(conn: Connection, mset: MappingSet) -> list[Finding]:
    """Mapped tables and columns exist, and every mapped table has a primary key matching its key."""
    out = []
    engine = sql_engine(conn)
    try:
        insp: Inspector = sqlalchemy.inspect(engine)
        for m in mset.mappings:
            e = m.endpoint(conn.name)
            where = f"mapping {m.name} ({m.where.file}:{m.where.line})"
            try:
                out += _catalog_of(insp, conn, m, e.table, e.key, where)
            except sqlalchemy.exc.DBAPIError as exc:
                # MariaDB hides a table the account has no privilege on: DESCRIBE fails with 1142 (a
                # traceback before); say which grant is missing instead
                if exc.orig is None or error_class(conn.kind, exc.orig) != ACCESS:
                    raise
                out.append(Finding(False, conn.name, f"{where}: the apply user {conn.apply.user} cannot read "
                                   f"{e.table}: {exc.orig}", _grant_fix(conn, e.table)))
    finally:
        engine.dispose()
    return out


def _grant_fix(conn: Connection, table: TableRef) -> str:
    if conn.kind == "postgresql":
        return f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {conn.apply.user} (deploy/grants-postgresql.sql)"
    return (f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO '{conn.apply.user}'@'%' "
            f"(deploy/grants-mariadb.sql; the host part as in CREATE USER)")


def _catalog_of(insp: Inspector, conn: Connection, m: Mapping, table: TableRef, key: tuple[str, ...],
                where: str) -> list[Finding]:
    """One mapping's table on this side: it exists, its columns exist, its key is the primary or a unique key."""
    if not insp.has_table(table.name, schema=table.schema):
        # iDempiere's tables are in schema `adempiere`, and an unqualified `table:` means `public` (or, on
        # MariaDB, the connection's database): name the schema that has it
        elsewhere = [f"{schema}.{table.name}" for schema in insp.get_schema_names()
                     if schema != table.schema and insp.has_table(table.name, schema=schema)][:3]
        if elsewhere:
            return [Finding(False, conn.name, f"{where}: table {table} does not exist; {' and '.join(elsewhere)} "
                            f"does", f"write `table: {elsewhere[0]}` in the mapping (a table without a schema is "
                            f"{table.schema}'s)")]
        return [Finding(False, conn.name, f"{where}: table {table} does not exist",
                        "create it or fix `table:` in the mapping")]
    out: list[Finding] = []
    columns = {c["name"] for c in inspected_columns(insp, table)}
    for f in m.fields:
        col = f.column(conn.name)
        if col is None:
            continue  # `<side>: ~`: no column on this side (a constant written on the other)
        if col not in columns:
            out.append(Finding(False, conn.name, f"{f.where.file}:{f.where.line}: {f.where.key}: "
                               f"column {col} does not exist in {table}", "fix the field's column name"))
    pk = inspected_primary_key(insp, table)
    if not pk:
        out.append(Finding(False, conn.name, f"{where}: {table} has no primary key",
                           "add a primary key; replicator applies changes by key"))
    elif set(pk) != set(key):
        uniques = inspected_unique_keys(insp, table)
        ok = any(set(u) == set(key) for u in uniques)
        out.append(Finding(ok, conn.name, f"{where}: key {list(key)} of {table} "
                           + ("is a unique key" if ok else f"is neither the primary key {list(pk)} nor unique"),
                           "use the primary key columns as `key`"))
    else:
        out.append(Finding(True, conn.name, f"{where}: {table} has primary key {list(pk)}"))
    return out


def failures(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ok and not f.warning]


def lost_position(findings: list[Finding]) -> bool:
    """True when a failure is a lost source position (exit 79) rather than a configuration error (78)."""
    return any(isinstance(f, LostPosition) for f in failures(findings))


def _stored_checkpoint(target: Connection, stream: str) -> Position | None:
    """The position `stream` has applied, from the target's checkpoint table; None before setup."""
    # named before connecting: a connection error (retriable, raised as is) must not meet an unbound name
    missing: tuple[type[Exception], ...]
    if target.kind == "postgresql":
        missing = (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName)
    else:
        missing = (pymysql.err.ProgrammingError,)  # 1146: no such table (not set up yet)
    try:
        if target.kind == "postgresql":
            db = pg_connect(target, target.apply)
            table: Any = psycopg2.sql.SQL("{}.checkpoint").format(psycopg2.sql.Identifier(target.state_schema))
        else:
            db = my_connect(target, target.apply, database=None)
            table = f"{for_params(my_ident(target.state_schema))}.checkpoint"
        try:
            with db.cursor() as cur:
                query = "SELECT position FROM {} WHERE stream = %s"
                cur.execute(psycopg2.sql.SQL(query).format(table) if target.kind == "postgresql"
                            else query.format(table), (stream,))
                row = cur.fetchone()
        finally:
            db.close()
    except missing:
        return None
    if row is None or row[0] in (None, "", "{}"):
        return None
    return position_from_json(row[0])


def _position(source: Connection, target: Connection) -> list[Finding]:
    """The source still holds everything after the checkpoint stored in the target: the slot exists,
    is valid and not ahead of it (PostgreSQL); the checkpoint's binlog file was not purged (MariaDB).
    The same decisions as the stream's own start (checkpoint.check_slot / check_binlog)."""
    stream = stream_name(source.name, target.name)
    try:
        position = _stored_checkpoint(target, stream)
    except (psycopg2.Error, pymysql.MySQLError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [Finding(False, target.name, f"cannot read the checkpoint of {stream}: {text}",
                        f"the apply user {target.apply.user} needs SELECT on {target.state_schema}.checkpoint "
                        f"(deploy/grants-*.sql)")]
    if position is None:
        return []  # a new installation: `replicator setup` records it (the slot check says so)
    try:
        if source.kind == "postgresql" and isinstance(position, LSN):
            db = pg_connect(source, source.apply)
            try:
                with db.cursor() as cur:
                    cur.execute("SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots "
                                "WHERE slot_name = %s AND database = current_database()", (source.slot,))
                    row = cur.fetchone()
                db.rollback()
            finally:
                db.close()
            ckpt.check_slot(source.slot, row, position)
            where = f"slot {source.slot}"
        elif source.kind != "postgresql" and isinstance(position, BinlogPosition):
            ckpt.check_binlog(position, binlog_files(source))
            where = f"binlog {position.file}"
        else:
            return [LostPosition(False, source.name, f"checkpoint of {stream} in {target.name} ({position}) "
                                 f"is not a {source.kind} position", "`replicator setup --reset`")]
    except (SourceLostError, CheckpointError) as exc:
        return [LostPosition(False, source.name, f"{stream}: {exc.kind} error: {exc}")]
    return [Finding(True, source.name, f"{stream}: checkpoint {position} is still available ({where})")]


Printer = Callable[[str], None]
