"""One flow (one direction of one mapping) compared: the expected rows, their counterparts, the differences.

`FlowCheck.expected` routes source rows through the flow as replication does and converts them as the
target applier would (the *expected* rows); `locate` finds their counterparts by key lookups (shared
keys and natural-key links, the crosswalk, references translated through the referenced mapping's
link); `differences` compares. `replicator.verify.scan` drives it over a whole table, the re-checks and
repairs call `check_rows` for a few rows.
"""
from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any, Sequence

from replicator.changes import Op, RowChange
from replicator.codec import dumps_key, loads_key
from replicator.compare import (INT, Rule, canonicalizer, exact_rule, key_canonical, key_canonicalizer, row_agrees,
                                rule_for, stream_value, values_equal)
from replicator.errors import ConfigError, RowError
from replicator.mapping.crosswalk import CrosswalkLookup
from replicator.mapping.model import Flow, Mapping, no_natural_key
from replicator.mapping.router import Ref, _matches, plan_value, target_values
from replicator.verify.report import DIFFERS, EXTRA, FAILED, LEFT, MISSING, Difference

if TYPE_CHECKING:  # pragma: no cover
    from replicator.verify.run import Verifier
    from replicator.verify.side import Side

SKIP, REQUIRED, OPTIONAL, ERROR = "skip", "required", "optional", "error"
AGREED = "agreed"  # compared as soon as its counterpart was found (verify_scan): nothing more to do
# outside the filter or slice, and the flow's leave deletes or marks a counterpart: one must not be there (as it is)
GONE = "gone"
PROBE = 1000  # keys per by_keys / IN (...) lookup
_NONE: Any = object()


class Expect:
    """A source row, what replication would make of it, and (once located) its counterpart."""

    __slots__ = ("row", "source_key", "state", "values", "skip", "error", "target_key", "target")

    def __init__(self, row: dict[str, Any], source_key: tuple[Any, ...], state: str):
        self.row = row
        self.source_key = source_key
        self.state = state
        self.values: dict[str, Any] = {}
        self.skip: frozenset[str] = frozenset()
        self.error = ""
        self.target_key: tuple[Any, ...] | None = None
        self.target: dict[str, Any] | None = None

def compared_columns(flow: Flow) -> list[str]:
    """The target columns verify compares: not the key, and not those that say nothing about the source row.
    - An insert_only field is the target's own once the row exists (a tenant, `customer_rank: 1` on
      creation): a row the other application made or changed since holds its own value, which is no
      difference, and a repair must not overwrite it. A missing row is still created with it.
    - A column replicator stamps with the apply time (`now: true`) holds when a write arrived, which no
      source row says: never a difference, never repaired (a missing row is created with a fresh stamp).
    - A constant of a two-way flow (`write_uid: {espocrm: ~, constant: 0}`) is written when replicator creates
      the row and never by an update (a two-way update writes what changed, and a constant never changes:
      mappings.md): it is insert_only in effect, and the rows the target's application created or edited
      hold its own value (Tryton's user), which verify called a difference of every such row."""
    return [p.target for p in flow.plans if p.target not in flow.target.key and not p.insert_only and not p.stamp
            and not (flow.two_way and p.source is None)]


class FlowCheck:
    """Everything needed to compare one flow's rows: scanners, comparison rules, counterpart lookups."""

    def __init__(self, v: "Verifier", mapping: Mapping, flow: Flow):
        self.v = v
        self.mapping = mapping
        self.flow = flow
        self.src: Side = v.side(flow.source.side)
        self.tgt: Side = v.side(flow.target.side)
        self.src_scan = self.src.scanner(flow.source.table, flow.source.key)
        self.tgt_scan = self.tgt.scanner(flow.target.table, flow.target.key)
        tinfo, sinfo = self.tgt.info(flow.target.table), self.src.info(flow.source.table)
        if not tinfo:
            raise ConfigError(f"mapping {flow.mapping}: table {flow.target.table} does not exist on {flow.target.side}")
        self.rules: dict[str, Rule] = {}
        lossy = {f.name for f in mapping.fields if f.lossy}
        for p in flow.plans:
            copy = p.source is not None and p.convert is None and p.references is None
            source = sinfo.get(p.source) if copy and p.source is not None else None
            rule = rule_for(tinfo.get(p.target), source, p.target)
            # a decimal or a time copied unchanged is compared with the source value itself, not as rounded to
            # the target's scale (a column narrowed behind replicator's back), unless the field is `lossy: allow`
            self.rules[p.target] = rule if p.name in lossy else exact_rule(rule, tinfo.get(p.target), source)
        self.compared = compared_columns(flow)
        self.canon = {c: canonicalizer(r) for c, r in self.rules.items()}
        self.agrees = row_agrees([self.rules[c] for c in self.compared])
        self.convert = self.tgt.converter(flow.target.table, [p.target for p in flow.plans])
        self.key_rules = [rule_for(tinfo.get(c), None, c) for c in flow.target.key]
        self.src_key_rules = [rule_for(sinfo.get(c), None, c) for c in flow.source.key]
        self.tkey = key_canonicalizer(self.key_rules)  # a target key as the target finds it
        self.skey = key_canonicalizer(self.src_key_rules)  # a source key as the source finds it
        self.extras = self._extras_eligible()
        self.ordered = self._same_key_order()
        skeys = flow.source.key
        self.source_key = (itemgetter(*skeys) if len(skeys) > 1
                           else lambda row, c=skeys[0]: (row[c],))  # a source row's key tuple
        self.reverse_flow = next((g for g in mapping.flows if g is not flow), None)
        # what a row outside the filter or slice says of its counterpart (router._leave): None, it may be
        # there (`leave: ignore`, or no filter); "propagate", it must not; {column: value}, it is marked so
        self.leaving = None if flow.filter is None or flow.leave == "ignore" else flow.leave
        self.key_plans = [p for p in flow.plans if p.target in flow.target.key]

    @property
    def table(self) -> str:
        return str(self.flow.target.table)

    def _shared_key(self) -> bool:
        """The target key is the source key copied unchanged."""
        f = self.flow
        plans = {p.target: p for p in f.plans}
        return (not f.link.crosswalk and sorted(f.key_sources) == sorted(f.source.key)
                and all(c in plans and plans[c].convert is None and plans[c].references is None for c in f.target.key))

    def _extras_eligible(self) -> bool:
        f = self.flow
        if len(self.mapping.flows) != 1 or f.delete != "propagate" or f.link.crosswalk or f.target.slice:
            return False  # (a slice: the table's other rows belong to other mappings or applications)
        writers = [g for m in self.v.mset.mappings for g in m.flows
                   if g.target.side == f.target.side and g.target.table == f.target.table]
        return len(writers) == 1 and self._shared_key()

    def _same_key_order(self) -> bool:
        """Both tables list their rows in one order, so both can be read side by side in key order and paired
        as they come (`verify_scan`): a shared key, in the same column order, of integer columns on both
        sides (text keys may sort differently under the two collations)."""
        f = self.flow
        tinfo, sinfo = self.tgt.info(f.target.table), self.src.info(f.source.table)
        columns = [tinfo.get(c) for c in f.target.key] + [sinfo.get(c) for c in f.source.key]
        return (self._shared_key() and tuple(f.key_sources) == tuple(f.source.key)
                and all(r.kind == INT for r in self.key_rules + self.src_key_rules)
                # a YEAR 0000 reads as 1900 (tablescan), yet sorts first
                and all(c is not None and c.data_type.lower() != "year" for c in columns))

    # ------------------------------------------------------------ expected rows
    def expected(self, rows: Sequence[dict[str, Any]], locate: bool = True) -> list[Expect]:
        """What replication makes of `rows`; with `locate`, their counterparts are looked up too."""
        f = self.flow
        out: list[Expect] = []
        table, filt, gate, source_key = f.source.table, f.filter, f.gate, self.source_key
        optional = bool(f.created_by and f.created_by != f.source.side)
        closed: list[Expect] = []  # gate closed and values that cannot be made: a difference only with a counterpart
        for row in rows:
            e = Expect(row, source_key(row), REQUIRED)
            out.append(e)
            if filt is not None and not filt(row):
                e.state = SKIP if self.leaving is None else self._gone(e, row)
                continue
            try:
                e.values = target_values(f, RowChange(table, Op.INSERT, None, row), row, refs=True)
            except RowError as exc:
                e.state, e.error = ERROR, str(exc)
                if gate is not None and f.link.crosswalk and not f.link.natural \
                        and not _matches(row.get(gate[0]), gate[1]):
                    closed.append(e)
                continue
            if optional or (gate is not None and not _matches(row.get(gate[0]), gate[1])):
                e.state = OPTIONAL
        if closed:  # as the stream (links.Linker.apply): nothing is sent for a record without a counterpart
            paired = self.pairs(f.mapping, [e.source_key for e in closed])
            for e in closed:
                if dumps_key(e.source_key) not in paired:
                    e.state = SKIP
        self._resolve_refs(out)
        convert, tkeys, crosswalk = self.convert, f.target.key, f.link.crosswalk
        for e in out:
            if e.state is SKIP or e.state is ERROR or (e.state is GONE and crosswalk):
                continue
            try:
                e.values = convert(e.values, e.source_key) if e.state is not GONE else \
                    self.tgt.converted(f.target.table, e.values, e.source_key)
            except RowError as exc:
                e.state, e.error = ERROR, str(exc)
                continue
            if not crosswalk:
                if e.skip and any(c in e.skip for c in tkeys):
                    e.state = SKIP  # the key itself waits for a parent: nothing to find yet
                else:
                    e.target_key = tuple([e.values[c] for c in tkeys])
        if locate:
            self.locate(out)
        return out

    def _gone(self, e: Expect, row: dict[str, Any]) -> str:
        """A row outside the filter whose counterpart the flow's leave deletes or marks: GONE, with the
        target key's values (a crosswalk finds the counterpart by its pair instead), as the stream's delete
        finds it; ERROR when the key cannot be made."""
        f = self.flow
        if f.link.crosswalk:
            return GONE
        change = RowChange(f.source.table, Op.DELETE, row, None)
        try:
            for p in self.key_plans:
                value = plan_value(f, p, change, row)
                e.values[p.target] = Ref(p.references, value) if p.references and value is not None else value
        except RowError as exc:
            e.error = str(exc)
            return ERROR
        return GONE

    def _resolve_refs(self, exps: list[Expect]) -> None:
        """Foreign keys through the referenced mapping's link, as links.Linker._resolve does."""
        if not any(p.references for p in self.flow.plans):
            return
        wanted: dict[str, set[str]] = {}
        for e in exps:
            for v in e.values.values():
                if isinstance(v, Ref):
                    wanted.setdefault(v.mapping, set()).add(dumps_key((v.value,)))
        if not wanted:
            return
        resolved: dict[tuple[str, str], Any] = {}
        T = self.flow.target.side
        for name, texts in wanted.items():
            ref_mapping = self.v.mset.by_name[name]
            keys = [loads_key(t) for t in sorted(texts)]
            if ref_mapping.link.crosswalk:
                pairs = self.pairs(name, keys)
                for t in texts:
                    if t in pairs:
                        resolved[(name, t)] = pairs[t][0]
            else:
                target = ref_mapping.endpoint(T)
                scan = self.tgt.scanner(target.table, target.key)
                rules = [rule_for(self.tgt.info(target.table).get(target.key[0]), None, target.key[0])]
                probes = []
                for k in keys:
                    try:
                        probes.append(tuple(self.tgt.converted(target.table, {target.key[0]: k[0]}).values()))
                    except RowError:
                        continue
                found = {key_canonical(rules, scan.key_of(r)[:1]) for r in by_keys(scan, probes, rules)}
                for k in keys:
                    if key_canonical(rules, k) in found:
                        resolved[(name, dumps_key(k))] = k[0]
        for e in exps:
            skip = set()
            for col, v in list(e.values.items()):
                if isinstance(v, Ref):
                    hit = resolved.get((v.mapping, dumps_key((v.value,))), _NONE)
                    if hit is _NONE:
                        skip.add(col)  # the change would be parked until the referenced record arrives
                        e.values[col] = None
                        if e.state == REQUIRED:
                            e.state = OPTIONAL
                        elif e.state == GONE:
                            e.state = SKIP  # no counterpart of the parent: none of this row either
                    else:
                        e.values[col] = hit
            e.skip = frozenset(skip)

    def pairs(self, mapping: str, source_keys: Sequence[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
        """Crosswalk pairs of `mapping` seen from this flow: source key text -> target key."""
        lookup = CrosswalkLookup(
            lambda sql, params: self.tgt.query(sql.replace("{crosswalk}", self.tgt.crosswalk), params),
            lambda sql, params: self.src.query(sql.replace("{crosswalk}", self.src.crosswalk), params),
            self.flow.source.side, self.flow.target.side, PROBE)
        return {text: pair.target_key for text, pair in lookup.pairs(mapping, source_keys).items()}

    # ------------------------------------------------------------ counterparts
    def locate(self, exps: list[Expect]) -> None:
        """Counterparts by the routed key, else by the crosswalk pair, else by the natural key."""
        f = self.flow
        live = [e for e in exps if e.state is REQUIRED or e.state is OPTIONAL or e.state is GONE]
        if f.link.crosswalk and live:
            pairs = self.pairs(f.mapping, [e.source_key for e in live])
            for e in live:
                e.target_key = pairs.get(dumps_key(e.source_key))
        self._fetch([e for e in live if e.target_key is not None])
        # (a row outside the filter is found by its key or pair only, as the stream's delete finds it)
        live = [e for e in live if e.state is not GONE]
        self.locate_natural([e for e in live if e.target is None])
        self._deleted_there([e for e in live if e.target is None and e.target_key is not None])

    def _deleted_there(self, exps: list[Expect]) -> None:
        """A pair whose target row is gone, and whose source row holds what the other direction's soft delete
        sets (`delete: {erp_to_crm: {set: {active: false}}}`): the target side deleted the record and this
        side keeps it archived, as the mapping says. That is no missing row, and a repair must not bring
        the deleted record back (ERPNext deleted a customer, Odoo archived the partner)."""
        back = self.reverse_flow
        if back is None or not isinstance(back.delete, dict) or not self.flow.link.crosswalk:
            return
        marks = tuple(back.delete.items())
        for e in exps:
            if all(_matches(e.row.get(column), (value,)) for column, value in marks):
                e.state = SKIP

    def locate_natural(self, lost: list[Expect]) -> None:
        """With `link: natural`: counterparts not found by key, by the natural key."""
        f = self.flow
        if not f.link.natural or not lost:
            return
        for e in lost:
            cols = {}
            for name in f.link.natural:
                plan = f.plan(name)
                if plan is None or no_natural_key(e.values.get(plan.target)):
                    break
                cols[plan.target] = e.values[plan.target]
            else:
                try:
                    # within the target's slice, as the stream links (links.Linker._natural)
                    found = self.tgt.db.find_keys(f.target.table, f.target.key, cols, slice_=f.target.slice)
                finally:
                    self.tgt.db.rollback()
                if len(found) == 1:
                    e.target_key = tuple(found[0])
        self._fetch([e for e in lost if e.target_key is not None])

    def _fetch(self, exps: list[Expect]) -> None:
        if not exps:
            return
        rows = by_keys(self.tgt_scan, [e.target_key for e in exps if e.target_key is not None], self.key_rules)
        index = {self.tkey(self.tgt_scan.key_of(r)): r for r in rows}
        for e in exps:
            assert e.target_key is not None  # callers pass located expectations only
            e.target = index.get(self.tkey(e.target_key))
            if e.target is not None and self.flow.link.crosswalk:
                e.target_key = tuple(self.tgt_scan.key_of(e.target))

    # ------------------------------------------------------------ comparing
    def differences(self, exps: Sequence[Expect]) -> list[Difference]:
        """The located expectations compared with their counterparts: a row whose values all have equal
        canonical forms agrees (`compare.row_agrees`); any other is compared column by column."""
        agrees, out = self.agrees, []
        for e in exps:
            if e.state is SKIP or e.state is AGREED:
                continue
            if e.target is not None and e.state is not ERROR and e.state is not GONE and not e.skip \
                    and agrees(e.values, e.target):
                continue
            d = self.difference(e)
            if d is not None:
                out.append(d)
        return out

    def check_rows(self, rows: Sequence[dict[str, Any]]) -> list[Difference]:
        """Source rows compared with their counterparts (looked up by key)."""
        return self.differences(self.expected(rows))

    def _canon(self, values: dict[str, Any], skip: frozenset[str]) -> list[Any]:
        canon = self.canon
        return [canon[c](values.get(c)) for c in self.compared if c not in skip]

    def difference(self, e: Expect) -> Difference | None:
        f = self.flow
        base: dict[str, Any] = dict(
                    mapping=f.mapping, stream=f.stream, table=self.table, source_side=f.source.side,
                    source_key=e.source_key, target_key=e.target_key, crosswalk=f.link.crosswalk)
        if e.state == SKIP or e.state == AGREED:
            return None
        if e.state == ERROR:
            return Difference(kind=FAILED, note=e.error, stamp=(e.error,), **base)
        if e.state == GONE:
            return self._left(e, base)
        if e.target is None:
            if e.state != REQUIRED:
                return None
            if f.target.optional and all(e.values.get(c) is None for c in self.compared
                                         if c not in e.skip and c not in f.target.key):
                return None  # `optional: true`: a missing row is one whose fields are all NULL
            return Difference(kind=MISSING, stamp=tuple(self._canon(e.values, e.skip)), **base)
        cols = tuple((c, e.values.get(c), e.target.get(c)) for c in self.compared
                     if c not in e.skip and not values_equal(self.rules[c], e.values.get(c), e.target.get(c)))
        if cols and self.reverse_flow is not None:
            cols = self._not_written_back(e, cols)
        if not cols:
            return None
        stamp = tuple((c, self.canon[c](exp)) for c, exp, _ in cols)
        return Difference(kind=DIFFERS, columns=cols, stamp=stamp, **base)

    def _left(self, e: Expect, base: dict[str, Any]) -> Difference | None:
        """A source row outside the filter or slice and its counterpart: with `leave: propagate` (or a
        delete that propagates) the counterpart is a difference, and `verify --repair` deletes it; with a soft
        delete, a counterpart whose columns do not hold the values it sets is one (repair sets them). A
        counterpart outside the target's slice is another entity's row, never this mapping's."""
        target = e.target
        if target is None:
            return None
        if any(c in target and not _matches(target[c], (v,)) for c, v in self.flow.target.slice):
            return None
        leaving = self.leaving
        if isinstance(leaving, dict):
            cols = tuple((c, v, target.get(c)) for c, v in leaving.items() if not _matches(target.get(c), (v,)))
            if not cols:
                return None
            return Difference(kind=LEFT, columns=cols, stamp=tuple((c, str(v)) for c, v, _ in cols), **base)
        return Difference(kind=LEFT, stamp=(self.tkey(e.target_key or ()),), **base)

    def _not_written_back(self, e: Expect, cols: tuple[Any, ...]) -> tuple[Any, ...]:
        """Two-way mappings: a field is in agreement when either direction maps one side's value onto the
        other's (the direction of its last change). With a one-way transform (`upper` from crm to erp only)
        or an unmapped value's default, the two directions' images differ, yet replication is done."""
        back_flow = self.reverse_flow
        assert back_flow is not None and e.target is not None
        if back_flow.filter is not None and not back_flow.filter(e.target):
            return cols  # the target's changes never flow back: this direction's image must hold
        try:
            back = target_values(back_flow, RowChange(back_flow.source.table, Op.INSERT, None, e.target), e.target,
                                 refs=True)
            back = self.src.converted(back_flow.target.table, {k: v for k, v in back.items() if not isinstance(v, Ref)})
        except RowError:
            return cols
        rules = self.v.check(self.mapping, back_flow).rules
        names = {p.target: p.name for p in self.flow.plans}
        keep = []
        for c, exp, act in cols:
            plan = back_flow.plan(names[c])
            if (plan is not None and plan.target in back
                    and values_equal(rules[plan.target], back[plan.target], e.row.get(plan.target))):
                continue
            keep.append((c, exp, act))
        return tuple(keep)

    # ------------------------------------------------------------ extra target rows
    def source_key_of(self, trow: dict[str, Any]) -> tuple[Any, ...]:
        """The source key that would produce this target row (shared keys)."""
        f = self.flow
        by_source = dict(zip(f.key_sources, (trow[c] for c in f.target.key)))
        return tuple(by_source[c] for c in f.source.key)

    def extra(self, trow: dict[str, Any]) -> Difference:
        f = self.flow
        tkey = tuple(self.tgt_scan.key_of(trow))
        return Difference(f.mapping, f.stream, self.table, EXTRA, f.source.side, self.source_key_of(trow), tkey,
                          stamp=(self.tkey(tkey),))

    def extras_of(self, trows: Sequence[dict[str, Any]]) -> list[Difference]:
        """The target rows of `trows` that no source row produces (looked up in the source by key)."""
        f = self.flow
        probes = []
        for r in trows:
            key = self.source_key_of(r)
            try:
                probes.append(tuple(self.src.converted(f.source.table, dict(zip(f.source.key, key))).values()))
            except RowError:
                probes.append(key)
        found = {self.skey(self.src_scan.key_of(r)) for r in by_keys(self.src_scan, probes, self.src_key_rules)}
        return [self.extra(r) for r, probe in zip(trows, probes) if self.skey(probe) not in found]

    # ------------------------------------------------------------ re-checks
    def recheck_extras(self, target_keys: Sequence[tuple[Any, ...]]) -> list[Difference]:
        return self.extras_of(by_keys(self.tgt_scan, list(target_keys), self.key_rules))

    def recheck(self, diffs: Sequence[Difference]) -> list[Difference]:
        """The same rows read again from both sides."""
        rows = by_keys(self.src_scan, [d.source_key for d in diffs if d.kind != EXTRA and d.source_key is not None],
                       self.src_key_rules)
        out = self.check_rows(rows) if rows else []
        extra = [d.target_key for d in diffs if d.kind == EXTRA and d.target_key is not None]
        return out + (self.recheck_extras(extra) if extra else [])

    def identity(self, d: Difference) -> tuple[Any, ...]:
        if d.kind == EXTRA:
            return ("extra", self.tkey(d.target_key or ()))
        return ("row", self.skey(d.source_key or ()))


def by_keys(scanner: Any, keys: Sequence[tuple[Any, ...]], rules: Sequence[Rule]) -> list[dict[str, Any]]:
    probes = [tuple(stream_value(r, v) for r, v in zip(rules, k)) for k in keys]
    out: list[dict[str, Any]] = []
    for i in range(0, len(probes), PROBE):
        out.extend(scanner.by_keys(probes[i:i + PROBE]))
    return out


def lock_keys(scanner: Any, keys: Sequence[tuple[Any, ...]], rules: Sequence[Rule]) -> list[dict[str, Any]]:
    """`by_keys` inside the scanner's session's open transaction, the rows locked FOR UPDATE until it ends."""
    probes = [tuple(stream_value(r, v) for r, v in zip(rules, k)) for k in keys]
    out: list[dict[str, Any]] = []
    for i in range(0, len(probes), PROBE):
        out.extend(scanner.lock_keys(probes[i:i + PROBE], update=True))
    return out
