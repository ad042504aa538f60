"""Reading a flow's tables and pairing their rows, in key chunks, with bounded memory.

Each table is read in chunks of `verify.chunk_rows` rows (`TableScanner.chunk`), on the side's session.
Pairing, per source chunk:

- *side by side* (`FlowCheck.ordered`: a shared integer key, so both tables list their rows in one
  order): the target is read in key order alongside the source, and each target row up to the chunk's
  last key is paired with the source row of its key, or, when no source row has its key, is an extra row
  (reported where extra rows are a fault, `FlowCheck.extras`). Each table is read once, by range scans.
- *by lookup* (crosswalks, natural keys, text keys...): the counterparts are looked up by key
  (`FlowCheck.locate`); where extra rows are a fault, the target is then read once more, and each of its
  chunks is looked up in the source.

Nothing outlives its chunk except the differences found: no key sets, no digests, no rows. A chunk is
let go before the next one is read, so at most a source chunk, a target chunk and the chunk being read
are alive.

Reading ahead in a thread with a session of its own per table was measured and left out: the process is
CPU-bound (the drivers' row parsing and the comparisons share one GIL; with both servers local its CPU
time equals its wall time), so the overlap gained nothing measurable while holding one more chunk per
table and two more sessions.
"""
from __future__ import annotations

import threading
from bisect import bisect_right
from operator import itemgetter
from typing import Any, Iterator

from replicator.errors import ReplicatorError
from replicator.mapping.model import Endpoint
from replicator.sources.tablescan import KeyCursor
from replicator.verify.flow import AGREED, GONE, OPTIONAL, REQUIRED, FlowCheck
from replicator.verify.report import Difference, Stopped


class ChunkReader(KeyCursor):
    """One table in key chunks (the keyed snapshot reader sync uses too), stopping with the daemon."""

    def __init__(self, scanner: Any, chunk_rows: int, stop: threading.Event | None):
        super().__init__(scanner, chunk_rows)
        self.stop = stop

    def next(self) -> list[dict[str, Any]]:
        """The next chunk; [] at the end. Raises Stopped when the daemon stops."""
        if self.stop is not None and self.stop.is_set():
            raise Stopped()
        return super().next()


class Found:
    """The differences found; beyond `limit` (None: no limit) only counted (`unlisted`), so that even a
    table that differs everywhere costs bounded memory (the daemon's periodic runs set a limit)."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self.kept: list[Difference] = []
        self.unlisted = 0

    def add(self, diffs: list[Difference]) -> None:
        room = len(diffs) if self.limit is None else max(0, self.limit - len(self.kept))
        self.kept.extend(diffs[:room])
        self.unlisted += max(0, len(diffs) - room)


def scan(fc: FlowCheck, stop: threading.Event | None, found: Found) -> int:
    """The whole flow, its differences added to `found`; returns the source rows checked."""
    n = fc.v.config.verify.chunk_rows
    source = ChunkReader(fc.src_scan, n, stop)
    if fc.ordered:
        return _side_by_side(fc, source, ChunkReader(fc.tgt_scan, n, stop), found)
    checked = 0
    while rows := source.next():
        checked += len(rows)
        found.add(fc.check_rows(rows))
        del rows  # not kept alive while the next chunk is read
    if fc.extras:
        target = ChunkReader(fc.tgt_scan, n, stop)
        while rows := target.next():
            found.add(fc.extras_of(rows))
            del rows
    return checked


class _Cursor:
    """The target rows in key order, one chunk in hand, with their order keys (`_order_keys`)."""

    def __init__(self, reader: ChunkReader, fc: FlowCheck):
        self.reader, self.fc = reader, fc
        self.rows: list[dict[str, Any]] = []
        self.keys: list[Any] = []
        self.pos = 0
        self.done = False
        self.after: Any = None  # the last key of the previous chunk

    def fill(self) -> bool:
        """The next chunk in hand (when the current one is used up); False at the end."""
        if self.pos < len(self.rows):
            return True
        self.rows = self.keys = []  # not kept alive while the next chunk is read
        if not self.done:
            self.rows, self.pos = self.reader.next(), 0
            self.keys = _order_keys(self.fc, self.rows, self.fc.flow.target, self.after)
            self.after = self.keys[-1] if self.keys else None
            self.done = not self.rows
        return not self.done

    def upto(self, last: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
        """(order key, row) of the next target rows whose key is at most `last`."""
        while self.fill():
            pos, end = self.pos, len(self.keys)
            cut = bisect_right(self.keys, last, pos) if last is not None else end
            self.pos = cut
            part = zip(self.keys[pos:cut], self.rows[pos:cut])
            yield from part
            del part  # no reference to this chunk while the next one is read
            if cut < end:
                return


def _order_keys(fc: FlowCheck, rows: list[dict[str, Any]], end: Endpoint, after: Any) -> list[Any]:
    """The rows' keys, canonical, as both tables order them (FlowCheck.ordered): one integer column -> the
    value itself, several -> a tuple. Source rows are given their target key (`key_sources`). Pairing relies
    on the order, so it is checked (in C: cheap): ascending, and after the previous chunk's last key."""
    columns = fc.flow.key_sources if end is fc.flow.source else end.key
    keys = list(map(itemgetter(*columns), rows))
    if len(columns) > 1:
        keys = [fc.tkey(k) for k in keys]
    elif not set(map(type, keys)) <= {int}:
        keys = [fc.tkey((k,))[0] for k in keys]
    if keys != sorted(keys) or (after is not None and keys and not after < keys[0]):
        raise ReplicatorError(f"verify: {end.side} {end.table} does not list its rows in ascending order of "
                              f"{list(end.key)}; its rows cannot be paired in key order")
    return keys


def _side_by_side(fc: FlowCheck, source: ChunkReader, target: ChunkReader, found: Found) -> int:
    cursor = _Cursor(target, fc)
    checked, after = 0, None
    while rows := source.next():
        checked += len(rows)
        after = _pair_chunk(fc, rows, cursor, after, found)
        del rows  # nothing of a chunk stays alive while the next one is read
    if fc.extras:  # target rows after the last source row (or of an empty source)
        for _k, trow in cursor.upto(None):
            found.add([fc.extra(trow)])
    return checked


def _pair_chunk(fc: FlowCheck, rows: list[dict[str, Any]], cursor: _Cursor, after: Any, found: Found) -> Any:
    """One source chunk paired with the target rows up to its last key, and compared; returns that key."""
    diffs: list[Difference] = []
    extras, agrees = fc.extras, fc.agrees
    exps = fc.expected(rows, locate=False)
    # a shared key copied unchanged: a source row's key, in the target's column order, is its target key
    keys = _order_keys(fc, rows, fc.flow.source, after)
    want = {k: e for k, e in zip(keys, exps)
            if (e.state is REQUIRED or e.state is OPTIONAL or e.state is GONE) and e.target_key is not None}
    seen = set(keys) if extras else ()
    for k, trow in cursor.upto(keys[-1]):
        e = want.pop(k, None)
        if e is not None:
            if e.state is not GONE and not e.skip and agrees(e.values, trow):  # compared at once: neither side is kept
                e.state, e.values = AGREED, {}
            else:
                e.target = trow
        elif extras and k not in seen:
            diffs.append(fc.extra(trow))
    fc.locate_natural([e for e in want.values() if e.state is not GONE])  # those not found by key
    diffs.extend(fc.differences(exps))
    found.add(diffs)
    return keys[-1]
