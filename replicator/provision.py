"""`replicator setup`: create what the daemon owns and record where each stream starts.

Idempotent. PostgreSQL: the state schema and checkpoint table, the publication of the mapped
tables, and the pgoutput slot. MariaDB: the state database and checkpoint table. Each stream's
starting position (the slot's LSN, the current binlog position) is written into the *target's*
checkpoint table, so changes made after setup and before the first `run` are not lost.
"""
from __future__ import annotations

import logging
from typing import Callable

from replicator import checkpoint as ckpt
from replicator.appliers.mariadb import my_connect, quote
from replicator.appliers.postgres import pg_connect
from replicator.changes import LSN, BinlogPosition, Position
from replicator.config import Config, Connection
from replicator.errors import FatalError
from replicator.loopguard import stream_name
from replicator.mapping import MappingSet

log = logging.getLogger(__name__)


def pg_ident(name: str) -> str:
    """PostgreSQL identifier quoting (double quotes, doubled inside), usable without a connection."""
    return '"' + name.replace('"', '""') + '"'


def state_sql(conn: Connection) -> list[str]:
    if conn.kind == "postgresql":
        return [s.strip() for s in ckpt.postgres_ddl(pg_ident(conn.state_schema))]
    # quote() escapes % for PyMySQL: run these with an (empty) argument tuple
    return [s.strip() for s in ckpt.mariadb_ddl(quote(conn.state_schema))]


def publication_sql(conn: Connection, mset: MappingSet, exists: bool) -> str:
    tables = mset.source_tables(conn.name)
    names = ", ".join(f"{pg_ident(t.schema)}.{pg_ident(t.name)}" for t in tables)
    pub = pg_ident(conn.publication)
    if exists:
        return f"ALTER PUBLICATION {pub} SET TABLE {names}" if tables else f"-- publication {pub} has no tables"
    return f"CREATE PUBLICATION {pub} FOR TABLE {names}" if tables else f"CREATE PUBLICATION {pub}"


def describe(config: Config, mset: MappingSet) -> str:
    """The SQL `setup` runs, for a DBA who prefers to run it by hand."""
    out = []
    for conn in config.connections:
        out.append(f"-- on {conn.name} ({conn.describe()}), as an owner of the mapped tables")
        out += [(s if conn.kind == "postgresql" else s.replace("%%", "%")) + ";" for s in state_sql(conn)]
        if conn.kind == "postgresql":
            out.append(publication_sql(conn, mset, exists=False) + ";")
            out.append(f"SELECT pg_create_logical_replication_slot('{conn.slot}', 'pgoutput');")
    out.append("-- then record the starting positions: `replicator setup` does it (it reads the slot's")
    out.append("-- LSN and SHOW MASTER STATUS and writes them into each target's checkpoint table)")
    return "\n".join(out)


def setup(config: Config, mset: MappingSet, reset: bool = False, say: Callable[[str], None] = print) -> None:
    a, b = config.connections
    starts: dict[str, Position] = {}
    for conn in config.connections:
        if conn.kind == "postgresql":
            starts[conn.name] = _setup_postgres(conn, mset, reset, say)
        else:
            starts[conn.name] = _setup_mariadb(conn, say)
    for source, target in ((a, b), (b, a)):
        _record_start(target, stream_name(source.name, target.name), starts[source.name], reset, say)


def _setup_postgres(conn: Connection, mset: MappingSet, reset: bool, say: Callable[[str], None]) -> LSN:
    db = pg_connect(conn, conn.apply)
    try:
        db.autocommit = True
        with db.cursor() as cur:
            for stmt in state_sql(conn):
                cur.execute(stmt)
            cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (conn.publication,))
            exists = cur.fetchone() is not None
            stmt = publication_sql(conn, mset, exists)
            if not stmt.startswith("--"):
                cur.execute(stmt)
            say(f"{conn.name}: publication {conn.publication} covers {len(mset.source_tables(conn.name))} table(s)")
            cur.execute("SELECT confirmed_flush_lsn::text, wal_status, plugin FROM pg_replication_slots "
                        "WHERE slot_name = %s", (conn.slot,))
            row = cur.fetchone()
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
            say(f"{conn.name}: slot {conn.slot} exists at {row[0]}")
            return LSN.parse(row[0])
    finally:
        db.close()


def _setup_mariadb(conn: Connection, say: Callable[[str], None]) -> BinlogPosition:
    db = my_connect(conn, conn.apply)
    try:
        with db.cursor() as cur:
            for stmt in state_sql(conn):
                cur.execute(stmt, ())
            db.commit()
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            if row is None:
                raise FatalError(f"{conn.name}: binary logging is off (log_bin); see deploy/mariadb-server.cnf")
            cur.execute("SELECT @@gtid_binlog_pos")
            gtid = cur.fetchone()[0] or None
        position = BinlogPosition(row[0], int(row[1]), gtid)
        say(f"{conn.name}: state tables ready; binlog is at {position}")
        return position
    finally:
        db.close()


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
        applier.begin()
        applier.commit(position, None)
        say(f"{stream}: checkpoint {'reset' if current else 'set'} to {position}")
    finally:
        applier.close()
