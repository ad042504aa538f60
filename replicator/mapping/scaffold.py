"""`replicator scaffold`: a first draft of a mapping for two wide tables, from both live catalogs.

Real ERP tables have a hundred columns. The draft names the keys (a crosswalk when both sides number
their own rows, or one numbers them and the other's application makes UUIDs: `generate:` there), pairs columns by name (the same name
first; else case, underscores and a prefix the table's columns share, such as `c_` or `cust_`, ignored, said
in the field's comment; never across kinds under another spelling, nor a key with an ordinary column:
`column_pairs`), adds `lossy: allow` with the reason where `check` would refuse a cast
that may lose information, a value map for two enum domains (values paired by name, the rest left as
a TODO), and lists as comments the columns it could not pair, NOT NULL ones first. It is a draft for a
person to read: `replicator check` then passes it or explains what is left.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from replicator.changes import TableRef
from replicator.mapping.check.casts import ERROR, LOSSY, _cast
from replicator.mapping.check.columns import ColumnInfo


@dataclass(frozen=True)
class Table:
    """One side's table as the draft needs it."""

    side: str
    table: TableRef
    key: tuple[str, ...]
    columns: dict[str, ColumnInfo]  # in catalog order
    primary_key: tuple[str, ...] = ()  # when `key` is another unique key (draft_key)


def draft_key(primary_key: tuple[str, ...], uniques: list[tuple[str, ...]],
              columns: dict[str, ColumnInfo]) -> tuple[str, ...]:
    """The key a draft uses: the primary key, or, when that has several columns, a one-column unique key the
    database numbers (LedgerSMB's `entity`: primary key (control_code, entity_class), `id serial UNIQUE`). With the
    composite key the draft had no crosswalk and keyed the record by its code and its class, a slice column."""
    if len(primary_key) > 1:
        for key in uniques:
            if len(key) == 1 and key[0] in columns and columns[key[0]].generated:
                return key
    return primary_key


def _prefix(names: list[str]) -> str:
    """A prefix most of the table's columns share (`c_`, `cust_`), ignored when pairing."""
    if len(names) < 3:
        return ""
    common = os.path.commonprefix([n.lower() for n in names])
    cut = common.rfind("_")
    if cut > 0:
        return common[:cut + 1]
    heads = [n.lower().split("_", 1)[0] + "_" for n in names if "_" in n]
    best = max(set(heads), key=heads.count, default="")
    return best if best and heads.count(best) * 2 > len(names) else ""


def _norm(name: str, prefix: str) -> str:
    name = name.lower()
    if prefix and name.startswith(prefix) and len(name) > len(prefix):
        name = name[len(prefix):]
    return re.sub(r"[^a-z0-9]", "", name)


# kinds a column can be paired across under another spelling of its name: the same family (lengths,
# precision and the like differ; the draft says `lossy: allow` with the reason where check would refuse)
_FAMILY = {"int": "a number", "decimal": "a number", "float": "a number", "bool": "a number", "text": "text",
           "enum": "text", "date": "a date", "datetime": "a date", "time": "a time", "interval": "a time",
           "json": "json", "array": "an array", "bytes": "bytes", "uuid": "a uuid", "inet": "an address"}


@dataclass(frozen=True)
class ColumnPair:
    """Two columns of one name: `how` says which spelling made them one ("the same name", "... with case
    ignored", ...); `refused`, why the draft does not make them a field (None: it does)."""

    a: str
    b: str
    how: str
    refused: str | None = None


def column_pairs(a: Table, b: Table) -> list[ColumnPair]:
    """Columns of `a` and `b` of one name, in `a`'s order, the closest spelling first: the same name, then
    with case ignored, then case and underscores, then also a prefix the table's columns share (`c_`). A
    spelling two columns of one side share pairs neither. Conservative (round 13: SuiteCRM's created_by, a
    user's UUID, was drafted as one field with iDempiere's createdby, a user's number): a pair that is not the
    same name up to case and whose kinds differ (text against a number) is refused, and so is one table's key
    with the other's ordinary column (ERPNext's key `name` and Odoo's partner name): such pairs are listed in
    the draft with the reason, never drafted."""
    pa, pb = _prefix(list(a.columns)), _prefix(list(b.columns))
    prefixes = " and ".join(f"{t.side}'s prefix {p}" for t, p in ((a, pa), (b, pb)) if p)
    plain: Any = lambda n, _p: re.sub(r"[^a-z0-9]", "", n.lower())  # noqa: E731
    stages: list[tuple[str, Any]] = [("the same name", lambda n, _p: n),
                                     ("the same name with case ignored", lambda n, _p: n.lower()),
                                     ("the same name with case and underscores ignored", plain)]
    if prefixes:
        stages.append((f"the same name with case, underscores and {prefixes} ignored", _norm))
    found: dict[str, ColumnPair] = {}
    used: set[str] = set()
    for how, spell in stages:
        theirs: dict[str, list[str]] = {}
        for n in b.columns:
            if n not in used:
                theirs.setdefault(spell(n, pb), []).append(n)
        ours: dict[str, list[str]] = {}
        for n in a.columns:
            if n not in found:
                ours.setdefault(spell(n, pa), []).append(n)
        for spelling, names in ours.items():
            others = theirs.get(spelling, [])
            if len(names) != 1 or len(others) != 1:
                continue  # none, or ambiguous: two columns of one side share the spelling
            ca, cb = names[0], others[0]
            used.add(cb)
            found[ca] = ColumnPair(ca, cb, how, _refused(a, b, ca, cb, how))
    return [found[n] for n in a.columns if n in found]


def _refused(a: Table, b: Table, ca: str, cb: str, how: str) -> str | None:
    if (ca in a.key) != (cb in b.key):
        return f"{how}, but {a.side if ca in a.key else b.side}'s key"
    fa, fb = (_FAMILY.get(t.columns[c].kind, t.columns[c].kind) for t, c in ((a, ca), (b, cb)))
    if fa != fb and ca.lower() != cb.lower():
        return f"{how}, but {fa} against {fb}"
    return None


def pair_columns(a: Table, b: Table) -> list[tuple[str, str]]:
    """The pairs `column_pairs` drafts as fields (not refused)."""
    return [(p.a, p.b) for p in column_pairs(a, b) if p.refused is None]


def _yaml(value: Any) -> str:
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ .-]*", text) and text.lower() not in ("yes", "no", "on", "off", "true",
                                                                                 "false", "null", "y", "n"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value_map(sa: ColumnInfo, sb: ColumnInfo, a: str, b: str) -> list[str] | None:
    """`map:` lines for two enum domains that differ, pairing values by name; None when no map is needed."""
    if not (sa.enums and sb.enums) or list(sa.enums) == list(sb.enums):
        return None
    rest = {v.lower(): v for v in sb.enums}
    pairs, missing = [], []
    for v in sa.enums:
        w = rest.pop(v.lower(), None)
        if w is None:  # a code of the other side that is the value's first letter(s): active -> A
            w = next((x for k, x in rest.items() if v.lower().startswith(k)), None)
            if w is not None:
                rest.pop(w.lower())
        if w is None:
            missing.append(v)
        else:
            pairs.append(f"{{{a}: {_yaml(v)}, {b}: {_yaml(w)}}}")
    lines = [f"map: [{', '.join(pairs)}]"]
    if missing or rest:
        lines.append(f"# TODO map {a} {', '.join(map(repr, missing)) or '-'} / {b} "
                     f"{', '.join(map(repr, rest.values())) or '-'}")
    return lines


def _key_maker(t: Table) -> str | None:
    """Who makes the one-column key of a new row: "db" (identity, serial, AUTO_INCREMENT), "default" (a
    DEFAULT such as gen_random_uuid()), "uuid" (text or uuid without a default: the application makes it,
    as SuiteCRM's char(36) ids), "{hex: N}" (text too narrow for a UUID: EspoCRM's VARCHAR(17) ids, random
    hex of the column's width), or None (a composite key, or one that must be given: shared keys)."""
    if len(t.key) != 1 or t.key[0] not in t.columns:
        return None
    c = t.columns[t.key[0]]
    if c.generated:
        return "db"
    if c.has_default:
        return "default"
    if c.kind == "uuid" or (c.kind == "text" and (c.length is None or c.length >= 32)):
        return "uuid"
    if c.kind == "text" and c.length is not None and c.length >= 12:
        return f"{{hex: {c.length}}}"
    return None


def mapping_name(table: str) -> str:
    """A mapping name from a table's: ERPNext's `tabSales Order Item` would make a name with spaces, which
    every command line (`--mapping`) and metric label then has to quote: `tabsales_order_item`."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", table).strip("_").lower() or "mapping"


def draft(name: str, a: Table, b: Table) -> str:
    """The YAML text of a draft mapping between `a` and `b` (direction both)."""
    ka, kb = a.key, b.key
    made = {t.side: _key_maker(t) for t in (a, b)}
    # a crosswalk pairs one-column keys that each side makes itself: numbered by its database (identity,
    # AUTO_INCREMENT), or made by its application (a CRM's char(36) UUID) -- then by `generate:` when
    # replicator creates the row there
    crosswalk = len(ka) == 1 and len(kb) == 1 and None not in made.values() and "db" in made.values()
    # a number the application hands out itself (iDempiere's numeric(10) ids from AD_Sequence) against a key
    # the other side makes: a crosswalk too. The draft had neither a link nor a key field, which `check` refuses
    numbered = [t for t in (a, b) if made[t.side] is None and len(t.key) == 1 and t.key[0] in t.columns
                and (t.columns[t.key[0]].kind == "int" or t.columns[t.key[0]].kind == "decimal"
                     and not t.columns[t.key[0]].scale)]
    if len(ka) == 1 and len(kb) == 1 and len(numbered) == 1 and made[(b if numbered[0] is a else a).side]:
        crosswalk = True
    found = column_pairs(a, b)
    pairs = [p for p in found if p.refused is None]
    not_paired = [p for p in found if p.refused is not None]
    lines = [f"# draft by `replicator scaffold`: read it, then run `replicator check`",
             "# columns are paired by name: the same name, else case, underscores and a prefix the table's columns",
             "# share ignored (each such field says so); similar names of different kinds are listed, not paired",
             "mappings:", f"  {name}:", "    direction: both"]
    for t in (a, b):
        how = made[t.side] if crosswalk else "db"
        generate = "" if how in ("db", None) else f", generate: {{{t.key[0]}: {how}}}"
        lines.append(f"    {t.side}: {{table: {t.table}, key: [{', '.join(t.key)}]{generate}}}")
        if t.primary_key and t.primary_key != t.key:
            lines.append(f"    # {t.side} key: {t.key[0]} is unique and numbered by the database; the primary key is "
                         f"({', '.join(t.primary_key)})")
        if crosswalk and how is None:
            lines.append(f"    # TODO {t.side}'s application numbers {t.key[0]} (no identity, no DEFAULT): give it a "
                         f"DEFAULT that takes the application's next number, then add generate: {{{t.key[0]}: "
                         f"default}} above (docs/mappings.md, \"Keys the application makes\")")
    if crosswalk:
        apps = [t.side for t in (a, b) if made[t.side] != "db"]
        why = ("both sides number their own rows" if not apps else
               f"{apps[0]}'s application makes its keys: `generate:` makes one when replicator creates a row there")
        lines.append(f"    link: {{crosswalk: true}}      # {why}")
    lines.append("    fields:")
    paired_a, paired_b = set(), set()
    refused = []
    for pair in pairs:
        ca, cb = pair.a, pair.b
        if crosswalk and (ca in ka or cb in kb):
            paired_a.add(ca)
            paired_b.add(cb)
            continue  # each side keeps its own key; the crosswalk pairs them
        sa, sb = a.columns[ca], b.columns[cb]
        opts = [] if ca == cb else [f"{b.side}: {cb}"]
        notes = []
        vmap = _value_map(sa, sb, a.side, b.side)
        if vmap is None:
            verdicts = [_cast(sa, sb), _cast(sb, sa)]
            if any(v == ERROR for v, _ in verdicts):
                refused.append(f"{ca} / {cb}: {next(w for v, w in verdicts if v == ERROR)}")
                paired_a.add(ca)  # listed once, below, with the reason
                paired_b.add(cb)
                continue
            lossy = [w for v, w in verdicts if v == LOSSY]
            if lossy:
                opts.append("lossy: allow")
                notes.append(f"review: {lossy[0]}")
        else:
            opts.append(vmap[0])
            notes += [n.lstrip("# ") for n in vmap[1:]]
        if ca != cb:
            notes.append(f"paired: {ca} / {cb}, {pair.how}")
        paired_a.add(ca)
        paired_b.add(cb)
        spec = "~" if not opts else "{" + ", ".join(opts) + "}"
        lines.append(f"      {ca}: {spec}" + (f"    # {'; '.join(notes)}" if notes else ""))
    if not any(line.startswith("      ") for line in lines):
        lines.append("      # no column could be paired: add fields by hand")
    for t, done, other in ((a, paired_a, b), (b, paired_b, a)):
        left = [c for c in t.columns if c not in done and not (crosswalk and c in t.key)]
        needed = [c for c in left if not (t.columns[c].nullable or t.columns[c].has_default
                                          or t.columns[c].generated or t.columns[c].computed)]
        if needed:
            stamp = (f", `{{{other.side}: ~, now: true}}` for a date and time"
                     if any(t.columns[c].kind == "datetime" for c in needed) else "")
            lines.append(f"    # {t.side} columns that are NOT NULL without a default and not paired: each needs a "
                         f"field (`{{{other.side}: ~, constant: ...}}`{stamp}) or created_by: {t.side}")
            lines += [f"    #   {c} {t.columns[c].describe()}" for c in needed]
        rest = [c for c in left if c not in needed]
        if rest:
            lines.append(f"    # {t.side} columns not paired ({len(rest)}):")
            lines += [f"    #   {c} {t.columns[c].describe()}" for c in rest]
    if not_paired:
        lines.append("    # similar names, not paired (add a field by hand if they hold the same thing):")
        lines += [f"    #   {p.a} {a.columns[p.a].describe()} / {p.b} {b.columns[p.b].describe()}: {p.refused}"
                  for p in not_paired]
    if refused:
        lines.append("    # paired by name but of incompatible types (convert with map:/transform: or leave out):")
        lines += [f"    #   {r}" for r in refused]
    return "\n".join(lines) + "\n"


def read_table(conn: Any, side: str, name: str, default_schema: str) -> Table:
    """One live table (columns and primary key), for `draft`."""
    import sqlalchemy

    from replicator.connect import sql_engine
    from replicator.errors import ConfigError
    from replicator.mapping.check.catalog import inspected_primary_key, inspected_unique_keys, read_catalog

    table = TableRef.parse(name, default_schema)
    engine = sql_engine(conn)
    try:
        columns = read_catalog(engine, [table]).get(table)
        if columns is None:
            raise ConfigError(f"{side}: table {table} does not exist")
        insp = sqlalchemy.inspect(engine)
        pk = tuple(inspected_primary_key(insp, table))
        key = draft_key(pk, inspected_unique_keys(insp, table), columns) if len(pk) > 1 else pk
    finally:
        engine.dispose()
    if not key:
        raise ConfigError(f"{side}: {table} has no primary key; replicator applies changes by key")
    return Table(side, table, key, columns, pk if key != pk else ())
