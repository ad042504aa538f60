"""Finding and deciding conflicts while a direction applies a run of two-way changes.

The applier hands over a run of changes that carry `expect` (what the source saw before) together
with the current target rows, read once per run and locked (`Applier.read_rows`). Per row, in target
terms, compared the way verify compares (`replicator.compare`: no conflict from Decimal against int,
an aware against a naive time, CHAR padding or JSON key order):

- UPDATE, row present: each changed field whose target value is neither the source's old value nor
  already the new one is an `update_differs` conflict, decided by the field's rule. A field that no
  row of the run changed is neither read nor written (`_Check._narrowed`: the run's write names the
  key and the changed fields only) where the write stays one statement; else, and for a field another
  row of the run changed, it is written with the target's own value (the row is locked), so the run
  stays one statement and no concurrent edit of another field is overwritten.
  Before that, where the run qualifies and the caller writes (`Applier.apply`), one conditional UPDATE
  writes the rows whose target still holds the old values (`_Check._optimistic`, docs/conflicts.md "How a
  two-way update is checked"); only the rest goes through the read and the comparison below.
- UPDATE, row gone: `update_missing`; the row comes back (all fields the flow carries) only when the
  incoming side wins the row rule (under `latest` by commit time: when the update is later than the
  delete); it is never re-created with only the changed fields. While a `sync`
  copies into the target, a missing row is one not copied yet: the update creates it whole, unrecorded.
- DELETE: the row differs from the old row the source deleted: `delete_differs`, the row rule decides
  whether it is deleted or kept; already gone: `delete_missing`, nothing to do, recorded.
- INSERT over an existing row with other values: `insert_exists`, decided field by field like
  `update_differs`; the same values: nothing to write.

A field the target wins is written with the target's own value (a run is one statement): the value
does not change, nothing is written a third time, and the write comes back to the other direction
as our echo, dropped. `latest` by commit time looks up when the target's edit was committed in the
`CommitClock` the other direction's reader feeds, waiting up to COMMIT_TIME_WAIT_SECONDS for it.

The conflicts go to the store in the same target transaction as the rows and the checkpoint, so a
replay after a crash finds them committed with the checkpoint or not at all.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from itertools import repeat
from operator import attrgetter, is_, is_not, itemgetter, le, methodcaller, ne
from typing import Any, Callable, Iterable, Sequence

from replicator import compare, metrics
from replicator.appliers.base import Applier, Run
from replicator.changes import UNCHANGED, Op, RowChange, TargetChange
from replicator.compare import ColumnInfo
from replicator.conflicts import model as M
from replicator.conflicts import store
from replicator.conflicts.clock import COMMIT_TIME_WAIT_SECONDS, CommitClock, Race
from replicator.conflicts.rules import Decision, decide, decide_against_delete, row_rule
from replicator.errors import RowError
from replicator.mapping.model import ConflictRule, Flow, MappingSet
from replicator.mapping.router import plan_value

log = logging.getLogger(__name__)
BACKOFF_SECONDS = 30.0


class Detector:
    """The resolver of one direction's applier (`Applier.resolver`)."""

    def __init__(self, mset: MappingSet, source_side: str, clock: CommitClock | None = None,
                 syncing: Callable[[], bool] = lambda: False):
        self.flows: dict[str, Flow] = {}
        # each two-way flow's reverse: what the other direction makes of a target value (`_Check._agrees`)
        self.back: dict[str, Flow] = {}
        for m in mset.mappings:
            flow = m.flow(source_side)
            if flow is not None and flow.two_way:
                self.flows[m.name] = flow
                back = next((g for g in m.flows if g is not flow), None)
                if back is not None:
                    self.back[m.name] = back
        self.clock = clock  # the other direction's commit times (latest by commit time); None: not known
        self.stream = next((f.stream for f in self.flows.values()), source_side)
        self._no_wait_until = 0.0
        # a copy (`sync`) into the target is under way: a row that is not there yet is not a conflict
        self.syncing = syncing
        self._equal: dict[tuple[Any, ...], Callable[[Any, Any], bool]] = {}
        self.field_of = {name: {p.target: p.name for p in flow.plans}  # target column -> the mapping's field name
                         for name, flow in self.flows.items()}
        for name, flow in self.flows.items():
            fold = flow.fold
            if fold is not None and fold.via is None:
                # a fold's one field, named alike in both directions (the parent's column and the child's value
                # column are one field: one decision per race, clock.Race)
                self.field_of[name] = {fold.value if flow.target.side == fold.child else fold.into: fold.into}
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

    def resolve(self, applier: Applier, run: Run, rows: list[TargetChange],
                write: bool = False) -> list[TargetChange]:
        """Resolver.resolve. `write` (Applier.apply's): a qualifying update run may be written here by the
        optimistic conditional write (`_Check._optimistic`), its rows then not returned; without it (the
        linker, which writes what comes back itself) every row is checked and returned as decided."""
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
            out.extend(_Check(self, applier, run, flow, part, found).run(write))
        if found:
            store.record(applier, found)
            metrics.count_conflicts(applier.direction, found)
            log.info("%s: %d conflict(s) on %s", applier.direction, len(found), run.table)
        return out

    def departed(self, applier: Applier, r: TargetChange, by: str, parent: Any,
                 slice_: Sequence[tuple[str, Any]]) -> tuple[bool, tuple[Any, ...] | None]:
        """Resolver.departed: a two-way fold's change of the parent's column (`r`: an UPDATE of the child's value
        column, `expect` the value the source saw before, not NULL) finds no child row of the type under
        `parent`: the other side removed it meanwhile (deleted it, moved it to another parent, took it out of
        the slice). That is an `update_missing` of the fold's field, decided by its rule as the other direction
        decides its `update_differs` (its removal against our edit) and recorded; True when the edit wins (the
        child row is made again), and the key of the row that was deleted (None: unknown, or it was moved, not
        deleted). The row that left and when: from the other direction's reader (`CommitClock.departed`), waited
        for as the commit time of any edit (whatever the rule: its key names the record)."""
        flow = self.flows.get(r.mapping)
        if flow is None or flow.conflicts is None:
            return True, None
        column = next(iter(r.values))
        rule = flow.conflicts.rule(column)
        seen = None
        if self.clock is not None:
            seen = self.clock.departed(flow.target.side, r.table, by, parent, slice_, timeout=0.0)
            # waited for whatever the rule: the row's key names the record, and a deleted row comes back under it
            if seen is None and time.monotonic() >= self._no_wait_until:
                seen = self.clock.departed(flow.target.side, r.table, by, parent, slice_)
                if seen is None:
                    self._no_wait_until = time.monotonic() + BACKOFF_SECONDS
                    log.warning("%s: no row of %s that left %r was read within %.0f s: the first connection wins "
                                "such conflicts; not waiting again for %.0f s", self.stream, r.table, parent,
                                COMMIT_TIME_WAIT_SECONDS, BACKOFF_SECONDS)
        if seen is not None:
            r = _with_key(r, seen[0])
        found: list[M.Conflict] = []
        run = Run(r.table, Op.UPDATE, r.key_columns, tuple(r.values), {r.key: r}, checked=True)
        won = _Check(self, applier, run, flow, [r], found).departed(r, column, seen[1] if seen is not None else None)
        store.record(applier, found)
        metrics.count_conflicts(applier.direction, found)
        log.info("%s: %d conflict(s) on %s", applier.direction, len(found), r.table)
        return won, (seen[0] if seen is not None and seen[2] else None)

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

    def agrees(self, flow: Flow, field_of: dict[str, str], c: str, now: Any, expected: Any,
               key_columns: Sequence[str], key: Sequence[Any], current: dict[str, Any],
               eq: Callable[[Any, Any], bool]) -> bool:
        """Whether the target's value `now` of column `c` is `expected` in the other direction's shape: sent
        to the source by the reverse flow and brought back by `flow`, it is `expected` (as verify's
        `_not_written_back` decides agreement). A field transformed one way only (`upper` from crm to erp)
        holds different images on the two sides while replication is done: without this, every delete of
        such a row, and every update of such a field, would be a conflict decided against a value nobody
        edited. Only asked where the plain comparison found a difference; anything that cannot be mapped
        back and forth (a transform reading other columns, a reference, an error) is no agreement.
        `current`: the target row's other columns (a fresh dict: it is changed here); `field_of`: target
        column -> the mapping's field name; `eq`: the column's equality. Also used by a dead-letter retry's
        check (stream/deadcheck.py)."""
        back = self.back.get(flow.mapping)
        name = field_of.get(c)
        if back is None or name is None:
            return False
        bplan, plan = back.plan(name), flow.plan(name)
        if bplan is None or plan is None or bplan.source != c or plan.source is None or plan.references \
                or bplan.references:
            return False
        current.update(zip(key_columns, key))
        current[c] = now
        try:
            there = plan_value(back, bplan, RowChange(back.source.table, Op.INSERT, None, current), current)
            if there is UNCHANGED:
                return False
            source = {plan.source: there}
            here = plan_value(flow, plan, RowChange(flow.source.table, Op.INSERT, None, source), source)
        except (RowError, KeyError, TypeError, ValueError):
            return False
        return here is not UNCHANGED and eq(here, expected)

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


_NO_PLAN = object()
_Step = tuple[str, bool, "int | None", Callable[[Any, Any], bool], frozenset[Any], bool]


class _Table:
    """One target table's catalog as a run's check uses it: the key's canonical form, each column's
    equality, and the per-column plan of an update run by (run columns, columns read)."""

    def __init__(self, det: Detector, info: dict[str, ColumnInfo], key: tuple[str, ...]):
        self.det, self.info, self.key = det, info, key
        rules = [compare.rule_for(info.get(c), None, c) for c in key]
        self.key_of = compare.key_canonicalizer(rules)
        # one integer key column: an int is its own canonical form (compare.key_canonicalizer's `ints`), so
        # a run's rows are matched by the bare value without a call per row
        self.int_key = len(rules) == 1 and rules[0].kind == compare.INT
        self._eq: dict[str, Callable[[Any, Any], bool]] = {}
        self._plans: dict[tuple[tuple[str, ...], tuple[str, ...]], list[_Step]] = {}
        self._optimistic: dict[tuple[Any, ...], Any] = {}  # optimistic_plan's, by (columns, changed, compared)

    def eq(self, column: str) -> Callable[[Any, Any], bool]:
        """Detector.equal by column name: the detector's own cache hashes the ColumnInfo on every call."""
        fn = self._eq.get(column)
        if fn is None:
            fn = self._eq[column] = self.det.equal(self.info, column)
        return fn

    def optimistic_plan(self, applier: Applier, table: Any, columns: tuple[str, ...], names: tuple[str, ...],
                        first: TargetChange) -> tuple[tuple[str, ...], frozenset[str], frozenset[str]] | None:
        """For `_Check._optimistic`, by (run columns, changed fields): the columns of its write (the key and
        the changed fields, in the run's order), the compared ones (changed and in `expect`: `first`'s, each
        row's is checked to agree) and the owned ones (changed, no `expect`); None: the run does not
        qualify (a column not in the catalog, a compared one not exact in SQL, nothing compared)."""
        expect = first.expect or {}
        k = (columns, names, frozenset(c for c in names if c in expect))
        got = self._optimistic.get(k, _NO_PLAN)
        if got is not _NO_PLAN:
            return got  # type: ignore[no-any-return]
        key = self.key
        changed = set(names)
        plan: tuple[tuple[str, ...], frozenset[str], frozenset[str]] | None = None
        if all(c in changed for c in key) and all(c in columns for c in names):
            write = tuple(c for c in columns if c in changed)
            compared = frozenset(c for c in names if c not in key and c in expect)
            owned = frozenset(c for c in names if c not in key and c not in expect)
            if compared and all(c in self.info for c in write) \
                    and all(applier.compares_exactly(table, c) for c in compared):
                plan = (write, compared, owned)
        if len(self._optimistic) > 1000:
            self._optimistic.clear()
        self._optimistic[k] = plan
        return plan

    def update_plan(self, columns: tuple[str, ...], read: list[str]) -> list[_Step]:
        """Per column of an update run: (column, is a key column, its position in the locked row -- key
        columns first, then `read` -- or None, its equality, the value classes for which == already
        means equal, whether a naive and an aware datetime naming the same instant are equal:
        Detector.equal's own first two tests, which `_Check._update` makes inline)."""
        k = (columns, tuple(read))
        plan = self._plans.get(k)
        if plan is None:
            n = len(self.key)
            pos = {c: n + i for i, c in enumerate(read)}
            keys = set(self.key)
            plan = []
            for c in columns:
                rule = compare.rule_for(self.info.get(c), None, c)
                plan.append((c, c in keys, pos.get(c), self.eq(c), compare.same_if_equal(rule),
                             rule.kind == compare.TIMESTAMP and (rule.precision is None or rule.precision >= 6)))
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

    def run(self, write: bool = False) -> list[TargetChange]:
        if write and self.run_.op is Op.UPDATE and self.run_.uniform:
            left = self._optimistic()
            if not left:
                return []
            self.rows = left
        cols: dict[str, None]
        if self.run_.uniform:
            # a run of group_runs's checked updates: each row names exactly the run's columns, in their order
            # (what the loop below would find; tests/unit/test_conflicts_fast.py holds the two equal)
            cols = dict.fromkeys(self.run_.columns)
        else:
            cols = {}
            seen = cols.keys()
            for r in self.rows:
                # the rows of a run mostly name the same columns: a subset test in C, the loops only for new ones
                expect, values = r.expect, r.values
                if expect and not expect.keys() <= seen:
                    for c in expect:
                        cols[c] = None
                if not values.keys() <= seen:
                    for c in values:
                        cols[c] = None
        op = self.run_.op
        written = self.run_.columns
        self.whole: list[str] | None = None  # what `read` would be without narrowing (see _narrowed)
        if op is Op.UPDATE and self.run_.uniform:
            narrow = self._narrowed()
            if narrow is not None:
                self.whole = [c for c in (*cols, *self._rule_columns()) if c not in self.key and c in self.info]
                written, cols = narrow, dict.fromkeys(narrow)
        for c in self._rule_columns():
            cols[c] = None
        self.read = [c for c in cols if c not in self.key and c in self.info]
        keys = [r.key for r in self.rows]
        found = self.a.read_rows(self.run_.table, self.key, self.read, keys)
        self.key_of = self.table.key_of
        n = self.n = len(self.key)
        # the locked rows stay tuples (key columns first, then `read`): an update reads them by position,
        # and only a conflict, a delete or an insert builds the column -> value dict
        key_of = self.key_of
        if op is Op.UPDATE:
            self.plan = self.table.update_plan(written, self.read)
        out = []
        locked: list[tuple[Any, ...] | None]
        if self.table.int_key:  # by the canonical value itself: key_of(k) is (k,) for a key of one int
            by_value: dict[Any, tuple[Any, ...]] = {}
            for row in found:
                v = row[0]
                by_value[v if v.__class__ is int else key_of(row[:1])[0]] = row
            get = by_value.get
            locked = [get(k[0]) if len(k) == 1 and k[0].__class__ is int else _by_canonical(by_value, key_of(k))
                      for k in keys]
        else:
            current = {key_of(row[:n]): row for row in found}
            locked = [current.get(key_of(k)) for k in keys]
        if op is Op.UPDATE:  # the usual run: one pass in C over the rows and their locked rows, in order
            return [w for w in map(self._update, self.rows, locked) if w is not None]
        for r, got in zip(self.rows, locked):
            if op is Op.DELETE:
                w = self._delete(r, None if got is None else self._cur(got))
            else:
                w = self._insert(r, None if got is None else self._cur(got))
            if w is not None:
                out.append(w)
        return out

    def _optimistic(self) -> list[TargetChange]:
        """The optimistic conditional write (docs/conflicts.md, "How a two-way update is checked"): where the
        run qualifies, one statement writes each row's changed fields only where the target still holds the
        old value of every compared field (`Applier.update_unchanged`); the rows it did not write (or, on
        MariaDB, which has no UPDATE ... RETURNING, the whole run when one was not written) are returned
        for the full check. The rest of the run: the full check, as before.

        Why this decides as the full check does: the SQL comparison is only ever STRICTER than
        `Detector.equal`. A compared column is one whose SQL equality with the old value, converted as the
        new one is and of an exact class (`Applier.exact_kind`, `EXACT_CLASSES`), is exact in the dialect
        (integers, numeric, dates, times, timestamps, strings byte-wise), so SQL's "equal" is the check's
        "equal" -- where the check would write every changed field -- while SQL's "different" (CHAR
        padding, Decimal scale, a time zone, case) only sends the row to the full check, which then
        decides it as always. A row missing on the target matches nothing: the full check
        (update_missing). On MariaDB a run the statement matched only in part is undone to a savepoint
        first (`MariaDBApplier.update_unchanged`): the full check then sees the rows as they were. Each
        written row is locked by the statement, each other row by the full check's read.

        Only runs of rows that all change the same fields (the compared ones, each in every row's
        `expect`, plus the owned fields router.with_owned adds without `expect`, written as they are), all
        compared columns in the catalog and exact, written in one statement (`updates_at_once`); not while a
        `sync` copies into the target (a missing row is created there). Else the full check, unchanged."""
        rows = self.rows
        if self.det.syncing():
            return rows
        names = rows[0].values.keys()
        # the plan first (cached by shape): a run that cannot qualify costs no pass over its rows
        plan = self.table.optimistic_plan(self.a, self.run_.table, self.run_.columns, tuple(names), rows[0])
        if plan is None:
            return rows
        columns, compared, owned = plan
        int_key = self.table.int_key
        if not _all_qualify(rows, names, compared, owned, int_key):
            return rows
        # one target row per run row: two keys of the run naming one target row (1 and '1' for an integer
        # key) are each checked against the row as it was; a statement would write it once, then the check
        # would find the other one's values there
        if not int_key and len(rows) > 1 and len({self.table.key_of(r.key) for r in rows}) != len(rows):
            return rows
        if not self.a.updates_at_once(self.run_.table, self.key, columns, len(rows)):
            return rows
        run = self.run_
        part = Run(run.table, Op.UPDATE, run.key_columns, columns, {r.key: r for r in rows}, run.insert_only,
                   run.must_exist, True, False, True)
        left = self.a.update_unchanged(part, rows, tuple(c for c in columns if c in compared))
        return rows if left is None else left

    def _cur(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """A locked row as column -> value (its non-key columns)."""
        return dict(zip(self.read, row[self.n:]))

    def _rule_columns(self) -> list[str]:
        return [rule.column for rule in (self.rules.default, *self.rules.fields.values()) if rule.column is not None]

    def _narrowed(self) -> tuple[str, ...] | None:
        """The columns to read and write for a checked update run when they are fewer than the run's: the
        key and the fields some row of the run changes (`values`), in the run's order. A field no row
        changed needs no check (only changed fields are compared) and its write would put back the value
        the locked row holds, so it is neither read nor written -- for the bench's table two columns of
        seven, among them a 100-character text, read, parsed, converted and sent per row for nothing.
        Only where the write stays one statement (a run of one row, a dialect with a set-based UPDATE, or
        columns the upsert can take: `Applier.updates_at_once`, `leaves_out_required`) and every column is
        in the target's catalog (an unknown one is written with its `expect` value today: kept so). The
        rows the check brings back (missing on the target) are still written whole: `written_runs`."""
        columns = self.run_.columns
        info = self.info
        for c in columns:
            if c not in info:
                return None
        changed: dict[str, None] = {}
        seen = changed.keys()
        for r in self.rows:
            values = r.values
            if not values.keys() <= seen:
                for c in values:
                    changed[c] = None
        key = self.key
        narrow = tuple([c for c in columns if c in changed or c in key])
        if len(narrow) == len(columns):
            return None
        a = self.a
        if not a.updates_at_once(self.run_.table, self.key, narrow, len(self.rows)) \
                and a.leaves_out_required(self.run_.table, narrow):
            return None
        return narrow

    def _whole_row(self, r: TargetChange, row: tuple[Any, ...]) -> dict[str, Any]:
        """The locked row's non-key columns as a conflict or `_agrees` sees them: every column the run
        carries, as without narrowing. A narrowed run read fewer; the row is locked by this transaction, so
        reading the rest now gives what the run's read would have (only on this rare path: a difference)."""
        if self.whole is None:
            return self._cur(row)
        got = self.a.read_rows(self.run_.table, self.key, self.whole, [r.key])
        if not got:  # (cannot be: the row is locked) what was read
            return self._cur(row)
        return dict(zip(self.whole, got[0][self.n:]))

    # -- per row
    def _update(self, r: TargetChange, row: tuple[Any, ...] | None) -> TargetChange | None:
        expect = r.expect or {}
        if row is None and r.must_exist:
            return None  # a fold's column of a parent that is gone: the parent mapping's business, no race here
        if row is None and (self.det.syncing() or self.flow.target.optional):
            # not copied yet, or a row its application creates lazily (`optional: true`: missing means all
            # NULL, no delete to race with): the stream creates it whole -- unless all of it is NULL, which the
            # missing row says already (router.existing_only: sync and the stream's inserts create none either)
            created = {**expect, **r.values}
            if self.flow.target.optional and all(v is None for c, v in created.items() if c not in self.key):
                return None
            return _with_values(r, created)
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
        whole: dict[str, Any] | None = None  # the row as a difference sees it (`_whole_row`), read once a row
        for c, is_key, i, eq, plain, instants in self.plan:
            if is_key:
                values[c] = new_values[c]
            elif c not in new_values:
                values[c] = row[i] if i is not None else expect.get(c)  # unchanged: the locked row's own value
            elif i is None:  # a column the catalog did not list: nothing to compare with
                values[c], writes = new_values[c], True
            else:
                new, now = new_values[c], row[i]
                if c not in expect:
                    values[c], writes = new, True
                    continue
                old = expect[c]
                try:  # eq's own first test, without the call: the same class, one for which == means equal
                    same = now.__class__ is old.__class__ and now.__class__ in plain and now == old
                    # and its second: a naive datetime (UTC) and an aware one naming the same instant -- the
                    # usual MariaDB DATETIME against a PostgreSQL timestamptz (or back), without eq's call
                    if not same and instants and now.__class__ is datetime and old.__class__ is datetime \
                            and (now.tzinfo is None) is not (old.tzinfo is None):
                        same = (now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)) \
                            == (old if old.tzinfo is not None else old.replace(tzinfo=timezone.utc))
                except Exception:  # (eq answers False then too)
                    same = False
                if same or eq(now, old):  # the usual case first: the target still holds the old value
                    values[c], writes = new, True
                elif eq(now, new):  # both sides made the same edit
                    values[c] = now
                else:
                    if whole is None:
                        whole = self._whole_row(r, row)
                    if self._agrees(c, now, old, r, whole):  # the old value, in the other direction's shape
                        values[c], writes = new, True
                    else:
                        values[c], won = self._field(M.UPDATE_DIFFERS, r, c, new, now, whole)
                        writes = writes or won
        if not writes:
            return None
        if r.__class__ is not TargetChange:
            return _with_values(r, values)
        # _with_values inline (its call per row): the same copy of the instance's fields, `values` replaced
        w: TargetChange = _new(TargetChange)
        fields = w.__dict__
        fields.update(r.__dict__)
        fields["values"] = values
        return w

    def _delete(self, r: TargetChange, cur: dict[str, Any] | None) -> TargetChange | None:
        expect = r.expect or {}
        if cur is None and self.det.syncing():
            return None  # not copied yet
        if cur is None:
            self._record(M.DELETE_MISSING, r, None, None, None, row_rule(self.rules.default),
                         Decision(self.incoming, "the row is gone on both sides: nothing to do"), True)
            return None
        differ = {c: cur[c] for c in expect if c not in self.key and c in cur
                  and not self.eq(c)(cur[c], expect[c]) and not self._agrees(c, cur[c], expect[c], r, cur)}
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
        stamps = self.flow.stamps  # the apply time replicator stamps is nobody's edit: written, never a conflict
        for c, new in r.values.items():
            if c in self.key or c not in cur or c in stamps or self.eq(c)(cur[c], new):
                values[c] = new
                continue
            if cur[c] is None or new is None:
                # both sides created the record and one has no value here: no race, the value is kept.
                # SuiteCRM saves an account and its accounts_cstm row in one transaction; `customers` made
                # iDempiere's partner (taxid NULL), and `customer_tax`'s insert of the tax id into it was an
                # insert_exists that iDempiere's priority decided for its NULL: the tax id was dropped
                values[c] = cur[c] if new is None else new
                filled = filled or cur[c] is None
                continue
            if self._agrees(c, cur[c], new, r, cur):  # the same value in the other direction's shape: kept
                values[c] = cur[c]
                continue
            differs = True
            values[c], _ = self._field(M.INSERT_EXISTS, r, c, new, cur[c], cur)
        return _with_values(r, values) if differs or filled else None

    def _agrees(self, c: str, now: Any, expected: Any, r: TargetChange, row: Any) -> bool:
        """Detector.agrees for this run's row `r` (`row`: its locked tuple or column -> value dict)."""
        current = self._cur(row) if isinstance(row, tuple) else dict(row)
        return self.det.agrees(self.flow, self.field_of, c, now, expected, self.key, r.key, current, self.eq(c))

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

    def departed(self, r: TargetChange, c: str, departed_at: datetime | None) -> bool:
        """Detector.departed for this one change: decided by the field's rule as `_field` decides the other
        direction's `update_differs` (the target's edit being the removal of its child row, at `departed_at`),
        one decision per race, and recorded as `update_missing`; True when the incoming edit wins."""
        rule = self.rules.rule(c)
        new = r.values[c]
        if rule.rule == "latest" and rule.column is None and self.det.clock is not None:
            d = self._shared(r, self.field_of.get(c, c), lambda wait: departed_at,
                             lambda t: decide(rule, self.incoming, self.target, self.rules.first_side,
                                              incoming_time=r.commit_time, target_time=t))
        else:
            d = decide(rule, self.incoming, self.target, self.rules.first_side)
        won = d.winner == self.incoming
        self._record(M.UPDATE_MISSING, r, c, new, None, rule, d, won)
        return won

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


_new = object.__new__
_VALUES, _EXPECT, _KEY, _CLASS = attrgetter("values"), attrgetter("expect"), attrgetter("key"), attrgetter("__class__")
_KEYS, _FIRST = methodcaller("keys"), itemgetter(0)


def _all_qualify(rows: list[TargetChange], names: Any, compared: frozenset[str], owned: frozenset[str],
                 int_key: bool) -> bool:
    """Whether every row of a run takes `_Check._optimistic`'s conditional write: the run's changed fields
    (`names`, the first row's `values` keys) and no others, an `expect` holding every compared field and no
    owned one, and for an integer key an int. The loop

        for r in rows:
            if r.values.keys() != names or r.expect is None or not compared <= r.expect.keys() \\
                    or (owned and not owned.isdisjoint(r.expect.keys())) \\
                    or (int_key and r.key[0].__class__ is not int):
                return False
        return True

    as one pass in C per test over the run (the same operators on the same objects; every row's first
    tests before any row's next, which raise nowhere the loop would not): tests/unit/test_conflicts_fast.py
    compares the two."""
    if any(map(ne, map(_KEYS, map(_VALUES, rows)), repeat(names))):
        return False
    expects = list(map(_EXPECT, rows))
    if any(map(is_, expects, repeat(None))):
        return False
    # (the keys views made again for the second test, not kept in a list: a view is an object the cyclic
    # collector tracks, and thousands of them alive at once are what triggers its collections)
    if not all(map(le, repeat(compared), map(_KEYS, expects))):
        return False
    if owned and not all(map(owned.isdisjoint, map(_KEYS, expects))):
        return False
    return not int_key or not any(map(is_not, map(_CLASS, map(_FIRST, map(_KEY, rows))), repeat(int)))


def _with_values(r: TargetChange, values: dict[str, Any]) -> TargetChange:
    """`dataclasses.replace(r, values=values)` for every checked row: a copy of the instance's fields
    with `values` replaced, three C calls where the frozen dataclass's __init__ runs object.__setattr__
    per field (1.35 against 0.34 us). TargetChange has no __post_init__ and no cached state, so the copy
    is what replace() builds: test_conflicts_fast checks that it equals replace()."""
    if r.__class__ is not TargetChange:  # (never from routing) a subclass goes through its own __init__
        return TargetChange(r.table, r.op, r.key_columns, r.key, values, r.insert_only, r.must_exist, r.expect,
                            r.mapping, r.source_key, r.commit_time)
    c: TargetChange = _new(TargetChange)
    d = c.__dict__
    d.update(r.__dict__)
    d["values"] = values
    return c


def _with_key(r: TargetChange, key: tuple[Any, ...]) -> TargetChange:
    c: TargetChange = _new(TargetChange)
    c.__dict__.update(r.__dict__)
    c.__dict__["key"] = tuple(key)
    return c


def _by_canonical(by_value: dict[Any, tuple[Any, ...]], key: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The locked row of a canonical key, the locked rows being by the value of their one key column: a
    key of another length matches none (as a tuple it would equal no one-column key)."""
    return by_value.get(key[0]) if len(key) == 1 else None


def _followed(d: Decision) -> Decision:
    """The peer direction's decision, taken over: the same winner, and the detail says why."""
    return Decision(d.winner, f"as decided by the other direction: {d.detail}")


def _changed(r: TargetChange, key: Iterable[str]) -> dict[str, Any]:
    keys = set(key)
    return {c: v for c, v in r.values.items() if c not in keys}
