"""`replicator status`: where everything stands, read from the databases (and the daemon, if it answers).

Works with the daemon down: whether a daemon runs is the session lock it holds in each target (looked
at, never taken, so a daemon starting meanwhile is not turned away), the checkpoint and the sync and
parked rows are in the targets, the slot and the binlog files in the sources. What only the running
daemon knows (its lag gauge, rows/s, queue depth, verify drift) is read from its Prometheus endpoint
when it answers there.

Health: 2 (stopped) when no direction is held by a daemon; 1 (degraded) when one direction is not
running, a database cannot be read, lag is over the limit, rows are parked, verify found drift, or a
source is close to losing what the checkpoint needs; else 0.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from replicator.mapping.parking import oldest_age
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import LSN, BinlogPosition, Position, TableRef, position_from_json
from replicator.checkpoint import session_lock_holder
from replicator.config import Config, Connection
from replicator.connect import my_connect, pg_connect
from replicator.errors import ReplicatorError
from replicator.loopguard import CHECKPOINT_TABLE, stream_name
from replicator.mapping.links import PARKED
from replicator.sources.binlogretention import UNLIMITED, read_retention
from replicator.sync.state import SyncState
from replicator.stream import deadletter, lease

HEALTHY, DEGRADED, STOPPED = 0, 1, 2
STATE_NAMES = {HEALTHY: "healthy", DEGRADED: "degraded", STOPPED: "stopped"}
SAFE_WAL_MIN_BYTES = 1024**3  # as ReplicatorSlotSafeWalLow
BINLOG_MARGIN_MIN_SECONDS = 6 * 3600  # as ReplicatorBinlogRetentionLow


@dataclass(frozen=True)
class SyncStatus:
    mapping: str
    status: str
    rows_done: int  # copied
    rows_estimated: int  # the source table's estimate
    rows_skipped: int = 0  # read, outside the mapping's slice or filter


@dataclass(frozen=True)
class DirectionStatus:
    name: str
    running: bool | None  # a daemon holds the direction's session lock; None: the target cannot be read
    since: str | None  # when the holding session started (PostgreSQL targets only)
    holder: str | None  # client address of the holding session
    checkpoint: str | None
    source_position: str | None
    behind_bytes: int | None  # source position minus checkpoint, when both are in one WAL / binlog file
    last_applied: str | None  # source commit time of the last applied transaction (checkpoint row)
    checkpoint_written: str | None  # when the checkpoint row was last written
    parked_rows: int | None
    syncs: tuple[SyncStatus, ...] = ()
    dead_letter_rows: int | None = None  # changes queued by `on_error: quarantine` (None: no such table yet)
    # the lease (stream/lease.py): the active instance (host:pid), its takeover epoch, seconds since renewed
    active_instance: str | None = None
    lease_epoch: int | None = None
    lease_age_seconds: float | None = None
    # from the daemon's metrics endpoint, None when it does not answer
    lag_seconds: float | None = None
    rows_per_second: float | None = None
    queue_depth: float | None = None
    streaming: bool | None = None  # replicator_direction_running
    errors: tuple[str, ...] = ()
    parked_oldest_seconds: float | None = None  # age of the oldest parked row, by the target's clock


@dataclass(frozen=True)
class SourceStatus:
    side: str
    kind: str
    # PostgreSQL: the slot
    slot: str | None = None
    wal_status: str | None = None
    retained_wal_bytes: int | None = None
    safe_wal_bytes: int | None = None  # None: unlimited (max_slot_wal_keep_size = -1)
    # MariaDB: the binlog files against binlog_expire_logs_seconds
    binlog_files: int | None = None
    checkpoint_file: str | None = None
    files_before_checkpoint: int | None = None
    expire_seconds: float | None = None
    margin_seconds: float | None = None  # -1: never purged
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class DaemonView:
    reachable: bool
    address: str
    verify_rows_differing: float | None = None
    verify_last_complete: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Status:
    state: int
    reasons: tuple[str, ...]
    daemon: DaemonView
    directions: tuple[DirectionStatus, ...]
    sources: tuple[SourceStatus, ...]
    at: str | None = field(default_factory=lambda: _iso(time.time()))

    def to_json(self) -> str:
        data = asdict(self)
        data["state_name"] = STATE_NAMES[self.state]
        return json.dumps(data, indent=2, default=str)


def _iso(t: float | datetime | None) -> str | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


# ---------------------------------------------------------------- the daemon's metrics endpoint

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, timeout: float = 2.0) -> Samples:
    """Every sample of a Prometheus text endpoint; URLError/OSError when it does not answer."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (our own endpoint)
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    want = set(labels.items())
    found = [v for (n, lbl), v in samples.items() if n == name and want <= set(lbl)]
    return sum(found) if found else None


def metrics_url(config: Config) -> str:
    host = config.metrics_address
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.metrics_port}/metrics"


# ---------------------------------------------------------------- reading the databases

def _lock_holder(applier: Applier, kind: str, stream: str) -> tuple[bool, str | None, str | None]:
    """(held, since, client) of the daemon's session lock for `stream`, without taking it."""
    holder = session_lock_holder(kind, applier.conn.state_schema, stream, applier.query)
    if holder is None:
        return False, None, None
    if kind == "postgresql":
        return True, _iso(holder[0]), holder[1]
    host = applier.query("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = %s", [holder[0]])
    return True, None, (host[0][0].rsplit(":", 1)[0] if host and host[0][0] else None)


def _source_position(source: Connection) -> Position | None:
    if source.kind == "postgresql":
        db = pg_connect(source, source.capture)
        try:
            with db.cursor() as cur:
                cur.execute("SELECT pg_current_wal_lsn()::text")
                return LSN.parse(cur.fetchone()[0])
        finally:
            db.close()
    db = my_connect(source, source.capture, database=None)
    try:
        with db.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            return BinlogPosition(row[0], int(row[1])) if row else None
    finally:
        db.close()


def _behind(source_pos: Position | None, checkpoint: Position | None) -> int | None:
    if isinstance(source_pos, LSN) and isinstance(checkpoint, LSN):
        return max(0, source_pos.value - checkpoint.value)
    if isinstance(source_pos, BinlogPosition) and isinstance(checkpoint, BinlogPosition) \
            and source_pos.file == checkpoint.file:
        return max(0, source_pos.pos - checkpoint.pos)
    return None


def _guard(errors: list[str], what: str, fn: Callable[[], Any]) -> Any:
    """Run one read; a failure is recorded (and makes the status degraded), never a traceback."""
    try:
        return fn()
    except ReplicatorError as exc:
        errors.append(f"{what}: {exc}")
    except Exception as exc:  # a driver error: name it, the status of the rest still counts
        errors.append(f"{what}: {type(exc).__name__}: {str(exc).strip()}")
    return None


def read_direction(config: Config, source: Connection, target: Connection,
                   samples: Samples | None, rates: dict[str, float]) -> tuple[DirectionStatus, Position | None]:
    stream = stream_name(source.name, target.name)
    errors: list[str] = []
    running = since = holder = None
    checkpoint: Position | None = None
    last_applied = written = None
    parked: int | None = None
    parked_age: float | None = None
    dead: int | None = None
    held: lease.Holder | None = None
    syncs: tuple[SyncStatus, ...] = ()
    applier = make_applier(target, "status", "")
    if _guard(errors, f"target {target.name}", lambda: applier.connect() or True):
        try:
            got = _guard(errors, "session lock", lambda: _lock_holder(applier, target.kind, stream))
            if got is not None:
                running, since, holder = got
            table = applier.quote_table(TableRef(target.state_schema, CHECKPOINT_TABLE))
            rows = _guard(errors, "checkpoint", lambda: applier.query(
                f"SELECT position, source_commit_time, updated_at FROM {table} WHERE stream = %s", [stream]))
            if rows:
                text, commit_time, updated = rows[0]
                try:
                    checkpoint = position_from_json(text)
                except (ValueError, KeyError, TypeError):
                    errors.append(f"checkpoint: not recorded yet ({text!r}); run `replicator setup`")
                last_applied, written = _iso(commit_time), _iso(updated)
            elif rows is not None:
                errors.append(f"checkpoint: no row for {stream} in {target.state_schema}.{CHECKPOINT_TABLE}; "
                              f"run `replicator setup`")
            applier.rollback()
            parked_table = applier.quote_table(TableRef(target.state_schema, PARKED))
            try:  # the table exists only where a mapping uses links
                parked = int(applier.query(f"SELECT COUNT(*) FROM {parked_table} WHERE stream = %s", [stream])[0][0])
                parked_age = oldest_age(applier, parked_table, stream) if parked else None
            except Exception:
                parked = None
            applier.rollback()
            try:  # an installation set up before the dead-letter queue has no table yet
                dead = sum(n for (s, _t), n in deadletter.counts(applier).items() if s == stream) \
                    if deadletter.exists(applier) else None
            except Exception:
                dead = None
            applier.rollback()
            try:  # likewise the lease table
                held = lease.read(applier, stream)
            except Exception:
                held = None
            applier.rollback()
            sync_rows = _guard(errors, "sync", lambda: SyncState(applier, target.state_schema).rows(stream))
            applier.rollback()
            syncs = tuple(SyncStatus(r.mapping, r.status, r.rows_done, r.rows_estimated, r.rows_skipped)
                          for r in sync_rows or ())
        finally:
            applier.rollback()
            applier.close()
    source_pos = _guard(errors, f"source {source.name}", lambda: _source_position(source))
    d = DirectionStatus(
        name=stream, running=running, since=since, holder=holder,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        source_position=str(source_pos) if source_pos is not None else None,
        behind_bytes=_behind(source_pos, checkpoint), last_applied=last_applied, checkpoint_written=written,
        parked_rows=parked, syncs=syncs, parked_oldest_seconds=parked_age, dead_letter_rows=dead,
        active_instance=held.holder if held else None, lease_epoch=held.epoch if held else None,
        lease_age_seconds=round(held.age_seconds, 3) if held else None,
        lag_seconds=_value(samples, "replicator_lag_seconds", direction=stream) if samples else None,
        rows_per_second=rates.get(stream),
        queue_depth=_value(samples, "replicator_queue_depth", direction=stream) if samples else None,
        streaming=(bool(_value(samples, "replicator_direction_running", direction=stream))
                   if samples and _value(samples, "replicator_direction_running", direction=stream) is not None
                   else None),
        errors=tuple(errors),
    )
    return d, checkpoint


def read_source(source: Connection, checkpoint: Position | None) -> SourceStatus:
    errors: list[str] = []
    if source.kind == "postgresql":
        def slot() -> Any:
            db = pg_connect(source, source.capture)
            try:
                with db.cursor() as cur:
                    cur.execute("SELECT wal_status, pg_current_wal_lsn() - restart_lsn, safe_wal_size "
                                "FROM pg_replication_slots WHERE slot_name = %s", (source.slot,))
                    return cur.fetchone()
            finally:
                db.close()
        row = _guard(errors, f"slot {source.slot}", slot)
        if row is None:
            if not errors:
                errors.append(f"slot {source.slot}: does not exist; `replicator setup` creates it")
            return SourceStatus(source.name, source.kind, slot=source.slot, errors=tuple(errors))
        status, retained, safe = row
        return SourceStatus(source.name, source.kind, slot=source.slot, wal_status=status,
                            retained_wal_bytes=int(retained) if retained is not None else None,
                            safe_wal_bytes=int(safe) if safe is not None else None, errors=tuple(errors))
    if not isinstance(checkpoint, BinlogPosition):
        return SourceStatus(source.name, source.kind, errors=("binlog: no checkpoint to measure against",))
    r = _guard(errors, "binlog retention", lambda: read_retention(source, checkpoint.file))
    if r is None:
        return SourceStatus(source.name, source.kind, errors=tuple(errors))
    if not r.present:
        errors.append(f"binlog {checkpoint.file} (the checkpoint's) is purged: the direction cannot resume; "
                      f"see docs/operations.md, \"Recovery\"")
    return SourceStatus(source.name, source.kind, binlog_files=len(r.files), checkpoint_file=r.checkpoint_file,
                        files_before_checkpoint=r.files_before, expire_seconds=r.expire_seconds,
                        margin_seconds=r.margin_seconds, errors=tuple(errors))


def collect(config: Config, max_lag: float = 60.0, sample_seconds: float = 1.0) -> Status:
    url = metrics_url(config)
    samples: Samples | None = None
    rates: dict[str, float] = {}
    try:
        first = scrape(url)
        t0 = time.monotonic()
        samples = first
        if sample_seconds > 0:
            time.sleep(sample_seconds)
            samples = scrape(url)
            elapsed = time.monotonic() - t0
            for (name, labels), value in samples.items():
                if name == "replicator_rows_applied_total":
                    stream = dict(labels)["direction"]
                    before = first.get((name, labels), 0.0)
                    rates[stream] = rates.get(stream, 0.0) + (value - before) / elapsed
        view = DaemonView(True, url, _value(samples, "replicator_verify_rows_differing"),
                          _iso(_value(samples, "replicator_verify_last_complete_timestamp_seconds") or None))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        view = DaemonView(False, url, error=f"daemon not reachable at {url}: {reason}")
    a, b = config.connections
    directions: list[DirectionStatus] = []
    sources: list[SourceStatus] = []
    for source, target in ((a, b), (b, a)):
        d, checkpoint = read_direction(config, source, target, samples, rates)
        directions.append(d)
        sources.append(read_source(source, checkpoint))
    state, reasons = judge(directions, sources, view, max_lag)
    return Status(state, tuple(reasons), view, tuple(directions), tuple(sources))


def judge(directions: list[DirectionStatus], sources: list[SourceStatus], daemon: DaemonView,
          max_lag: float) -> tuple[int, list[str]]:
    """The exit status and why."""
    reasons: list[str] = []
    if all(d.running is False for d in directions):
        reasons.append("no daemon holds either direction")
        return STOPPED, reasons + [e for d in directions for e in d.errors] + [e for s in sources for e in s.errors]
    for d in directions:
        if d.running is False:
            reasons.append(f"{d.name}: no daemon holds this direction")
        if d.streaming is False:
            reasons.append(f"{d.name}: stopped on an error (replicator_direction_running is 0)")
        if d.lag_seconds is not None and d.lag_seconds > max_lag:
            reasons.append(f"{d.name}: lag {d.lag_seconds:.1f} s is over {max_lag:g} s")
        if d.parked_rows:
            reasons.append(f"{d.name}: {d.parked_rows} parked row(s) wait for a referenced record")
        if d.dead_letter_rows:
            reasons.append(f"{d.name}: {d.dead_letter_rows} change(s) wait in the dead-letter queue (`replicator dlq`)")
        reasons.extend(f"{d.name}: {e}" for e in d.errors)
    for s in sources:
        if s.wal_status in ("unreserved", "lost"):
            reasons.append(f"{s.side}: slot {s.slot} wal_status is {s.wal_status}")
        if s.safe_wal_bytes is not None and 0 <= s.safe_wal_bytes < SAFE_WAL_MIN_BYTES:
            reasons.append(f"{s.side}: slot {s.slot} is {s.safe_wal_bytes} bytes of WAL from invalidation")
        if s.margin_seconds is not None and s.margin_seconds != UNLIMITED \
                and s.margin_seconds < BINLOG_MARGIN_MIN_SECONDS:
            reasons.append(f"{s.side}: binlog {s.checkpoint_file} may be purged in {s.margin_seconds:.0f} s")
        reasons.extend(f"{s.side}: {e}" for e in s.errors)
    if daemon.verify_rows_differing:
        reasons.append(f"verify found {daemon.verify_rows_differing:.0f} differing row(s)")
    return (DEGRADED if reasons else HEALTHY), reasons


# ---------------------------------------------------------------- text

def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def render(st: Status) -> str:
    out = [f"replicator: {STATE_NAMES[st.state]}"]
    if st.daemon.reachable:
        out.append(f"daemon: metrics at {st.daemon.address}")
    else:
        out.append(f"daemon: {st.daemon.error}")
    if st.state == STOPPED:
        out.append("no daemon is running: the figures below are what the databases hold")
    for d in st.directions:
        out.append("")
        run = {True: "running", False: "not running", None: "unknown"}[d.running]
        if d.running:
            run += f" since {d.since}" if d.since else ""
            run += f" (held from {d.holder})" if d.holder else ""
        out.append(f"{d.name}: {run}")
        out.append(f"  checkpoint       {d.checkpoint or '-'}   source at {d.source_position or '-'}"
                   + (f"   {d.behind_bytes} bytes behind" if d.behind_bytes else ""))
        out.append(f"  last applied     {d.last_applied or '-'} (source commit; checkpoint written "
                   f"{d.checkpoint_written or '-'})")
        daemon_only = "daemon not reachable"
        out.append("  lag              " + (f"{d.lag_seconds:.3f} s" if d.lag_seconds is not None else daemon_only))
        out.append("  rows/s           " + (f"{d.rows_per_second:,.0f}" if d.rows_per_second is not None
                                           else daemon_only if not st.daemon.reachable else "0"))
        out.append("  queue depth      " + (f"{d.queue_depth:.0f}" if d.queue_depth is not None else daemon_only))
        out.append("  parked rows      " + (str(d.parked_rows) if d.parked_rows is not None else "- (no links)")
                   + (f" (the oldest waits for {_duration(d.parked_oldest_seconds)})"
                      if d.parked_rows and d.parked_oldest_seconds is not None else ""))
        if d.active_instance:
            out.append(f"  active instance  {d.active_instance} (lease epoch {d.lease_epoch}, renewed "
                       f"{d.lease_age_seconds:.1f} s ago; a standby takes over after ha.takeover_seconds)")
        out.append("  dead-letter rows " + (str(d.dead_letter_rows) if d.dead_letter_rows is not None
                                           else "- (no table: run `replicator setup`)"))
        for sy in d.syncs:
            read = sy.rows_done + sy.rows_skipped  # the share goes by rows read: the estimate is the table's
            pct = f" {100 * read / sy.rows_estimated:.0f}%" if sy.rows_estimated and sy.status != "done" else ""
            skipped = f", {sy.rows_skipped:,} skipped (outside the slice or filter)" if sy.rows_skipped else ""
            # the label column is 17 wide, as the lines above; a longer mapping name still gets its space
            total = f"{max(sy.rows_estimated, read):,}"
            out.append(f"  {'sync ' + sy.mapping:<16} {sy.status} " + (
                f"{sy.rows_done:,} rows{skipped}, {read:,}/{total} read{pct}" if sy.rows_skipped else
                f"{sy.rows_done:,}/{total} rows{pct}"))
        out.extend(f"  ! {e}" for e in d.errors)
    for s in st.sources:
        out.append("")
        if s.kind == "postgresql":
            safe = "unlimited" if s.safe_wal_bytes is None else f"{s.safe_wal_bytes:,} bytes"
            out.append(f"source {s.side} (PostgreSQL): slot {s.slot} wal_status {s.wal_status or '-'}, "
                       f"retains {s.retained_wal_bytes if s.retained_wal_bytes is not None else '-'} bytes, "
                       f"safe WAL left {safe}")
        else:
            margin = "purgeable in -" if s.margin_seconds is None else (
                "never purged (binlog_expire_logs_seconds = 0)" if s.margin_seconds == UNLIMITED
                else f"purgeable in {_duration(s.margin_seconds)}")
            out.append(f"source {s.side} (MariaDB): checkpoint file {s.checkpoint_file or '-'}, "
                       f"{s.files_before_checkpoint if s.files_before_checkpoint is not None else '-'} older "
                       f"file(s) go first; {margin}")
        out.extend(f"  ! {e}" for e in s.errors)
    out.append("")
    if st.daemon.reachable:
        drift = st.daemon.verify_rows_differing
        out.append("verify: " + ("no complete run yet" if st.daemon.verify_last_complete is None else
                                 f"{drift or 0:.0f} differing row(s), last complete {st.daemon.verify_last_complete}"))
    else:
        out.append("verify: daemon not reachable")
    if st.reasons:
        out.append("why " + STATE_NAMES[st.state] + ":")
        out.extend(f"  - {r}" for r in st.reasons)
    return "\n".join(out)

