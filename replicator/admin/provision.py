"""`replicator setup`: create what the daemon owns and record where each stream starts.

Idempotent. PostgreSQL: the state schema and checkpoint table, the publication of the mapped
tables, and the pgoutput slot. MariaDB: the state database and checkpoint table. Each stream's
starting position (the slot's LSN, the current binlog position) is written into the *target's*
checkpoint table, so changes made after setup and before the first `run` are not lost.
"""
from __future__ import annotations

import logging
from typing import Callable

import psycopg2
import pymysql

from replicator import checkpoint as ckpt
from replicator.conflicts import store as conflict_store
from replicator.stream import deadletter, lease
from replicator.mapping import links
from replicator.sync import state as sync
from replicator.appliers.mariadb import quote
from replicator.connect import my_connect
from replicator.connect import pg_connect
from replicator.changes import LSN, BinlogPosition, Position, TableRef
from replicator.config import Config, Connection
from replicator.errors import ConfigError, FatalError
from replicator.identifiers import pg_ident
from replicator.loopguard import CHECKPOINT_TABLE, WATERMARK_TABLE, stream_name
from replicator.mapping.model import MappingSet

log = logging.getLogger(__name__)


def state_sql(conn: Connection) -> list[str]:
    if conn.kind == "postgresql":
        schema = pg_ident(conn.state_schema)
        return [s.strip() for s in ckpt.postgres_ddl(schema) + links.postgres_ddl(schema) + sync.postgres_ddl(schema)
                + conflict_store.postgres_ddl(schema) + deadletter.postgres_ddl(schema) + lease.postgres_ddl(schema)]
    # quote() escapes % for PyMySQL: run these with an (empty) argument tuple
    schema = quote(conn.state_schema)
    return [s.strip() for s in ckpt.mariadb_ddl(schema) + links.mariadb_ddl(schema) + sync.mariadb_ddl(schema)
            + conflict_store.mariadb_ddl(schema) + deadletter.mariadb_ddl(schema) + lease.mariadb_ddl(schema)]


def publication_sql(conn: Connection, mset: MappingSet, exists: bool) -> str:
    tables = mset.source_tables(conn.name)
    names = ", ".join(f"{pg_ident(t.schema)}.{pg_ident(t.name)}" for t in tables)
    pub = pg_ident(conn.publication)
    if exists:
        return f"ALTER PUBLICATION {pub} SET TABLE {names}" if tables else f"-- publication {pub} has no tables"
    return f"CREATE PUBLICATION {pub} FOR TABLE {names}" if tables else f"CREATE PUBLICATION {pub}"


def two_way_tables(conn: Connection, mset: MappingSet) -> list[TableRef]:
    """Tables of `conn` that a two-way mapping reads: their updates are diffed and checked for conflicts,
    which needs the whole old row in the change stream."""
    return sorted({f.source.table for m in mset.mappings for f in m.flows
                   if f.two_way and f.source.side == conn.name})


def delete_filter_tables(conn: Connection, mset: MappingSet) -> dict[TableRef, str]:
    """Tables of `conn` whose old rows a filter must see whole: a filter on a column outside the primary
    key reads the old row of a DELETE, and of an UPDATE that may take the row out of the filter (a leave),
    which PostgreSQL's default identity reduces to the key or leaves out; every such delete would fail the
    filter and never reach the other side, and no leave could be told. Not needed when both the mapping's
    deletes and its leaves are `ignore`. Value: the mapping and column, for the message."""
    out: dict[TableRef, str] = {}
    for m in mset.mappings:
        for f in m.flows:
            if f.source.side != conn.name or (f.delete == "ignore" and f.leave == "ignore") or not f.filter_columns:
                continue
            extra = [c for c in f.filter_columns if c not in f.source.key]
            if extra and f.source.table not in out:
                out[f.source.table] = f"mapping {m.name} filters {f.stream} on {extra[0]}"
    return out


def full_identity_tables(conn: Connection, mset: MappingSet) -> list[TableRef]:
    """Every table of `conn` that needs REPLICA IDENTITY FULL (two-way mappings, filters read by deletes)."""
    return sorted(set(two_way_tables(conn, mset)) | set(delete_filter_tables(conn, mset)))


def replica_identity_sql(table: TableRef) -> str:
    """PostgreSQL logs only the key of an updated row's old version by default: FULL logs every column,
    so a two-way mapping writes only what changed and can tell a conflict (docs/conflicts.md)."""
    return f"ALTER TABLE {pg_ident(table.schema)}.{pg_ident(table.name)} REPLICA IDENTITY FULL"


def describe(config: Config, mset: MappingSet) -> str:
    """The SQL `setup` runs, for a DBA who prefers to run it by hand."""
    out = []
    for conn in config.connections:
        out.append(f"-- on {conn.name} ({conn.describe()}), as an owner of the mapped tables")
        out += [(s if conn.kind == "postgresql" else s.replace("%%", "%")) + ";" for s in state_sql(conn)]
        if conn.kind == "postgresql":
            out.append(publication_sql(conn, mset, exists=False) + ";")
            out += [replica_identity_sql(t) + ";" for t in full_identity_tables(conn, mset)]
            out.append(f"SELECT pg_create_logical_replication_slot('{conn.slot}', 'pgoutput');")
    out.append("-- then record the starting positions: `replicator setup` does it (it reads the slot's")
    out.append("-- LSN and SHOW MASTER STATUS and writes them into each target's checkpoint table)")
    return "\n".join(out)


def setup(config: Config, mset: MappingSet, reset: str | None = None, say: Callable[[str], None] = print) -> None:
    """Create what is missing and record starting positions.

    `reset` names a stream (`crm_to_erp`) or `all`: its checkpoint moves to the source's current
    position, skipping whatever was pending (follow it with `replicator sync`). Statements run only where
    something is missing, so a least-privilege account can run setup again after a DBA ran
    `setup --print-sql` by hand.
    """
    a, b = config.connections
    streams = [stream_name(s.name, t.name) for s, t in ((a, b), (b, a))]
    if reset not in (None, "all", *streams):
        raise ConfigError(f"--reset takes a stream name ({', '.join(streams)}) or 'all', not {reset!r}")
    starts: dict[str, Position] = {}
    try:
        for conn in config.connections:
            resetting = reset in ("all", stream_name(conn.name, (b if conn is a else a).name))
            if conn.kind == "postgresql":
                starts[conn.name] = _setup_postgres(conn, mset, resetting, say)
            else:
                starts[conn.name] = _setup_mariadb(conn, say)
        for source, target in ((a, b), (b, a)):
            stream = stream_name(source.name, target.name)
            _record_start(target, stream, starts[source.name], reset in ("all", stream), say)
    except (psycopg2.Error, pymysql.MySQLError) as exc:
        raise FatalError(f"setup failed: {str(exc).strip()} (a DBA can run `replicator setup --print-sql` "
                         f"as an owner, then run setup again to record the positions)") from None


def _setup_postgres(conn: Connection, mset: MappingSet, reset: bool, say: Callable[[str], None]) -> LSN:
    db = pg_connect(conn, conn.apply)
    try:
        db.autocommit = True
        with db.cursor() as cur:
            schema = pg_ident(conn.state_schema)
            # (and a column a newer version added: the sync table's rows_skipped)
            cur.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
                        "AND to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
                        "AND to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
                        "AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s)",
                        (f"{schema}.checkpoint", f"{schema}.parked", f"{schema}.{sync.SYNC_TABLE}",
                         f"{schema}.{conflict_store.TABLE}", f"{schema}.{deadletter.TABLE}", f"{schema}.{lease.TABLE}",
                         f"{schema}.{sync.SYNC_TABLE}", sync.SKIPPED_COLUMN))
            if not cur.fetchone()[0]:
                for stmt in state_sql(conn):
                    cur.execute(stmt)
                say(f"{conn.name}: created {conn.state_schema}.checkpoint, crosswalk, parked, sync, conflicts, "
                    f"dead_letter, lease")
            cur.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                        (conn.publication,))
            published = {(s, t) for s, t in cur.fetchall()}
            cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (conn.publication,))
            exists = cur.fetchone() is not None
            wanted = {(t.schema, t.name) for t in mset.source_tables(conn.name)}
            if not exists or published != wanted:
                stmt = publication_sql(conn, mset, exists)
                if not stmt.startswith("--"):
                    cur.execute(stmt)
            say(f"{conn.name}: publication {conn.publication} covers {len(wanted)} table(s)")
            two_way = full_identity_tables(conn, mset)
            if two_way:
                cur.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE c.relreplident = 'f'")
                full = {(n, t) for n, t in cur.fetchall()}
                for t in two_way:
                    if (t.schema, t.name) not in full:
                        cur.execute(replica_identity_sql(t))
                        say(f"{conn.name}: {t} has REPLICA IDENTITY FULL now (a two-way mapping compares old rows, "
                            f"a filter reads deleted rows)")
    finally:
        db.close()
    return _slot(conn, reset, say)


def _slot(conn: Connection, reset: bool, say: Callable[[str], None]) -> LSN:
    """The slot is created by the capture account, which has the REPLICATION attribute."""
    db = pg_connect(conn, conn.capture)
    try:
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("SELECT confirmed_flush_lsn::text, wal_status, plugin, database FROM pg_replication_slots "
                        "WHERE slot_name = %s", (conn.slot,))
            row = cur.fetchone()
            if row is not None and row[3] != conn.database:
                # setup once reported such a slot as this database's ("slot replicator exists at ..."): the
                # stream then failed at its first read, or another installation's slot was moved by --reset
                raise FatalError(f"{conn.name}: replication slot {conn.slot} belongs to database {row[3]}, not "
                                 f"{conn.database}; give connection {conn.name} its own `slot:` in replicator.yaml")
            if row is not None and (row[1] == "lost" or row[2] != "pgoutput") and reset:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (conn.slot,))
                say(f"{conn.name}: dropped unusable slot {conn.slot} (--reset)")
                row = None
            if row is None:
                cur.execute("SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (conn.slot,))
                lsn = LSN.parse(cur.fetchone()[0])
                say(f"{conn.name}: created slot {conn.slot} at {lsn}")
                return lsn
            if row[2] != "pgoutput":
                raise FatalError(f"slot {conn.slot} exists with plugin {row[2]}; drop it or use --reset")
            if row[1] == "lost":
                raise FatalError(f"slot {conn.slot} was invalidated; `replicator setup --reset` recreates it "
                                 f"(re-sync the mapped tables afterwards)")
            if reset:  # start from now: everything the slot still holds is skipped
                cur.execute("SELECT pg_current_wal_lsn()::text")
                return LSN.parse(cur.fetchone()[0])
            say(f"{conn.name}: slot {conn.slot} exists at {row[0]}")
            return LSN.parse(row[0])
    finally:
        db.close()


def _setup_mariadb(conn: Connection, say: Callable[[str], None]) -> BinlogPosition:
    db = my_connect(conn, conn.apply, database=None)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                        "AND TABLE_NAME IN (%s, 'crosswalk', 'parked', %s, %s, %s, %s, %s)",
                        (conn.state_schema, CHECKPOINT_TABLE, sync.SYNC_TABLE, WATERMARK_TABLE,
                         conflict_store.TABLE, deadletter.TABLE, lease.TABLE))
            found = cur.fetchone()[0]
            cur.execute("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                        "AND COLUMN_NAME = %s", (conn.state_schema, sync.SYNC_TABLE, sync.SKIPPED_COLUMN))
            if found < 8 or cur.fetchone()[0] == 0:  # (a column a newer version added: sync's rows_skipped)
                for stmt in state_sql(conn):
                    cur.execute(stmt, ())
                say(f"{conn.name}: created {conn.state_schema}.{CHECKPOINT_TABLE}, crosswalk, parked, sync, "
                    f"watermark, conflicts, dead_letter, lease")
            db.commit()
    finally:
        db.close()
    cap = my_connect(conn, conn.capture, database=None)  # SHOW MASTER STATUS needs BINLOG MONITOR
    try:
        with cap.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            if row is None:
                raise FatalError(f"{conn.name}: binary logging is off (log_bin); see deploy/mariadb-server.cnf")
            cur.execute("SELECT @@gtid_binlog_pos")
            gtid = cur.fetchone()[0] or None
    finally:
        cap.close()
    position = BinlogPosition(row[0], int(row[1]), gtid)
    say(f"{conn.name}: binlog is at {position}")
    return position


def _record_start(target: Connection, stream: str, position: Position, reset: bool,
                  say: Callable[[str], None]) -> None:
    """Write the starting checkpoint into the target, unless one exists (or --reset)."""
    from replicator.appliers import make_applier

    applier = make_applier(target, stream, "")
    applier.connect()
    try:
        current = applier.read_checkpoint()
        if current is not None and not reset:
            say(f"{stream}: checkpoint kept at {current}")
            return
        applier.lock(fail_fast=True)  # never move a checkpoint under a running daemon
        applier.begin()
        applier.commit(position, None)
        say(f"{stream}: checkpoint {'reset' if current else 'set'} to {position}")
    finally:
        applier.close()
