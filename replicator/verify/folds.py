"""A fold's flow compared (docs/mappings.md, "Child rows folded into columns"): per parent record, the value the fold
carries against the one the other side holds.

The unit is the parent: the parent mapping's rows on the flow's source side are read in key chunks, as any table
(`scan.ChunkReader`). Per chunk:

- the expected value, in the source: for a fold from the child rows (`child` is the source side) the parents' child
  rows of the slice, all of the chunk in one query (`folds.child_rows_sql`; with `via`, `folds.far_rows_sql`, the
  query the stream's `FoldApplier.through_all` reads): no row is NULL, one row its value (`folds.carried`:
  null_if_empty, then the value map), several a row error as the stream's; for a fold from the parent's column,
  the column itself, carried the same way;
- the parent's counterpart, through the parent mapping's link (the crosswalk in one query per chunk, or the shared
  key), as the stream's `Linker._resolve`; a parent without one is the parent mapping's difference, not this one's
  (the stream parks the fold's change);
- the value the other side holds: the counterpart's column (one `by_keys` read), or its child rows of the slice
  (`child_rows_sql` on the target: NULL is no row, as the stream deletes the row for a NULL).

A one-way fold from child rows does not compare a parent without a child row of the type: the column is the target
application's own then (the stream writes it only when a child row comes or goes; the first copy never does).

A difference names the table written (the parent's, or the child table), the key there and the column, like any
other; `verify --repair` writes the value through `FoldApplier` (repair.py), the stream's own code.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence

from replicator.appliers.slices import slice_sql
from replicator.changes import UNCHANGED, RowChange
from replicator.codec import dumps_key
from replicator.identifiers import for_params, quote_ident
from replicator.compare import canonicalizer, key_canonicalizer, rule_for, values_equal
from replicator.errors import ConfigError, RowError
from replicator.mapping.crosswalk import CrosswalkLookup
from replicator.mapping.folds import carried, child_rows_sql, far_rows_sql
from replicator.mapping.scope import key_reference
from replicator.mapping.model import Flow, Mapping
from replicator.mapping.router import Ref, _matches
from replicator.verify.flow import PROBE, by_keys
from replicator.verify.report import DIFFERS, FAILED, Difference
from replicator.verify.scan import ChunkReader, Found

if TYPE_CHECKING:  # pragma: no cover
    from replicator.verify.run import Verifier
    from replicator.verify.side import Side

Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]
_UNKNOWN: Any = object()  # a `references` value whose record has no counterpart: the stream parks it
_NO_ROW: Any = object()  # a parent without a child row of the type (a one-way fold compares nothing then)


def compared_flows(mapping: Mapping) -> list[Flow]:
    """The flows of a fold mapping verify compares: a two-hop fold reads two tables in one direction (its link
    table's flow and its far table's), one parent value -- compared once, through the link table's flow."""
    return [f for f in mapping.flows
            if f.fold is None or f.fold.via is None or f.source.table == f.fold.via.endpoint.table]


class FoldCheck:
    """One fold flow compared, parent by parent (see the module's docstring). The interface run.py and repair.py
    use of a `FlowCheck`: `scan`, `check_rows`, `recheck`, `identity`, `table`, `src`, `tgt`."""

    def __init__(self, v: "Verifier", mapping: Mapping, flow: Flow):
        fold = flow.fold
        assert fold is not None
        self.v, self.mapping, self.flow, self.fold = v, mapping, flow, fold
        self.src: Side = v.side(flow.source.side)
        self.tgt: Side = v.side(flow.target.side)
        parent = v.mset.by_name[fold.parent]
        self.psrc, self.ptgt = parent.endpoint(flow.source.side), parent.endpoint(flow.target.side)
        if len(self.psrc.key) != 1 or len(self.ptgt.key) != 1:
            raise ConfigError(f"mapping {flow.mapping}: the fold's parent mapping {fold.parent} has a key of "
                              f"several columns; a fold's `by` holds one")
        self.to_column = flow.source.side == fold.child  # child rows -> the parent's column (else the reverse)
        self.parent_scan = self.src.scanner(self.psrc.table, self.psrc.key)
        self.ptgt_scan = self.tgt.scanner(self.ptgt.table, self.ptgt.key)
        self.column = fold.into if self.to_column else fold.value
        written = self.tgt.info(flow.target.table)
        if not written or self.column not in written:
            raise ConfigError(f"mapping {flow.mapping}: column {self.column} of {flow.target.table} does not exist "
                              f"on {flow.target.side}")
        source_info = None
        if not fold.references and not fold.value_map:  # a value copied as it is: compared by both types
            far = fold.via.far if fold.via is not None else None
            read = (far.table if far is not None else flow.source.table) if self.to_column else self.psrc.table
            source_info = self.src.info(read).get(fold.value if self.to_column else fold.into)
        self.rule = rule_for(written.get(self.column), source_info, self.column)
        self.canon = canonicalizer(self.rule)
        self.psrc_rules = [rule_for(self.src.info(self.psrc.table).get(self.psrc.key[0]), None, self.psrc.key[0])]
        self.ptgt_rules = [rule_for(self.tgt.info(self.ptgt.table).get(self.ptgt.key[0]), None, self.ptgt.key[0])]
        self.skey = key_canonicalizer(self.psrc_rules)
        self.tkey = key_canonicalizer(self.ptgt_rules)
        self.src_key_rules = self.psrc_rules  # (repair.py: the source rows read again are parents)
        # a two-way fold: the other direction, which carries the target's value back (a value its map does not list
        # is that direction's row error: this one does not overwrite it either, verify names it)
        self.back = mapping.flow(flow.target.side) if flow.two_way and fold.value_map else None

    @property
    def table(self) -> str:
        return str(self.flow.target.table)

    def identity(self, d: Difference) -> tuple[Any, ...]:
        return ("parent", self.skey(d.source_key or ()))

    def queued_parents(self, rows: Sequence[RowChange]) -> set[str]:
        """The parents (by their key's text) that the source rows of this fold's queued changes concern (`rows`,
        from the dead-letter queue): a fold from child rows queues a change under the child row's key
        (stream/deadlinked), so verify names its parent by the row's `by` -- in both images: a row that moved
        concerns both parents --, and a two-hop fold's far row by the link rows pointing at it in the source
        now (`FoldApplier._linked`'s read)."""
        fold = self.fold
        out: set[str] = set()
        far_keys: list[Any] = []
        far = fold.via.far if fold.via is not None else None
        for change in rows:
            for image in (change.before, change.after):
                if image is None:
                    continue
                if far is not None and change.table == far.table:
                    v = image.get(far.key[0], UNCHANGED)
                    if v is not UNCHANGED and v is not None:
                        far_keys.append(v)
                    continue
                v = image.get(fold.by, UNCHANGED)
                if v is not UNCHANGED and v is not None:
                    out.add(dumps_key((v,)))
        if far_keys and fold.via is not None:
            link, kind = fold.via.endpoint, self.src.conn.kind

            def q(*parts: str) -> str:
                return for_params(quote_ident(kind, *parts))
            conds, params = slice_sql(kind, link.slice)
            for v in dict.fromkeys(far_keys):
                sql = (f"SELECT DISTINCT {q(fold.by)} FROM {q(link.table.schema, link.table.name)} "
                       f"WHERE {' AND '.join([f'{q(fold.via.to)} = %s', *conds])} AND {q(fold.by)} IS NOT NULL")
                out.update(dumps_key((r[0],)) for r in self.src.query(sql, [v, *params]))
        return out

    # ------------------------------------------------------------ the whole flow
    def scan(self, stop: threading.Event | None, found: Found) -> int:
        """Every parent of the source side, in key chunks; returns the parents checked."""
        reader = ChunkReader(self.parent_scan, self.v.config.verify.chunk_rows, stop)
        checked = 0
        while rows := reader.next():
            checked += len(rows)
            found.add(self.check_rows(rows))
            del rows
        return checked

    def recheck(self, diffs: Sequence[Difference]) -> list[Difference]:
        rows = by_keys(self.parent_scan, [d.source_key for d in diffs if d.source_key is not None], self.psrc_rules)
        return self.check_rows(rows) if rows else []

    # ------------------------------------------------------------ a chunk of parents
    def check_rows(self, rows: Sequence[dict[str, Any]], query: Query | None = None,
                   carry: dict[str, Any] | None = None) -> list[Difference]:
        """The parents `rows` (the parent mapping's source rows) compared. `query` reads the source's child rows
        (default: the verify session; repair passes its locking one); `carry` receives, by the parent key's text,
        the value a fold change would carry (source terms, a Ref for `references`) for the repair."""
        fold, flow = self.fold, self.flow
        pkey = self.psrc.key[0]
        rows = [r for r in rows if all(_matches(r.get(c), (v,)) for c, v in self.psrc.slice)]
        parents = [r[pkey] for r in rows if r.get(pkey) is not None]
        if not parents:
            return []
        expected = self._expected(rows, parents, query or self.src.query)  # text -> value | RowError
        counterparts = self._counterparts(fold.parent, parents)  # text -> target parent key value
        refs = [v for v in expected.values() if isinstance(v, Ref)]
        resolved = self._counterparts(fold.references, [r.value for r in refs]) if refs and fold.references else {}
        actual = self._actual(list(counterparts.values()))  # canonical target key -> (value, child key) | RowError
        out: list[Difference] = []
        for p in parents:
            text = dumps_key((p,))
            if text not in counterparts:
                continue  # no counterpart: the parent mapping's difference; the stream parks the fold's change
            tkey = counterparts[text]
            base: dict[str, Any] = dict(mapping=flow.mapping, stream=flow.stream, table=self.table,
                                        source_side=flow.source.side, source_key=(p,), crosswalk=True)
            want = expected[text]
            where = (tkey,) if self.to_column else None  # (a child row's key, where one is named)
            if isinstance(want, RowError):
                out.append(Difference(kind=FAILED, target_key=where, note=str(want), stamp=(str(want),), **base))
                continue
            if want is _NO_ROW:
                if not flow.two_way:
                    # a one-way fold from child rows, and the parent has none: the column is the target
                    # application's own (every ERPNext customer has a group, which Odoo's tags need not know); the
                    # stream writes it only when a child row comes or goes, the first copy never
                    continue
                want = None  # both ways: no child row is NULL, as the other direction deletes the row for a NULL
            if carry is not None:
                carry[text] = want
            if isinstance(want, Ref):
                want = resolved.get(dumps_key((want.value,)), _UNKNOWN)
                if want is _UNKNOWN:
                    continue  # the referenced record has no counterpart yet: the stream parks the change
            found = actual.get(self.tkey((tkey,)), _UNKNOWN)
            if found is _UNKNOWN:
                if not self.to_column or not self.ptgt.optional or want is None:
                    continue  # no parent row there: the parent mapping's difference (`optional`: a row of NULLs)
                found = (None, None)
            if isinstance(found, RowError):
                out.append(Difference(kind=FAILED, target_key=where, note=str(found), stamp=(str(found),), **base))
                continue
            have, child_key = found
            if self.back is not None and have is not None:
                try:  # what the other side holds must be carried back: else the other direction's row error
                    carried(self.back, have, self.flow.target.table, (tkey,) if self.to_column else child_key,
                            self.column)
                except RowError as exc:
                    out.append(Difference(kind=FAILED, target_key=where or child_key, note=str(exc),
                                          stamp=(str(exc),), **base))
                    continue
            try:
                want = self.tgt.converted(flow.target.table, {self.column: want})[self.column]
            except RowError as exc:
                out.append(Difference(kind=FAILED, target_key=where, note=str(exc), stamp=(str(exc),), **base))
                continue
            if values_equal(self.rule, want, have):
                continue
            key = (tkey,) if self.to_column else child_key
            out.append(Difference(kind=DIFFERS, target_key=key, columns=((self.column, want, have),),
                                  stamp=((self.column, self.canon(want)),), **base))
        return out

    def _expected(self, rows: Sequence[dict[str, Any]], parents: list[Any], query: Query) -> dict[str, Any]:
        """By the parent key's text: the value the fold carries for it now (a Ref for `references`), or the
        RowError the stream raises for it (several rows of the type, a value the map does not list)."""
        fold, flow = self.fold, self.flow
        out: dict[str, Any] = {}

        def ref(v: Any) -> Any:
            return Ref(fold.references, v) if fold.references and v is not None else v
        if not self.to_column:  # the parent's own column
            for r in rows:
                p = r.get(self.psrc.key[0])
                if p is None:
                    continue
                try:
                    out[dumps_key((p,))] = ref(carried(flow, r[fold.into], self.psrc.table, (p,), fold.into))
                except RowError as exc:
                    out[dumps_key((p,))] = exc
            return out
        grouped: dict[str, list[tuple[Any, ...]]] = {dumps_key((p,)): [] for p in parents}
        kind = self.src.conn.kind
        for i in range(0, len(parents), PROBE):
            part = parents[i:i + PROBE]
            sql, params = far_rows_sql(fold, kind, part) if fold.via is not None else \
                child_rows_sql(kind, flow.source, fold.by, fold.value, part)
            for t in query(sql, params):
                grouped.setdefault(dumps_key((t[0],)), []).append(tuple(t[1:]))
        for text, found in grouped.items():
            try:
                one = self._one(found)
                out[text] = one if one is _NO_ROW else ref(one)
            except RowError as exc:
                out[text] = exc
        return out

    def _one(self, found: list[tuple[Any, ...]]) -> Any:
        """The one value of a parent's child rows (key columns, then the value), as the stream decides it."""
        fold, flow = self.fold, self.flow
        if not found:
            return _NO_ROW  # no row of the type: NULL (check_rows)
        if fold.via is not None:
            link, far = fold.via.endpoint, fold.via.far
            assert far is not None
            n = len(link.key)
            if len({r[n] for r in found}) > 1:  # two link rows to one far row are one value
                raise RowError(f"mapping {flow.mapping}: the parent links to {len({r[n] for r in found})} rows of "
                               f"{far.table} through {link.table} rows of the slice (keys "
                               f"{[tuple(r[:n]) for r in found[:2]]}); column {fold.into} of {flow.target.table} "
                               f"carries one: delete the extra link row", table=str(link.table),
                               key=tuple(found[1][:n]), column=fold.via.to)
            return carried(flow, found[0][n + 1], far.table, (found[0][n],), fold.value)
        n = len(flow.source.key)
        if len(found) > 1:
            raise RowError(f"mapping {flow.mapping}: the parent has {len(found)} rows of "
                           f"{dict(flow.source.slice) or 'this table'} (keys {[tuple(r[:n]) for r in found[:2]]}); "
                           f"column {fold.into} of {flow.target.table} carries one: delete the extra row",
                           table=str(flow.source.table), key=tuple(found[1][:n]), column=fold.value)
        return carried(flow, found[0][n], flow.source.table, tuple(found[0][:n]), fold.value)

    def _counterparts(self, name: str | None, values: Sequence[Any]) -> dict[str, Any]:
        """By the source value's text: its counterpart's key value on the target side through mapping `name`'s
        link (as `Linker._resolve`): the crosswalk's pairs, read for all in one query a PROBE, or the shared key
        (existence is then what the read of the target says)."""
        assert name is not None
        m = self.v.mset.by_name[name]
        values = list(dict.fromkeys(v for v in values if v is not None))
        if m.link.crosswalk:
            lookup = CrosswalkLookup(
                lambda sql, params: self.tgt.query(sql.replace("{crosswalk}", self.tgt.crosswalk), params),
                lambda sql, params: self.src.query(sql.replace("{crosswalk}", self.src.crosswalk), params),
                self.flow.source.side, self.flow.target.side, PROBE)
            return {text: pair.target_key[0] for text, pair in lookup.pairs(name, [(v,) for v in values]).items()}
        through = key_reference(m, self.flow.target.side)
        if through is not None and through != name:  # keyed by another mapping's records (a 1:1 extension)
            first = self._counterparts(through, values)
            return {dumps_key((v,)): first[dumps_key((v,))] for v in values if dumps_key((v,)) in first}
        return {dumps_key((v,)): v for v in values}

    def _actual(self, tkeys: list[Any]) -> dict[Any, Any]:
        """By the canonical target parent key: (the value the target holds, the child row's key or None) for each
        parent row found there, or the RowError the stream raises on writing it (several child rows)."""
        if not tkeys:
            return {}
        found = by_keys(self.ptgt_scan, [(k,) for k in tkeys], self.ptgt_rules)
        if self.to_column:
            return {self.tkey(self.ptgt_scan.key_of(r)): (r.get(self.fold.into), None) for r in found}
        out: dict[Any, Any] = {self.tkey(self.ptgt_scan.key_of(r)): (None, None) for r in found}  # no row: NULL
        fold, tgt = self.fold, self.flow.target
        n = len(tgt.key)
        present = [self.ptgt_scan.key_of(r)[0] for r in found]
        children: dict[Any, list[tuple[Any, ...]]] = {}
        for i in range(0, len(present), PROBE):
            for r in self.tgt.query(*child_rows_sql(self.tgt.conn.kind, tgt, fold.by, fold.value,
                                                    present[i:i + PROBE])):
                children.setdefault(self.tkey((r[0],)), []).append(tuple(r[1:]))
        for k, rows in children.items():
            if k not in out:
                continue
            if len(rows) > 1:
                out[k] = RowError(f"mapping {self.flow.mapping}: the parent has {len(rows)} rows of "
                                  f"{dict(tgt.slice) or 'this table'} in {tgt.table} (keys "
                                  f"{[tuple(r[:n]) for r in rows[:2]]}); column {fold.into} carries one: delete "
                                  f"the extra row", table=str(tgt.table), key=tuple(rows[1][:n]), column=fold.value)
            else:
                out[k] = (rows[0][n], tuple(rows[0][:n]))
        return out
