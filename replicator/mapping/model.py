"""Mappings: the compiled model of the YAML mapping language (docs/mappings.md) and its loader.

Each mapping links one table on each side. It is compiled once into a `Mapping` holding one `Flow`
per direction it flows in; a Flow holds everything the hot path needs, precomputed: the field
plans (source column, target column, value conversion), the key columns, filter, gate, delete
policy and link. `replicator.mapping.router` turns source changes into target operations with them.
"""
from __future__ import annotations

import logging
import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping as TMapping

from replicator.changes import TableRef
from replicator.config import ON_ERROR, Config
from replicator.errors import ConfigError, Where
from replicator.mapping import applytime
from replicator.mapping.keygen import KeyGen, compile_generate
from replicator.mapping.transforms import Transform, ValueFn, compile_chain, compile_predicate, compile_value_map
from replicator.yamlfile import Section, YamlList, YamlMap, load_file

log = logging.getLogger(__name__)

_NOTHING: Any = object()  # a field with no default / constant


@dataclass(frozen=True)
class Endpoint:
    side: str
    table: TableRef
    key: tuple[str, ...]
    generate: tuple[KeyGen, ...] = ()  # key columns made when replicator creates a row here (keygen)
    # `slice: {dtype: customer}`: the mapping's rows of a table several entities share. As a source, rows
    # outside it are not this mapping's; as a target, updates and deletes touch only rows of the slice and
    # inserts set these columns
    slice: tuple[tuple[str, Any], ...] = ()
    # `optional: true`: the application creates this table's rows only once one of their fields is set (a 1:1
    # custom-field table: SuiteCRM's accounts_cstm). A missing row is one whose fields are all NULL: an update
    # that finds none creates it (no update_missing race), and verify does not miss it
    optional: bool = False


@dataclass(frozen=True)
class ConflictRule:
    """How a conflict on a field is decided (docs/conflicts.md): `owner`, `latest`, `priority` or `manual`.

    In a Flow's `Conflicts` the rule is resolved for that direction: `owner` has become `priority` of
    the owning side (or the mapping's default for a field without an owner), and `column` is the
    *target* column that orders edits for `latest`."""

    rule: str  # owner | latest | priority | manual
    side: str | None = None  # priority: the side that wins
    column: str | None = None  # latest: a field name as written (a target column once compiled into a flow)


DEFAULT_RULE = ConflictRule("latest")  # converges and keeps the newest edit (ties: the first connection)


@dataclass(frozen=True)
class Conflicts:
    """The conflict rules of one direction of a two-way mapping, by target column."""

    default: ConflictRule
    fields: TMapping[str, ConflictRule]  # target column -> rule, where it differs from the default
    first_side: str  # breaks ties and decides when the order of two edits cannot be known

    def rule(self, column: str | None) -> ConflictRule:
        if column is None:
            return self.default
        return self.fields.get(column, self.default)


@dataclass(frozen=True)
class Field:
    name: str
    columns: tuple[tuple[str, str | None], ...]  # (side, column); None: no column on that side
    where: Where
    owner: str | None = None  # the only side this field flows from; None: both
    references: str | None = None  # a foreign key to this mapping's rows
    lossy: bool = False
    has_map: bool = False
    conflicts: ConflictRule | None = None  # per-field override of the mapping's rule
    insert_only: bool = False  # written when a row is created, never over an existing row's value
    null_if: tuple[tuple[str, Any], ...] = ()  # (side, value): that side stores value for "none" (NULL)
    now: bool = False  # `now: true`: the apply time (mapping/applytime.py), for a column of one side only
    # `zero_date: null`: a MariaDB zero date (0000-00-00, a zero month or day, the zero TIMESTAMP) in this
    # field's column is carried as NULL (counted); without it such a value is a row error naming the column
    zero_null: bool = False

    def column(self, side: str) -> str | None:
        return dict(self.columns)[side]


@dataclass(frozen=True)
class FieldPlan:
    """One field in one direction."""

    name: str
    source: str | None  # source column; None for a constant
    target: str
    convert: Callable[[Any, TMapping[str, Any]], Any] | None  # map, transforms, default, constant
    references: str | None = None
    insert_only: bool = False  # `insert_only: true`: set when the target row is created, then left alone
    # `null_if: {side: v}`: the source side's v arrives as NULL (before any conversion, so a reference of
    # 0 is no reference and never parks); a NULL for the target side is written as its v (after references)
    null_in: tuple[Any, ...] = ()
    null_out: tuple[Any, ...] = ()
    # the flow's source side owns this field (`owner:`): the only side whose edits of it flow, so an
    # update may carry it unchanged without overwriting anybody's edit (values the target never got,
    # such as those it generated when this flow created the row, then arrive with the next change)
    owned: bool = False
    # `now: true`: the apply time, stamped by replicator (no source column); never compared for conflicts or
    # by verify, and an update that writes anything writes it too (unless insert_only)
    stamp: bool = False
    zero_null: bool = False  # `zero_date: null`: a MariaDB zero date in the source column arrives as NULL
    # `lossy: allow`: the target may store the value otherwise than written (rounded); `check` accepts such a
    # cast with an ok finding, and MariaDB's rounding note on the column is no row error (Flow.lossy_targets)
    lossy: bool = False


@dataclass(frozen=True)
class Link:
    natural: tuple[str, ...] = ()  # field names identifying the same record on both sides
    crosswalk: bool = False  # own surrogate keys on each side, pairs kept by replicator


def no_natural_key(value: Any) -> bool:
    """A natural-key value that identifies nothing: NULL, or text that is empty or only blanks. ERPNext
    stores an unset tax_id as '' and Odoo an unset vat as NULL; linking by '' would make every customer
    without a tax id the same record (one counterpart updated by all of them, the others never created)."""
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(frozen=True)
class Fold:
    """`fold:` -- a child row on one side is one column of its parent row on the other (docs/mappings.md,
    "Child rows folded into columns"): the row of `child`'s table (within its slice) whose column `by` holds
    the parent's key carries its column `value` into the parent's column `into` on the other side. The
    parents are linked by the mapping `parent`; `references` translates the value through that mapping's
    link (an association table folded into a foreign-key column)."""

    parent: str  # the mapping that links the parent rows
    child: str  # the side whose rows are folded
    by: str  # child column: the parent's key on the child side
    value: str  # child column carried
    into: str  # the parent's column on the other side
    references: str | None = None
    lossy: bool = False
    # `via:` -- a fold through a link table (two hops): the child endpoint is the far table holding `value`,
    # reached from the parent through `via`'s rows (`by` is then the link table's parent column)
    via: Via | None = None
    # `transform: [null_if_empty]` (or per direction): the streams in which an empty text read from the source --
    # the child's value or the parent's column -- is NULL, i.e. no child row (`empty_null`)
    null_if_empty: frozenset[str] = frozenset()
    # `map:` -- the field's value map (transforms.compile_value_map), one function per stream it flows in; a
    # value it does not list is a TransformError (`carry` raises it, the caller names table, key and column)
    value_map: tuple[tuple[str, ValueFn], ...] = field(default=(), compare=False)

    def empty_null(self, stream: str, value: Any) -> Any:
        """`value` as the fold carries it in `stream`: '' is NULL where `null_if_empty` says so."""
        return None if value == "" and isinstance(value, str) and stream in self.null_if_empty else value

    def carry(self, stream: str, value: Any) -> Any:
        """`value` read from the source as the fold writes it in `stream`: '' NULL where `null_if_empty` says so,
        then translated by the value map (NULL stays NULL); TransformError for a value the map does not list."""
        value = self.empty_null(stream, value)
        for s, translate in self.value_map:
            if s == stream:
                return translate(value)
        return value


@dataclass(frozen=True)
class Via:
    """`fold.via:` the link table between the parent and the far row (EspoCRM's entity_email_address,
    SuiteCRM's email_addr_bean_rel): its rows of `slice` whose `by` holds the parent's key point through
    `to` at the far table's key. Folded from the link table's side to the column's only."""

    endpoint: Endpoint  # the link table on the child side: table, key, slice
    to: str  # link column holding the far row's key
    far: Endpoint | None = None  # the far table (the fold's child endpoint), set when the mapping is compiled


@dataclass(frozen=True)
class Flow:
    """One direction of one mapping."""

    mapping: str
    source: Endpoint
    target: Endpoint
    plans: tuple[FieldPlan, ...]
    key_sources: tuple[str, ...]  # source columns giving the target key (shared keys), target key order
    truncate: str = "stop"
    filter: Callable[[TMapping[str, Any]], bool] | None = None
    gate: tuple[str, tuple[Any, ...]] | None = None  # (source column, values)
    delete: str | dict[str, Any] = "propagate"  # propagate | ignore | {target column: value}
    created_by: str | None = None
    link: Link = field(default_factory=Link)
    parent: tuple[str, str] | None = None  # (mapping, field name)
    referenced: bool = False  # other mappings reference this one: creating a row may unpark children
    # a `direction: both` mapping: updates carry only changed fields and the applier checks for conflicts
    conflicts: Conflicts | None = None
    filter_columns: tuple[str, ...] = ()  # source columns the filter reads (a delete's old row must hold them)
    park_days: float | None = None  # `parked: {drop_after_days: N}`: parked changes older than that are dropped
    # a row the target rejects: `stop` the direction or `quarantine` it (stream/deadletter.py)
    on_error: str = "stop"
    fold: Fold | None = None  # a fold mapping's flow (mapping/folds.py applies it)
    delete_given: bool = False  # the mapping's `delete:` names this direction (not the default propagate)
    # what a row that leaves the filter or slice does to its counterpart (old row matched, new one does not):
    # the mapping's `leave:` for this direction, else its `delete:` (router._leave)
    leave: str | dict[str, Any] = "propagate"

    @property
    def two_way(self) -> bool:
        return self.conflicts is not None

    @functools.cached_property
    def owned_targets(self) -> frozenset[str]:
        """Target columns of fields the source side owns (FieldPlan.owned)."""
        return frozenset(p.target for p in self.plans if p.owned)

    @functools.cached_property
    def lossy_targets(self) -> frozenset[str]:
        """Target columns whose values the target may store otherwise than written, as the mapping allows
        (`lossy: allow` on a field, FieldPlan.lossy, or on a fold: both its columns)."""
        fold = (self.fold.into, self.fold.value) if self.fold is not None and self.fold.lossy else ()
        return frozenset(p.target for p in self.plans if p.lossy) | frozenset(fold)

    @functools.cached_property
    def stamps(self) -> frozenset[str]:
        """Target columns replicator stamps with the apply time (`now: true`): not the other side's edit, so
        never in `expect` (no conflict) nor compared by verify."""
        return frozenset(p.target for p in self.plans if p.stamp)

    @functools.cached_property
    def restamped(self) -> frozenset[str]:
        """The stamps an update writes (`now: true` without `insert_only`), changed or not."""
        return frozenset(p.target for p in self.plans if p.stamp and not p.insert_only)

    @functools.cached_property
    def zero_refused(self) -> frozenset[str]:
        """Source columns this flow carries whose zero date is a row error (no `zero_date: null`): the
        router refuses a row image that holds one (`changes.ZeroDatedRow`). A fold's child value counts too."""
        cols = {p.source for p in self.plans if p.source is not None and not p.zero_null}
        if self.fold is not None:
            cols.add(self.fold.value)
        return frozenset(cols)

    @functools.cached_property
    def zero_nulled(self) -> frozenset[str]:
        """Source columns this flow carries with `zero_date: null`: a zero date arrives as NULL, but an impossible
        date (2024-02-30, `changes.impossible_date`) is a row error all the same (router.refuse_zero_dates)."""
        return frozenset(p.source for p in self.plans if p.source is not None and p.zero_null)

    @property
    def stream(self) -> str:
        return f"{self.source.side}_to_{self.target.side}"

    @property
    def linked(self) -> bool:
        """Needs lookups in the target (links, gates, references): the row-by-row path."""
        return bool(self.fold or self.link.natural or self.link.crosswalk or self.gate or self.parent or self.referenced
                    or self.created_by or any(p.references for p in self.plans) or isinstance(self.delete, dict)
                    or self.target.slice)

    @property
    def insert_only(self) -> frozenset[str]:
        """Target columns written only when the row is created (`insert_only: true` fields)."""
        return frozenset(p.target for p in self.plans if p.insert_only)

    def plan(self, name: str) -> FieldPlan | None:
        return next((p for p in self.plans if p.name == name), None)


@dataclass(frozen=True)
class Mapping:
    name: str
    where: Where
    endpoints: tuple[Endpoint, Endpoint]
    fields: tuple[Field, ...]
    flows: tuple[Flow, ...]
    link: Link = field(default_factory=Link)
    # `accept_cascades: [name, ...]`: foreign keys (of either side) whose actions on this mapping's table the
    # other side need not repeat (mapping/check/cascades.py)
    accept_cascades: tuple[str, ...] = ()
    # where each of those names is written (file, line, key), for check's word on a name matching nothing
    accept_cascades_where: tuple[Where, ...] = field(default=(), compare=False)

    def endpoint(self, side: str) -> Endpoint:
        return next(e for e in self.endpoints if e.side == side)

    def flow(self, source_side: str) -> Flow | None:
        return next((f for f in self.flows if f.source.side == source_side), None)

    def flow_of(self, source_side: str, table: TableRef) -> Flow | None:
        """The flow that reads `table` on `source_side`: a two-hop fold reads two tables there (its link
        table's flow is `flow(side)`, the one `sync` copies), any other mapping one."""
        return next((f for f in self.flows if f.source.side == source_side and f.source.table == table),
                    self.flow(source_side))


class MappingSet:
    def __init__(self, mappings: Iterable[Mapping]):
        self.mappings = tuple(mappings)
        self.by_name = {m.name: m for m in self.mappings}
        self.routes: dict[tuple[str, TableRef], tuple[Flow, ...]] = {}
        for m in self.mappings:
            for flow in m.flows:
                key = (flow.source.side, flow.source.table)
                self.routes[key] = self.routes.get(key, ()) + (flow,)

    def tables(self, side: str) -> list[TableRef]:
        """Tables of one side that any mapping reads or writes (a two-hop fold's link table too)."""
        return sorted({e.table for m in self.mappings for e in m.endpoints if e.side == side}
                      | {t for (s, t) in self.routes if s == side})

    def source_tables(self, side: str) -> list[TableRef]:
        return sorted({t for (s, t) in self.routes if s == side})

    def target_endpoints(self, side: str) -> list[Endpoint]:
        return [f.target for m in self.mappings for f in m.flows if f.target.side == side]

    def uses_links(self) -> bool:
        return any(f.linked for m in self.mappings for f in m.flows)

    def lossy_columns(self, side: str) -> set[tuple[TableRef, str]]:
        """The (table, column) of `side` that a flow into it writes under `lossy: allow` (Flow.lossy_targets):
        the target rounding their values is what the mapping says (MariaDB's rounding note is no error)."""
        return {(f.target.table, c) for m in self.mappings for f in m.flows if f.target.side == side
                for c in f.lossy_targets}


# ---------------------------------------------------------------- loading


def load_mappings(config: Config) -> MappingSet:
    directory = config.mappings_dir
    if not directory.is_dir():
        raise ConfigError(f"mapping directory {directory} does not exist", Where(str(config.file), None, "mappings"))
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        raise ConfigError(f"no *.yaml files in mapping directory {directory}")
    mappings: list[Mapping] = []
    seen: dict[str, Where] = {}
    for path in files:
        for m in load_mapping_file(path, config):
            if m.name in seen:
                raise ConfigError(f"mapping {m.name!r} is defined twice (also at {seen[m.name]})", m.where)
            seen[m.name] = m.where
            mappings.append(m)
    _check_overlaps(mappings)
    return MappingSet(_resolve_references(mappings))


def load_mapping_file(path: Path, config: Config) -> list[Mapping]:
    root = Section(load_file(path), "", str(path))
    body = root.section("mappings", required=True)
    out = [_compile(name, body, config) for name, _ in list(body.items())]
    root.done()
    return out


def _default_schema(config: Config, side: str) -> str:
    conn = config.side(side)
    return "public" if conn.kind == "postgresql" else conn.database


def field_default(spec: Any, src: str, dst: str) -> Any:
    """A field's `default:` for the direction src -> dst, or _NOTHING. One value serves both directions;
    `{src_to_dst: v}` only one: a value map's NULL goes to NULL both ways, and SuiteCRM's nullable `deleted`
    into iDempiere's NOT NULL `isactive` needs `Y` one way, which the other way's tinyint cannot take."""
    if not isinstance(spec, dict) or "default" not in spec:
        return _NOTHING
    value = spec["default"]
    if isinstance(value, dict) and value and set(value) <= {f"{src}_to_{dst}", f"{dst}_to_{src}"}:
        return value.get(f"{src}_to_{dst}", _NOTHING)
    return value


def has_default(value: Any) -> bool:
    return value is not _NOTHING


def _per_direction(s: Section, key: str, sides: list[str]) -> dict[str, Any]:
    """`key: {crm_to_erp: x, erp_to_crm: y}`, or one value for both directions."""
    if not s.has(key):
        return {}
    a, b = sides
    names = (f"{a}_to_{b}", f"{b}_to_{a}")
    value = s.data[key]
    if isinstance(value, YamlMap) and value and set(value) <= set(names):
        sub = s.section(key)
        return {name: v for name, v in sub.items()}
    s.get(key, object)
    return {names[0]: value, names[1]: value}


def _compile(name: str, mappings: Section, config: Config) -> Mapping:
    s = mappings.section(name)
    sides = [c.name for c in config.connections]
    a, b = sides
    if s.has("fold"):
        return _compile_fold(name, s, config, sides)
    endpoints = []
    generate_specs: dict[str, tuple[Any, Where]] = {}
    for side in sides:
        e = s.section(side, required=True)
        table = TableRef.parse(e.get("table", str), _default_schema(config, side))
        key = e.get("key", list)
        if not key or not all(isinstance(k, str) for k in key):
            raise ConfigError("key must be a non-empty list of column names", e.where("key"),
                              hint="every mapped table needs a primary key")
        endpoints.append(Endpoint(side, table, tuple(key), slice=_slice(e), optional=e.get("optional", bool, False)))
        if e.has("generate"):
            generate_specs[side] = (e.data["generate"], e.where("generate"))
            e.allow("generate")
        e.done()
    directions = ("both", f"{a}_to_{b}", f"{b}_to_{a}")
    direction = s.get("direction", str, choices=directions)
    truncate = s.get("truncate", str, "stop", choices=("stop", "ignore", "propagate"))
    owner = s.get("owner", str, None, choices=sides)
    created_by = s.get("created_by", str, None, choices=sides)
    on_error = s.get("on_error", str, config.on_error, choices=ON_ERROR)
    accept_cascades, accept_cascades_where = _accept_cascades(s)
    s.allow("filter", "gate", "delete", "leave", "parent", "conflicts")
    park_days = _park_days(s)
    link = _link(s.section("link"))
    fields = _fields(s.section("fields", required=True), sides, owner, zero_date(s))
    default_rule = _conflict_rule(s.data.get("conflicts"), s.where("conflicts"), sides, fields) \
        if s.has("conflicts") else DEFAULT_RULE
    if direction != "both":
        bad = ("conflicts", s.where("conflicts")) if s.has("conflicts") else \
            next((("fields." + f.name + ".conflicts", f.where) for f in fields if f.conflicts), None)
        if bad is not None:
            raise ConfigError(f"{bad[0]}: only a `direction: both` mapping has conflicts", bad[1],
                              hint="remove it, or make the mapping two-way")
    names = {f.name for f in fields}
    for i, side_ in enumerate(sides):
        if side_ in generate_specs:
            spec_, at = generate_specs[side_]
            if not link.crosswalk:
                raise ConfigError("generate makes keys for rows created through a crosswalk", at,
                                  hint="add link: {crosswalk: true}")
            on_side = {f.name for f in fields if f.column(side_) is not None}
            gens = compile_generate(spec_, endpoints[i].key, on_side, at)
            endpoints[i] = replace(endpoints[i], generate=gens)
    for n in link.natural:
        if n not in names:
            raise ConfigError(f"natural key field {n!r} is not a field of this mapping", s.where("link"))
    for e_ in endpoints:
        for f in fields:
            if e_.slice and f.column(e_.side) in dict(e_.slice):
                raise ConfigError(f"column {f.column(e_.side)} of {e_.table} is the mapping's slice; a field cannot "
                                  f"write it too", f.where, hint="remove the field: the slice sets it on insert")
    filters = _per_direction(s, "filter", sides)
    gates = _per_direction(s, "gate", sides)
    deletes = _per_direction(s, "delete", sides)
    leaves = _per_direction(s, "leave", sides)
    parent = _parent(s, names)
    if parent is not None:  # the parent field is a foreign key to the parent mapping
        for i, f in enumerate(fields):
            if f.name == parent[1]:
                if f.references not in (None, parent[0]):
                    raise ConfigError(f"parent field {f.name!r} references {f.references!r}, not the parent "
                                      f"mapping {parent[0]!r}", f.where)
                fields = fields[:i] + (replace(f, references=parent[0]),) + fields[i + 1:]
    flows = []
    for src, dst in ((a, b), (b, a)):
        stream = f"{src}_to_{dst}"
        if direction not in ("both", stream):
            continue
        where = s.where()
        src_slice = next(e_ for e_ in endpoints if e_.side == src).slice
        flows.append(_flow(
            name, s, endpoints, fields, src, dst, truncate=truncate, link=link, created_by=created_by,
            filter=_sliced(src_slice, compile_predicate(filters.get(stream), Where(where.file, s.data.key_lines.get("filter"), f"{name}.filter.{stream}"))),
            filter_columns=tuple(dict.fromkeys([c for c, _ in src_slice] + (
                [str(c) for c in filters.get(stream) or {}] if isinstance(filters.get(stream), dict) else []))),
            gate=_gate(gates.get(stream), s, name, stream, endpoints, fields, src),
            delete=_delete(deletes.get(stream, "propagate"), s, name),
            delete_given=stream in deletes,
            leave=_delete(leaves[stream], s, name, _leave_where(s, stream)) if stream in leaves
            else _delete(deletes.get(stream, "propagate"), s, name),
            parent=parent,
            conflicts=_flow_conflicts(default_rule, fields, dst, a) if direction == "both" else None,
            park_days=park_days,
        ))
    for stream in set(filters) | set(gates):
        if direction not in ("both", stream):
            raise ConfigError(f"the mapping does not flow {stream}", s.where("filter" if stream in filters else "gate"))
    _check_leave(s, leaves, flows)
    s.done()
    flows = [replace(f, on_error=on_error) for f in flows]
    return Mapping(name, s.where(), (endpoints[0], endpoints[1]), fields, tuple(flows), link, accept_cascades,
                   accept_cascades_where)


def _accept_cascades(s: Section) -> tuple[tuple[str, ...], tuple[Where, ...]]:
    """`accept_cascades: [fk_name, ...]`: constraint names, each once, and where each is written."""
    names = s.get("accept_cascades", list, [])
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ConfigError("accept_cascades is a list of foreign key constraint names, each once",
                          s.where("accept_cascades"),
                          hint="name the constraints `replicator check` reports, e.g. [fk_order_lines_order]")
    at = s.where("accept_cascades")
    wheres = tuple(names.where(at.key, i) if isinstance(names, YamlList) else at for i in range(len(names)))
    return tuple(names), wheres


def _fold_transform(f: Section, a: str, b: str) -> frozenset[str]:
    """`fold.transform:` the streams whose empty texts are NULL. A fold takes `null_if_empty` alone, spelled as on a
    field: `[null_if_empty]` (both directions) or `{a_to_b: [null_if_empty]}`; any other transform would change the
    value a child row and its parent's column hold apart, and is refused naming the key."""
    if not f.has("transform"):
        return frozenset()
    t = f.data["transform"]
    f.allow("transform")
    where = f.where("transform")
    streams = (f"{a}_to_{b}", f"{b}_to_{a}")
    chains = dict(t) if isinstance(t, YamlMap) else {stream: t for stream in streams}
    out = set()
    for stream, chain in chains.items():
        if stream not in streams:
            raise ConfigError(f"transform directions are {streams[0]} and {streams[1]}", where)
        names = [chain] if isinstance(chain, str) else chain
        if not isinstance(names, list) or any(n != "null_if_empty" for n in names):
            raise ConfigError("a fold takes only the transform null_if_empty (an empty text is NULL: no child row)",
                              where, hint="transform: [null_if_empty], or {<a>_to_<b>: [null_if_empty]}")
        if names:
            out.add(stream)
    return frozenset(out)


def _fold_map(f: Section, sides: list[str], direction: str | None) -> tuple[tuple[str, ValueFn], ...]:
    """`fold.map:` a field's value map (`map: [{krayin: 1, ofbiz: Y}, ...]`, compiled by the same function), one
    function per stream the fold flows in. A value the map does not list is a row error naming table, key and
    column: `unmapped:` is `error` on a fold (a value passed through or defaulted would make the child row and the
    parent's column hold values that do not translate back into each other). A value listed twice on the side a
    stream reads from leaves that stream without a map: refused here for a stream the fold flows in; `check`
    refuses a map that is not its own inverse (a value listed twice on the side written) unless `lossy: allow`."""
    if not f.has("map"):
        if f.has("unmapped"):
            raise ConfigError("unmapped says what a value map does with a value it does not list; this fold has no "
                              "map", f.where("unmapped"))
        return ()
    where = f.where()
    if f.has("unmapped") and f.data["unmapped"] not in ("error", None):
        raise ConfigError(f"a fold's value map is exact both ways: a value it does not list is a row error naming "
                          f"table, key and column (unmapped: error), not {f.data['unmapped']!r}", f.where("unmapped"),
                          hint="list every value in the map; a value passed through or defaulted would not "
                               "translate back")
    if f.has("references"):
        raise ConfigError("a fold's value is a reference (translated through that mapping's link) or mapped by a "
                          "value map, not both", f.where("map"))
    f.allow("map", "unmapped")
    a, b = sides
    maps = compile_value_map(f.data["map"], (a, b), None, where)
    out = []
    for src, dst in ((a, b), (b, a)):
        stream = f"{src}_to_{dst}"
        if direction not in ("both", stream):
            continue
        if (src, dst) not in maps:
            raise ConfigError(f"the value map is ambiguous from {src} to {dst} (a {src} value appears twice)",
                              f.where("map"), hint=f"list each {src} value once")
        out.append((stream, maps[(src, dst)]))
    return tuple(out)


def _compile_fold(name: str, s: Section, config: Config, sides: list[str]) -> Mapping:
    """A `fold:` mapping: its child endpoint (a table, its slice, how its keys are made) and the parent's
    table on the other side; no fields, no link of its own (the parent mapping links the rows)."""
    a, b = sides
    f = s.section("fold")
    child = f.get("child", str, choices=sides)
    via = _via(f, config, child) if f.has("via") else None
    if via is not None and f.has("by"):
        raise ConfigError("a fold through `via` finds the parent in the link table: its column is via.by",
                          f.where("by"), hint="move `by` into `via:`")
    fold = Fold(f.get("parent", str), child, via[1] if via is not None else f.get("by", str), f.get("value", str),
                f.get("into", str), f.get("references", str, None),
                f.get("lossy", str, "refuse", choices=("allow", "refuse")) == "allow",
                via=via[0] if via is not None else None, null_if_empty=_fold_transform(f, a, b),
                value_map=_fold_map(f, sides, s.get("direction", str, None)))
    f.done()
    if fold.via is not None:
        _refuse_child_target(s, fold, sides)
    endpoints = []
    for side in sides:
        e = s.section(side, required=True)
        table = TableRef.parse(e.get("table", str), _default_schema(config, side))
        key = e.get("key", list)
        if not key or not all(isinstance(k, str) for k in key):
            raise ConfigError("key must be a non-empty list of column names", e.where("key"))
        endpoint = Endpoint(side, table, tuple(key), slice=_slice(e) if side == child else ())
        if side == child and e.has("generate"):
            endpoint = replace(endpoint, generate=compile_generate(
                e.data["generate"], endpoint.key, {fold.by, fold.value}, e.where("generate")))
            e.allow("generate")
        e.done()
        endpoints.append(endpoint)
    ce = endpoints[sides.index(child)]
    directions = ("both", f"{a}_to_{b}", f"{b}_to_{a}")
    direction = s.get("direction", str, choices=directions)
    if fold.via is not None:
        return _compile_two_hop(name, s, config, sides, fold, endpoints, direction)
    made = {g.column for g in ce.generate} | {fold.by, fold.value} | {c for c, _ in ce.slice}
    missing = [k for k in ce.key if k not in made]
    if missing:
        raise ConfigError(f"key column {missing[0]!r} of {ce.table} is neither fold.by, fold.value, a slice column "
                          f"nor generated: a child row cannot be created", s.where(child),
                          hint=f"add generate: {{{missing[0]}: uuid}} (or default / a template) to the {child} endpoint")
    for column in (fold.by, fold.value):
        if column in dict(ce.slice):
            raise ConfigError(f"fold column {column!r} is a slice column of {ce.table}", f.where())
    on_error = s.get("on_error", str, config.on_error, choices=ON_ERROR)
    # a truncated child table cannot empty a column of every parent row: stop (default) or ignore it
    truncate = s.get("truncate", str, "stop", choices=("stop", "ignore"))
    default_rule = _conflict_rule(s.data.get("conflicts"), s.where("conflicts"), sides, ()) \
        if s.has("conflicts") else DEFAULT_RULE
    if s.has("conflicts") and direction != "both":
        raise ConfigError("conflicts: only a `direction: both` mapping has conflicts", s.where("conflicts"))
    s.allow("conflicts")
    s.done()
    flows = []
    for src, dst in ((a, b), (b, a)):
        if direction not in ("both", f"{src}_to_{dst}"):
            continue
        source, target = endpoints[sides.index(src)], endpoints[sides.index(dst)]
        # a child's slice and parent column decide whose row it is: a delete needs them (REPLICA IDENTITY FULL)
        filter_columns = tuple(dict.fromkeys([c for c, _ in source.slice] + [fold.by])) if src == child else ()
        conflicts = Conflicts(default_rule, {}, a) if direction == "both" else None
        flows.append(Flow(name, source, target, (), (), truncate=truncate, filter=_sliced(source.slice, None),
                          filter_columns=filter_columns, conflicts=conflicts, on_error=on_error, fold=fold))
    return Mapping(name, s.where(), (endpoints[0], endpoints[1]), (), tuple(flows))


def _via(f: Section, config: Config, child: str) -> tuple[Via, str]:
    """`fold.via: {table, key, by, to, slice}`: the link table (on the child's side) and its parent column."""
    v = f.section("via")
    table = TableRef.parse(v.get("table", str), _default_schema(config, child))
    key = v.get("key", list)
    if not key or not all(isinstance(k, str) for k in key):
        raise ConfigError("key must be a non-empty list of column names", v.where("key"),
                          hint="the link table's primary key (entity_email_address: [id])")
    by, to = v.get("by", str), v.get("to", str)
    if by == to:
        raise ConfigError(f"via.by and via.to are both {by!r}: one column holds the parent's key, the other the "
                          f"far row's", v.where("to"))
    slice_ = _slice(v)
    for column in (by, to):
        if column in dict(slice_):
            raise ConfigError(f"via column {column!r} is a slice column of {table}", v.where("slice"))
    v.done()
    return Via(Endpoint(child, table, tuple(key), slice=slice_), to), by


INTO_CHILD_ROW = ("carry the value into a column of the parent's own table (add a nullable column there if it "
                  "has none) and fill the child row from it on that database; docs/mappings.md, \"Through a link "
                  "table\", \"Into a child row\"")


def _refuse_child_target(s: Section, fold: Fold, sides: list[str]) -> None:
    """A two-hop fold writes one column of the parent's row. Into a child row on the other side (Tryton's
    party_contact_mechanism of type email: a row of another table per parent, made, updated and deleted as a
    one-hop fold's) is not built: said at the key that asks for it, with the workaround."""
    side = next(x for x in sides if x != fold.child)
    e = s.section(side, required=True)
    for key in ("slice", "generate"):
        if e.has(key):
            raise ConfigError(f"a fold through `via` writes a column of the parent's own row ({fold.into}); a {key} "
                              f"on {side} asks for a child row there (another fold's child table), which a two-hop "
                              f"fold does not make", e.where(key), hint=INTO_CHILD_ROW)


def _compile_two_hop(name: str, s: Section, config: Config, sides: list[str], fold: Fold,
                     endpoints: list[Endpoint], direction: str) -> Mapping:
    """A fold through a link table: carried from the link table's side into the parent's column only. Two
    flows in that direction: the link table's rows (first: `sync` copies them) and the far table's."""
    via = fold.via
    assert via is not None
    a, b = sides
    child = fold.child
    column_side = next(x for x in sides if x != child)
    stream = f"{child}_to_{column_side}"
    if direction != stream:
        raise ConfigError(f"a fold through `via` flows {stream} only (the link table's rows into "
                          f"{column_side}'s column), not {direction}", s.where("direction"),
                          hint=f"direction: {stream}; creating the far row and the link row from the column is "
                               f"not supported yet")
    far = endpoints[sides.index(child)]
    if len(far.key) != 1:
        raise ConfigError(f"the far table {far.table} has key {list(far.key)}: via.to points at a single-column "
                          f"key", s.where(child))
    if far.generate:
        raise ConfigError("generate makes keys of rows the fold creates; a fold through `via` creates none",
                          s.where(child))
    if via.endpoint.table == far.table:
        raise ConfigError(f"via.table is the far table {far.table} itself", s.section("fold").where("via"))
    if s.has("conflicts"):
        raise ConfigError("conflicts: only a `direction: both` mapping has conflicts", s.where("conflicts"))
    on_error = s.get("on_error", str, config.on_error, choices=ON_ERROR)
    truncate = s.get("truncate", str, "stop", choices=("stop", "ignore"))
    s.done()
    target = endpoints[sides.index(column_side)]
    link = via.endpoint
    fold = replace(fold, via=replace(via, far=far))
    # a link row's slice, parent and far key decide whose row it is and which: a delete needs them
    link_columns = tuple(dict.fromkeys([c for c, _ in link.slice] + [fold.by, via.to]))
    flows = (Flow(name, link, target, (), (), truncate=truncate, filter=_sliced(link.slice, None),
                  filter_columns=link_columns, on_error=on_error, fold=fold),
             Flow(name, far, target, (), (), truncate=truncate, filter=_sliced(far.slice, None),
                  on_error=on_error, fold=fold))
    return Mapping(name, s.where(), (endpoints[0], endpoints[1]), (), flows)


def _park_days(s: Section) -> float | None:
    """`parked: {drop_after_days: 30}`: how long a change of this mapping may wait for its parent."""
    if not s.has("parked"):
        s.allow("parked")
        return None
    p = s.section("parked")
    days = p.get("drop_after_days", (int, float))
    p.done()
    if days <= 0:
        raise ConfigError("drop_after_days is a number of days above 0", p.where("drop_after_days"))
    return float(days)


def _slice(e: Section) -> tuple[tuple[str, Any], ...]:
    spec = e.get("slice", YamlMap, None)
    if spec is None:
        return ()
    # a null value (`thru_date: null`, OFBiz's current rows) selects `IS NULL` and is written NULL on insert:
    # every lookup renders it through appliers/slices.py, never as `= NULL`
    if not spec or not all(v is None or isinstance(v, (str, int, float, bool)) for v in spec.values()):
        raise ConfigError("slice maps columns to the plain values that select this mapping's rows "
                          "({dtype: customer, entity: 1, thru_date: null})", e.where("slice"))
    return tuple((str(k), v) for k, v in spec.items())


def _sliced(slice_: tuple[tuple[str, Any], ...], predicate: Any) -> Any:
    """The source's slice as part of the filter: rows of other entities of the table are not this mapping's."""
    if not slice_:
        return predicate
    wanted = dict(slice_)

    def in_slice(row: TMapping[str, Any]) -> bool:
        for column, value in wanted.items():
            if column not in row:
                return False
            got = row[column]
            if value is None:  # `thru_date: null`: the row's value is NULL (never the text 'None')
                if got is not None:
                    return False
            elif not (got == value or (isinstance(got, str) and not isinstance(value, str) and got == str(value))):
                return False
        return predicate is None or bool(predicate(row))

    def refutes(row: TMapping[str, Any]) -> bool:
        """A part of a row already outside the slice or the filter (`transforms.compile_predicate`'s `refutes`)."""
        for column, value in wanted.items():
            if column in row:
                got = row[column]
                if got is not None if value is None else not (
                        got == value or (isinstance(got, str) and not isinstance(value, str) and got == str(value))):
                    return True
        return predicate is not None and bool(predicate.refutes(row))
    in_slice.rejects_null = (frozenset(c for c, v in wanted.items() if v is not None)  # type: ignore[attr-defined]
                             | getattr(predicate, "rejects_null", frozenset()))
    in_slice.refutes = refutes  # type: ignore[attr-defined]
    return in_slice


def _link(s: Section) -> Link:
    natural = s.get("natural", list, [])
    if not all(isinstance(n, str) for n in natural):
        raise ConfigError("natural is a list of field names", s.where("natural"))
    link = Link(tuple(natural), s.get("crosswalk", bool, False))
    s.done()
    return link


def _parent(s: Section, names: set[str]) -> tuple[str, str] | None:
    if not s.has("parent"):
        return None
    p = s.section("parent")
    mapping, fld = p.get("mapping", str), p.get("field", str)
    if fld not in names:
        raise ConfigError(f"parent field {fld!r} is not a field of this mapping", p.where("field"))
    p.done()
    return (mapping, fld)


def _gate(spec: Any, s: Section, name: str, stream: str, endpoints: list[Endpoint], fields: tuple[Field, ...],
          src: str) -> tuple[str, tuple[Any, ...]] | None:
    if spec is None:
        return None
    g = Section(spec, f"{name}.gate.{stream}", s.file)
    column = g.get("column", str)
    becomes = g.get("becomes", (str, int, bool, list))
    g.done()
    values = tuple(becomes) if isinstance(becomes, list) else (becomes,)
    if not values:
        raise ConfigError("becomes needs at least one value", g.where("becomes"))
    return (column, values)


def _delete(spec: Any, s: Section, name: str, leave: Where | None = None) -> str | dict[str, Any]:
    """`delete:` (or, with `leave` -- where it is written --, `leave:`) for one direction."""
    if spec in ("propagate", "ignore"):
        return str(spec)
    if isinstance(spec, YamlMap) and set(spec) == {"set"} and isinstance(spec["set"], YamlMap) and spec["set"]:
        return dict(spec["set"])
    if leave is not None:
        raise ConfigError("leave is propagate, ignore or {set: {column: value, ...}}", leave,
                          hint="one for both directions, or per direction: leave: {<from>_to_<to>: ignore}")
    raise ConfigError("delete is propagate, ignore or {set: {column: value, ...}}", s.where("delete"))


def _leave_where(s: Section, stream: str | None) -> Where:
    """Where `leave:` (or its per-direction entry `stream`) is written."""
    value = s.data.get("leave")
    if stream is not None and isinstance(value, YamlMap) and stream in value:
        return s.section("leave").where(stream)
    return s.where("leave")


def _check_leave(s: Section, leaves: dict[str, Any], flows: list[Flow]) -> None:
    """`leave:` names directions the mapping flows, at least one of them with a filter or a source slice:
    it says what a row leaving them does to its counterpart, and without either no row ever leaves."""
    if not leaves:
        return
    streams = {f.stream for f in flows}
    per_direction = isinstance(s.data.get("leave"), YamlMap) and set(s.data["leave"]) == set(leaves)
    if per_direction:
        for stream in leaves:
            if stream not in streams:
                raise ConfigError(f"the mapping does not flow {stream}", _leave_where(s, stream))
    if not any(f.filter is not None for f in flows if f.stream in leaves):
        raise ConfigError("leave says what a row that leaves the mapping's filter or source slice does to its "
                          "counterpart; this mapping has neither for " + " or ".join(sorted(set(leaves) & streams)),
                          s.where("leave"), hint="add a filter (or a slice on the source endpoint), or remove leave")


def _fields(s: Section, sides: list[str], mapping_owner: str | None, zero_null: bool = False) -> tuple[Field, ...]:
    fields = []
    specs: dict[str, Any] = {}
    for name, spec in s.items():
        where = s.where(name)
        if spec is None:
            fields.append(Field(name, tuple((side, name) for side in sides), where, mapping_owner,
                                zero_null=zero_null))
            continue
        if not isinstance(spec, YamlMap):
            raise ConfigError("a field is ~ (same column name on both sides) or a mapping of its settings", where)
        fs = Section(spec, f"{s.path}.{name}", s.file)
        cols: dict[str, str | None] = {}
        for side in sides:
            cols[side] = fs.get(side, str, name) if not (fs.has(side) and spec[side] is None) else None
            if fs.has(side) and spec[side] is None:
                fs.get(side, object, None)
        owner = fs.get("owner", str, mapping_owner, choices=sides)
        rule = _conflict_rule(spec["conflicts"], fs.where("conflicts"), sides, None) if fs.has("conflicts") else None
        fs.allow("conflicts")
        references = fs.get("references", str, None)
        lossy = fs.get("lossy", str, "refuse", choices=("allow", "refuse")) == "allow"
        insert_only = fs.get("insert_only", bool, False)
        null_if = _null_if(fs, sides)
        now = _now(fs, cols)
        field_zero = zero_date(fs, zero_null)
        fs.allow("map", "unmapped", "transform", "default", "constant", "null_if")
        _check_directed_default(fs, sides, where)
        specs[name] = spec
        if fs.has("constant") and all(c is not None for c in cols.values()):
            raise ConfigError("a constant fills a column on one side only: set the other side to ~", where)
        fs.done()
        fields.append(Field(name, tuple(cols.items()), where, owner, references, lossy, "map" in spec, rule,
                            insert_only, null_if, now, field_zero))
    if not fields:
        raise ConfigError("a mapping needs at least one field", s.where())
    return tuple(fields)


_ZERO_DATE_FORMS = "zero_date is null (a MariaDB zero date arrives as NULL) or error (the default: a row error)"


def zero_date(s: Section, default: bool = False) -> bool:
    """`zero_date: null` (a field's or a mapping's): a MariaDB zero date -- 0000-00-00, a date with a zero month
    or day, the zero TIMESTAMP -- arrives as NULL, counted in replicator_zero_dates_total; `zero_date: error`
    (the default) makes it a row error naming table, key and column. True: carried as NULL."""
    if not s.has("zero_date"):
        return default
    value = s.data["zero_date"]
    s.allow("zero_date")
    if value is None:
        return True
    if value == "error":
        return False
    raise ConfigError(f"{_ZERO_DATE_FORMS}, not {value!r}", s.where("zero_date"),
                      hint="zero_date: null carries 0000-00-00 as NULL; leave it out to refuse such rows")


_NOT_WITH_NOW = ("constant", "map", "unmapped", "transform", "default", "null_if", "references", "lossy")


def _now(fs: Section, cols: dict[str, str | None]) -> bool:
    """`now: true`: the column is stamped with the apply time; like a constant, for a column of one side."""
    if not fs.has("now"):
        return False
    where = fs.where("now")
    if fs.data["now"] is not True:
        raise ConfigError(f"now is true (the apply time), not {fs.data['now']!r}", where,
                          hint="modified: {crm: ~, now: true}; add insert_only: true for a creation stamp")
    fs.get("now", bool)
    if all(c is not None for c in cols.values()):
        raise ConfigError("now stamps a column on one side only: set the other side to ~", where,
                          hint="modified: {crm: ~, now: true} stamps the ERP's column")
    other = next((k for k in _NOT_WITH_NOW if fs.has(k)), None)
    if other is not None:
        raise ConfigError(f"now and {other} do not go together: the value is the apply time", fs.where(other))
    return True


def _check_directed_default(fs: Section, sides: list[str], where: Where) -> None:
    """`default: {a_to_b: v}` names directions of this mapping; a misspelt one would be a dict default."""
    value = fs.data.get("default")
    if not isinstance(value, YamlMap) or not value or not all("_to_" in str(k) for k in value):
        return
    a, b = sides
    names = (f"{a}_to_{b}", f"{b}_to_{a}")
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ConfigError(f"default direction {unknown[0]!r} is not one of this mapping's: {' and '.join(names)}",
                          fs.where("default"))


def _null_if(fs: Section, sides: list[str]) -> tuple[tuple[str, Any], ...]:
    """`null_if: {erp: 0}`: the value that side stores for "none" (an ERP's 0 for "no parent")."""
    if not fs.has("null_if"):
        return ()
    spec = fs.data["null_if"]
    where = fs.where("null_if")
    if not isinstance(spec, YamlMap) or not spec or not set(spec) <= set(sides):
        raise ConfigError("null_if names the side that stores a value for NULL: {%s: 0}" % sides[-1], where,
                          hint=f"sides: {', '.join(sides)}")
    for side, value in spec.items():
        if value is None or isinstance(value, (list, YamlMap)):
            raise ConfigError(f"null_if.{side} is one plain value (0, '', ...), not {value!r}", where)
    fs.get("null_if", object)
    return tuple((str(k), v) for k, v in spec.items())


_RULE_FORMS = "latest, owner, manual, {priority: <side>} or {latest: {column: <field>}}"


def _conflict_rule(spec: Any, where: Where, sides: list[str], fields: tuple[Field, ...] | None) -> ConflictRule:
    """`conflicts:` of a mapping or a field. `fields` is None for a field's own rule (which may not name a
    column: the order of edits is a property of the row, so only the mapping names it)."""
    if isinstance(spec, str):
        if spec not in ("latest", "owner", "manual"):
            if spec == "priority":
                raise ConfigError("priority needs the winning side: {priority: %s}" % sides[0], where)
            raise ConfigError(f"{spec!r} is not a conflict rule (one of {_RULE_FORMS})", where)
        return ConflictRule(spec)
    if not isinstance(spec, YamlMap) or len(spec) != 1:
        raise ConfigError(f"conflicts is one of {_RULE_FORMS}", where)
    (rule, arg), = spec.items()
    if rule == "priority":
        if arg not in sides:
            raise ConfigError(f"priority names a side: {' or '.join(sides)}, not {arg!r}", where)
        return ConflictRule("priority", side=arg)
    if rule == "latest":
        if arg is None:
            return ConflictRule("latest")
        if not isinstance(arg, YamlMap) or set(arg) != {"column"} or not isinstance(arg["column"], str):
            raise ConfigError("latest takes {column: <field>}: the field whose value orders the edits "
                              "(an updated_at the applications maintain)", where)
        if fields is None:
            raise ConfigError("a field's rule cannot name a column: put {latest: {column: ...}} on the "
                              "mapping's conflicts", where)
        column = arg["column"]
        f = next((f for f in fields if f.name == column), None)
        if f is None:
            raise ConfigError(f"latest column {column!r} is not a field of this mapping", where)
        if any(c is None for _, c in f.columns):
            raise ConfigError(f"latest column {column!r} needs a column on both sides", where)
        return ConflictRule("latest", column=column)
    raise ConfigError(f"{rule!r} is not a conflict rule (one of {_RULE_FORMS})", where)


def _flow_conflicts(default: ConflictRule, fields: tuple[Field, ...], dst: str, first_side: str) -> Conflicts:
    """The rules of one direction, by target column: `owner` becomes priority of the owning side
    (or the mapping's rule, then the default, for a field nobody owns); the latest column in target terms."""
    by_name = {f.name: f for f in fields}

    def resolve(rule: ConflictRule, f: Field | None) -> ConflictRule:
        if rule.rule == "owner":
            if f is not None and f.owner is not None:
                return ConflictRule("priority", side=f.owner)
            return DEFAULT_RULE if default.rule == "owner" else resolve(default, None)
        if rule.rule == "latest" and rule.column is not None:
            return ConflictRule("latest", column=by_name[rule.column].column(dst))
        if rule.rule == "latest" and default.rule == "latest" and default.column is not None:
            return resolve(default, None)  # a field's `latest` uses the mapping's column
        return rule

    base = resolve(default, None)
    out: dict[str, ConflictRule] = {}
    for f in fields:
        col = f.column(dst)
        if col is None or f.owner == dst:
            # a field owned by the target side never flows into it: its rule is not this column's (a column
            # read by several fields, CiviCRM's organization_name also copied one way into companyname)
            continue
        # an owned field: the owner wins unless the field names its own rule
        rule = resolve(f.conflicts or (ConflictRule("owner") if f.owner else default), f)
        if rule != base:
            out[col] = rule
    return Conflicts(base, out, first_side)


def _convert(f: Field, spec: Any, src: str, dst: str, where: Where) -> Callable[[Any, TMapping[str, Any]], Any] | None:
    """One function per field and direction: value map, then transforms, then default / constant."""
    if spec is None:
        return None
    steps: list[Transform] = []
    if f.now:
        return _stamp
    if "constant" in spec:
        constant = spec["constant"]
        return lambda _value, _row: constant
    if "map" in spec:
        maps = compile_value_map(spec["map"], (src, dst), spec.get("unmapped"), where)
        if (src, dst) not in maps:
            raise ConfigError(f"the value map is ambiguous from {src} to {dst} (a {src} value appears twice)", where)
        fn = maps[(src, dst)]
        steps.append(lambda value, _row: fn(value))  # fn is bound once
    if "transform" in spec:
        t = spec["transform"]
        stream = f"{src}_to_{dst}"
        if isinstance(t, YamlMap):
            unknown = set(t) - {f"{a}_to_{b}" for a in (src, dst) for b in (src, dst) if a != b}
            if unknown:
                raise ConfigError(f"transform directions are {src}_to_{dst} and {dst}_to_{src}", where)
            t = t.get(stream)
        chain = compile_chain(t, where) if t is not None else None
        if chain is not None:
            steps.append(chain)
    default = field_default(spec, src, dst)
    if default is not _NOTHING:
        steps.append(lambda value, _row: default if value is None else value)
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def run(value: Any, row: TMapping[str, Any]) -> Any:
        for step in steps:
            value = step(value, row)
        return value
    return run


def _stamp(_value: Any, _row: TMapping[str, Any]) -> Any:
    """A `now: true` field's value: the apply time of the transaction that writes the row."""
    return applytime.now()


def _flow(name: str, s: Section, endpoints: list[Endpoint], fields: tuple[Field, ...], src: str, dst: str, *,
          truncate: str, link: Link, created_by: str | None, filter: Any, gate: Any, delete: Any,
          parent: tuple[str, str] | None, conflicts: Conflicts | None = None, delete_given: bool = False,
          filter_columns: tuple[str, ...] = (), park_days: float | None = None,
          leave: str | dict[str, Any] = "propagate") -> Flow:
    source = next(e for e in endpoints if e.side == src)
    target = next(e for e in endpoints if e.side == dst)
    specs = {k: v for k, v in (s.data.get("fields") or {}).items()}
    plans = []
    for f in fields:
        dst_col, src_col = f.column(dst), f.column(src)
        is_key = dst_col in target.key
        if dst_col is None or (f.owner not in (None, src) and not is_key):
            continue
        if f.now and is_key:
            raise ConfigError(f"a key column ({dst_col}) is not stamped with the apply time: it would change the "
                              f"row's identity on every write", f.where)
        spec = specs.get(f.name)
        if src_col is None and not (isinstance(spec, YamlMap) and "constant" in spec) and not f.now:
            if f.owner == src:
                # owned by the side it has no column on: it would never write its target column, silently
                raise ConfigError(
                    f"field {f.name} writes {dst}'s {dst_col} from {src} (owner: {src}), but has no column on "
                    f"{src} ({src}: ~) and no constant: nothing is ever written", f.where,
                    hint=f"name the {src} column it is read from ({src}: <column>; a concat transform ignores "
                         f"that value but needs one), or give it a constant")
            continue
        nulls = dict(f.null_if)
        plans.append(FieldPlan(f.name, src_col, dst_col, _convert(f, spec, src, dst, f.where), f.references,
                               f.insert_only and not is_key,
                               (nulls[src],) if src in nulls and src_col is not None else (),
                               (nulls[dst],) if dst in nulls else (), owned=f.owner == src and not is_key,
                               stamp=f.now, zero_null=f.zero_null, lossy=f.lossy))
    by_target = {p.target: p.source for p in plans}
    if link.crosswalk:
        key_sources: tuple[str, ...] = ()
    else:
        missing = [k for k in target.key if k not in by_target or by_target[k] is None]
        if missing:
            raise ConfigError(
                f"key column {missing[0]!r} of {target.table} is not filled by any field",
                s.where("fields"), hint=f"add a field whose {dst} column is {missing[0]}, or link: {{crosswalk: true}}")
        key_sources = tuple(by_target[k] for k in target.key)  # type: ignore[misc]
    return Flow(name, source, target, tuple(plans), key_sources, truncate, filter, gate, delete, created_by,
                link, parent, conflicts=conflicts, filter_columns=filter_columns, park_days=park_days,
                delete_given=delete_given, leave=leave)


def _resolve_references(mappings: list[Mapping]) -> list[Mapping]:
    """Check that references name mappings, and mark referenced flows (they may unpark children)."""
    names = {m.name: m for m in mappings}
    referenced: set[str] = set()
    for m in mappings:
        for f in m.fields:
            if f.references:
                if f.references not in names:
                    raise ConfigError(f"references unknown mapping {f.references!r}", f.where)
                referenced.add(f.references)
        for flow in m.flows:
            if flow.parent:
                if flow.parent[0] not in names:
                    raise ConfigError(f"parent mapping {flow.parent[0]!r} does not exist", m.where)
                referenced.add(flow.parent[0])
        fold = next((f.fold for f in m.flows if f.fold is not None), None)
        if fold is not None:  # a folded child waits for its parent's (and its value's) counterpart
            for what, target in (("parent", fold.parent), ("references", fold.references)):
                if target is None:
                    continue
                other = names.get(target)
                if other is None or other.flows and other.flows[0].fold is not None:
                    if other is not None and fold.via is not None and what == "parent":
                        raise ConfigError(f"fold.parent: {target!r} is a fold: a two-hop fold writes a column of the "
                                          f"parent's own row, not another fold's child row", m.where,
                                          hint=INTO_CHILD_ROW)
                    raise ConfigError(f"fold.{what}: {target!r} is not a mapping of rows", m.where)
                if len(other.endpoints[0].key) != 1:
                    raise ConfigError(f"fold.{what}: mapping {target!r} has a composite key; a fold needs a "
                                      f"single-column key there", m.where)
                referenced.add(target)
            side = next(e.side for e in m.endpoints if e.side != fold.child)
            mine, theirs = m.endpoint(side), names[fold.parent].endpoint(side)
            if (mine.table, mine.key) != (theirs.table, theirs.key):
                two_hop = fold.via is not None and mine.table != theirs.table
                raise ConfigError(f"{m.name}.{side}: the parent's table on {side} is {theirs.table} key "
                                  f"{list(theirs.key)} (mapping {fold.parent!r}), not {mine.table} key "
                                  f"{list(mine.key)}" + (f"; a two-hop fold writes a column of the parent's own row, "
                                                         f"not a child row of {mine.table}" if two_hop else ""),
                                  m.where, hint=INTO_CHILD_ROW if two_hop else None)
    out = []
    for m in mappings:
        if m.name in referenced:
            flows = tuple(Flow(**{**f.__dict__, "referenced": True}) for f in m.flows)
            m = replace(m, flows=flows)  # keeps every other attribute (accept_cascades was lost here)
        out.append(m)
    return out


def _check_overlaps(mappings: list[Mapping]) -> None:
    """Several mappings may write one table (an order header and its status history), but each
    non-key column has one writer: two mappings filling the same column would overwrite each other."""
    writers: dict[tuple[Any, ...], str] = {}
    natural: dict[tuple[Any, ...], bool] = {}  # every writer so far links its rows by that column
    stamped: dict[tuple[Any, ...], bool] = {}  # every writer so far stamps it with the apply time (`now: true`)
    for m in mappings:
        for f in m.flows:
            if f.fold is not None and f.target.side != f.fold.child:  # a fold writes one column of the parent
                k: tuple[Any, ...] = (f.target.side, f.target.table, f.fold.into, ())
                if k in writers and writers[k] != m.name:
                    raise ConfigError(f"column {f.fold.into} of {f.target.table} on {f.target.side} is written by "
                                      f"mappings {writers[k]!r} and {m.name!r}", m.where,
                                      hint="a folded column is the fold's alone: remove the parent mapping's field")
                writers[k] = m.name
            for plan in f.plans:
                if plan.target in f.target.key:
                    continue
                # mappings of different slices of one table write different rows
                k = (f.target.side, f.target.table, plan.target, f.target.slice)
                # one entity kept in two tables (Odoo's product_template and product_product, both onto
                # ERPNext's tabItem): mappings that all link the row by this column (`link: natural`) write
                # the value that identifies it, the same in each; any other writer is an overwrite
                linked = plan.name in f.link.natural
                if k in writers and writers[k] != m.name and linked and natural[k]:
                    continue
                # a stamp (`now: true`) is the time of the write, not a value of the row: several mappings
                # writing one table (product_template and product_product onto tabItem) may each stamp it
                if k in writers and writers[k] != m.name and plan.stamp and stamped[k]:
                    continue
                if k in writers and writers[k] != m.name:
                    raise ConfigError(
                        f"column {plan.target} of {f.target.table} on {f.target.side} is written by mappings "
                        f"{writers[k]!r} and {m.name!r}", m.where,
                        hint="give the column one writer (owner: or a field in only one mapping; several "
                             "mappings may write a column they all name in `link: {natural: [...]}`)")
                writers[k] = m.name
                natural[k] = linked
                stamped[k] = plan.stamp


def folds_into(mset: MappingSet, parent: str, source_side: str) -> list[Flow]:
    """The flows from `source_side` of the one-hop folds whose child rows are on that side and whose column is
    in mapping `parent`'s rows on the other: what a row `parent` creates there may carry at once."""
    out = []
    for m in mset.mappings:
        flow = m.flow(source_side)
        fold = flow.fold if flow is not None else None
        if flow is not None and fold is not None and fold.parent == parent and fold.child == source_side \
                and fold.via is None:
            out.append(flow)
    return out
