"""The snapshotter: reads a direction's sync jobs chunk by chunk in a thread of its own (one source
connection) and hands each chunk to the driver; the jobs in foreign-key order."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import threading

from replicator import metrics
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import TableRef
from replicator.config import Connection
from replicator.loopguard import WATERMARK_PREFIX, WATERMARK_TABLE
from replicator.mapping.model import Flow
from replicator.sources.tablescan import KeyCursor, TableScanner  # imported here, not in a thread: mysql-replication's
# package has import cycles that break when two threads import it at once

if TYPE_CHECKING:
    from replicator.sync.driver import SyncDriver  # the driver owns the snapshotter


log = logging.getLogger(__name__)


def watermark_table(source: Connection) -> TableRef:
    """The table the direction reading `source` sees watermarks as (a real table on MariaDB)."""
    return TableRef(source.state_schema, WATERMARK_TABLE)


@dataclass
class Job:
    mapping: str
    flow: Flow
    last_key: tuple[Any, ...] | None
    rows_done: int  # rows copied so far (the apply thread counts them as their chunks are applied)
    # the second side of a two-way mapping: fields without an owner are only written into rows it
    # creates (existing rows hold the first side's values, or newer ones the streams brought)
    insert_only: frozenset[str] = frozenset()
    # for rows our other direction wrote into the source since the sync started: every field but the
    # ones this side owns (those the other direction did not bring over)
    echo_insert_only: frozenset[str] = frozenset()
    # of insert_only, the fields a row this side copies still fills where its existing counterpart's value
    # is NULL: a row the first side's copy did not see -- made since by another mapping's copy into the same
    # table -- holds no first-side value to keep (SyncDriver._fill)
    fill: frozenset[str] = frozenset()
    started: datetime | None = None  # when the snapshotter began reading it (this session)
    rows_skipped: int = 0  # rows read so far that are outside the mapping's slice or filter (not copied)


@dataclass
class Chunk:
    job: Job
    rows: list[dict[str, Any]]
    last_key: tuple[Any, ...] | None
    rows_read: int  # after this chunk, copied or not
    estimated: int
    done: bool


@dataclass(frozen=True)
class Progress:
    """The sync table update that goes into the target transaction with a chunk's rows: the copy's rows
    copied and skipped (outside the mapping's slice or filter) after this chunk."""

    stream: str
    chunk: Chunk
    rows_done: int = 0
    rows_skipped: int = 0


class Snapshotter:
    """Reads the chunks of a direction's sync jobs, one job after the other, in a thread.

    Owns one source connection (the source side's apply account: SELECT on the mapped tables and
    writes for watermarks). Hands chunks to the apply loop through `SyncDriver`. It belongs to the
    streaming session that started it: once that session stopped it (`cancel`), the driver refuses
    its chunks, even if a query kept it alive into the next session.
    """

    def __init__(self, driver: "SyncDriver", jobs: list[Job], wait_for: Callable[[str], bool]):
        self.driver = driver
        self.jobs = jobs
        self.wait_for = wait_for  # mapping -> True once the other side's copy of it is done
        self.error: BaseException | None = None
        self.mapping: str | None = None  # the job being read, for error messages
        self.cancelled = threading.Event()
        self._db: Applier | None = None
        self.thread = threading.Thread(target=self._run, name=f"sync-{driver.stream}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        """From the apply thread: stop at once, cancelling the query it may be waiting for."""
        self.cancelled.set()
        db = self._db
        if db is not None:
            db.interrupt()

    def _run(self) -> None:
        d = self.driver
        db = self._db = make_applier(d.source, f"sync:{d.stream}", "")
        try:
            if self.cancelled.is_set():
                return
            db.connect()
            for job in self.jobs:
                while not self.wait_for(job.mapping):
                    if d.stop.wait(1.0) or d.snapshotter is not self:
                        return
                self.mapping = job.mapping
                job.started = datetime.now(timezone.utc)
                scanner = TableScanner(db, job.flow.source.table, job.flow.source.key)
                estimated = max(scanner.estimate(), job.rows_done + job.rows_skipped)
                metrics.sync_running.labels(d.stream, job.mapping).set(1)
                metrics.sync_rows_estimated.labels(d.stream, job.mapping).set(estimated)
                log.info("%s: sync of %s from %s starts%s (about %d rows)", d.stream, job.mapping,
                         job.flow.source.table, f" after key {job.last_key}" if job.last_key else "", estimated)
                cursor, done_rows = KeyCursor(scanner, d.chunk_rows, job.last_key), job.rows_done + job.rows_skipped
                while True:
                    if not d.wait_room(self):
                        return
                    rows = cursor.next()
                    done_rows += len(rows)
                    estimated = max(estimated, done_rows)
                    high = d.add_chunk(self, Chunk(job, rows, cursor.after, done_rows, estimated, cursor.done))
                    if high is None:
                        return  # its session ended while it read: the next session reads the chunk again
                    self._watermark(db, high, "high")
                    if cursor.done:
                        break
        except BaseException as exc:  # handed to the apply loop, which decides
            if not self.cancelled.is_set():  # else the error is the cancel's own
                self.error = exc
                d.wake()
        finally:
            db.rollback()
            db.close()

    def _watermark(self, db: Applier, mark: str, kind: str) -> None:
        d = self.driver
        payload = json.dumps({"stream": d.stream, "mark": mark, "kind": kind})
        if db.kind == "postgresql":
            db.query("SELECT pg_logical_emit_message(true, %s, %s)", [WATERMARK_PREFIX, payload])
        else:
            table = db.quote_table(watermark_table(d.source))
            db.execute(f"INSERT INTO {table} (stream, mark, kind) VALUES (%s, %s, %s) "
                       f"ON DUPLICATE KEY UPDATE mark = VALUES(mark), kind = VALUES(kind)", [d.stream, mark, kind])
        db.commit_untracked()


def foreign_key_parents(db: Applier) -> dict[TableRef, set[TableRef]]:
    """Table -> the tables its foreign keys reference, from the database's catalog (the caller ends
    the transaction)."""
    if db.kind == "postgresql":
        sql = ("SELECT cn.nspname, c.relname, pn.nspname, p.relname FROM pg_constraint k "
               "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace "
               "JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace "
               "WHERE k.contype = 'f'")
    else:
        sql = ("SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME "
               "FROM information_schema.REFERENTIAL_CONSTRAINTS")
    out: dict[TableRef, set[TableRef]] = {}
    for schema, table, ref_schema, ref_table in db.query(sql, []):
        out.setdefault(TableRef(schema, table), set()).add(TableRef(ref_schema, ref_table))
    return out


def _parents_first(jobs: list[Job], foreign_keys: dict[TableRef, set[TableRef]]) -> list[Job]:
    """Parents are copied before their children: a mapping whose target table has a foreign key to
    another one's target table, or whose fields reference another mapping (references:, parent:),
    comes after it. So does a mapping that never creates rows in its target table (`created_by:` the other
    side: a 1:1 extension of another mapping's record) after the mappings that create rows there: a row one of
    them makes during the copy is then there for it to fill. Otherwise, and in a cycle, the order stays as it is."""
    names = {j.mapping for j in jobs}
    by_table: dict[TableRef, set[str]] = {}
    creates: dict[TableRef, set[str]] = {}
    for j in jobs:
        by_table.setdefault(j.flow.target.table, set()).add(j.mapping)
        if not _updates_only(j.flow):
            creates.setdefault(j.flow.target.table, set()).add(j.mapping)
    deps: dict[str, set[str]] = {}
    for j in jobs:
        refs = {p.references for p in j.flow.plans if p.references} | ({j.flow.parent[0]} if j.flow.parent else set())
        for parent_table in foreign_keys.get(j.flow.target.table, ()):
            refs |= by_table.get(parent_table, set())
        if _updates_only(j.flow):
            refs |= creates.get(j.flow.target.table, set())
        deps[j.mapping] = {r for r in refs if r in names and r != j.mapping}
    ordered: list[Job] = []
    placed: set[str] = set()
    remaining = list(jobs)
    while remaining:
        ready = [j for j in remaining if deps[j.mapping] <= placed] or remaining[:1]  # a cycle: keep the order
        for j in ready:
            ordered.append(j)
            placed.add(j.mapping)
            remaining.remove(j)
    return ordered


def _updates_only(flow: Flow) -> bool:
    """The flow never creates a row in its target table: another side creates the mapping's records."""
    return bool(flow.created_by) and flow.created_by != flow.source.side
