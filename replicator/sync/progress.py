"""`replicator sync` on a terminal: rows done, rows/s and time left for every copy, read from the
`<state_schema>.sync` tables of both targets (the same figures a running daemon exports as metrics).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TextIO

from replicator.config import Config, Connection
from replicator.sync.state import DONE, SyncRow, SyncState

log = logging.getLogger(__name__)

RATE_WINDOW = 10.0  # seconds of history behind a rows/s figure


@dataclass
class _Track:
    history: list[tuple[float, int]] = field(default_factory=list)
    reported_done: bool = False

    def add(self, now: float, rows: int) -> None:
        self.history.append((now, rows))
        while len(self.history) > 2 and now - self.history[0][0] > RATE_WINDOW:
            self.history.pop(0)

    def rate(self) -> float | None:
        if len(self.history) < 2:
            return None
        (t0, r0), (t1, r1) = self.history[0], self.history[-1]
        return (r1 - r0) / (t1 - t0) if t1 > t0 else None


def line(row: SyncRow, rate: float | None) -> str:
    """One copy's progress: `customers crm_to_erp  120,000/200,000 rows  60%  14,210 rows/s  ETA 6 s`; the
    rows copied, and apart from them the rows read but outside the mapping's slice or filter (`, 300 skipped`).
    The share, the rate and the time left go by rows read (the estimate is the source table's)."""
    name = f"{row.mapping} {row.stream}"
    skipped = f", {row.rows_skipped:,} skipped (outside the mapping's slice or filter)" if row.rows_skipped else ""
    if row.status == DONE:
        took = ""
        if row.started_at and row.finished_at:
            seconds = max((row.finished_at - row.started_at).total_seconds(), 0.001)
            took = f" in {seconds:.1f} s ({row.rows_read / seconds:,.0f} rows/s)"
        return f"{name}  done: {row.rows_done:,} rows{skipped}{took}"
    if row.status != "running":
        return f"{name}  waiting to start"
    total = max(row.rows_estimated, row.rows_read)
    pct = f"  {100 * row.rows_read / total:3.0f}%" if total else ""
    speed = f"  {rate:,.0f} rows/s" if rate else ""
    eta = ""
    if rate and total > row.rows_read:
        eta = f"  ETA {_duration((total - row.rows_read) / rate)}"
    if row.rows_skipped:
        return f"{name}  {row.rows_done:,} rows{skipped}, {row.rows_read:,}/{total:,} read{pct}{speed}{eta}"
    return f"{name}  {row.rows_done:,}/{total:,} rows{pct}{speed}{eta}"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class SyncMonitor:
    """Reads the sync rows of the requested copies from both targets."""

    def __init__(self, config: Config, wanted: Sequence[tuple[Connection, str, str]]):
        self.config = config
        self.wanted = list(wanted)
        self._dbs: dict[str, Any] = {}
        self._tracks: dict[tuple[str, str], _Track] = {}

    def rows(self) -> dict[tuple[str, str], SyncRow]:
        from replicator.appliers import make_applier

        out: dict[tuple[str, str], SyncRow] = {}
        for target in {c.name: c for c, _s, _m in self.wanted}.values():
            db = self._dbs.get(target.name)
            if db is None:
                db = self._dbs[target.name] = make_applier(target, "sync-monitor", "")
                db.connect()
            try:
                for r in SyncState(db, target.state_schema).rows():
                    out[(r.stream, r.mapping)] = r
            finally:
                db.rollback()
        return {(s, m): out[(s, m)] for _c, s, m in self.wanted if (s, m) in out}

    def watch(self, out: TextIO, finished: Callable[[], BaseException | None] | None = None,
              interval: float = 1.0, quiet_every: float = 10.0) -> BaseException | None:
        """Show progress until every requested copy is done, or `finished` returns an error."""
        tty = out.isatty()
        last_print = 0.0
        try:
            while True:
                now = time.monotonic()
                rows = self.rows()
                for key, r in rows.items():
                    self._tracks.setdefault(key, _Track()).add(now, r.rows_read)
                for key, r in rows.items():
                    t = self._tracks[key]
                    if r.status == DONE and not t.reported_done:
                        t.reported_done = True
                        out.write(("\r\033[K" if tty else "") + line(r, None) + "\n")
                running = sorted((r for r in rows.values() if r.status != DONE), key=lambda r: r.status != "running")
                if len(rows) == len(self.wanted) and not running:
                    out.flush()
                    return None
                if tty:
                    text = "  |  ".join(line(r, self._tracks[(r.stream, r.mapping)].rate()) for r in running)
                    out.write("\r\033[K" + text[:300])
                elif now - last_print >= quiet_every:
                    last_print = now
                    for r in running:
                        out.write(line(r, self._tracks[(r.stream, r.mapping)].rate()) + "\n")
                out.flush()
                if finished is not None:
                    error = finished()
                    if error is not None:
                        if tty:
                            out.write("\n")
                        return error
                time.sleep(interval)
        finally:
            self.close()

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()


@dataclass(frozen=True)
class StillParked:
    """Changes of one mapping in one direction still waiting for a counterpart after a copy."""

    stream: str
    mapping: str
    waiting_for: str  # the referenced mapping whose record has no counterpart
    rows: int


def still_parked(config: Config) -> list[StillParked]:
    """Every target's `<state_schema>.parked`, counted by direction, mapping and what the rows wait for."""
    from replicator.appliers import make_applier
    from replicator.changes import TableRef

    out: list[StillParked] = []
    for target in config.connections:
        db = make_applier(target, "sync-parked", "")
        db.connect()
        try:
            parked = db.quote_table(TableRef(target.state_schema, "parked"))
            rows = db.query(f"SELECT stream, mapping, waiting_mapping, COUNT(*) FROM {parked} "
                            f"GROUP BY stream, mapping, waiting_mapping ORDER BY stream, mapping, waiting_mapping", [])
            out.extend(StillParked(str(s), str(m), str(w), int(n)) for s, m, w, n in rows)
        finally:
            db.rollback()
            db.close()
    return out


def parked_lines(parked: Sequence[StillParked]) -> list[str]:
    """What `replicator sync` prints once the copies are done and parked rows were retried."""
    if not parked:
        return ["parked after the copy: none (every reference found its counterpart)"]
    total = sum(p.rows for p in parked)
    lines = [f"still parked after the copy: {total:,} row(s) wait for a counterpart that does not exist "
             f"(applied when it appears; `replicator status` shows their age):"]
    lines.extend(f"  {p.mapping} {p.stream}  {p.rows:,} waiting for {p.waiting_for}" for p in parked)
    return lines


def wait_settled(settled: Callable[[], bool], finished: Callable[[], BaseException | None] | None = None,
                 timeout: float = 300.0, interval: float = 0.2) -> BaseException | None:
    """Wait until both directions retried their parked rows after the copies (SyncDriver.parked_settled),
    twice in a row (a round one direction starts is seen by the other at its next poll)."""
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline:
        if finished is not None:
            error = finished()
            if error is not None:
                return error
        calm = calm + 1 if settled() else 0
        if calm >= 2:
            return None
        time.sleep(interval)
    log.warning("parked rows were still being retried after %.0f s; counting them as they are", timeout)
    return None
