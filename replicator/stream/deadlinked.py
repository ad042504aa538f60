"""The dead-letter queue for linked mappings (crosswalk, natural key, references, gates, created_by).

A linked change is applied row by row by the Linker, which looks at the target first (its counterpart,
its parent), so it is quarantined and replayed whole, as the source change, never as a finished target
statement:

- in the stream (`apply`), the Linker applies it inside a savepoint; when the target rejects a row it
  writes (a constraint, a value it cannot hold), everything the change wrote is rolled back to the
  savepoint -- the counterpart, its crosswalk pair, parked children it released -- and the change is
  queued under its mapping's target table and the **source row's key** (the counterpart's key may not
  exist yet: it is made when the row goes in), with the source row, so the direction goes on;
- later changes of the same source row wait behind it (`deadletter.Quarantine.held`), as for any row;
- `replay` (`replicator dlq retry`, and the retry after a mapping reload) routes the stored source row
  through the mapping as it is now and applies it through a Linker: the counterpart is found or created
  and paired exactly as the stream would have, so the record's next change finds it.
"""
from __future__ import annotations

from typing import Any, Callable

from replicator.appliers.base import Applier
from replicator.appliers.lookup import SourceLookup
from replicator.changes import RowChange
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.links import Linker
from replicator.mapping.model import Flow, MappingSet
from replicator.mapping.router import LinkedChange, route_flow
from replicator.stream import deadletter


def apply(q: deadletter.Quarantine, db: Applier, lc: LinkedChange, linker: Linker,
          write: Callable[[LinkedChange], None]) -> None:
    """Apply one linked change of the stream: queued behind its row when that row is held, quarantined
    when its mapping quarantines and the target rejects it, else applied (a row error of a mapping that
    stops is raised as it is)."""
    if q.held and q.held_linked(lc):
        q.queue_linked(db, lc, "an earlier change of this row is queued", deadletter.HELD)
        return
    if not q.quarantines_linked(lc):
        write(lc)
        return
    error = guarded(db, lc.flow, lc.source_key, lambda: write(lc), linker.forget)
    if error is not None:
        q.queue_linked(db, lc, str(error), deadletter.error_class(error))


def guarded(db: Applier, flow: Flow, key: Any, apply: Callable[[], None], forget: Callable[[], None]) -> RowError | None:
    """Run `apply` inside a savepoint: None when it went in, else the row error, with everything it wrote
    rolled back (`forget`: drop what the Linker remembered of it). Anything not about a row propagates."""
    return deadletter.in_savepoint(db, apply, lambda exc: RowError(
        f"mapping {flow.mapping}: {db.describe_error(exc)}", table=str(flow.target.table), key=key,
        column=db.error_column(exc), key_side=flow.source.side), forget)


def replay(db: Applier, linker: Linker, flow: Flow, source_row: RowChange) -> RowError | None:
    """Re-apply a queued linked change from its source row, through the Linker (unchecked, like a sync or
    a repair: it writes the source's row as it is)."""
    def apply() -> None:
        for out in route_flow(flow, source_row):
            if isinstance(out, LinkedChange):
                linker.apply(out)
            else:
                db.apply([out])
    return guarded(db, flow, _key(flow, source_row), apply, linker.forget)


def replay_entry(db: Applier, linker: Linker, e: deadletter.Entry, flow: Flow) -> RowError | None:
    """deadretry.retry's replay of a queued linked change, by its stored source row."""
    if e.source_row is None:
        return RowError(f"mapping {e.mapping}: the queued change has no source row to replay: skip it",
                        table=e.target_table, key=e.target_key, key_side=flow.source.side)
    return replay(db, linker, flow, e.source_row)


def _key(flow: Flow, change: RowChange) -> tuple[Any, ...]:
    row = change.before if change.after is None else change.after
    return tuple((row or {}).get(c) for c in flow.source.key)


class ReplayLinkers:
    """Linkers for `dlq retry`, one per direction (stream), made on first use: each reads the other
    database's crosswalk (pairs the opposite direction created) through its own read-only session."""

    def __init__(self, config: Config, mset: MappingSet):
        self.config = config
        self.mset = mset
        self._linkers: dict[str, Linker] = {}
        self._lookups: list[SourceLookup] = []

    def replay(self, db: Applier, e: deadletter.Entry, flow: Flow) -> RowError | None:
        """deadretry.retry's replay of a linked entry."""
        return replay_entry(db, self.linker(db, e.stream), e, flow)

    def linker(self, db: Applier, stream: str) -> Linker:
        found = self._linkers.get(stream)
        if found is None:
            source, target = stream.split("_to_", 1)
            conn = self.config.side(source)
            lookup = SourceLookup(conn)
            self._lookups.append(lookup)
            # the source's dialect as well: a fold reads its child rows there (without it, a replayed child
            # delete could not see the row the parent still has and wrote NULL)
            found = self._linkers[stream] = Linker(db, self.mset, stream, source, target,
                                                   self.config.side(target).state_schema, lookup.query, conn.kind)
        return found

    def close(self) -> None:
        for lookup in self._lookups:
            lookup.close()

