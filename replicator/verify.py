"""`replicator verify [--mapping NAME] [--repair]`: both sides compared through the mappings.

What is compared, where, and why
--------------------------------
Verification works per Flow (one direction of one mapping). The mapping's transforms run in Python,
so no side can be checksummed in SQL: every source row is read once (in primary-key chunks of
`verify.chunk_rows`, `tablescan.TableScanner`, the same values the stream decoder produces), routed
through the flow exactly as replication routes it (`router.target_values`, filter, gate, created_by,
references translated through the referenced mapping's link) and converted by the target applier's
converters: that is the row replication would have written (the *expected* row). Its counterpart is
found by the routed key (shared keys and natural-key links), else by the crosswalk pair (in the target
database for pairs this direction created, in the source database for pairs the other direction
created), else, with `link: natural`, by the natural key; and read from the target by key. Only the
flow's planned non-key target columns are compared (ownership: a flow only plans the fields its
source side owns); the key itself is matched by the lookup, following the target collation.

Per chunk, a digest of each row is computed on both sides (a hash over the canonical forms of the
compared values and the row's source key, `replicator.compare`); the chunk's range digests (row count
and hash sum) are compared and differing ranges are bisected down to single rows in memory. Only those
rows are compared column by column, with the tolerances of `compare.values_equal` (float precision,
decimal scale, fractional seconds), which decides. Digests save the column-level comparison, not I/O:
each side's rows are read once (the target's once more where extra rows are looked for).

- A filtered source row expects nothing. A row whose gate is closed, that the flow may not create
  (`created_by` the other side) or whose referenced record has no counterpart (it would be parked) is
  not missing when it has no counterpart; when it has one, its fields are compared (an unresolved
  foreign key column is skipped).
- Extra target rows (no source row produces their key) are looked for only where they are a fault: a
  one-directional flow with `delete: propagate`, shared keys copied unchanged, and no other mapping
  writing the table. For two-way mappings a target-only row is the other flow's missing row; with
  `delete: ignore` or a soft delete extra rows are expected; crosswalk flows are skipped (a target row
  without a pair may be a row the target's own users created).
- Two-way mappings: a compared field is in agreement when either direction maps one side's value onto
  the other's (the direction of its last change); with a one-way transform or an unmapped value's
  default the two images differ although replication is complete.
- Before anything is reported it is re-checked: the source's current position is read (PostgreSQL
  `pg_current_wal_lsn()`, MariaDB `SHOW MASTER STATUS`), and while the stream's checkpoint in the
  target has not reached it (at most `verify.recheck_seconds`) the rows are compared again every half
  second; a row that agrees once is dropped. At most two such rounds. A stream no daemon applies (its
  session lock is free) is not waited for: its rows are compared again at once. A column is reported
  only while its expected value stays the same from one comparison to the next: a row that keeps
  changing on the source is being replicated, not drifting, and is left to the next run. A stream
  lagging longer than `recheck_seconds` shows its pending rows as differences.

`--repair` (replicator.repair) writes the reported rows through the tagged apply path.
"""
from __future__ import annotations

import argparse
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence, TextIO

from replicator import metrics
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import LSN, BinlogPosition, Op, Position, RowChange, TableRef, position_from_json
from replicator.checkpoint import is_applied
from replicator.codec import dumps_key, loads_key
from replicator.compare import (ColumnInfo, Rule, canonicalizer, differing_indices, key_canonical,
                                key_canonicalizer, row_hash, rule_for, show, show_key, stream_value, values_equal)
from replicator.config import Config, Connection
from replicator.errors import ConfigError, ReplicatorError, RowError
from replicator.mapping import Flow, Mapping, MappingSet
from replicator.router import Ref, _matches, target_values

log = logging.getLogger(__name__)

MISSING = "missing in target"
EXTRA = "extra in target"
DIFFERS = "differs"
FAILED = "cannot be mapped"

_SKIP, _REQUIRED, _OPTIONAL, _ERROR = "skip", "required", "optional", "error"
PROBE = 1000  # keys per by_keys / IN (...) lookup
POLL_SECONDS = 0.5
ROUNDS = 2


class Stopped(Exception):
    """The daemon is stopping: the verification run was abandoned."""


@dataclass(frozen=True)
class Difference:
    mapping: str
    stream: str
    table: str  # the target table
    kind: str  # MISSING | EXTRA | DIFFERS | FAILED
    source_side: str
    source_key: tuple | None
    target_key: tuple | None
    columns: tuple[tuple[str, Any, Any], ...] = ()  # (target column, expected value, target value)
    note: str = ""
    crosswalk: bool = False
    stamp: tuple = ()  # what the source side looked like (expected canonical values): stability across re-checks

    def line(self) -> str:
        return format_difference(self)


def key_text(d: Difference) -> str:
    if d.crosswalk:
        if d.target_key is None:
            return f"{d.source_side} key={show_key(d.source_key)}"
        return f"key={show_key(d.target_key)} ({d.source_side} key {show_key(d.source_key)})"
    return f"key={show_key(d.target_key if d.target_key is not None else d.source_key)}"


def format_difference(d: Difference) -> str:
    where = f"{d.mapping} {d.stream} {d.table} {key_text(d)}"
    if d.kind == DIFFERS:
        return f"{where}: differs: " + "; ".join(f"{c}: {show(e)} -> {show(a)}" for c, e, a in d.columns)
    if d.kind == FAILED:
        return f"{where}: {FAILED}: {d.note}"
    return f"{where}: {d.kind}"


@dataclass
class MappingStats:
    rows: int = 0
    differing: int = 0
    seconds: float = 0.0


@dataclass
class Report:
    differences: list[Difference]
    stats: dict[str, MappingStats]
    tables: list[str]  # every target table verified
    seconds: float
    suspects: list[tuple[Any, Difference]] = field(default_factory=list, repr=False)  # (flow check, difference)

    def lines(self) -> list[str]:
        out = [d.line() for d in self.differences]
        for name, s in self.stats.items():
            out.append(f"{name}: {s.rows} rows checked, {s.differing} differing, {s.seconds:.1f} s")
        return out


@dataclass
class _Expect:
    row: dict
    source_key: tuple
    ident: tuple  # the source key, canonical: part of both sides' row hashes
    state: str
    values: dict = field(default_factory=dict)
    skip: frozenset = frozenset()
    error: str = ""
    target_key: tuple | None = None
    target: dict | None = None


# ---------------------------------------------------------------- one database


class _Side:
    """One database, read-only: an apply-account session whose transactions are always rolled back."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.db: Applier = make_applier(conn, "verify", "")
        _keeping_gauge(conn, self.db.connect)
        self._info: dict[TableRef, dict[str, ColumnInfo]] = {}
        self._typed: set[TableRef] = set()
        self._scanners: dict[tuple, Any] = {}
        self.crosswalk = self.db.quote_table(TableRef(conn.state_schema, "crosswalk"))
        self.checkpoint_table = self.db.quote_table(TableRef(conn.state_schema, "checkpoint"))

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        try:
            return self.db.query(sql, params)
        finally:
            self.db.rollback()

    def scanner(self, table: TableRef, key: Sequence[str]) -> Any:
        from replicator.tablescan import TableScanner

        k = (table, tuple(key))
        if k not in self._scanners:
            self._scanners[k] = TableScanner(self.db, table, tuple(key))
        return self._scanners[k]

    def info(self, table: TableRef) -> dict[str, ColumnInfo]:
        if table not in self._info:
            if self.conn.kind == "postgresql":
                sql = ("SELECT column_name, data_type, numeric_scale, datetime_precision, collation_name "
                       "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s")
            else:
                sql = ("SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_SCALE, DATETIME_PRECISION, COLLATION_NAME "
                       "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s")
            rows = self.query(sql, [table.schema, table.name])
            self._info[table] = {
                name: ColumnInfo(name, data_type, self.conn.kind, None if scale is None else int(scale),
                                 None if precision is None else int(precision), collation)
                for name, data_type, scale, precision, collation in rows}
        return self._info[table]

    def converted(self, table: TableRef, values: dict[str, Any], key: Any = None) -> dict[str, Any]:
        """Values as the applier would send them (RowError when one cannot be converted)."""
        if table not in self._typed:
            self.db.load_types([table])
            self._typed.add(table)
        return dict(zip(values, self.db.convert_row(table, values, key)))

    def position(self) -> Position | None:
        """Where the source's change stream is now; None when it cannot be read (then re-checks just wait)."""
        try:
            if self.conn.kind == "postgresql":
                rows = self.query("SELECT pg_current_wal_lsn()::text", [])
                return LSN.parse(rows[0][0]) if rows else None
            try:
                rows = self.query("SHOW MASTER STATUS", [])
            except Exception:  # SHOW MASTER STATUS needs BINLOG MONITOR: the capture account has it
                rows = []
            if not rows and self.conn.capture != self.conn.apply:
                rows = _master_status(self.conn)
            return BinlogPosition(rows[0][0], int(rows[0][1])) if rows else None
        except Exception as exc:  # never fatal: the re-check then waits recheck_seconds
            log.debug("%s: cannot read the current position: %s", self.conn.name, exc)
            return None

    def checkpoint(self, stream: str) -> Position | None:
        try:
            rows = self.query(f"SELECT position FROM {self.checkpoint_table} WHERE stream = %s", [stream])
            return position_from_json(rows[0][0]) if rows else None
        except Exception as exc:
            log.debug("%s: cannot read the checkpoint of %s: %s", self.conn.name, stream, exc)
            return None

    def stream_applied(self, stream: str) -> bool:
        """Whether a daemon applies `stream` into this database now (holds its session lock, see
        Applier.lock), looked up without taking the lock. When unknown: True (then re-checks wait)."""
        name = "replicator:" + stream
        try:
            if self.conn.kind == "postgresql":
                rows = self.query(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND classid = (CASE WHEN hashtext(%s) < 0 THEN 4294967295 ELSE 0 END)::bigint::text::oid "
                    "AND objid = (hashtext(%s)::bigint & 4294967295)::text::oid)", [name, name])
                return bool(rows[0][0])
            rows = self.query("SELECT IS_USED_LOCK(%s)", [name])
            return rows[0][0] is not None
        except Exception as exc:
            log.debug("%s: cannot tell whether %s is applied: %s", self.conn.name, stream, exc)
            return True

    def close(self) -> None:
        _keeping_gauge(self.conn, self.db.close)


def _master_status(conn: Connection) -> list[tuple]:
    from replicator.appliers.mariadb import my_connect

    db = my_connect(conn, conn.capture)
    try:
        with db.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            return list(cur.fetchall())
    finally:
        db.close()


def _keeping_gauge(conn: Connection, fn: Any) -> None:
    """Our sessions must not change replicator_connection_up, which describes the daemon's own."""
    gauge = metrics.connection_up.labels(conn.name, "apply")
    before = gauge._value.get()
    try:
        fn()
    finally:
        gauge.set(before)


# ---------------------------------------------------------------- one flow


class FlowCheck:
    """Everything needed to compare one flow's rows: scanners, comparison rules, counterpart lookups."""

    def __init__(self, v: "Verifier", mapping: Mapping, flow: Flow):
        self.v = v
        self.mapping = mapping
        self.flow = flow
        self.src: _Side = v.side(flow.source.side)
        self.tgt: _Side = v.side(flow.target.side)
        self.src_scan = self.src.scanner(flow.source.table, flow.source.key)
        self.tgt_scan = self.tgt.scanner(flow.target.table, flow.target.key)
        tinfo, sinfo = self.tgt.info(flow.target.table), self.src.info(flow.source.table)
        if not tinfo:
            raise ConfigError(f"mapping {flow.mapping}: table {flow.target.table} does not exist on {flow.target.side}")
        self.rules: dict[str, Rule] = {}
        for p in flow.plans:
            copy = p.source is not None and p.convert is None and p.references is None
            self.rules[p.target] = rule_for(tinfo.get(p.target), sinfo.get(p.source) if copy else None, p.target)
        self.compared = [p.target for p in flow.plans if p.target not in flow.target.key]
        self.canon = {c: canonicalizer(r) for c, r in self.rules.items()}
        self.key_rules = [rule_for(tinfo.get(c), None, c) for c in flow.target.key]
        self.src_key_rules = [rule_for(sinfo.get(c), None, c) for c in flow.source.key]
        self.tkey = key_canonicalizer(self.key_rules)  # a target key as the target finds it
        self.skey = key_canonicalizer(self.src_key_rules)  # a source key as the source finds it
        self.extras = self._extras_eligible()
        self.reverse_flow = next((g for g in mapping.flows if g is not flow), None)

    @property
    def table(self) -> str:
        return str(self.flow.target.table)

    def _extras_eligible(self) -> bool:
        f = self.flow
        if len(self.mapping.flows) != 1 or f.delete != "propagate" or f.link.crosswalk:
            return False
        writers = [g for m in self.v.mset.mappings for g in m.flows
                   if g.target.side == f.target.side and g.target.table == f.target.table]
        if len(writers) != 1:
            return False
        plans = {p.target: p for p in f.plans}
        return (sorted(f.key_sources) == sorted(f.source.key)
                and all(plans[c].convert is None and plans[c].references is None for c in f.target.key))

    # ------------------------------------------------------------ expected rows
    def expected(self, rows: Sequence[dict]) -> list[_Expect]:
        f = self.flow
        out: list[_Expect] = []
        for row in rows:
            skey = tuple(row[c] for c in f.source.key)
            e = _Expect(row, skey, self.skey(skey), _REQUIRED)
            out.append(e)
            if f.filter is not None and not f.filter(row):
                e.state = _SKIP
                continue
            try:
                e.values = target_values(f, RowChange(f.source.table, Op.INSERT, None, row), row, refs=True)
            except RowError as exc:
                e.state, e.error = _ERROR, str(exc)
                continue
            if f.gate is not None and not _matches(row.get(f.gate[0]), f.gate[1]):
                e.state = _OPTIONAL
            if f.created_by and f.created_by != f.source.side:
                e.state = _OPTIONAL
        self._resolve_refs(out)
        for e in out:
            if e.state in (_SKIP, _ERROR):
                continue
            try:
                e.values = self.tgt.converted(f.target.table, e.values, e.source_key)
            except RowError as exc:
                e.state, e.error = _ERROR, str(exc)
                continue
            if not f.link.crosswalk:
                if any(c in e.skip for c in f.target.key):
                    e.state = _SKIP  # the key itself waits for a parent: nothing to find yet
                else:
                    e.target_key = tuple(e.values[c] for c in f.target.key)
        self._locate(out)
        return out

    def _resolve_refs(self, exps: list[_Expect]) -> None:
        """Foreign keys through the referenced mapping's link, as links.Linker._resolve does."""
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
                found = {key_canonical(rules, scan.key_of(r)[:1]) for r in _by_keys(scan, probes, rules)}
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
                        if e.state == _REQUIRED:
                            e.state = _OPTIONAL
                    else:
                        e.values[col] = hit
            e.skip = frozenset(skip)

    def pairs(self, mapping: str, source_keys: Sequence[tuple]) -> dict[str, tuple]:
        """Crosswalk pairs of `mapping` seen from this flow: source key text -> target key."""
        S, T = self.flow.source.side, self.flow.target.side
        texts = sorted({dumps_key(k) for k in source_keys})
        found: dict[str, tuple] = {}
        for i in range(0, len(texts), PROBE):
            part = texts[i:i + PROBE]
            marks = ", ".join(["%s"] * len(part))
            for sk, tk in self.tgt.query(f"SELECT source_key, target_key FROM {self.tgt.crosswalk} WHERE mapping = %s "
                                         f"AND source_side = %s AND source_key IN ({marks})", [mapping, S, *part]):
                found[sk] = loads_key(tk)
        rest = [t for t in texts if t not in found]
        for i in range(0, len(rest), PROBE):
            part = rest[i:i + PROBE]
            marks = ", ".join(["%s"] * len(part))
            # pairs the other direction created live in our source database, seen from the other side
            for tk, sk in self.src.query(f"SELECT target_key, source_key FROM {self.src.crosswalk} WHERE mapping = %s "
                                         f"AND source_side = %s AND target_key IN ({marks})", [mapping, T, *part]):
                found[tk] = loads_key(sk)
        return found

    def _locate(self, exps: list[_Expect]) -> None:
        f = self.flow
        live = [e for e in exps if e.state in (_REQUIRED, _OPTIONAL)]
        if f.link.crosswalk and live:
            pairs = self.pairs(f.mapping, [e.source_key for e in live])
            for e in live:
                e.target_key = pairs.get(dumps_key(e.source_key))
        self._fetch([e for e in live if e.target_key is not None])
        if f.link.natural:
            lost = [e for e in live if e.target is None]
            for e in lost:
                cols = {}
                for name in f.link.natural:
                    plan = f.plan(name)
                    if plan is None or e.values.get(plan.target) is None:
                        break
                    cols[plan.target] = e.values[plan.target]
                else:
                    try:
                        found = self.tgt.db.find_keys(f.target.table, f.target.key, cols)
                    finally:
                        self.tgt.db.rollback()
                    if len(found) == 1:
                        e.target_key = tuple(found[0])
            self._fetch([e for e in lost if e.target_key is not None])

    def _fetch(self, exps: list[_Expect]) -> None:
        if not exps:
            return
        rows = _by_keys(self.tgt_scan, [e.target_key for e in exps], self.key_rules)
        index = {self.tkey(self.tgt_scan.key_of(r)): r for r in rows}
        for e in exps:
            e.target = index.get(self.tkey(e.target_key))
            if e.target is not None and self.flow.link.crosswalk:
                e.target_key = tuple(self.tgt_scan.key_of(e.target))

    # ------------------------------------------------------------ comparing
    def hashes(self, e: _Expect) -> tuple[int | None, int | None]:
        if e.state == _SKIP:
            return None, None
        if e.state == _ERROR:
            return row_hash(e.ident, ["error", e.error]), None
        if e.target is None:
            return (row_hash(e.ident, self._canon(e.values, e.skip)) if e.state == _REQUIRED else None), None
        return row_hash(e.ident, self._canon(e.values, e.skip)), row_hash(e.ident, self._canon(e.target, e.skip))

    def _canon(self, values: dict, skip: frozenset) -> list[Any]:
        canon = self.canon
        return [canon[c](values.get(c)) for c in self.compared if c not in skip]

    def difference(self, e: _Expect) -> Difference | None:
        f = self.flow
        base = dict(mapping=f.mapping, stream=f.stream, table=self.table, source_side=f.source.side,
                    source_key=e.source_key, target_key=e.target_key, crosswalk=f.link.crosswalk)
        if e.state == _SKIP:
            return None
        if e.state == _ERROR:
            return Difference(kind=FAILED, note=e.error, stamp=(e.error,), **base)
        if e.target is None:
            if e.state != _REQUIRED:
                return None
            return Difference(kind=MISSING, stamp=tuple(self._canon(e.values, e.skip)), **base)
        cols = tuple((c, e.values.get(c), e.target.get(c)) for c in self.compared
                     if c not in e.skip and not values_equal(self.rules[c], e.values.get(c), e.target.get(c)))
        if cols and self.reverse_flow is not None:
            cols = self._not_written_back(e, cols)
        if not cols:
            return None
        stamp = tuple((c, self.canon[c](exp)) for c, exp, _ in cols)
        return Difference(kind=DIFFERS, columns=cols, stamp=stamp, **base)

    def _not_written_back(self, e: _Expect, cols: tuple) -> tuple:
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

    def check_rows(self, rows: Sequence[dict]) -> list[Difference]:
        """Source rows compared with their counterparts: digests, bisecting, then column by column."""
        exps = self.expected(rows)
        pairs = [self.hashes(e) for e in exps]
        idx = differing_indices([p[0] for p in pairs], [p[1] for p in pairs])
        return [d for d in (self.difference(exps[i]) for i in idx) if d is not None]

    def scan(self, stop: threading.Event | None) -> tuple[int, list[Difference]]:
        """The whole flow: source rows in key chunks, then (where they are a fault) extra target rows."""
        n = self.v.config.verify.chunk_rows
        after, checked, diffs = None, 0, []
        while True:
            if stop is not None and stop.is_set():
                raise Stopped()
            rows = self.src_scan.chunk(after, n)
            if not rows:
                break
            after = self.src_scan.key_of(rows[-1])
            diffs.extend(self.check_rows(rows))
            checked += len(rows)
            if len(rows) < n:
                break
        if self.extras:
            after = None
            while True:
                if stop is not None and stop.is_set():
                    raise Stopped()
                rows = self.tgt_scan.chunk(after, n)
                if not rows:
                    break
                after = self.tgt_scan.key_of(rows[-1])
                diffs.extend(self._extras(rows))
                if len(rows) < n:
                    break
        return checked, diffs

    # ------------------------------------------------------------ extra target rows
    def _source_key(self, trow: dict) -> tuple:
        f = self.flow
        by_source = dict(zip(f.key_sources, (trow[c] for c in f.target.key)))
        return tuple(by_source[c] for c in f.source.key)

    def _extras(self, trows: Sequence[dict]) -> list[Difference]:
        f = self.flow
        probes = []
        for r in trows:
            key = self._source_key(r)
            try:
                probes.append(tuple(self.src.converted(f.source.table, dict(zip(f.source.key, key))).values()))
            except RowError:
                probes.append(key)
        found = {self.skey(self.src_scan.key_of(r)) for r in _by_keys(self.src_scan, probes, self.src_key_rules)}
        out = []
        for r, probe in zip(trows, probes):
            if self.skey(probe) not in found:
                tkey = tuple(self.tgt_scan.key_of(r))
                out.append(Difference(f.mapping, f.stream, self.table, EXTRA, f.source.side, self._source_key(r), tkey,
                                      stamp=(self.tkey(tkey),)))
        return out

    def recheck_extras(self, target_keys: Sequence[tuple]) -> list[Difference]:
        return self._extras(_by_keys(self.tgt_scan, list(target_keys), self.key_rules))

    def recheck(self, diffs: Sequence[Difference]) -> list[Difference]:
        """The same rows read again from both sides."""
        rows = _by_keys(self.src_scan, [d.source_key for d in diffs if d.kind != EXTRA], self.src_key_rules)
        out = self.check_rows(rows) if rows else []
        extra = [d.target_key for d in diffs if d.kind == EXTRA]
        return out + (self.recheck_extras(extra) if extra else [])

    def identity(self, d: Difference) -> tuple:
        if d.kind == EXTRA:
            return ("extra", self.tkey(d.target_key or ()))
        return ("row", self.skey(d.source_key or ()))


_NONE: Any = object()


def _by_keys(scanner: Any, keys: Sequence[tuple], rules: Sequence[Rule]) -> list[dict]:
    probes = [tuple(stream_value(r, v) for r, v in zip(rules, k)) for k in keys]
    out: list[dict] = []
    for i in range(0, len(probes), PROBE):
        out.extend(scanner.by_keys(probes[i:i + PROBE]))
    return out


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


# ---------------------------------------------------------------- a run


class Verifier:
    """Verifies mappings; owns one read-only session per side. Not thread-safe."""

    def __init__(self, config: Config, mset: MappingSet, stop: threading.Event | None = None):
        self.config = config
        self.mset = mset
        self.stop = stop
        self._sides: dict[str, _Side] = {}
        self._checks: dict[tuple[str, str], FlowCheck] = {}

    def side(self, name: str) -> _Side:
        if name not in self._sides:
            self._sides[name] = _Side(self.config.side(name))
        return self._sides[name]

    def check(self, mapping: Mapping, flow: Flow) -> FlowCheck:
        k = (mapping.name, flow.stream)
        if k not in self._checks:
            self._checks[k] = FlowCheck(self, mapping, flow)
        return self._checks[k]

    def close(self) -> None:
        for s in self._sides.values():
            try:
                s.close()
            except Exception:
                pass
        self._sides.clear()
        self._checks.clear()

    def run(self, names: Sequence[str] | None = None) -> Report:
        started = time.monotonic()
        if names:
            unknown = [n for n in names if n not in self.mset.by_name]
            if unknown:
                raise ConfigError(f"no mapping named {unknown[0]!r}; the mappings are "
                                  f"{', '.join(m.name for m in self.mset.mappings)}")
        mappings = [m for m in self.mset.mappings if not names or m.name in names]
        stats: dict[str, MappingStats] = {}
        suspects: list[tuple[FlowCheck, Difference]] = []
        tables: list[str] = []
        for m in mappings:
            s = stats.setdefault(m.name, MappingStats())
            for flow in m.flows:
                t0 = time.monotonic()
                fc = self.check(m, flow)
                checked, diffs = fc.scan(self.stop)
                metrics.verify_rows_checked.labels(fc.table).inc(checked)
                s.rows += checked
                s.seconds += time.monotonic() - t0
                suspects.extend((fc, d) for d in diffs)
                if fc.table not in tables:
                    tables.append(fc.table)
        t0 = time.monotonic()
        confirmed = self.recheck(suspects)
        for fc, d in confirmed:
            stats[fc.mapping.name].differing += 1
        if suspects:  # the re-check time belongs to the mappings that needed it
            spent = time.monotonic() - t0
            names_with = {fc.mapping.name for fc, _ in suspects}
            for name in names_with:
                stats[name].seconds += spent / len(names_with)
        return Report([d for _, d in confirmed], stats, tables, time.monotonic() - started, confirmed)

    def compare_again(self, suspects: Sequence[tuple[FlowCheck, Difference]]) -> list[tuple[FlowCheck, Difference]]:
        """Read the rows of `suspects` again now; the differences that remain (kept stable, see `stable`)."""
        out: list[tuple[FlowCheck, Difference]] = []
        groups: dict[int, tuple[FlowCheck, list[Difference]]] = {}
        for fc, d in suspects:
            groups.setdefault(id(fc), (fc, []))[1].append(d)
        for fc, diffs in groups.values():
            out.extend((fc, d) for d in stable(diffs, fc.recheck(diffs), fc.identity))
        return out

    def recheck(self, suspects: list[tuple[FlowCheck, Difference]]) -> list[tuple[FlowCheck, Difference]]:
        """Wait for the streams to catch up with the sources (at most recheck_seconds per round) while
        comparing the suspect rows again; keep what still differs after ROUNDS rounds."""
        wait = self.config.verify.recheck_seconds
        for _round in range(ROUNDS):
            if not suspects:
                break
            streams: dict[str, FlowCheck] = {fc.flow.stream: fc for fc, _ in suspects}
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


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mapping", action="append", metavar="NAME", help="only this mapping (repeatable; default: all)")
    parser.add_argument("--repair", action="store_true",
                        help="write the differences through the tagged apply path (they do not echo)")


def command(args: argparse.Namespace, config: Config, mset: MappingSet, out: TextIO) -> int:
    """`replicator verify`: 0 when the sides agree (after --repair: when the repaired rows agree), else 1."""
    names = list(getattr(args, "mapping", None) or [])
    verifier = Verifier(config, mset)
    try:
        report = verifier.run(names or None)
        for line in report.lines():
            print(line, file=out)
        if not report.differences:
            print("verify: the sides agree", file=out)
            return 0
        if not getattr(args, "repair", False):
            print(f"verify: {len(report.differences)} row(s) differ", file=out)
            return 1
        from replicator.repair import repair

        written, remaining = repair(verifier, report.suspects, out)
        for _fc, d in remaining:
            print(f"still differs: {d.line()}", file=out)
        if remaining:
            print(f"verify: repaired {written} row(s); {len(remaining)} row(s) still differ", file=out)
            return 1
        print(f"verify: repaired {written} row(s); the sides agree", file=out)
        return 0
    finally:
        verifier.close()


# ---------------------------------------------------------------- inside the daemon


class PeriodicVerifier:
    """Verifies every mapping every `verify.every_seconds` (0: never) in a daemon thread; exports
    replicator_verify_rows_differing{table}, the time and duration of the last complete run, and logs
    differences as warnings. A failing run is logged and counted, and the next period tries again."""

    def __init__(self, config: Config, holder: Any, stop: threading.Event):
        self.config = config
        self.holder = holder
        self.stop = stop
        self._tables: set[str] = set()  # tables with a replicator_verify_rows_differing sample
        metrics.errors.labels("verify", "retriable")
        metrics.errors.labels("verify", "error")

    def run(self) -> None:
        every = self.config.verify.every_seconds
        if every <= 0:
            return
        while not self.stop.wait(every):
            self.run_once()

    def run_once(self) -> Report | None:
        verifier: Verifier | None = None
        try:
            mset, _version = self.holder.current()
            verifier = Verifier(self.config, mset, self.stop)
            report = verifier.run()
        except Stopped:
            return None
        except Exception as exc:
            kind = exc.kind if isinstance(exc, ReplicatorError) else "error"
            metrics.errors.labels("verify", kind).inc()
            log.warning("verification failed, trying again in %.0f s: %s", self.config.verify.every_seconds, exc)
            return None
        finally:
            if verifier is not None:
                verifier.close()
        counts = {t: 0 for t in report.tables}
        for d in report.differences:
            counts[d.table] = counts.get(d.table, 0) + 1
        for table, n in counts.items():
            metrics.verify_rows_differing.labels(table).set(n)
        for table in self._tables - set(counts):  # no longer mapped (reloaded mappings): no stale alert
            metrics.verify_rows_differing.remove(table)
        self._tables = set(counts)
        metrics.verify_last_complete.set_to_current_time()
        metrics.verify_seconds.set(report.seconds)
        for d in report.differences[:100]:
            log.warning("verify: %s", d.line())
        if len(report.differences) > 100:
            log.warning("verify: ... and %d more differing rows", len(report.differences) - 100)
        log.info("verify: %d rows checked in %.1f s, %d differing", sum(s.rows for s in report.stats.values()),
                 report.seconds, len(report.differences))
        return report
