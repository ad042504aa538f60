"""replicator/conflicts/detect.py as of 6905239 (before issue 14), verbatim from its imports on: the
reference the faster check is differentially tested against (tests/unit/test_detect_differential.py).
Not imported by the daemon. (The original module docstring, which says what the check does, is
replicator/conflicts/detect.py's.)"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from replicator import compare, metrics
from replicator.appliers.base import Applier, Run
from replicator.changes import Op, TargetChange
from replicator.compare import ColumnInfo
from replicator.conflicts import model as M
from replicator.conflicts import store
from replicator.conflicts.clock import COMMIT_TIME_WAIT_SECONDS, CommitClock, Race
from replicator.conflicts.rules import Decision, decide, decide_against_delete, row_rule
from replicator.mapping.model import ConflictRule, Flow, MappingSet

log = logging.getLogger(__name__)
BACKOFF_SECONDS = 30.0


class Detector:
    """The resolver of one direction's applier (`Applier.resolver`)."""

    def __init__(self, mset: MappingSet, source_side: str, clock: CommitClock | None = None,
                 syncing: Callable[[], bool] = lambda: False):
        self.flows: dict[str, Flow] = {}
        for m in mset.mappings:
            flow = m.flow(source_side)
            if flow is not None and flow.two_way:
                self.flows[m.name] = flow
        self.clock = clock  # the other direction's commit times (latest by commit time); None: not known
        self.stream = next((f.stream for f in self.flows.values()), source_side)
        self._no_wait_until = 0.0
        # a copy (`sync`) into the target is under way: a row that is not there yet is not a conflict
        self.syncing = syncing
        self._equal: dict[tuple[Any, ...], Callable[[Any, Any], bool]] = {}
        self.field_of = {name: {p.target: p.name for p in flow.plans}  # target column -> the mapping's field name
                         for name, flow in self.flows.items()}
        self._tables: dict[tuple[int, tuple[str, ...]], _Table] = {}

    def table(self, info: dict[str, ColumnInfo], key: tuple[str, ...]) -> _Table:
        """What checking a run of this table needs from its catalog, worked out once per catalog (a
        reload of the column types is a new `info` dict): with runs of a few rows near the present, the
        per-run look-ups cost more than the rows."""
        k = (id(info), key)
        t = self._tables.get(k)
        if t is None or t.info is not info:  # (`info` is kept in _Table: its id is not reused meanwhile)
            if len(self._tables) > 1000:
                self._tables.clear()
            t = _Table(self, info, key)
            if info:  # an unknown table's catalog is a new empty dict per call: not worth keeping
                self._tables[k] = t
        return t

    def resolve(self, applier: Applier, run: Run, rows: list[TargetChange]) -> list[TargetChange]:
        out: list[TargetChange] = []
        found: list[M.Conflict] = []
        by_mapping: dict[str, list[TargetChange]] = {}
        for r in rows:
            by_mapping.setdefault(r.mapping, []).append(r)
        for name, part in by_mapping.items():
            flow = self.flows.get(name)
            if flow is None:  # reloaded mappings: not two-way any more
                out.extend(part)
                continue
            out.extend(_Check(self, applier, run, flow, part, found).run())
        if found:
            store.record(applier, found)
            metrics.count_conflicts(applier.direction, found)
            log.info("%s: %d conflict(s) on %s", applier.direction, len(found), run.table)
        return out

    def wait_for(self, side: str, table: Any, key: Any, column: str, value: Any,
                 equal: Callable[[Any, Any], bool], deleted: bool = False) -> Any:
        """CommitClock.wait_for, but after a wait in vain (a value replicator wrote itself, by a sync or a
        repair; a reader far behind) only look, without waiting, for BACKOFF_SECONDS: one stall, not one
        per row."""
        assert self.clock is not None
        waiting = time.monotonic() >= self._no_wait_until
        found = self.clock.wait_for(side, table, key, column, value, equal,
                                    timeout=COMMIT_TIME_WAIT_SECONDS if waiting else 0.0, deleted=deleted)
        if found is None and waiting:
            self._no_wait_until = time.monotonic() + BACKOFF_SECONDS
            log.warning("%s: the commit time of %s's edit of %s %s was not read within %.0f s: the first connection "
                        "wins such conflicts; not waiting again for %.0f s", self.stream, side, table, key,
                        COMMIT_TIME_WAIT_SECONDS, BACKOFF_SECONDS)
        return found

    def equal(self, info: dict[str, ColumnInfo], column: str) -> Callable[[Any, Any], bool]:
        ci = info.get(column)
        key = (ci, column)
        fn = self._equal.get(key)
        if fn is None:
            rule = compare.rule_for(ci, None, column)
            plain = compare.same_if_equal(rule)  # classes for which == already means the same value
            canon = compare.canonicalizer(rule)

            # a timestamp column kept to the microsecond: two datetimes that name the same instant are
            # the same value, the naive one being UTC (as compare._utc_naive reads it). The usual case
            # of a MariaDB DATETIME against a PostgreSQL timestamptz then costs one replace(), not two
            # canonical forms; anything else (and every "different") goes the general way below.
            instants = rule.kind == compare.TIMESTAMP and (rule.precision is None or rule.precision >= 6)

            def fn(a: Any, b: Any, rule: compare.Rule = rule) -> bool:
                if a is None or b is None:
                    return a is None and b is None
                try:
                    if a.__class__ is b.__class__ and a.__class__ in plain and a == b:
                        return True
                    if instants and a.__class__ is datetime and b.__class__ is datetime and (
                            a.tzinfo is None) is not (b.tzinfo is None) and (
                            (a if a.tzinfo is not None else a.replace(tzinfo=timezone.utc))
                            == (b if b.tzinfo is not None else b.replace(tzinfo=timezone.utc))):
                        return True
                    return bool(canon(a) == canon(b)) or compare.values_equal(rule, a, b)
                except Exception:  # values that cannot be compared: different (a conflict, never a crash)
                    return False
            self._equal[key] = fn
        return fn


_Step = tuple[str, bool, "int | None", Callable[[Any, Any], bool]]


class _Table:
    """One target table's catalog as a run's check uses it: the key's canonical form, each column's
    equality, and the per-column plan of an update run by (run columns, columns read)."""

    def __init__(self, det: Detector, info: dict[str, ColumnInfo], key: tuple[str, ...]):
        self.det, self.info, self.key = det, info, key
        self.key_of = compare.key_canonicalizer([compare.rule_for(info.get(c), None, c) for c in key])
        self._eq: dict[str, Callable[[Any, Any], bool]] = {}
        self._plans: dict[tuple[tuple[str, ...], tuple[str, ...]], list[_Step]] = {}

    def eq(self, column: str) -> Callable[[Any, Any], bool]:
        """Detector.equal by column name: the detector's own cache hashes the ColumnInfo on every call."""
        fn = self._eq.get(column)
        if fn is None:
            fn = self._eq[column] = self.det.equal(self.info, column)
        return fn

    def update_plan(self, columns: tuple[str, ...], read: list[str]) -> list[_Step]:
        """Per column of an update run: (column, is a key column, its position in the locked row -- key
        columns first, then `read` -- or None, its equality)."""
        k = (columns, tuple(read))
        plan = self._plans.get(k)
        if plan is None:
            n = len(self.key)
            pos = {c: n + i for i, c in enumerate(read)}
            keys = set(self.key)
            plan = [(c, c in keys, pos.get(c), self.eq(c)) for c in columns]
            if len(self._plans) > 1000:
                self._plans.clear()
            self._plans[k] = plan
        return plan


class _Check:
    """One run of one flow's changes against the locked target rows."""

    def __init__(self, det: Detector, applier: Applier, run: Run, flow: Flow, rows: list[TargetChange],
                 found: list[M.Conflict]):
        self.det, self.a, self.run_, self.flow, self.rows, self.found = det, applier, run, flow, rows, found
        assert flow.conflicts is not None
        self.rules = flow.conflicts
        self.incoming, self.target = flow.source.side, flow.target.side
        self.info = applier.column_info(run.table)
        self.key = run.key_columns
        self.table = det.table(self.info, self.key)
        self.eq = self.table.eq
        self.field_of = det.field_of.get(flow.mapping) or {p.target: p.name for p in flow.plans}

    def run(self) -> list[TargetChange]:
        cols: dict[str, None] = {}
        for r in self.rows:
            for c in (r.expect or {}):
                cols[c] = None
            for c in r.values:
                cols[c] = None
        for rule in (self.rules.default, *self.rules.fields.values()):
            if rule.column is not None:
                cols[rule.column] = None
        self.read = [c for c in cols if c not in self.key and c in self.info]
        found = self.a.read_rows(self.run_.table, self.key, self.read, [r.key for r in self.rows])
        self.key_of = self.table.key_of
        n = self.n = len(self.key)
        # the locked rows stay tuples (key columns first, then `read`): an update reads them by position,
        # and only a conflict, a delete or an insert builds the column -> value dict
        current = {self.key_of(row[:n]): row for row in found}
        op = self.run_.op
        if op is Op.UPDATE:
            self.plan = self.table.update_plan(self.run_.columns, self.read)
        out = []
        for r in self.rows:
            row = current.get(self.key_of(r.key))
            if op is Op.UPDATE:
                w = self._update(r, row)
            elif op is Op.DELETE:
                w = self._delete(r, None if row is None else self._cur(row))
            else:
                w = self._insert(r, None if row is None else self._cur(row))
            if w is not None:
                out.append(w)
        return out

    def _cur(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """A locked row as column -> value (its non-key columns)."""
        return dict(zip(self.read, row[self.n:]))

    # -- per row
    def _update(self, r: TargetChange, row: tuple[Any, ...] | None) -> TargetChange | None:
        expect = r.expect or {}
        if row is None and self.det.syncing():
            return _with_values(r, {**expect, **r.values})  # not copied yet: the stream creates it whole
        if row is None:
            d = self._decide_row(r, None, None)
            won = d.winner == self.incoming
            self._record(M.UPDATE_MISSING, r, None, _changed(r, self.key), None, row_rule(self.rules.default),
                         d, won)
            # back with every field the flow carries, or not at all
            return _with_values(r, {**expect, **r.values}) if won else None
        new_values = r.values
        values: dict[str, Any] = {}
        writes = False
        for c, is_key, i, eq in self.plan:
            if is_key:
                values[c] = new_values[c]
            elif c not in new_values:
                values[c] = row[i] if i is not None else expect.get(c)  # unchanged: the locked row's own value
            elif i is None:  # a column the catalog did not list: nothing to compare with
                values[c], writes = new_values[c], True
            else:
                new, now = new_values[c], row[i]
                if c not in expect or eq(now, expect[c]):  # the usual case first: the target still holds the old value
                    values[c], writes = new, True
                elif eq(now, new):  # both sides made the same edit
                    values[c] = now
                else:
                    values[c], won = self._field(M.UPDATE_DIFFERS, r, c, new, now, self._cur(row))
                    writes = writes or won
        return _with_values(r, values) if writes else None

    def _delete(self, r: TargetChange, cur: dict[str, Any] | None) -> TargetChange | None:
        expect = r.expect or {}
        if cur is None and self.det.syncing():
            return None  # not copied yet
        if cur is None:
            self._record(M.DELETE_MISSING, r, None, None, None, row_rule(self.rules.default),
                         Decision(self.incoming, "the row is gone on both sides: nothing to do"), True)
            return None
        differ = {c: cur[c] for c in expect if c not in self.key and c in cur
                  and not self.eq(c)(cur[c], expect[c])}
        if not differ:
            return r
        c = next(iter(differ))
        d = self._decide_row(r, c, cur[c], cur)  # the target's edit that left this value
        won = d.winner == self.incoming
        self._record(M.DELETE_DIFFERS, r, None, {c: expect[c] for c in differ}, differ,
                     row_rule(self.rules.default), d, won)
        return r if won else None

    def _insert(self, r: TargetChange, cur: dict[str, Any] | None) -> TargetChange | None:
        if cur is None:
            return r
        values: dict[str, Any] = {}
        differs = filled = False
        for c, new in r.values.items():
            if c in self.key or c not in cur or self.eq(c)(cur[c], new):
                values[c] = new
                continue
            if cur[c] is None or new is None:  # a value against none: kept, no race
                values[c] = cur[c] if new is None else new
                filled = filled or cur[c] is None
                continue
            differs = True
            values[c], _ = self._field(M.INSERT_EXISTS, r, c, new, cur[c], cur)
        return _with_values(r, values) if differs or filled else None

    # -- deciding and recording
    def _field(self, kind: str, r: TargetChange, c: str, new: Any, now: Any, cur: dict[str, Any]) -> tuple[Any, bool]:
        rule = self.rules.rule(c)
        stamp_in = stamp_now = None
        kind_ = compare.TIMESTAMP
        if rule.rule == "latest" and rule.column is not None:
            stamp_in = r.values.get(rule.column, (r.expect or {}).get(rule.column))
            stamp_now = cur.get(rule.column)
            kind_ = compare.rule_for(self.info.get(rule.column), None, rule.column).kind
        if rule.rule == "latest" and rule.column is None and self.det.clock is not None:
            d = self._shared(r, self.field_of.get(c, c), lambda wait: self._target_time(r, rule, c, now, wait),
                             lambda t: decide(rule, self.incoming, self.target, self.rules.first_side,
                                              incoming_time=r.commit_time, target_time=t))
        else:
            d = decide(rule, self.incoming, self.target, self.rules.first_side, incoming_stamp=stamp_in,
                       target_stamp=stamp_now, stamp_kind=kind_)
        won = d.winner == self.incoming
        self._record(kind, r, c, new, now, rule, d, won)
        return (new if won else now), won

    def _decide_row(self, r: TargetChange, column: str | None, value: Any,
                    cur: dict[str, Any] | None = None) -> Decision:
        """A whole row: an update against a delete (update_missing in one direction, delete_differs in the
        other). Under `latest` by commit time the later of the two commits wins where the other
        direction's reader recorded the target's edit (the delete, or the edit that left `column` at
        `value`) within the wait, else the decision one of the two directions took first (`_shared`).
        `latest` by a column: `_row_by_column` (`cur`: the target row the delete would remove)."""
        rule = row_rule(self.rules.default)
        if self.rules.default.rule == "latest" and self.rules.default.column is not None:
            return self._row_by_column(r, column, value, cur)
        if self.rules.default.rule != "latest" or self.rules.default.column is not None \
                or self.det.clock is None or r.commit_time is None:
            return decide(rule, self.incoming, self.target, self.rules.first_side)
        return self._shared(r, None, lambda wait: self._row_time(r, column, value, wait),
                            lambda t: decide(rule, self.incoming, self.target, self.rules.first_side,
                                             incoming_time=r.commit_time, target_time=t))

    def _row_by_column(self, r: TargetChange, column: str | None, value: Any, cur: dict[str, Any] | None) -> Decision:
        """`latest` by a column, an update against a delete: the surviving row's column against the delete's
        commit time (rules.decide_against_delete). The updating direction (`cur` None: the row is gone)
        learns the delete's time from the other reader, waited for; the deleting direction knows it (its
        own commit) and reads the column from the target row. One decision per race (`_shared`), so a
        direction that did not learn the delete's time in time and the one that knew agree."""
        rule = self.rules.default
        col = rule.column
        assert col is not None
        first = self.rules.first_side
        if self.det.clock is None or r.commit_time is None:
            return Decision(first, f"the commit time of the delete is not known: {first} (the first connection) wins")
        kind_ = compare.rule_for(self.info.get(col), None, col).kind
        if cur is None:  # our update, their delete
            stamp = r.values.get(col, (r.expect or {}).get(col))
            return self._shared(r, None, lambda wait: self._row_time(r, None, None, wait),
                                lambda t: decide_against_delete(rule, self.incoming, self.target, first,
                                                                deleting=self.target, stamp=stamp, stamp_kind=kind_,
                                                                delete_time=t))
        # our delete, their update: the update's commit time only names the race (never waited for)
        return self._shared(r, None, lambda wait: self._row_time(r, column, value, False),
                            lambda t: decide_against_delete(rule, self.incoming, self.target, first,
                                                            deleting=self.incoming, stamp=cur.get(col),
                                                            stamp_kind=kind_, delete_time=r.commit_time))

    def _row_time(self, r: TargetChange, column: str | None, value: Any, wait: bool) -> Any:
        """The commit time of the target's edit of this row: its delete (`column` None) or the edit that
        left `column` at `value`, as the other direction's reader recorded it."""
        assert self.det.clock is not None
        eq = self.det.equal(self.info, column or "")
        if not wait:
            return self.det.clock.wait_for(self.target, self.run_.table, r.key, column or "", value, eq,
                                           timeout=0.0, deleted=column is None)
        return self.det.wait_for(self.target, self.run_.table, r.key, column or "", value, eq, deleted=column is None)

    def _target_time(self, r: TargetChange, rule: ConflictRule, column: str, value: Any, wait: bool = True) -> Any:
        """The commit time of the target's edit that left `column` at `value`, for `latest` by commit time,
        as the other direction's reader recorded it (`wait`: give that reader a few seconds)."""
        if rule.rule != "latest" or rule.column is not None or self.det.clock is None or r.commit_time is None:
            return None
        eq = self.eq(column)
        if not wait:
            return self.det.clock.wait_for(self.target, self.run_.table, r.key, column, value, eq, timeout=0.0)
        return self.det.wait_for(self.target, self.run_.table, r.key, column, value, eq)

    def _shared(self, r: TargetChange, field: str | None, target_time: Callable[[bool], Any],
                decide_by: Callable[[Any], Decision]) -> Decision:
        """`latest` by commit time, one decision per race for both directions (clock.Race): the peer
        direction's decision if it took one, else ours, kept for the peer. Looked up before waiting: the
        peer that decided first already read our edit, so there is nothing to wait for."""
        clock = self.det.clock
        assert clock is not None
        race = Race.of(self.flow.mapping, {self.incoming: r.source_key, self.target: r.key}, field)
        known = target_time(False)
        peer = clock.shared(race, self.incoming, r.commit_time, known)
        if peer is not None:
            if known is not None:
                mine = decide_by(known)
                if mine.winner == peer.winner:  # the peer knew both times too: the same decision, our words
                    return mine
            return _followed(peer)
        t = known if known is not None else target_time(True)
        mine = decide_by(t)
        taken = clock.share(race, self.incoming, r.commit_time, t, mine)
        return mine if taken is mine else _followed(taken)

    def _record(self, kind: str, r: TargetChange, field: str | None, source_value: Any, target_value: Any,
                rule: ConflictRule, d: Decision, won: bool) -> None:
        if rule.rule == "manual":
            resolution = M.PENDING
        else:
            resolution = M.APPLIED if won else M.KEPT
        self.found.append(M.Conflict(
            stream=self.a.stream, mapping=self.flow.mapping, kind=kind, table=self.run_.table,
            target_key=tuple(r.key), source_key=tuple(r.source_key), field=field,
            source_value=source_value, target_value=target_value,
            rule=rule.rule, winner=d.winner, resolution=resolution,
            source_commit_time=r.commit_time, detail=d.detail))


def _with_values(r: TargetChange, values: dict[str, Any]) -> TargetChange:
    """`dataclasses.replace(r, values=values)` without its per-call look-up of the fields (it ran for
    every checked row). Every field is named: test_conflicts_fast checks that it equals replace()."""
    return TargetChange(r.table, r.op, r.key_columns, r.key, values, r.insert_only, r.must_exist, r.expect,
                        r.mapping, r.source_key, r.commit_time)


def _followed(d: Decision) -> Decision:
    """The peer direction's decision, taken over: the same winner, and the detail says why."""
    return Decision(d.winner, f"as decided by the other direction: {d.detail}")


def _changed(r: TargetChange, key: Iterable[str]) -> dict[str, Any]:
    keys = set(key)
    return {c: v for c, v in r.values.items() if c not in keys}
