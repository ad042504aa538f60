"""The sync table in the target: one row per (stream, mapping) with its status and the last key copied;
its DDL, and `request`, what `replicator sync` writes there."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import TableRef
from replicator.codec import dumps_key, loads_key
from replicator.config import Config, Connection
from replicator.connect import MISSING, error_class
from replicator.errors import ConfigError, ReplicatorError
from replicator.loopguard import stream_name
from replicator.mapping.model import Mapping, MappingSet


SYNC_TABLE = "sync"


PENDING, RUNNING, DONE = "pending", "running", "done"


# rows_done: rows copied; rows_skipped: rows read but outside the mapping (its slice or filter), not copied.
# rows_skipped came in round 12: `setup` adds it to a sync table made before (SKIPPED_COLUMN_DDL)
SKIPPED_COLUMN = "rows_skipped"


def postgres_ddl(schema: str) -> list[str]:
    return [f"""CREATE TABLE IF NOT EXISTS {schema}.sync (
        stream text NOT NULL, mapping text NOT NULL, status text NOT NULL, last_key text,
        rows_done bigint NOT NULL DEFAULT 0, rows_estimated bigint NOT NULL DEFAULT 0,
        requested_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz, finished_at timestamptz,
        rows_skipped bigint NOT NULL DEFAULT 0, PRIMARY KEY (stream, mapping))""",
            f"ALTER TABLE {schema}.sync ADD COLUMN IF NOT EXISTS rows_skipped bigint NOT NULL DEFAULT 0"]


def mariadb_ddl(schema: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {schema}.sync (
            stream VARCHAR(128) NOT NULL, mapping VARCHAR(128) NOT NULL, status VARCHAR(16) NOT NULL,
            last_key TEXT NULL, rows_done BIGINT NOT NULL DEFAULT 0, rows_estimated BIGINT NOT NULL DEFAULT 0,
            requested_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), started_at DATETIME(6) NULL,
            finished_at DATETIME(6) NULL, rows_skipped BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (stream, mapping)) ENGINE=InnoDB""",
        f"ALTER TABLE {schema}.sync ADD COLUMN IF NOT EXISTS rows_skipped BIGINT NOT NULL DEFAULT 0",
        f"""CREATE TABLE IF NOT EXISTS {schema}.watermark (
            stream VARCHAR(128) NOT NULL PRIMARY KEY, mark VARCHAR(64) NOT NULL, kind VARCHAR(8) NOT NULL
        ) ENGINE=InnoDB""",
    ]


@dataclass(frozen=True)
class SyncRow:
    stream: str
    mapping: str
    status: str
    last_key: tuple[Any, ...] | None
    rows_done: int  # rows copied
    rows_estimated: int  # the source table's row estimate (rows outside the mapping included)
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rows_skipped: int = 0  # rows read but outside the mapping's slice or filter: not copied

    @property
    def rows_read(self) -> int:
        return self.rows_done + self.rows_skipped

    @property
    def active(self) -> bool:
        return self.status in (PENDING, RUNNING)


class SyncState:
    """The `<state_schema>.sync` table of one database (the target of the streams it records)."""

    def __init__(self, db: Applier, schema: str):
        self.db = db
        self.table = db.quote_table(TableRef(schema, SYNC_TABLE))

    def rows(self, stream: str | None = None) -> list[SyncRow]:
        """Inside the caller's transaction (the caller ends it)."""
        sql = (f"SELECT stream, mapping, status, last_key, rows_done, rows_estimated, requested_at, started_at, "
               f"finished_at, rows_skipped FROM {self.table}")
        params: list[Any] = []
        if stream is not None:
            sql += " WHERE stream = %s"
            params.append(stream)
        try:
            found = self.db.query(sql + " ORDER BY stream, mapping", params)
        except ReplicatorError:
            raise
        except Exception as exc:
            if error_class(self.db.kind, exc) == MISSING or _undefined_column(exc):  # 42P01 / 1146; 42703 / 1054
                raise ConfigError(f"{self.table} is missing in {self.db.conn.describe()}: run `replicator setup` "
                                  f"(it adds the tables a newer version needs and keeps everything else)") from None
            raise
        out = []
        for r in found:
            out.append(SyncRow(r[0], r[1], r[2], loads_key(r[3]) if r[3] else None, int(r[4]), int(r[5]),
                               r[6], r[7], r[8], int(r[9])))
        return out

    def request(self, stream: str, mapping: str) -> bool:
        """Ask for a copy of `mapping`; a copy already pending or running is left to go on (resumes).
        Inside the caller's transaction. True when a new copy was requested."""
        existing = {r.mapping: r for r in self.rows(stream)}
        row = existing.get(mapping)
        if row is not None and row.active:
            return False
        now = self._now()
        if row is None:
            self.db.execute(f"INSERT INTO {self.table} (stream, mapping, status, requested_at) VALUES (%s, %s, %s, %s)",
                            [stream, mapping, PENDING, now])
        else:
            self.db.execute(f"UPDATE {self.table} SET status = %s, last_key = NULL, rows_done = 0, rows_skipped = 0, "
                            f"rows_estimated = 0, "
                            f"requested_at = %s, started_at = NULL, finished_at = NULL "
                            f"WHERE stream = %s AND mapping = %s", [PENDING, now, stream, mapping])
        return True

    def _now(self, now: datetime | None = None) -> datetime:
        now = now or datetime.now(timezone.utc)
        return now.replace(tzinfo=None) if self.db.kind == "mariadb" else now

    def save(self, stream: str, mapping: str, last_key: tuple[Any, ...] | None, rows_done: int, estimated: int,
             done: bool, started: datetime | None = None, rows_skipped: int = 0) -> None:
        """Progress of one chunk, inside the target transaction that applies it (`rows_done` copied and
        `rows_skipped` outside the mapping, both since the copy began); `started` is when the copy began
        reading (kept from its first chunk on)."""
        now = self._now()
        self.db.execute(
            f"UPDATE {self.table} SET status = %s, last_key = %s, rows_done = %s, rows_skipped = %s, "
            f"rows_estimated = %s, started_at = COALESCE(started_at, %s), finished_at = %s "
            f"WHERE stream = %s AND mapping = %s",
            [DONE if done else RUNNING, None if last_key is None else dumps_key(last_key), rows_done, rows_skipped,
             estimated, self._now(started) if started else now, now if done else None, stream, mapping])


def _undefined_column(exc: BaseException) -> bool:
    """A sync table from before a column it reads was added (PostgreSQL 42703, MariaDB 1054)."""
    code = getattr(exc, "pgcode", None) or (exc.args[0] if getattr(exc, "args", None) else None)
    return code in ("42703", 1054)


def request(config: Config, mset: MappingSet, names: Sequence[str] | None) -> list[tuple[Connection, str, str]]:
    """Record sync requests in both targets; returns (target connection, stream, mapping) for each."""
    selected: list[Mapping] = [mset.by_name[n] for n in names] if names else list(mset.mappings)
    out = []
    for target in config.connections:
        source = next(c for c in config.connections if c is not target)
        stream = stream_name(source.name, target.name)
        todo = [m.name for m in selected if m.flow(source.name) is not None]
        if not todo:
            continue
        db = make_applier(target, f"sync-request:{stream}", "")
        db.connect()
        try:
            state = SyncState(db, target.state_schema)
            for name in todo:
                state.request(stream, name)
                out.append((target, stream, name))
            db.commit_untracked()
        finally:
            db.close()
    return out
