"""Active/standby: who may apply a direction, and the proof that it still may (issue 13 part 3).

The session lock (Applier.lock) keeps a second instance out while the first one's session lives. A
process that is paused (SIGSTOP) or cut off keeps its session, and so its lock, for as long as the
server does not notice: the lock alone would keep a standby waiting forever and, worse, let the old
process commit again when it comes back. So each direction also holds a lease, one row of
`<state_schema>.lease` in the target:

- `epoch` grows by one at every takeover. The instance that takes the lock bumps it and remembers it;
  every target transaction the direction commits first locks the lease row (SELECT ... FOR UPDATE)
  and checks that the epoch is still its own, in the same transaction as the rows and the
  checkpoint (`prove`). A fenced instance (the epoch moved on) rolls back and steps down: it commits
  nothing more.
- `renewed_at` is written by the active at every commit and, when idle, every third of
  `ha.takeover_seconds`. A standby that finds the lock busy and the lease older than
  `ha.takeover_seconds` (by the target's clock, so the hosts' clocks do not matter) ends the holder's
  session (`session`, its backend pid / connection id: the apply account may end its own sessions),
  which frees the lock, then takes the lock and bumps the epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from replicator.appliers.base import Applier
from replicator.changes import TableRef
from replicator.config import Connection
from replicator.connect import missing_state_table, pg_connect
from replicator.errors import ReplicatorError

TABLE = "lease"


class Fenced(ReplicatorError):
    """Another instance took this direction over: commit nothing, step down to standby."""

    kind = "fenced"


def postgres_ddl(schema: str) -> list[str]:
    return [f"""CREATE TABLE IF NOT EXISTS {schema}.lease (
            stream text PRIMARY KEY, epoch bigint NOT NULL, holder text NOT NULL, session bigint NOT NULL,
            renewed_at timestamptz NOT NULL DEFAULT clock_timestamp())"""]


def mariadb_ddl(schema: str) -> list[str]:
    return [f"""CREATE TABLE IF NOT EXISTS {schema}.lease (
            stream VARCHAR(128) NOT NULL PRIMARY KEY, epoch BIGINT NOT NULL, holder VARCHAR(255) NOT NULL,
            session BIGINT NOT NULL, renewed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
        ) ENGINE=InnoDB"""]


def ddl(conn: Connection, quoted_schema: str) -> list[str]:
    return postgres_ddl(quoted_schema) if conn.kind == "postgresql" else mariadb_ddl(quoted_schema)


def _table(db: Applier) -> str:
    return db.quote_table(TableRef(db.conn.state_schema, TABLE))


def _now(db: Applier) -> str:
    # the statement's own time: now() in PostgreSQL is the transaction's start, and a batch can be long
    return "clock_timestamp()" if db.conn.kind == "postgresql" else "NOW(6)"


def _session(db: Applier) -> int:
    fn = "pg_backend_pid()" if db.conn.kind == "postgresql" else "CONNECTION_ID()"
    return int(db.query(f"SELECT {fn}", [])[0][0])


@dataclass(frozen=True)
class Holder:
    holder: str
    session: int
    epoch: int
    age_seconds: float


def read(db: Applier, stream: str) -> Holder | None:
    q = db.quote_col
    if db.conn.kind == "postgresql":
        age = f"EXTRACT(EPOCH FROM clock_timestamp() - {q('renewed_at')})"
    else:
        age = f"TIMESTAMPDIFF(MICROSECOND, {q('renewed_at')}, NOW(6)) / 1000000"
    rows: Sequence[Any] = db.query(f"SELECT {q('holder')}, {q('session')}, {q('epoch')}, {age} FROM {_table(db)} "
                                   f"WHERE {q('stream')} = %s", [stream])
    if not rows:
        return None
    holder, session, epoch, seconds = rows[0]
    return Holder(str(holder), int(session), int(epoch), float(seconds))


def acquire(db: Applier, stream: str, holder: str) -> int:
    """With the session lock held: bump the epoch, record us as holder; returns our epoch. Commits."""
    q = db.quote_col
    session = _session(db)
    cols = f"{q('stream')}, {q('epoch')}, {q('holder')}, {q('session')}, {q('renewed_at')}"
    if db.conn.kind == "postgresql":
        upsert = (f"INSERT INTO {_table(db)} AS l ({cols}) VALUES (%s, 1, %s, %s, clock_timestamp()) "
                  f"ON CONFLICT ({q('stream')}) DO UPDATE SET {q('epoch')} = l.{q('epoch')} + 1, "
                  f"{q('holder')} = EXCLUDED.{q('holder')}, {q('session')} = EXCLUDED.{q('session')}, "
                  f"{q('renewed_at')} = clock_timestamp()")
    else:
        upsert = (f"INSERT INTO {_table(db)} ({cols}) VALUES (%s, 1, %s, %s, NOW(6)) ON DUPLICATE KEY UPDATE "
                  f"{q('epoch')} = {q('epoch')} + 1, {q('holder')} = VALUES({q('holder')}), "
                  f"{q('session')} = VALUES({q('session')}), {q('renewed_at')} = NOW(6)")
    try:
        db.execute(upsert, [stream, holder, session])
    except ReplicatorError:
        raise
    except Exception as exc:
        missing = missing_state_table(db.conn, TABLE, exc)  # set up by a version without it
        if missing is not None:
            raise missing from None
        raise
    epoch = int(db.query(f"SELECT {q('epoch')} FROM {_table(db)} WHERE {q('stream')} = %s", [stream])[0][0])
    db.commit_untracked()
    return epoch


def prove(db: Applier, stream: str, epoch: int) -> None:
    """In the open transaction, before it commits: the lease is still ours (else Fenced), and renewed.
    The row stays locked until the commit, so a takeover waits for it or fences it."""
    q = db.quote_col
    rows = db.query(f"SELECT {q('epoch')} FROM {_table(db)} WHERE {q('stream')} = %s FOR UPDATE", [stream])
    if not rows or int(rows[0][0]) != epoch:
        theirs = int(rows[0][0]) if rows else None
        raise Fenced(f"{stream}: another instance took over (lease epoch {theirs}, ours {epoch}); stepping down")
    db.execute(f"UPDATE {_table(db)} SET {q('renewed_at')} = {_now(db)} WHERE {q('stream')} = %s", [stream])


def end_walsender(source: Connection) -> None:
    """At a takeover from a paused holder, a PostgreSQL source's slot is still held by its walsender
    until wal_sender_timeout: end that walsender too (the capture role may end its own sessions), so
    the new active's stream starts within the takeover time. MariaDB needs nothing: a binlog dump with
    the same server_id ends the old one."""
    if source.kind != "postgresql":
        return
    db = pg_connect(source, source.capture)
    try:
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                        "WHERE slot_name = %s AND active_pid IS NOT NULL", (source.slot,))
    finally:
        db.close()


def end_session(db: Applier, session: int) -> None:
    """End the stale holder's session (it frees the session lock). The apply account may end its own."""
    if db.conn.kind == "postgresql":
        db.query("SELECT pg_terminate_backend(%s)", [session])
    else:
        try:
            db.execute(f"KILL CONNECTION {int(session)}", [])
        except ReplicatorError:
            raise
        except Exception:
            pass  # already gone
