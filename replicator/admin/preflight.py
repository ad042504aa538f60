"""`replicator check`: every server setting, privilege and catalog fact the daemon relies on.

Each finding says what is wrong and how to fix it. `run` performs the same checks and refuses
to start on any error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import sqlalchemy
from sqlalchemy.engine import Inspector

from replicator.connect import my_connect
from replicator.connect import pg_connect, sql_engine
from replicator.config import Config, Connection
from replicator.errors import ReplicatorError, RetriableError
from replicator.mapping.model import MappingSet
from replicator.mapping.check import Finding, check_config
from replicator.admin.provision import pg_ident, replica_identity_sql, two_way_tables


def run_checks(config: Config, mset: MappingSet, *, raise_unreachable: bool = False,
               catalog_only: bool = False) -> list[Finding]:
    """All findings. With `raise_unreachable`, a server that cannot be reached raises
    RetriableError instead of becoming a finding (the daemon waits for it rather than exiting)."""
    out: list[Finding] = []
    for conn in config.connections:
        try:
            if not catalog_only:
                out += _postgres(conn) if conn.kind == "postgresql" else _mariadb(conn)
            out += _catalog(conn, mset)
            out += _write_privileges(conn, mset)
            if conn.kind == "postgresql":
                out += _publication(conn, mset)
                out += _replica_identity(conn, mset)
        except RetriableError:
            if raise_unreachable:
                raise
            out.append(Finding(False, conn.name, f"cannot connect to {conn.describe()}",
                               "check host, port, user and password"))
        except ReplicatorError as exc:
            out.append(Finding(False, conn.name, f"cannot check: {exc}", "check host, port, user and password"))
    out += check_config(config, mset)
    return out


def _publication(conn: Connection, mset: MappingSet) -> list[Finding]:
    """Every PostgreSQL table a mapping reads must be published, or its changes never arrive."""
    wanted = mset.source_tables(conn.name)
    if not wanted:
        return []
    db = pg_connect(conn, conn.apply)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                        (conn.publication,))
            published = {(s, t) for s, t in cur.fetchall()}
        db.rollback()
    finally:
        db.close()
    missing = [t for t in wanted if (t.schema, t.name) not in published]
    if not missing:
        return [Finding(True, conn.name, f"publication {conn.publication} covers the {len(wanted)} mapped table(s)")]
    return [Finding(False, conn.name, f"publication {conn.publication} lacks {', '.join(map(str, missing))}",
                    "run `replicator setup` (it updates the publication)")]


def _replica_identity(conn: Connection, mset: MappingSet) -> list[Finding]:
    """A two-way mapping's PostgreSQL tables need REPLICA IDENTITY FULL: without the whole old row an
    update cannot be reduced to what changed, nor checked for a conflict (it is then written whole)."""
    tables = two_way_tables(conn, mset)
    if not tables:
        return []
    db = pg_connect(conn, conn.apply)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT n.nspname, c.relname, c.relreplident FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')")
            ident = {(n, t): r for n, t, r in cur.fetchall()}
        db.rollback()
    finally:
        db.close()
    out = []
    names = {"d": "DEFAULT", "n": "NOTHING", "i": "INDEX", "f": "FULL"}
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


def _postgres(conn: Connection) -> list[Finding]:
    out = []
    db = pg_connect(conn, conn.apply)
    try:
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
            cur.execute("SELECT plugin, wal_status FROM pg_replication_slots WHERE slot_name = %s", (conn.slot,))
            row = cur.fetchone()
            if row is None:
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
        db.rollback()
    finally:
        db.close()
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
        has = lambda p: p in grants or "ALL PRIVILEGES ON *.*" in grants or "SUPER" in grants  # noqa: E731
        out.append(Finding(has("REPLICATION SLAVE") or has("REPLICATION REPLICA"), conn.name,
                           f"capture user {conn.capture.user} has REPLICATION SLAVE",
                           f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{conn.capture.user}'@'%'"))
        out.append(Finding(has("BINLOG MONITOR") or has("REPLICATION CLIENT"), conn.name,
                           f"capture user {conn.capture.user} has BINLOG MONITOR",
                           f"GRANT BINLOG MONITOR ON *.* TO '{conn.capture.user}'@'%'"))
    finally:
        cap.close()
    return out


def _write_privileges(conn: Connection, mset: MappingSet) -> list[Finding]:
    """The apply account may write every table mappings write into (checked on PostgreSQL, where the
    catalog answers for another role; on MariaDB a missing grant surfaces at the first apply)."""
    if conn.kind != "postgresql":
        return []
    targets = sorted({e.table for e in mset.target_endpoints(conn.name)})
    out = []
    db = pg_connect(conn, conn.apply)
    try:
        with db.cursor() as cur:
            for t in targets:
                name = f"{pg_ident(t.schema)}.{pg_ident(t.name)}"
                cur.execute("SELECT to_regclass(%s) IS NULL OR has_table_privilege(%s, to_regclass(%s), "
                            "'SELECT, INSERT, UPDATE, DELETE')", (name, conn.apply.user, name))
                if not cur.fetchone()[0]:
                    out.append(Finding(False, conn.name, f"apply user {conn.apply.user} cannot write {t}",
                                       f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {conn.apply.user}"))
        db.rollback()
    finally:
        db.close()
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
            if not insp.has_table(e.table.name, schema=e.table.schema):
                out.append(Finding(False, conn.name, f"{where}: table {e.table} does not exist",
                                   "create it or fix `table:` in the mapping"))
                continue
            columns = {c["name"] for c in insp.get_columns(e.table.name, schema=e.table.schema)}
            for f in m.fields:
                col = f.column(conn.name)
                if col not in columns:
                    out.append(Finding(False, conn.name, f"{f.where.file}:{f.where.line}: {f.where.key}: "
                                       f"column {col} does not exist in {e.table}", "fix the field's column name"))
            pk = tuple(insp.get_pk_constraint(e.table.name, schema=e.table.schema).get("constrained_columns") or ())
            if not pk:
                out.append(Finding(False, conn.name, f"{where}: {e.table} has no primary key",
                                   "add a primary key; replicator applies changes by key"))
            elif set(pk) != set(e.key):
                uniques = [tuple(u["column_names"]) for u in insp.get_unique_constraints(e.table.name, schema=e.table.schema)]
                ok = any(set(u) == set(e.key) for u in uniques)
                out.append(Finding(ok, conn.name, f"{where}: key {list(e.key)} of {e.table} "
                                   + ("is a unique constraint" if ok else f"is neither the primary key {list(pk)} nor unique"),
                                   "use the primary key columns as `key`"))
            else:
                out.append(Finding(True, conn.name, f"{where}: {e.table} has primary key {list(pk)}"))
    finally:
        engine.dispose()
    return out


def failures(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ok and not f.warning]


Printer = Callable[[str], None]
