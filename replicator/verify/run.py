"""A verification run: every flow scanned, then what differs re-checked until it proves stable.

Before anything is reported it is re-checked: the source's current position is read, and while the
stream's checkpoint in the target has not reached it (at most `verify.recheck_seconds`) the rows are
compared again every half second; a row that agrees once is dropped. At most two such rounds. A stream
no daemon applies (its session lock is free) is not waited for: its rows are compared again at once. A
column is reported only while its expected value stays the same from one comparison to the next
(`stable`): a row that keeps changing on the source is being replicated, not drifting.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Sequence, Union

from replicator import metrics
from replicator.checkpoint import is_applied
from replicator.config import Config, Connection
from replicator.errors import ConfigError
from replicator.codec import dumps_key
from replicator.mapping.model import Flow, Mapping, MappingSet
from replicator.stream import deadletter
from replicator.verify.flow import FlowCheck
from replicator.verify.folds import FoldCheck, compared_flows
from replicator.verify.report import DIFFERS, Difference, MappingStats, Report, Stopped
from replicator.verify.scan import Found, scan
from replicator.verify.side import Side

log = logging.getLogger(__name__)
Check = Union[FlowCheck, FoldCheck]  # a flow compared row by row, or a fold's parent by parent

POLL_SECONDS = 0.5
ROUNDS = 2


class Verifier:
    """Verifies mappings; owns one read-only session per side. Not thread-safe. `open_side` makes a side's
    session (tests pass fakes). With `max_listed`, a run keeps (and re-checks) at most that many differing
    rows and only counts the others (`Report.unlisted`): memory stays bounded however much differs."""

    def __init__(self, config: Config, mset: MappingSet, stop: threading.Event | None = None,
                 open_side: Callable[[Connection], Side] = Side, max_listed: int | None = None):
        self.config = config
        self.mset = mset
        self.stop = stop
        self.max_listed = max_listed
        self._open_side = open_side
        self._sides: dict[str, Side] = {}
        self._checks: dict[tuple[str, str], FlowCheck] = {}
        self._folds: dict[tuple[str, str], FoldCheck] = {}

    def side(self, name: str) -> Side:
        if name not in self._sides:
            self._sides[name] = self._open_side(self.config.side(name))
        return self._sides[name]

    def check(self, mapping: Mapping, flow: Flow) -> FlowCheck:
        k = (mapping.name, flow.stream)
        if k not in self._checks:
            self._checks[k] = FlowCheck(self, mapping, flow)
        return self._checks[k]

    def fold_check(self, mapping: Mapping, flow: Flow) -> FoldCheck:
        """A fold's flow: compared parent by parent (verify/folds.py)."""
        k = (mapping.name, flow.stream)
        if k not in self._folds:
            self._folds[k] = FoldCheck(self, mapping, flow)
        return self._folds[k]

    def close(self) -> None:
        for s in self._sides.values():
            try:
                s.close()
            except Exception:
                pass
        self._sides.clear()
        self._checks.clear()
        self._folds.clear()

    def run(self, names: Sequence[str] | None = None) -> Report:
        started = time.monotonic()
        if names:
            unknown = [n for n in names if n not in self.mset.by_name]
            if unknown:
                raise ConfigError(f"no mapping named {unknown[0]!r}; the mappings are "
                                  f"{', '.join(m.name for m in self.mset.mappings)}")
        mappings = [m for m in self.mset.mappings if not names or m.name in names]
        stats: dict[str, MappingStats] = {}
        suspects: list[tuple[Check, Difference]] = []
        tables: list[str] = []
        unlisted: dict[str, int] = {}
        for m in mappings:
            s = stats.setdefault(m.name, MappingStats())
            for flow in compared_flows(m):
                t0 = time.monotonic()
                fc: Check = self.fold_check(m, flow) if flow.fold is not None else self.check(m, flow)
                found = Found(None if self.max_listed is None else self.max_listed - len(suspects))
                checked = fc.scan(self.stop, found) if isinstance(fc, FoldCheck) else scan(fc, self.stop, found)
                metrics.verify_rows_checked.labels(fc.table).inc(checked)
                s.rows += checked
                s.seconds += time.monotonic() - t0
                suspects.extend((fc, d) for d in found.kept)
                if found.unlisted:
                    unlisted[fc.table] = unlisted.get(fc.table, 0) + found.unlisted
                    s.differing += found.unlisted
                if fc.table not in tables:
                    tables.append(fc.table)
        t0 = time.monotonic()
        confirmed = self.recheck(suspects)
        confirmed, known = self.split_queued(confirmed)
        for fc, d in confirmed:
            stats[fc.mapping.name].differing += 1
        if suspects:  # the re-check time belongs to the mappings that needed it
            spent = time.monotonic() - t0
            names_with = {fc.mapping.name for fc, _ in suspects}
            for name in names_with:
                stats[name].seconds += spent / len(names_with)
        return Report([d for _, d in confirmed], stats, tables, time.monotonic() - started, confirmed, unlisted,
                      [d for _, d in known])

    def split_queued(self, found: list[tuple[Check, Difference]]
                     ) -> tuple[list[tuple[Check, Difference]], list[tuple[Check, Difference]]]:
        """(drift, known): a row with changes waiting in its target's dead-letter queue differs on purpose
        until `replicator dlq retry|skip`; it is reported as a known difference, not as drift."""
        if not found:
            return found, []
        held: dict[str, set[tuple[str, str]]] = {}
        queued_dbs: dict[str, Any] = {}  # by stream: the target session whose queue holds its changes
        for fc, _ in found:
            stream = fc.flow.stream
            if stream not in held:
                db = getattr(self.side(fc.flow.target.side), "db", None)  # (None: a test's fake session)
                if db is None:
                    held[stream] = set()
                    continue
                try:
                    held[stream] = deadletter.held_keys(db, stream) if deadletter.exists(db) else set()
                finally:
                    db.rollback()
                if held[stream]:
                    queued_dbs[stream] = db
        parents: dict[tuple[str, str], set[str]] = {}  # (stream, fold mapping) -> its parents with queued changes
        drift: list[tuple[Check, Difference]] = []
        known: list[tuple[Check, Difference]] = []
        for fc, d in found:
            if isinstance(fc, FoldCheck) and fc.to_column:
                # a fold from child rows queues its changes under the child row's key: named by its parent
                k = (fc.flow.stream, fc.flow.mapping)
                if k not in parents:
                    parents[k] = self._queued_parents(fc, queued_dbs.get(fc.flow.stream))
                queued = d.source_key is not None and dumps_key(tuple(d.source_key)) in parents[k]
                (known if queued else drift).append((fc, d))
                continue
            key = d.target_key if d.target_key is not None else d.source_key
            # a linked mapping's changes are queued by the source row's key (stream/deadlinked)
            keys = (key, d.source_key) if fc.flow.linked else (key,)
            queued = any(k is not None and (d.table, dumps_key(tuple(k))) in held[fc.flow.stream] for k in keys)
            (known if queued else drift).append((fc, d))
        return drift, known

    @staticmethod
    def _queued_parents(fc: FoldCheck, db: Any) -> set[str]:
        """The parents (key texts) of a fold's changes queued in `db` (None: nothing queued for the stream)."""
        if db is None:
            return set()
        try:
            entries = deadletter.select(db, fc.flow.stream, fc.flow.mapping)
        finally:
            db.rollback()
        return fc.queued_parents([e.source_row for e in entries if e.source_row is not None])

    def compare_again(self, suspects: Sequence[tuple[Check, Difference]]) -> list[tuple[Check, Difference]]:
        """Read the rows of `suspects` again now; the differences that remain (kept stable, see `stable`)."""
        out: list[tuple[Check, Difference]] = []
        groups: dict[int, tuple[Check, list[Difference]]] = {}
        for fc, d in suspects:
            groups.setdefault(id(fc), (fc, []))[1].append(d)
        for fc, diffs in groups.values():
            out.extend((fc, d) for d in stable(diffs, fc.recheck(diffs), fc.identity))
        return out

    def recheck(self, suspects: list[tuple[Check, Difference]]) -> list[tuple[Check, Difference]]:
        """Wait for the streams to catch up with the sources (at most recheck_seconds per round) while
        comparing the suspect rows again; keep what still differs after ROUNDS rounds."""
        wait = self.config.verify.recheck_seconds
        for _round in range(ROUNDS):
            if not suspects:
                break
            streams: dict[str, Check] = {fc.flow.stream: fc for fc, _ in suspects}
            # a stream no daemon applies will not move: waiting for it is pointless
            streams = {s: fc for s, fc in streams.items() if fc.tgt.stream_applied(s)}
            positions = {s: fc.src.position() for s, fc in streams.items()}
            deadline = time.monotonic() + wait
            while True:
                caught_up = True
                for s, fc in streams.items():
                    p = positions[s]
                    if p is None or not is_applied(p, fc.tgt.checkpoint(s)):
                        caught_up = False
                        break
                suspects = self.compare_again(suspects)
                left = deadline - time.monotonic()
                if not suspects or caught_up or left <= 0:
                    break
                if self.stop is not None:
                    if self.stop.wait(min(POLL_SECONDS, left)):
                        raise Stopped()
                else:
                    time.sleep(min(POLL_SECONDS, left))
        return suspects


def stable(prev: Sequence[Difference], fresh: Sequence[Difference], identity: Any) -> list[Difference]:
    """The differences of `fresh` that were already there, unchanged on the source side, in `prev`.
    A DIFFERS keeps only the columns whose expected value did not change in between."""
    before = {identity(d): d for d in prev}
    out = []
    for d in fresh:
        p = before.get(identity(d))
        if p is None or p.kind != d.kind:
            continue
        if d.kind == DIFFERS:
            old = dict(p.stamp)
            keep = [i for i, (c, value) in enumerate(d.stamp) if c in old and old[c] == value]
            if not keep:
                continue
            d = replace(d, columns=tuple(d.columns[i] for i in keep), stamp=tuple(d.stamp[i] for i in keep))
        elif d.stamp != p.stamp:
            continue
        out.append(d)
    return out
