"""Checkpoints: the source position each direction has applied, stored in the target database.

The row is written in the same target transaction as the data it describes, so after any crash
the target itself says where to resume. One row per stream (direction) in
`<state_schema>.checkpoint`; on MariaDB the same row doubles as the loop-prevention tag.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

from replicator.changes import LSN, BinlogPosition, Position
from replicator.errors import CheckpointError, SourceLostError


def session_lock_name(kind: str, state_schema: str, stream: str) -> str:
    """The name of the session lock a daemon holds in a stream's target while it applies the stream
    (Applier.lock; `replicator status` and `verify` look at it without taking it).

    A PostgreSQL advisory lock belongs to its database; a MariaDB named lock (GET_LOCK) to the whole
    server. With the stream name alone, a second installation on the same MariaDB server (another ERP
    database, its own state schema, the same stream names) could not even run `setup`: "stream crm_to_erp
    is being applied by another replicator instance". So MariaDB's name carries the state schema, which
    each installation on a server has of its own; names past MariaDB's 64 characters are hashed."""
    if kind == "postgresql":
        return "replicator:" + stream
    name = f"replicator:{state_schema}:{stream}"
    if len(name) > 64:
        name = "replicator:" + hashlib.sha1(f"{state_schema}:{stream}".encode()).hexdigest()
    return name


# The lock's holder, looked up without taking it. A PostgreSQL advisory lock on one bigint key shows in
# pg_locks with classid = its high 32 bits and objid = its low ones (objsubid 1), and belongs to a
# database: another installation's daemon on this server (its own database, the same stream names)
# holds a lock of the same name that is not this one's. MariaDB's IS_USED_LOCK gives the holder's
# connection id (NULL when free).
_PG_HOLDER = (
    "SELECT a.backend_start, host(a.client_addr) FROM pg_locks l LEFT JOIN pg_stat_activity a "
    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtext(%s)::bigint")


def session_lock_holder(kind: str, state_schema: str, stream: str,
                        query: Callable[[str, list[Any]], Sequence[Sequence[Any]]]) -> tuple[Any, ...] | None:
    """Who holds the session lock of `stream` (see session_lock_name), through `query` (an applier's or
    a verify side's), without taking it: None when free; else PostgreSQL's (backend_start, client
    address) of the holder, MariaDB's (connection id,)."""
    name = session_lock_name(kind, state_schema, stream)
    if kind == "postgresql":
        rows = query(_PG_HOLDER, [name])
        return tuple(rows[0]) if rows else None
    rows = query("SELECT IS_USED_LOCK(%s)", [name])
    return None if not rows or rows[0][0] is None else (rows[0][0],)


def postgres_ddl(schema: str) -> list[str]:
    """DDL for a PostgreSQL target; `schema` must already be quoted."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"""CREATE TABLE IF NOT EXISTS {schema}.checkpoint (
            stream text PRIMARY KEY,
            position text NOT NULL,
            txn_seq bigint NOT NULL DEFAULT 0,
            source_commit_time timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now())""",
    ]


def mariadb_ddl(schema: str) -> list[str]:
    """DDL for a MariaDB target; `schema` must already be quoted."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {schema} CHARACTER SET utf8mb4",
        f"""CREATE TABLE IF NOT EXISTS {schema}.checkpoint (
            stream VARCHAR(128) NOT NULL PRIMARY KEY,
            position TEXT NOT NULL,
            txn_seq BIGINT NOT NULL DEFAULT 0,
            source_commit_time DATETIME(6) NULL,
            updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
        ) ENGINE=InnoDB""",
    ]


def check_slot(slot: str, info: tuple[Any, ...] | None, checkpoint: LSN | None) -> LSN:
    """Decide where the WAL stream starts, or fail closed.

    `info` is (confirmed_flush_lsn, wal_status) from pg_replication_slots, None if no slot.
    """
    if info is None:
        raise SourceLostError(
            f"replication slot {slot!r} does not exist. It was dropped or never created; the changes "
            f"it held are gone. Do not simply recreate it: `replicator setup --reset` creates it and starts "
            f"from now; then re-sync the mapped tables with `replicator sync`"
        )
    confirmed_text, wal_status = info
    if wal_status == "lost":
        raise SourceLostError(
            f"replication slot {slot!r} was invalidated (wal_status=lost, max_slot_wal_keep_size "
            f"exceeded); the WAL after {confirmed_text} is gone. `replicator setup --reset` drops and "
            f"recreates it; then re-sync the mapped tables with `replicator sync`"
        )
    confirmed = LSN.parse(confirmed_text) if confirmed_text else None
    if checkpoint is None:
        raise CheckpointError(
            f"no checkpoint for this stream in the target (slot {slot!r} is at {confirmed_text}). "
            f"Run `replicator setup` to record the starting position"
        )
    if confirmed is not None and confirmed > checkpoint:
        raise CheckpointError(
            f"the target's checkpoint {checkpoint} is older than slot {slot!r} ({confirmed}): changes "
            f"between them were confirmed to PostgreSQL but are not in the target (a restored backup "
            f"of the target?). Reset the checkpoint with `replicator setup --reset`, then re-sync the "
            f"mapped tables with `replicator sync`"
        )
    return checkpoint


def check_binlog(position: BinlogPosition | None, available: list[str]) -> BinlogPosition:
    """Fail closed when the binlog file we need is gone (purged)."""
    if position is None:
        raise CheckpointError(
            "no checkpoint for this stream in the target. Run `replicator setup` to record the "
            "starting binlog position"
        )
    if position.file not in available:
        first = available[0] if available else "none"
        raise SourceLostError(
            f"binlog {position.file} (checkpoint {position}) is no longer on the server; the oldest "
            f"is {first}. The changes in between are lost: raise expire_logs_days / binlog_expire_logs_seconds, "
            f"reset the checkpoint with `replicator setup --reset`, then re-sync the mapped tables with "
            f"`replicator sync`"
        )
    return position


def is_applied(position: Position, checkpoint: Position | None) -> bool:
    """True when a transaction ending at `position` is already in the target."""
    if isinstance(position, LSN):
        return isinstance(checkpoint, LSN) and position <= checkpoint
    return isinstance(checkpoint, BinlogPosition) and position <= checkpoint
