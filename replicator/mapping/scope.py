"""Rows whose record is outside the mapping it belongs to (docs/mappings.md, "Records outside the referenced
mapping").

A mapping of a record's second table (vtiger's `vtiger_account`, LedgerSMB's `company`) is keyed by the
record's first one: its key is a `references:` field (a 1:1 extension, `key_reference`), or it is a fold whose
parent is such a mapping. Which records are the referenced mapping's is decided by columns of the first table
only (a slice's discriminator, a filter's recycle-bin flag), so the second table holds rows of records that are
not. Such a row's reference finds no counterpart; before, it parked for good.

`Scope.outside` tells the two cases apart by reading the source: when the record's row EXISTS in the
referenced mapping's source table and fails that mapping's slice or filter for this direction, the row is
outside too -- not carried, logged, counted in `replicator_rows_outside_total`. When the record's row is not
there (it arrives later, in a later transaction), the change parks as before. A reference that is not the
row's own record (an order line's `order_id`, a fold's value) parks whatever the parent's state: when that
parent enters its mapping, the parked lines replay, which nothing else would do for them.

A record that enters the referenced mapping later brings its second tables' rows along, and one that leaves
it takes them along, each by its own mapping's `leave:` (else `delete:`) (`Linker`, through `children` and
`Scope.row`). A record that left keeps its crosswalk pair, so its rows' references still resolve: the linker asks
`outside` where writing one would carry it (`Linker._left_record`: a row made again, a row or a fold's column a
mapping kept), and the row is counted outside instead. Reads go through `sources.tablescan.TableScanner`, so rows are valued as the stream values them.
"""
from __future__ import annotations

from typing import Any, Callable

from replicator.changes import TableRef
from replicator.identifiers import for_params, quote_ident
from replicator.mapping.model import Flow, Mapping, MappingSet
from replicator.sources.tablescan import TableScanError, TableScanner

Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]


def key_reference(mapping: Mapping, side: str) -> str | None:
    """The mapping whose records key this one's rows, when its key column on `side` is written by a
    `references:` field (a 1:1 extension table, docs/mappings.md "A 1:1 custom-field table"); else None."""
    key = mapping.endpoint(side).key
    if len(key) != 1:
        return None
    for f in mapping.fields:
        if f.references and f.column(side) == key[0]:
            return f.references
    return None


def record_ref(mset: MappingSet, flow: Flow, side: str, ref_mapping: str, ref_value: Any,
               source_key: tuple[Any, ...]) -> bool:
    """The reference names the row's own record: a fold's parent, or the key of a row keyed by `references:`
    (`side`: the source side). Not an association (an order line's order, a fold's value reference)."""
    fold = flow.fold
    if fold is not None:
        # (a two-hop fold's rows are not read again when the record enters: they keep parking until it does)
        return ref_mapping == fold.parent and fold.via is None
    own = mset.by_name.get(flow.mapping)
    return (own is not None and key_reference(own, side) == ref_mapping and len(source_key) == 1
            and source_key[0] == ref_value)


def children(mset: MappingSet, mapping: str, side: str) -> list[Flow]:
    """The flows read from `side` of the mappings whose rows are keyed by `mapping`'s records (not folds: a
    fold's column is filled when its parent's row is written)."""
    out = []
    for m in mset.mappings:
        if m.name == mapping or key_reference(m, side) != mapping:
            continue
        flow = m.flow(side)
        if flow is not None and flow.fold is None:
            out.append(flow)
    return out


def with_folds(mset: MappingSet, flow: Flow) -> list[Flow]:
    """`flow` and the folds that read its source table as their parent's (a column of the row written as a child
    row: vtiger's `account_no` as LedgerSMB's credit account), in the order the stream routes them."""
    return [f for f in mset.routes.get((flow.source.side, flow.source.table), ())
            if f is flow or (f.fold is not None and f.fold.parent == flow.mapping and f.fold.via is None)]


class _Reader:
    """What TableScanner needs of a connection, over the linker's read-only source query (autocommit: each
    query ends its own snapshot)."""

    def __init__(self, query: Query, kind: str):
        self._query = query
        self.kind = kind

    def query(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        return self._query(sql, list(params))

    def rollback(self) -> None:
        pass

    def quote_table(self, table: TableRef) -> str:
        return for_params(quote_ident(self.kind, table.schema, table.name))

    def quote_col(self, column: str) -> str:
        return for_params(quote_ident(self.kind, column))


class Scope:
    """Reads the source to tell a record outside its mapping from one that has not arrived."""

    def __init__(self, mset: MappingSet, side: str, query: Query | None, kind: str | None):
        self.mset = mset
        self.side = side
        self._reader = _Reader(query, kind) if query is not None and kind in ("postgresql", "mariadb") else None
        self._scanners: dict[tuple[TableRef, tuple[str, ...]], TableScanner] = {}

    @property
    def usable(self) -> bool:
        """False without the source's connection (explain, repair): every such change parks, as before."""
        return self._reader is not None

    def outside(self, mapping: str, value: Any) -> str | None:
        """The mapping whose slice or filter leaves out the record `value` (a source-side key of `mapping`),
        following the records' keys down (`customer_company` -> `customers`); None when no level's source row
        exists and fails its filter (the record may still arrive: park)."""
        if self._reader is None:
            return None
        seen: set[str] = set()
        name: str | None = mapping
        while name is not None and name not in seen:
            seen.add(name)
            m = self.mset.by_name.get(name)
            if m is None:
                return None
            flow = m.flow(self.side)
            if flow is not None and flow.fold is None and flow.filter is not None:
                row = self.row(flow, value)
                if row is not None and not flow.filter(row):
                    return name
            name = key_reference(m, self.side)
        return None

    def row(self, flow: Flow, value: Any) -> dict[str, Any] | None:
        """The source row of `flow` keyed by one value, valued as the stream values it; None when there is none."""
        if self._reader is None or len(flow.source.key) != 1:
            return None
        key = (flow.source.table, flow.source.key)
        scanner = self._scanners.get(key)
        if scanner is None:
            try:
                scanner = TableScanner(self._reader, flow.source.table, flow.source.key)
            except TableScanError:
                return None  # a table the scanner cannot read by key: decided as before (parked)
            self._scanners[key] = scanner
        found = scanner.by_keys([(value,)])
        return found[0] if found else None
