"""Linked changes: counterparts found through keys, natural keys or the crosswalk; gates; foreign
keys translated through links; children parked until their parent has a counterpart.

Everything here runs inside the applier's open target transaction, so a crosswalk pair, a parked
change and the rows they describe commit (or roll back) together with the checkpoint.

The crosswalk pair of a record lives in the database where replicator created the counterpart:
`(mapping, source_side, source_key, target_key)`. A lookup reads the target's crosswalk by source
key and then the source's crosswalk (pairs the other direction created) by target key.
"""
from __future__ import annotations

import logging
import shlex
import time
from dataclasses import replace
from typing import Any, Callable

from replicator import metrics
from replicator.appliers.base import Applier, group_runs
from replicator.changes import UNCHANGED, Op, RowChange, TableRef, TargetChange
from replicator.codec import dumps_change, dumps_key, loads_change, loads_key
from replicator.errors import ReplicatorError, RowError, show_key
from replicator.mapping import linkrace, parking
from replicator.mapping.crosswalk import CrosswalkLookup
from replicator.mapping.folds import FoldApplier, no_parent_writer, optional_parent, parent_writer
from replicator.mapping.keygen import KeyGen
from replicator.mapping.model import Flow, Mapping, MappingSet, no_natural_key
from replicator.mapping.router import LinkedChange, Ref, leave_row, route, route_flow, with_owned
from replicator.mapping.scope import Scope, children, key_reference, record_ref, with_folds

log = logging.getLogger(__name__)

CROSSWALK = "crosswalk"
PARKED = "parked"


def _same(a: Any, b: Any) -> bool:
    """One field's old and new value, both from the same conversion (or both resolved foreign keys)."""
    try:
        return a.__class__ is b.__class__ and bool(a == b)
    except Exception:  # cannot be compared: changed (writing it is safe)
        return False


def postgres_ddl(schema: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {schema}.crosswalk (
            mapping text NOT NULL, source_side text NOT NULL, source_key text NOT NULL,
            target_key text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (mapping, source_side, source_key))""",
        f"CREATE INDEX IF NOT EXISTS crosswalk_target ON {schema}.crosswalk (mapping, source_side, target_key)",
        f"""CREATE TABLE IF NOT EXISTS {schema}.parked (
            id bigserial PRIMARY KEY, stream text NOT NULL, waiting_mapping text NOT NULL,
            waiting_key text NOT NULL, mapping text NOT NULL, change text NOT NULL,
            parked_at timestamptz NOT NULL DEFAULT now())""",
        f"CREATE INDEX IF NOT EXISTS parked_waiting ON {schema}.parked (stream, waiting_mapping, waiting_key)",
    ]


def mariadb_ddl(schema: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {schema}.crosswalk (
            mapping VARCHAR(128) NOT NULL, source_side VARCHAR(64) NOT NULL, source_key VARCHAR(512) NOT NULL,
            target_key VARCHAR(512) NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            PRIMARY KEY (mapping, source_side, source_key), KEY crosswalk_target (mapping, source_side, target_key)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {schema}.parked (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, stream VARCHAR(128) NOT NULL,
            waiting_mapping VARCHAR(128) NOT NULL, waiting_key VARCHAR(512) NOT NULL, mapping VARCHAR(128) NOT NULL,
            `change` LONGTEXT NOT NULL, parked_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            KEY parked_waiting (stream, waiting_mapping, waiting_key)
        ) ENGINE=InnoDB""",
    ]


def never_paired(mset: MappingSet, mapping: str, side: str) -> str | None:
    """Why a record of `mapping` on `side` that has no counterpart can never get one, or None when it may: the
    mapping creates no counterpart of `side`'s records (`created_by` the other side, or no flow from `side`) and
    nothing else pairs one (no natural key; a crosswalk, so no shared key either). A record without a pair is then
    one made on `side`: the other side's records made there have their pair, which the stream reads through the
    source's crosswalk (explain and the linker say this only with the source in reach)."""
    m = mset.by_name.get(mapping)
    if m is None or not m.link.crosswalk or m.link.natural:
        return None
    flow = m.flow(side)
    if flow is None:
        return f"{m.name} flows only {', '.join(f.stream for f in m.flows)}"
    if flow.created_by and flow.created_by != side:
        return f"only {flow.created_by} creates {m.name} records (created_by: {flow.created_by})"
    return None


class _OutOfSlice(Exception):
    """The crosswalk names a counterpart that is no longer a row of the mapping's slice."""


class Linker:
    """Applies LinkedChanges for one direction. `source_query` reads the source database (its crosswalk)."""

    def __init__(self, applier: Applier, mset: MappingSet, stream: str, source_side: str, target_side: str,
                 state_schema: str, source_query: Callable[[str, list[Any]], list[tuple[Any, ...]]] | None,
                 source_kind: str | None = None):
        self.a = applier
        self.mset = mset
        self.stream = stream
        self.source_side = source_side
        self.target_side = target_side
        self.source_query = source_query
        self.crosswalk = applier.quote_table(TableRef(state_schema, CROSSWALK))
        self.lookup = CrosswalkLookup(
            lambda sql, params: self.a.query(sql.replace("{crosswalk}", self.crosswalk), params),
            source_query, source_side, target_side)
        self.parked = applier.quote_table(TableRef(state_schema, PARKED))
        self.change_col = applier.quote_col("change")
        # (mapping, source key) -> target key; pairs never change
        self._pairs: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.m_parked = metrics.rows_parked.labels(stream)
        self.unparked = 0  # parked changes taken out to be applied, since this linker was made (repair reports it)
        self._next_sweep = time.monotonic() + parking.SWEEP_SECONDS
        self._next_retry = time.monotonic() + parking.RETRY_SECONDS
        # `fold:` mappings; reading the source's child rows needs its dialect (`source_kind`)
        self.folds = FoldApplier(applier, stream, self._resolve, self._park, source_query, source_kind, mset,
                                 self._left_record, make_parent=self.make_parent)
        # a row whose record exists outside the referenced mapping is not parked (mapping/scope.py)
        self.scope = Scope(mset, source_side, source_query, source_kind)

    # ------------------------------------------------------------ entry points
    def apply(self, lc: LinkedChange) -> None:
        self._due()
        flow = lc.flow
        if flow.fold is not None:
            self.folds.apply(lc)
            return
        if lc.op is Op.DELETE:
            self._delete(flow, lc)
            return
        if lc.refused is not None:
            # a closed gate and values that cannot be made (router._linked): a record without a counterpart is
            # not sent, as any row before its gate opens; one with a counterpart is the row error
            if self._crosswalk(flow.mapping, lc.source_key) is None:
                metrics.rows_filtered.labels(self.stream, str(flow.target.table)).inc()
                return
            raise lc.refused
        if flow.link.crosswalk and lc.op is Op.UPDATE:
            self._refuse_rename(flow, lc)
        values: dict[str, Any] = {}
        record: Ref | None = None  # the record this row belongs to (a second table's row, keyed by it)
        refs: list[tuple[Ref, Any]] = []  # each reference and its counterpart key
        for col, value in lc.values.items():
            if isinstance(value, Ref):
                if record is None and record_ref(self.mset, flow, self.source_side, value.mapping, value.value,
                                                 lc.source_key):
                    record = value
                resolved = self._resolve(value)
                if resolved is None:
                    if self._creates_nothing(lc):
                        # a gate that has not opened (an opportunity not won yet) for a record without a
                        # counterpart: nothing would be written when the parent arrives either, and a parked
                        # row would wait for a parent that may never come (the gate's own change brings the
                        # whole row when it opens)
                        metrics.rows_filtered.labels(self.stream, str(flow.target.table)).inc()
                        return
                    self._park(lc, value)
                    return
                refs.append((value, resolved))
                value = resolved
            values[col] = value
        # a record that left its mapping keeps its crosswalk pair (its counterpart comes back under it), so its
        # rows still resolve. A mapping that keeps such rows when the record leaves (`delete: ignore`, a soft
        # delete) would go on writing them: asked before every write. Any other has lost its counterpart with
        # the record's leave: asked only where it would be made again (below)
        # A two-way update is asked first too: finding its counterpart gone, the conflict check would decide an
        # update_missing race and could make it again.
        if record is not None and (flow.leave != "propagate" or (lc.op is Op.UPDATE and lc.expect is not None
                                                                 and self.a.resolver is not None)) \
                and self._left_record(lc, record):
            return
        try:
            target_key = self._counterpart(flow, lc.source_key, values)
        except _OutOfSlice as out:
            # the counterpart became a row of another entity (its discriminator changed): not ours to
            # write, and creating a second counterpart would break the pair
            log.info("%s: %s row %s: counterpart %s is outside the slice %s, left alone", self.stream,
                     flow.mapping, lc.source_key, out.args[0], dict(flow.target.slice))
            metrics.rows_filtered.labels(self.stream, str(flow.target.table)).inc()
            return
        linked_now = False
        if target_key is None and flow.link.natural:
            target_key = self._natural(flow, values, lc)
            if target_key is not None:
                if flow.link.crosswalk:
                    self._pair(flow, lc.source_key, target_key)
                metrics.links_created.labels(self.stream, flow.mapping, "natural").inc()
                linked_now = True
        if target_key is not None:
            changed = {c: v for c, v in values.items() if c not in flow.target.key and c not in lc.insert_only}
            # an update that links two existing records for the first time writes the whole row, as before:
            # they were never in sync, so there is no old value to check against (verify finds the rest)
            checked = lc.expect is not None and self.a.resolver is not None and not (linked_now and lc.op is Op.UPDATE)
            back: bool | None = None
            if checked:
                changed, back = self._checked(lc, target_key, values, changed)
                if back is False and not changed and lc.op is Op.UPDATE and not self._exists(flow, target_key):
                    return  # gone: the resolver decided update_missing for the delete, which stands
            # the second side of a first copy: fields the first side's copy held no value in (sync/driver.py)
            fill = {c: v for c, v in values.items() if c in lc.fill and v is not None and c not in changed
                    and c not in flow.target.key} if lc.fill else None
            if not self.a.update_by_key(flow.target.table, flow.target.key, target_key, changed, fill):
                if checked and lc.op is Op.UPDATE:
                    # the counterpart was deleted on the target: the resolver decided update_missing
                    if back:
                        self._recreate(flow, values, target_key)
                    return
                if record is not None and self._left_record(lc, record):
                    return
                if lc.revive and flow.link.crosswalk and not linked_now:
                    # a pair whose counterpart is gone, for a row that entered the filter or slice (it left
                    # before: its leave deleted the counterpart; the pair, which may live in the source's
                    # database, stays) or that `verify --repair` reported missing. Whole, under the key its
                    # pair names, as update_missing brings one back. (Any other insert that finds its pair's
                    # row gone -- a re-copy after the target deleted it -- leaves the delete standing, below.)
                    if self._waits(lc, refs):
                        return
                    self._recreate(flow, values, target_key)  # (the applier counts the row)
                    if flow.referenced:  # rows that waited for it (its counterpart was gone) follow, as after _create
                        self._unpark(flow.mapping, dumps_key((lc.source_key[0],)))
                    self._entered(lc, target_key)
                    return
                metrics.rows_missing.labels(self.stream, str(flow.target.table), "update").inc()
                if lc.op is Op.INSERT:
                    log.warning("%s: mapping %s: %s key %s is paired with %s key %s, which is gone (deleted on %s "
                                "since; the crosswalk pair stays): not created again -- a copy does not undo the "
                                "target's delete; `replicator verify --mapping %s` lists it and `verify --repair` "
                                "creates it (counted in replicator_rows_missing_total)", self.stream, flow.mapping,
                                flow.source.side, show_key(lc.source_key), flow.target.table, show_key(target_key),
                                flow.target.side, flow.mapping)
                    return
                log.warning("%s: mapping %s: %s key %s changed, but its counterpart %s key %s is gone (deleted on "
                            "%s since): not written, and not created again out of an update; `replicator verify "
                            "--mapping %s` lists it (counted in replicator_rows_missing_total)", self.stream,
                            flow.mapping, flow.source.side, show_key(lc.source_key), flow.target.table,
                            show_key(target_key), flow.target.side, flow.mapping)
            metrics.rows_applied.labels(self.stream, str(flow.target.table), "update").inc()
            if linked_now and flow.referenced:
                # the record has a counterpart from now on: children waiting for it can follow
                self._unpark(flow.mapping, dumps_key((lc.source_key[0],)))
            self._entered(lc, target_key)
            return
        if lc.must_exist or not lc.gate_open or (flow.created_by and flow.created_by != flow.source.side):
            metrics.rows_filtered.labels(self.stream, str(flow.target.table)).inc()
            return
        if self._waits(lc, refs, record):
            return
        if not self._missing_wins(lc, values):
            return
        self._create(flow, lc, values)

    def _waits(self, lc: LinkedChange, refs: list[tuple[Ref, Any]], record: Ref | None = None) -> bool:
        """Before a row is made on the target: a record it references whose crosswalk pair names a counterpart that
        is gone (its leave deleted it, or the target's users did) is no parent to point at -- the row would be an
        orphan, or break a foreign key and stop the direction. The row parks until the counterpart is back (the
        record enters again, or `verify --repair` makes it: both release what waits), unless it is the record's
        own row and the record is outside its mapping (`_park` counts it, not carried). A record whose mapping
        keeps its counterpart when it leaves is asked at the source (`_left_record`). One primary-key read of the
        target per reference, only when a row is made."""
        for ref, resolved in refs:
            if self._gone(ref, resolved):
                self._park(lc, ref)
                return True
        if record is not None:
            m = self.mset.by_name.get(record.mapping)
            rflow = m.flow(self.source_side) if m is not None else None
            if rflow is not None and rflow.leave != "propagate" and self._left_record(lc, record):
                return True
        return False

    def _gone(self, ref: Ref, resolved: Any) -> bool:
        """`ref`'s crosswalk pair names target key `resolved`, and no row of that key is in the referenced mapping's
        target (within its slice)."""
        m = self.mset.by_name[ref.mapping]
        if not m.link.crosswalk:
            return False  # `_resolve` found the row itself
        target = m.endpoint(self.target_side)
        return not self.a.find_keys(target.table, target.key, {target.key[0]: resolved}, limit=1,
                                    slice_=target.slice)

    def _left_record(self, lc: LinkedChange, record: Ref) -> bool:
        """The record `lc`'s row belongs to has a counterpart but exists outside its mapping's slice or filter
        now (it left: a customer into the recycle bin): the row is not carried, as the record's own row is not
        -- counted and logged as a row outside (`_outside`). When the record comes back, its rows are read and
        written whole (`_entered`). One read of the source (`Scope.outside`), only for records whose mapping
        has a filter or slice on this side."""
        outside = self.scope.outside(record.mapping, record.value)
        if outside is None:
            return False
        self._outside(lc, record, outside)
        return True

    def _outside(self, lc: LinkedChange, record: Ref, outside: str) -> None:
        metrics.rows_outside.labels(self.stream, lc.flow.mapping, outside).inc()
        metrics.rows_filtered.labels(self.stream, str(lc.flow.target.table)).inc()
        log.info("%s: %s row %s not carried: its record %s %s is outside the slice or filter of mapping %s",
                 self.stream, lc.flow.mapping, show_key(lc.source_key), record.mapping, show_key((record.value,)),
                 outside)

    def _creates_nothing(self, lc: LinkedChange) -> bool:
        """A change of a crosswalk-linked record that may not create its counterpart (gate closed, an update
        that must find one, another side creates) and has none: it writes nothing, now or later."""
        flow = lc.flow
        if not flow.link.crosswalk or not (lc.must_exist or not lc.gate_open
                                           or (flow.created_by and flow.created_by != flow.source.side)):
            return False
        return self._crosswalk(flow.mapping, lc.source_key) is None

    def _missing_wins(self, lc: LinkedChange, values: dict[str, Any]) -> bool:
        """A checked update of a record keyed by its own mapped key (no crosswalk) whose counterpart is not
        there: deleted on the target since, so the race is update_missing, decided by the resolver (the
        counterpart is created whole only when the update wins). With a crosswalk a missing pair means
        the record never had a counterpart; a gate that opens now, or a slice, creates it as before."""
        flow = lc.flow
        if lc.op is not Op.UPDATE or lc.expect is None or self.a.resolver is None or flow.link.crosswalk \
                or flow.target.slice or not linkrace.gate_was_open(lc):
            return True
        expect = self._expect(lc)
        changed = {c: v for c, v in values.items() if c not in flow.target.key and c not in lc.insert_only
                   and (c not in expect or not _same(expect[c], v))}
        if not changed:
            return False  # nothing this mapping carries changed: nothing to bring back
        target_key = tuple(values[c] for c in flow.target.key)
        return linkrace.update_wins(self.a, lc, target_key, changed, expect)

    def _expect(self, lc: LinkedChange) -> dict[str, Any]:
        """The old row of a checked change in target terms, foreign keys translated through their link
        (one whose old parent has no counterpart is left out: nothing to compare it with); neither the
        key nor fields written only when creating (they may differ on purpose)."""
        assert lc.expect is not None
        expect: dict[str, Any] = {}
        for c, v in lc.expect.items():
            if c in lc.flow.target.key or c in lc.insert_only:
                continue
            if isinstance(v, Ref):
                v = self._resolve(v)
                if v is None:
                    continue
            expect[c] = v
        return expect

    def _exists(self, flow: Flow, target_key: tuple[Any, ...]) -> bool:
        return bool(self.a.find_keys(flow.target.table, flow.target.key, dict(zip(flow.target.key, target_key)),
                                     limit=1))

    def _recreate(self, flow: Flow, values: dict[str, Any], target_key: tuple[Any, ...]) -> None:
        """The counterpart of a pair, deleted on the target, back whole under the key the pair names (an
        update won update_missing): the pair stays valid in whichever database holds it."""
        row = {**values, **dict(zip(flow.target.key, target_key)), **dict(flow.target.slice)}
        self.a.apply([TargetChange(flow.target.table, Op.INSERT, flow.target.key, target_key, row)])

    def _checked(self, lc: LinkedChange, target_key: tuple[Any, ...], values: dict[str, Any],
                 changed: dict[str, Any]) -> tuple[dict[str, Any], bool | None]:
        """A two-way change of a counterpart: the fields to write, decided as for an unlinked run. An UPDATE
        carries only the fields that changed (an unchanged field must not overwrite a concurrent edit of
        the target), checked against the locked counterpart (update_differs); an INSERT that found its
        counterpart (linked by natural key, or already paired) is decided field by field (insert_exists)
        instead of overwriting it. Conflicts are recorded by the resolver in this transaction. Also returns
        whether the resolver gave the row back to write (None: nothing changed, not asked): for a
        counterpart that turns out gone, whether the update won update_missing."""
        assert lc.expect is not None and self.a.resolver is not None
        flow = lc.flow
        keys = dict(zip(flow.target.key, target_key))
        if lc.op is Op.INSERT:
            tc = TargetChange(flow.target.table, Op.INSERT, flow.target.key, target_key, {**changed, **keys},
                              expect={}, mapping=flow.mapping, source_key=lc.source_key, commit_time=lc.commit_time)
            unchecked: dict[str, Any] = {}
        else:
            expect = self._expect(lc)
            values = changed
            changed = {c: v for c, v in values.items() if c not in expect or not _same(expect[c], v)}
            if not changed:
                return {}, None
            changed, expect = with_owned(flow, values, changed, expect)
            unchecked = {c: v for c, v in changed.items() if c not in expect}
            tc = TargetChange(flow.target.table, Op.UPDATE, flow.target.key, target_key, {**changed, **keys},
                              expect={**expect, **keys}, mapping=flow.mapping, source_key=lc.source_key,
                              commit_time=lc.commit_time)
        run = group_runs([tc])[0]
        out = self.a.resolver.resolve(self.a, run, [tc])
        if not out:
            return unchecked, False
        # fields the target won come back with its own value: not written (this path writes one row)
        return {**{c: v for c, v in out[0].values.items() if c in changed and _same(v, changed[c])}, **unchecked}, True

    def apply_through(self, lcs: list[LinkedChange]) -> None:
        """Consecutive two-hop fold changes of the open target transaction, each parent read and written once
        (`folds.FoldApplier.through_all`)."""
        self._due()
        self.folds.through_all(lcs)

    def _due(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self.sweep_parked()
        if now >= self._next_retry:
            # before the change: a parked change is older than it (it may be an earlier change of the same row)
            self.retry_waiting()

    def forget(self) -> None:
        """What was written since a savepoint was rolled back (a quarantined change, stream/deadlinked):
        pairs looked up meanwhile may be gone with it."""
        self._pairs.clear()

    def retry_parked(self) -> int:
        """At the start of a session, and after copies end (replicator.sync.driver): apply parked changes
        whose parent has arrived meanwhile, also through the other direction (its crosswalk pairs). Returns
        how many parked changes left the table (applied, or parked again for another parent)."""
        done = self.retry_waiting()
        done += self.drop_outside()
        done += self.drop_unpairable()
        self.sweep_parked()
        return done

    def drop_outside(self) -> int:
        """Parked changes of rows whose record exists outside the referenced mapping (parked before replicator
        told them apart, mapping/scope.py): dropped now, logged and counted as `_park` counts such a change."""
        # only the mappings whose rows belong to a record (keyed by `references:`, or folds) park such changes
        keyed = [m.name for m in self.mset.mappings if key_reference(m, self.source_side) is not None
                 or any(f.fold is not None for f in m.flows)]
        if not self.scope.usable or not keyed:
            return 0
        rows = self.a.query(f"SELECT id, waiting_mapping, waiting_key, mapping, {self.change_col} FROM {self.parked} "
                            f"WHERE stream = %s AND mapping IN ({', '.join(['%s'] * len(keyed))}) ORDER BY id",
                            [self.stream, *keyed])
        verdicts: dict[tuple[str, str], str | None] = {}
        dropped = 0
        for row_id, waiting, waiting_key, parked_by, text in rows:
            change = loads_change(text)
            m = self.mset.by_name.get(parked_by)
            flow = m.flow_of(self.source_side, change.table) if m is not None else None
            image = change.before if change.op is Op.DELETE else change.after
            if flow is None or image is None or any(c not in image for c in flow.source.key):
                continue
            value = loads_key(waiting_key)[0]
            skey = tuple(image[c] for c in flow.source.key)
            if not record_ref(self.mset, flow, self.source_side, waiting, value, skey):
                continue
            if (waiting, waiting_key) not in verdicts:
                verdicts[(waiting, waiting_key)] = self.scope.outside(waiting, value)
            outside = verdicts[(waiting, waiting_key)]
            if outside is None or not self.a.execute(f"DELETE FROM {self.parked} WHERE id = %s", [row_id]):
                continue
            self.m_parked.dec()
            dropped += 1
            metrics.rows_outside.labels(self.stream, parked_by, outside).inc()
            log.warning("%s: dropped a parked %s change of %s row %s: its record %s %s exists outside the slice or "
                        "filter of mapping %s, so the row is not carried (docs/mappings.md, \"Records outside the "
                        "referenced mapping\")", self.stream, change.op.value, parked_by, show_key(skey), waiting,
                        waiting_key, outside)
        if dropped:
            parking.refresh(self.a, self.parked, self.stream)
        return dropped

    def drop_unpairable(self) -> int:
        """Parked changes waiting for a record that can never get a counterpart (`_never_paired`; parked by an
        earlier version, or before a reload made it so): dropped at the start, each logged and counted as
        `_unpairable` counts such a change."""
        waiting = [m.name for m in self.mset.mappings if self._never_paired(Ref(m.name, None)) is not None]
        if not waiting:
            return 0
        rows = self.a.query(f"SELECT id, waiting_mapping, waiting_key, mapping, {self.change_col} FROM {self.parked} "
                            f"WHERE stream = %s AND waiting_mapping IN ({', '.join(['%s'] * len(waiting))}) "
                            f"ORDER BY id", [self.stream, *waiting])
        dropped = 0
        for row_id, mapping, key, parked_by, text in rows:
            value = loads_key(key)[0]
            if self._crosswalk(mapping, (value,)) is not None:
                continue  # paired meanwhile: retry_waiting replays it
            if not self.a.execute(f"DELETE FROM {self.parked} WHERE id = %s", [row_id]):
                continue
            self.m_parked.dec()
            dropped += 1
            change = loads_change(text)
            m = self.mset.by_name.get(parked_by)
            flow = m.flow_of(self.source_side, change.table) if m is not None else None
            if flow is not None:
                metrics.rows_filtered.labels(self.stream, str(flow.target.table)).inc()
            log.warning("%s: dropped a parked %s change of %s: it waited for %s %s, made on %s, which can never get "
                        "a counterpart in %s (%s, without a natural key)", self.stream, change.op.value, parked_by,
                        mapping, key, self.source_side, self.target_side, self._never_paired(Ref(mapping, value)))
        if dropped:
            parking.refresh(self.a, self.parked, self.stream)
        return dropped

    def retry_waiting(self) -> int:
        """Apply the parked changes whose referenced record has a counterpart now, inside the open
        transaction. Also every `parking.RETRY_SECONDS` while the stream applies linked changes: the pair
        may have been made by the other direction (or a `verify --repair`), which never wakes this one."""
        self._next_retry = time.monotonic() + parking.RETRY_SECONDS
        rows = self.a.query(f"SELECT DISTINCT waiting_mapping, waiting_key, mapping FROM {self.parked} "
                            f"WHERE stream = %s", [self.stream])
        done = 0
        seen: set[tuple[str, str]] = set()  # replayed
        absent: set[tuple[str, str]] = set()  # no counterpart (looked up once)
        for mapping, key, parked_by in rows:
            if (mapping, key) in seen:
                continue
            ref = Ref(mapping, loads_key(key)[0])
            if (mapping, key) not in absent:
                resolved = self._resolve(ref)
                if resolved is None or self._gone(ref, resolved):
                    absent.add((mapping, key))
            if (mapping, key) not in absent or self._parked_parent(parked_by, ref):
                seen.add((mapping, key))
                done += self._unpark(mapping, key)
        return done

    def release(self, mapping: str, value: Any) -> int:
        """The changes parked until `mapping`'s record `value` (its source-side key) had a counterpart, applied now
        if it has one -- `verify --repair` wrote the record: the stream's own path (`_unpark`). Returns how many
        parked changes left the table."""
        ref = Ref(mapping, value)
        resolved = self._resolve(ref)
        if resolved is None or self._gone(ref, resolved):
            return 0
        return self._unpark(mapping, dumps_key((value,)))

    def sweep_parked(self) -> int:
        """Drop parked changes older than their mapping's `parked: {drop_after_days: N}` (inside the open
        transaction: they go with the checkpoint), then refresh the parked gauges."""
        self._next_sweep = time.monotonic() + parking.SWEEP_SECONDS
        dropped = 0
        for m in self.mset.mappings:
            flow = m.flow(self.source_side)
            if flow is not None and flow.park_days is not None:
                dropped += parking.drop_expired(self.a, self.parked, self.change_col, self.stream, m.name,
                                                flow.park_days, flow.source.key)
        count = self.a.query(f"SELECT COUNT(*) FROM {self.parked} WHERE stream = %s", [self.stream])
        self.m_parked.set(count[0][0])
        parking.refresh(self.a, self.parked, self.stream)
        return dropped

    # ------------------------------------------------------------ counterparts
    def _counterpart(self, flow: Flow, source_key: tuple[Any, ...], values: dict[str, Any]) -> tuple[Any, ...] | None:
        if flow.link.crosswalk:
            found = self._crosswalk(flow.mapping, source_key)
            if found is not None and not self._in_slice(flow, found):
                raise _OutOfSlice(found)
            return found
        key = tuple(values[c] for c in flow.target.key)
        return key if self._in_slice(flow, key, always=True) else None

    def _in_slice(self, flow: Flow, key: tuple[Any, ...], always: bool = False) -> bool:
        """The target row of `key` exists and belongs to the mapping's slice (`slice:` of the target endpoint):
        a row of another entity of a shared table is never updated or deleted by this mapping."""
        if not flow.target.slice and not always:
            return True
        return bool(self.a.find_keys(flow.target.table, flow.target.key, dict(zip(flow.target.key, key)), limit=1,
                                     slice_=flow.target.slice))

    def _crosswalk(self, mapping: str, source_key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        skey = dumps_key(source_key)
        hit = self._pairs.get((mapping, skey))
        if hit is not None:
            return hit
        pair = self.lookup.pair(mapping, source_key)
        if pair is None:
            return None
        self._pairs[(mapping, skey)] = pair.target_key
        return pair.target_key

    def _refuse_rename(self, flow: Flow, lc: LinkedChange) -> None:
        """An update that changes the source row's own key: ERPNext's "Rename" of a customer, say. A
        crosswalk pair holds the old key, and the pair may live in either database (the direction that
        created the record wrote it), so this transaction cannot always move it: the new key would find
        no pair and create a second counterpart (or link another one by natural key) while the other
        direction kept writing to the old pair. Refused as a row error naming the key, with the fix."""
        before = lc.change.before
        if before is None or any(c not in before for c in flow.source.key):
            return
        old = tuple(before[c] for c in flow.source.key)
        if old == lc.source_key or self._crosswalk(flow.mapping, lc.source_key) is not None:
            return  # no rename, or its pair was moved (the fix below): the new key finds its counterpart
        if self._crosswalk(flow.mapping, old) is None:
            return  # never paired: the new key is linked or created like any row's
        side = self.source_side
        raise RowError(
            f"mapping {flow.mapping}: the key changed from {dumps_key(old)} to {dumps_key(lc.source_key)} (the "
            f"application renamed the record); a crosswalk pair keeps the old key, so replicator does not "
            f"follow a rename by itself. Stop replicator, move the pair: `replicator crosswalk rename --mapping "
            f"{flow.mapping} --side {side} --from {_cli_key(old)} --to {_cli_key(lc.source_key)}`, start it and "
            f"retry the change (`replicator dlq retry`, for a mapping that quarantines). By hand, in the crosswalk "
            f"that holds the pair: UPDATE "
            f"<state>.crosswalk SET source_key = '{dumps_key(lc.source_key)}' WHERE mapping = '{flow.mapping}' "
            f"AND source_side = '{side}' AND source_key = '{dumps_key(old)}' in the {self.target_side} "
            f"database, or SET target_key likewise WHERE source_side = '{self.target_side}' AND target_key "
            f"= '{dumps_key(old)}' in the {side} database (docs/mappings.md, \"Keys the application makes\")",
            table=str(lc.change.table), key=old, column=flow.source.key[0])

    def _pair(self, flow: Flow, source_key: tuple[Any, ...], target_key: tuple[Any, ...]) -> None:
        self.a.execute(f"INSERT INTO {self.crosswalk} (mapping, source_side, source_key, target_key) "
                       f"VALUES (%s, %s, %s, %s)",
                       [flow.mapping, self.source_side, dumps_key(source_key), dumps_key(target_key)])

    def _natural(self, flow: Flow, values: dict[str, Any], lc: LinkedChange) -> tuple[Any, ...] | None:
        cols = {}
        for name in flow.link.natural:
            plan = flow.plan(name)
            if plan is None or plan.target not in values or no_natural_key(values[plan.target]):
                return None  # no natural key on this row ('' included): nothing to link by
            cols[plan.target] = values[plan.target]
        # only a record of the mapping's own slice is the same record
        found = self.a.find_keys(flow.target.table, flow.target.key, cols, slice_=flow.target.slice)
        if len(found) > 1:
            raise RowError(f"natural key {cols} matches more than one row; it must be unique",
                           table=str(flow.target.table), key=lc.source_key)
        return tuple(found[0]) if found else None

    def _resolve(self, ref: Ref) -> Any:
        """The target-side value of a foreign key, or None when the referenced record has no counterpart."""
        mapping: Mapping = self.mset.by_name[ref.mapping]
        if mapping.link.crosswalk:
            key = self._crosswalk(ref.mapping, (ref.value,))
            return key[0] if key else None
        target = mapping.endpoint(self.target_side)
        value = ref.value
        through = key_reference(mapping, self.target_side)
        if through is not None and through != mapping.name:
            # a 1:1 extension keyed by another mapping's records (`id: {ofbiz: party_id, references: persons}`):
            # its key on this side is that record's counterpart key, not the source's own value (OFBiz's
            # person.party_id 'KR2' for Krayin's persons.id 1)
            value = self._resolve(Ref(through, value))
            if value is None:
                return None
        found = self.a.find_keys(target.table, target.key, {target.key[0]: value}, limit=1)
        return value if found else None

    # ------------------------------------------------------------ a fold's parent row of an optional table
    def make_parent(self, flow: Flow, parent_value: Any) -> bool:
        """The stream's fold change (`flow`, child rows -> a column) whose parent row is missing from an `optional:
        true` table: the parent's source row (`parent_value` its key there), read now, is created whole
        (`create_parent`), and the changes parked for that parent are replayed first: they are older than this
        one. False when the source has no such row (gone since: the change parks, as any whose parent has not
        arrived) or the parent mapping writes nothing for it (outside its filter: `_park` tells). A parent mapping
        that does not write the table from this side is a row error naming table, key and column: the value would
        have nowhere to go."""
        fold = flow.fold
        assert fold is not None
        pflow = parent_writer(self.mset, flow)
        if pflow is None:
            raise RowError(f"mapping {flow.mapping}: {no_parent_writer(flow, 'retry the change')}",
                           table=str(flow.target.table), key=(parent_value,), column=fold.into,
                           key_side=flow.source.side)
        if not self._made_parent(flow, pflow, parent_value):
            return False
        if self._resolve(Ref(fold.parent, parent_value)) is not None:
            self._unpark(fold.parent, dumps_key((parent_value,)))
        return True

    def _made_parent(self, flow: Flow, pflow: Flow, parent_value: Any) -> bool:
        fold = flow.fold
        assert fold is not None
        row = self.scope.row(pflow, parent_value)
        if row is None or not self.create_parent(pflow, row):
            return False
        log.info("%s: %s: parent %s %s was missing from %s (optional: true); created from its %s row", self.stream,
                 flow.mapping, fold.parent, show_key((parent_value,)), flow.target.table, flow.source.side)
        return True

    def _parked_parent(self, parked_by: str, waiting: Ref) -> bool:
        """A change parked by a fold into an `optional: true` table for a parent row missing there (its source row
        was not there when the change came, or it was parked before round 15): the parent's row is created whole
        now if its source row exists (`make_parent`), so that the change is replayed."""
        m = self.mset.by_name.get(parked_by)
        flow = m.flow(self.source_side) if m is not None else None
        if flow is None or flow.fold is None or flow.fold.parent != waiting.mapping \
                or not optional_parent(self.mset, flow):
            return False
        pflow = parent_writer(self.mset, flow)
        if pflow is None or not self._made_parent(flow, pflow, waiting.value):
            return False
        resolved = self._resolve(waiting)
        return resolved is not None and not self._gone(waiting, resolved)

    def create_parent(self, pflow: Flow, row: dict[str, Any]) -> bool:
        """A fold's parent row missing from an `optional: true` table, created whole as the parent mapping's stream
        creates one: `row`, the parent's source row (`pflow`: `folds.parent_writer`), routed as an insert through
        the parent mapping, written even when its fields are all NULL (the fold's column is not). The stream
        (`make_parent`) and `verify --repair` share it. False when routing writes nothing (a row outside the
        parent mapping's filter or slice)."""
        outs = route_flow(pflow, RowChange(pflow.source.table, Op.INSERT, None, row))
        for change in outs:
            if isinstance(change, LinkedChange):
                self.apply(replace(change, must_exist=False, revive=True))
            else:
                self.a.apply([replace(change, must_exist=False)])
        return bool(outs)

    # ------------------------------------------------------------ writes
    def _create(self, flow: Flow, lc: LinkedChange, values: dict[str, Any]) -> None:
        folded = self.folds.folded(flow, lc.source_key[0]) if len(lc.source_key) == 1 else {}
        if folded:  # columns folds fill (a NOT NULL name from a child row): in the insert, not after it
            values = {**{c: v for c, v in folded.items() if c not in values}, **values}
        if flow.target.slice:
            values = {**values, **dict(flow.target.slice)}  # a new row of the slice: its discriminator, tenant...
            if not flow.link.crosswalk:
                key = tuple(values[c] for c in flow.target.key)
                if self.a.find_keys(flow.target.table, flow.target.key, dict(zip(flow.target.key, key)), limit=1):
                    raise RowError(f"the key exists in {flow.target.table} as a row outside the slice "
                                   f"{dict(flow.target.slice)} of mapping {flow.mapping}; it is left alone",
                                   table=str(flow.target.table), key=key)
        if flow.link.crosswalk:
            row = {c: v for c, v in values.items() if c not in flow.target.key}
            for gen in flow.target.generate:
                if not gen.by_database:
                    row[gen.column] = self._make_key(flow, lc, gen, values)
            target_key = self.a.insert_returning(flow.target.table, row, flow.target.key)
            self._pair(flow, lc.source_key, target_key)
            metrics.links_created.labels(self.stream, flow.mapping, "crosswalk").inc()
            metrics.rows_applied.labels(self.stream, str(flow.target.table), "insert").inc()
        else:  # the applier counts the rows it applies
            self.a.apply([TargetChange(flow.target.table, Op.INSERT, flow.target.key,
                                       tuple(values[c] for c in flow.target.key), values)])
        if flow.referenced:
            self._unpark(flow.mapping, dumps_key((lc.source_key[0],)))
        self._entered(lc)

    def _entered(self, lc: LinkedChange, target_key: tuple[Any, ...] | None = None) -> None:
        """A record that entered its mapping's slice or filter (written above): the rows of the mappings keyed
        by it, skipped while it was outside (`_park`, `_left_record`), are read from the source and written whole,
        as rows entering a filter are. Each entered too, so their own second tables follow. A counterpart that
        was kept (`target_key`: updated, not made) gets the columns folds fill read again too: a child row's
        edit made while the record was outside was not written into it."""
        flow = lc.flow
        if not lc.entered or not flow.referenced or len(lc.source_key) != 1 or not self.scope.usable:
            return
        if target_key is not None:
            folded = self.folds.folded(flow, lc.source_key[0])
            if folded:
                self.a.update_by_key(flow.target.table, flow.target.key, target_key, folded)
        # checked as the record's own entering change is (an INSERT that finds its counterpart is decided field
        # by field, conflicts.md), when that one was
        checked = lc.expect is not None
        # the folds of the record's own row (its columns written as child rows), then its second tables' rows
        rows: list[tuple[list[Flow], RowChange]] = []
        own = [f for f in with_folds(self.mset, flow) if f is not flow]
        if own and lc.change.after is not None:
            rows.append((own, lc.change))
        for child in children(self.mset, flow.mapping, self.source_side):
            row = self.scope.row(child, lc.source_key[0])
            if row is not None:
                rows.append((with_folds(self.mset, child), RowChange(child.source.table, Op.INSERT, None, row)))
        for flows, change in rows:
            outs = [o for f in flows for o in route_flow(f, change, stream=checked, commit_time=lc.commit_time)]
            for out in outs:
                if isinstance(out, LinkedChange):
                    self.apply(replace(out, entered=True))
                else:
                    self.a.apply([out])

    def _left(self, lc: LinkedChange) -> None:
        """A record that left its mapping's slice or filter (a leave routed as a delete): the rows of the
        mappings keyed by it leave too, each by its own mapping's `leave:` (else `delete:`), before the record's
        counterpart is deleted (a foreign key of theirs may point at it)."""
        flow = lc.flow
        if lc.change.op is not Op.UPDATE or not flow.referenced or len(lc.source_key) != 1 or not self.scope.usable:
            return
        for child in children(self.mset, flow.mapping, self.source_side):
            row = self.scope.row(child, lc.source_key[0])
            if row is None:
                continue
            for out in leave_row(child, row):
                if isinstance(out, LinkedChange):
                    self.apply(out)
                else:
                    self.a.apply([out])

    def _make_key(self, flow: Flow, lc: LinkedChange, gen: KeyGen, values: dict[str, Any]) -> str:
        """A key the application would make (`generate:`), from the row being created."""
        by_field = {}
        for name in gen.fields:
            plan = flow.plan(name)
            by_field[name] = values.get(plan.target) if plan is not None else None
        try:
            return gen.make(by_field)
        except KeyError as exc:
            raise RowError(f"the key template {gen.template!r} needs field {exc.args[0]}, which is NULL",
                           table=str(flow.target.table), key=lc.source_key, column=gen.column) from None

    def _delete(self, flow: Flow, lc: LinkedChange) -> None:
        self._left(lc)
        if flow.delete == "ignore":
            return  # a referenced record's `leave: ignore` (router._leave): its counterpart stays
        dropped = self._drop_parked(flow, lc.source_key) if any(p.references for p in flow.plans) else 0
        if flow.link.crosswalk:
            target_key = self._crosswalk(flow.mapping, lc.source_key)
        else:
            target_key = self._shared_key(flow, lc)
        if target_key is not None and not self._in_slice(flow, target_key):
            target_key = None  # a row of another entity now: not this mapping's to delete
        if target_key is None:
            if not dropped:  # a row that only had parked changes never reached the target: nothing is missing
                metrics.rows_missing.labels(self.stream, str(flow.target.table), "delete").inc()
            return
        # (a record whose changes were parked may never have reached the target: deleted unchecked, as before)
        if lc.expect is not None and self.a.resolver is not None and not dropped \
                and not linkrace.delete_wins(self.a, lc, target_key, self._expect(lc)):
            return  # kept (changed since, and the update won) or gone already: decided and recorded
        if isinstance(flow.delete, dict):
            done = self.a.update_by_key(flow.target.table, flow.target.key, target_key, dict(flow.delete))
            op = "update"
        else:
            done = self.a.delete_by_key(flow.target.table, flow.target.key, target_key)
            op = "delete"
        metrics.rows_applied.labels(self.stream, str(flow.target.table), op).inc()
        if not done:
            metrics.rows_missing.labels(self.stream, str(flow.target.table), op).inc()

    def _shared_key(self, flow: Flow, lc: LinkedChange) -> tuple[Any, ...] | None:
        """The target key of a deleted row without a crosswalk, from its old row: a key column that is a
        `references` field holds the source side's value and is translated through that link like any
        foreign key (None: the referenced record has no counterpart, so neither has this row)."""
        before = lc.change.before
        assert before is not None
        refs = {p.target: p.references for p in flow.plans if p.references}
        key: list[Any] = []
        for column, source in zip(flow.target.key, flow.key_sources):
            if source not in before:
                raise RowError("the deleted row lacks a column of the target key (set REPLICA IDENTITY FULL)",
                               table=str(lc.change.table), key=lc.source_key, column=source)
            value = before[source]
            mapping = refs.get(column)
            if mapping is not None and value is not None:
                value = self._resolve(Ref(mapping, value))
                if value is None:
                    return None
            key.append(value)
        return tuple(key)

    def _drop_parked(self, flow: Flow, source_key: tuple[Any, ...]) -> int:
        """A deleted source row: its changes still waiting for a parent must never be applied."""
        rows = self.a.query(f"SELECT id, {self.change_col} FROM {self.parked} WHERE stream = %s AND mapping = %s",
                            [self.stream, flow.mapping])
        dropped = 0
        for row_id, text in rows:
            change = loads_change(text)
            image = change.before if change.op is Op.DELETE else change.after
            if image is not None and tuple(image.get(c) for c in flow.source.key) == tuple(source_key):
                self.a.execute(f"DELETE FROM {self.parked} WHERE id = %s", [row_id])
                self.m_parked.dec()
                dropped += 1
        if dropped:
            parking.refresh(self.a, self.parked, self.stream)
        return dropped

    def _never_paired(self, ref: Ref) -> str | None:
        # (the other direction's pairs are read through the source's crosswalk: never said without it)
        return never_paired(self.mset, ref.mapping, self.source_side) if self.source_query is not None else None

    def _unpairable(self, lc: LinkedChange, ref: Ref) -> bool:
        """`ref`'s record has no counterpart and can never get one (`_never_paired`): the row is not carried and not
        parked -- it would wait for good, silently -- as the record's own changes are not; counted and logged."""
        why = self._never_paired(ref)
        if why is None or self._crosswalk(ref.mapping, (ref.value,)) is not None:
            return False
        metrics.rows_filtered.labels(self.stream, str(lc.flow.target.table)).inc()
        log.info("%s: %s row %s not carried: its %s record %s was made on %s and has no counterpart in %s, and none "
                 "can come: %s, without a natural key", self.stream, lc.flow.mapping, show_key(lc.source_key),
                 ref.mapping, show_key((ref.value,)), self.source_side, self.target_side, why)
        return True

    def _park(self, lc: LinkedChange, ref: Ref) -> None:
        if self._unpairable(lc, ref):
            return
        if record_ref(self.mset, lc.flow, self.source_side, ref.mapping, ref.value, lc.source_key):
            outside = self.scope.outside(ref.mapping, ref.value)
            if outside is not None:
                # the record exists and is not the referenced mapping's (a vendor's company row, an account in
                # vtiger's recycle bin): neither is this row; parked, it would wait for good
                self._outside(lc, ref, outside)
                return
        self.a.execute(f"INSERT INTO {self.parked} (stream, waiting_mapping, waiting_key, mapping, {self.change_col}) "
                       f"VALUES (%s, %s, %s, %s, %s)",
                       [self.stream, ref.mapping, dumps_key((ref.value,)), lc.flow.mapping, dumps_change(lc.change)])
        self.m_parked.inc()
        parking.parked_now(self.stream)
        log.info("%s: %s row %s waits for %s %s", self.stream, lc.flow.mapping, show_key(lc.source_key), ref.mapping,
                 show_key((ref.value,)))

    def _replay(self, out: Any, waited: str, key: str) -> None:
        """One parked change, applied now that what it waited for arrived. A row the target refuses is named as
        the parked change's own (its mapping, table and key), not as the change whose arrival replayed it."""
        try:
            if isinstance(out, LinkedChange):
                self.apply(out)
            else:
                self.a.apply([out])
        except ReplicatorError:
            raise
        except Exception as exc:
            if not self.a.is_row_error(exc):
                raise
            flow = out.flow if isinstance(out, LinkedChange) else None
            mapping = flow.mapping if flow is not None else out.mapping
            table = flow.target.table if flow is not None else out.table
            source_key = out.source_key if flow is not None else out.key
            raise RowError(f"mapping {mapping}: {self.a.describe_error(exc)} (a change parked until {waited} "
                           f"{key} had a counterpart, replayed when it arrived)", table=str(table), key=source_key,
                           column=self.a.error_column(exc),
                           key_side=flow.source.side if flow is not None else None) from None

    def _superseded(self, routed: list[list[Any]]) -> set[int]:
        """Parked changes (in order) that a later parked change of the same record replaces: the record has no
        counterpart yet and the later change creates it whole (a LinkedChange keeps every field). Replayed in
        turn, an old image the target refuses (an amount out of range, fixed at the source since) failed the
        parent's arrival every time, the fix waiting behind it; and an old image is never worth writing."""
        last: dict[tuple[str, str], int] = {}
        creates: set[int] = set()
        for i, outs in enumerate(routed):
            if len(outs) != 1 or not isinstance(outs[0], LinkedChange) or outs[0].flow.fold is not None:
                continue
            lc = outs[0]
            key = (lc.flow.mapping, dumps_key(lc.source_key))
            last[key] = i
            whole = lc.change.after is not None and not any(v is UNCHANGED for v in lc.change.after.values())
            if whole and lc.flow.link.crosswalk and not self._creates_nothing(lc) \
                    and self._crosswalk(lc.flow.mapping, lc.source_key) is None:
                # (an update that left a TOAST value out is not whole: the earlier image holds it)
                creates.add(i)
        out = set()
        for i, outs in enumerate(routed):
            if len(outs) == 1 and isinstance(outs[0], LinkedChange) and outs[0].flow.fold is None:
                j = last.get((outs[0].flow.mapping, dumps_key(outs[0].source_key)), i)
                if j > i and j in creates:
                    out.add(i)
        return out

    def _unpark(self, mapping: str, key: str) -> int:
        rows = self.a.query(f"SELECT id, mapping, {self.change_col} FROM {self.parked} WHERE stream = %s AND "
                            f"waiting_mapping = %s AND waiting_key = %s ORDER BY id", [self.stream, mapping, key])
        taken = 0
        # only the mapping that parked it: the table's other mappings applied the change when it came (a
        # fold parked on a customers change must not apply the customers mapping a second time)
        routed = [(row_id, route(self.mset, self.source_side, loads_change(text), only=parked_by))
                  for row_id, parked_by, text in rows]
        superseded = self._superseded([outs for _, outs in routed])
        for i, (row_id, outs) in enumerate(routed):
            if not self.a.execute(f"DELETE FROM {self.parked} WHERE id = %s", [row_id]):
                continue  # another session replayed it meanwhile (a `verify --repair` next to the daemon)
            taken += 1
            self.m_parked.dec()
            if i in superseded:
                continue
            # a two-hop fold's far row parked once per parent without a counterpart: replayed, it is for
            # this parent only (the others wait in their own parked rows, and are not parked once more)
            with self.folds.replaying(Ref(mapping, loads_key(key)[0])):
                for out in outs:
                    self._replay(out, mapping, key)
        if rows:
            parking.refresh(self.a, self.parked, self.stream)
        self.unparked += taken
        return taken


def _cli_key(key: tuple[Any, ...]) -> str:
    """A key as `crosswalk rename --from/--to` (explain's --key) takes it, quoted for a shell: a one-column key's
    value, else a JSON array."""
    return shlex.quote(str(key[0]) if len(key) == 1 else dumps_key(key))
