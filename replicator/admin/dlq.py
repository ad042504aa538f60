"""`replicator dlq list|show|retry|skip`: the dead-letter queue of both targets (stream/deadletter.py).

Each database holds the queue of the direction that writes into it. `retry` re-applies the queued
changes of the selected rows in queue order, in one transaction per database that carries the loop
tag of the direction (so the other direction does not echo them back); a change that fails again
stays queued with its new error, and the changes behind it stay too, unless the row's latest queued
image, written in its place, goes in (deadretry.superseding). A change of a two-way mapping
whose target row was edited since it was queued is not written (stream/deadcheck.py: error class
`conflict`) unless `--force`. `skip` deletes them and prints what it dropped (a change that only
waited behind another: that the target misses it too). Without `--mapping`, `--key` or an id, retry and skip refuse: use `--all`.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Sequence, TextIO

from replicator.admin.conflicts import key_candidates, parse_ref
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.config import Config
from replicator.errors import ConfigError, TargetShapeChanged, show_key
from replicator.loopguard import stream_name
from replicator.mapping import applytime
from replicator.mapping.model import MappingSet
from replicator.stream import deadletter, deadlinked, deadretry
from replicator.stream.deadletter import Entry
from replicator.stream.shapes import TargetShapes


def add_arguments(parser: Any) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "show", "retry", "skip"), default="list",
                        help="list (default); show ID; retry or skip the selected rows' queued changes")
    parser.add_argument("id", nargs="?", help="show, retry, skip: one queued change, as listed (crm:3)")
    parser.add_argument("--mapping", help="only this mapping")
    parser.add_argument("--key", help="only this row: its key on either side (K or K1,K2)")
    parser.add_argument("--all", action="store_true", help="retry or skip everything queued")
    parser.add_argument("--force", action="store_true",
                        help="retry: write two-way changes even where the target row was edited since they were "
                             "queued (without it such a change stays queued, error class conflict)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def _open(config: Config, side: str) -> Applier:
    """An apply session into `side`, tagged as the direction that writes there."""
    other = next(c for c in config.connections if c.name != side)
    db = make_applier(config.side(side), stream_name(other.name, side), "")
    db.connect()
    return db


Opener = Callable[[Config, str], Applier]


def _selected(db: Applier, args: Any, sides: Sequence[str], mset: MappingSet | None = None,
              lock: bool = False) -> list[Entry]:
    if not deadletter.exists(db):
        raise ConfigError(f"{db.conn.name} has no {db.conn.state_schema}.{deadletter.TABLE} table: run "
                          f"`replicator setup` (it adds the tables a newer version needs)")
    keys = key_candidates(args.key) if args.key else ()
    entries = deadletter.select(db, stream=db.stream, mapping=args.mapping, keys=keys, lock=lock)
    if args.id:
        ref = parse_ref(args.id, sides)
        if ref.side not in (None, db.conn.name):
            return []
        first = next((e for e in entries if e.id == ref.id), None)
        if first is None or args.action == "show":
            return [first] if first is not None else []
        # retry: the changes queued before it for its row go first; skip: the ones behind it go too
        row = deadretry.entry_row(first, mset)
        same = [e for e in entries if deadretry.entry_row(e, mset) == row]
        entries = [e for e in same if e.id >= ref.id] if args.action == "skip" else same
    return entries


def _key_side(e: Entry, mset: MappingSet) -> str | None:
    """The source side when `e`'s key is the source row's (a linked mapping: the target row's own key
    is found or made by the link and, for an insert, does not exist yet), else None."""
    flow = deadretry.linked_flow(e, mset)
    return flow.source.side if flow is not None else None


def _key_text(e: Entry, key_side: str | None) -> str:
    text = ",".join(str(v) for v in e.target_key)
    return f"{key_side}:{text}" if key_side else text


def _render(entries: Sequence[Entry], mset: MappingSet) -> str:
    """A table whose columns are as wide as their longest value (a CRM's 36-character UUID keys, long
    table names), so that every row lines up under its header. A key that is the source row's (a linked
    mapping's) is prefixed with its side (crm:5b7e...)."""
    rows = [(e.ref, e.queued_at.strftime("%Y-%m-%d %H:%M:%S"), e.mapping, e.target_table,
             _key_text(e, _key_side(e, mset)), e.op, e.error) for e in entries]
    header = ("ID", "QUEUED (UTC)", "MAPPING", "TABLE", "KEY", "OP", "ERROR")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    return "\n".join(" ".join(f"{cell:<{w}}" for cell, w in zip(r, widths)) + " " + r[-1] for r in (header, *rows))


def _show(e: Entry, key_side: str | None) -> str:
    d = e.as_dict(key_side)
    return "\n".join(f"{k:>16}: {json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
                     for k, v in d.items())


def command(args: Any, config: Config, mset: MappingSet, out: TextIO, opener: Opener | None = None) -> int:
    if args.mapping is not None and args.mapping not in mset.by_name:
        raise ConfigError(f"no mapping named {args.mapping!r}; the mappings are "
                          f"{', '.join(m.name for m in mset.mappings)}")
    if args.action == "show" and not args.id:
        raise ConfigError(f"`replicator dlq show` needs the id of a queued change, as `dlq list` prints it "
                          f"({config.connections[0].name}:3)")
    if args.action in ("retry", "skip") and not (args.id or args.key or args.mapping or args.all):
        raise ConfigError(f"`replicator dlq {args.action}` needs --mapping, --key or an id (or --all for everything)")
    force = bool(getattr(args, "force", False))
    if force and args.action != "retry":
        raise ConfigError(f"--force is for `replicator dlq retry`, not `{args.action}`")
    opener = opener or _open
    sides = [c.name for c in config.connections]
    status = 0
    matched = 0
    listed: list[tuple[str, list[Entry]]] = []
    for side in sides:
        db = opener(config, side)
        try:
            if args.action in ("list", "show"):
                entries = _selected(db, args, sides, mset)
                db.rollback()
                matched += len(entries)
                listed.append((side, entries))
                for e in entries:
                    if args.json:
                        print(json.dumps(e.as_dict(_key_side(e, mset)), ensure_ascii=False), file=out)
                    elif args.action == "show":
                        print(_show(e, _key_side(e, mset)), file=out)
                continue
            if args.action == "skip":
                db.begin()  # the loop tag first, as for every write of this command
                entries = _selected(db, args, sides, mset, lock=True)
                matched += len(entries)
                if not entries:
                    continue
                deadletter.delete(db, (e.id for e in entries))
                db.commit_untracked()
                for e in entries:
                    print(_line("skipped", e, args.json, _key_side(e, mset), note=_skipped_note(e)), file=out)
                continue
            entries, outcome = _retry(db, args, sides, config, mset, force)
            matched += len(entries)
            if outcome is None:
                continue  # nothing selected in this database
            notes = _superseded_notes(outcome)
            for e in outcome.applied:
                print(_line("applied", e, args.json, _key_side(e, mset), note=notes.get(e.id)), file=out)
            for e, error in outcome.failed:
                print(_line("failed", e, args.json, _key_side(e, mset), error), file=out)
                status = 1
            for e in outcome.waiting:
                print(_line("waiting", e, args.json, _key_side(e, mset)), file=out)
        finally:
            db.rollback()
            db.close()
    if args.id and not matched:  # before, `dlq show erp:999` printed nothing and exited 0
        # the example names this configuration's sides: `crm:3` sent a SuiteCRM/iDempiere user to an id no side has
        raise ConfigError(f"no queued change {args.id} (`replicator dlq list` lists them, as "
                          f"{config.connections[0].name}:3)")
    if args.action == "list" and not args.json:
        shown = [(side, entries) for side, entries in listed if entries]
        for side, entries in shown:
            print(f"{side}:", file=out)
            print(_render(entries, mset), file=out)
        if not shown:
            filters = " and ".join(f"--{name} {value}" for name, value in (("mapping", args.mapping), ("key", args.key))
                                   if value is not None)
            print(f"no queued change matches {filters}" if filters else
                  f"the dead-letter queues of {' and '.join(sides)} are empty", file=out)
    return status


def _retry(db: Applier, args: Any, sides: Sequence[str], config: Config, mset: MappingSet, force: bool
           ) -> tuple[list[Entry], deadretry.Outcome | None]:
    """Retry the selected changes of `db`'s queue, planned against the tables' shape now, as `verify --repair`
    plans: the shape of each table written is judged with `check`'s cast rules before anything is written (the
    table may have changed since the change was queued: a refused column stops the retry, SchemaChangeError naming
    table and column, nothing written), and an ALTER TABLE committed while the retry wrote (TargetShapeChanged at
    the commit: rolled back, nothing committed) is judged the same way and, when the mappings still carry the new
    shape exactly, the retry is planned with it and run again (at most twice more). The queued changes selected,
    and what became of them (None: nothing selected)."""
    shapes = TargetShapes(config, db.conn, db.stream)
    shapes.use(mset)
    for attempt in range(3):
        try:
            return _retry_once(db, args, sides, config, mset, force, shapes)
        except TargetShapeChanged:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _retry_once(db: Applier, args: Any, sides: Sequence[str], config: Config, mset: MappingSet, force: bool,
                shapes: TargetShapes) -> tuple[list[Entry], deadretry.Outcome | None]:
    # the tables this side's mappings write, read before the tag (reading ends the transaction); the loop below
    # reads any other a queued change names (a mapping dropped since it was queued)
    loaded = {e.table for e in mset.target_endpoints(db.conn.name)}
    db.load_types(sorted(loaded))
    while True:
        db.begin()  # the loop tag first: what retry writes is ours, not an edit to send back
        applytime.next_transaction()  # `now: true` stamps: this database's transaction's own instant
        entries = _selected(db, args, sides, mset, lock=True)
        missing = {e.change.table for e in entries} - loaded
        if not missing:
            break
        # reading the column types ends the transaction (the tag with it: what retry wrote after it was
        # captured and sent back as an edit of this side), so they are read first, then again
        db.rollback()
        loaded |= missing
        db.load_types(sorted(loaded))
    if not entries:
        return entries, None  # no linkers to open, nothing to commit
    written = sorted({e.change.table for e in entries}, key=str)
    shapes.planned({t: db.planned[t] for t in written if t in db.planned}, check_first=True)
    linkers = deadlinked.ReplayLinkers(config, mset)  # a linked mapping's changes: through the linker
    try:
        outcome = deadretry.retry(db, entries, mset, linkers.replay, force=force)
    finally:
        linkers.close()
    db.commit_untracked()  # raises TargetShapeChanged (rolled back) when a written table moved meanwhile
    return entries, outcome


def _skipped_note(e: Entry) -> str | None:
    """A skipped change that waited behind another of its row: the target misses it too, say so."""
    if e.error_class != deadletter.HELD:
        return None
    return (f"a later change of the row, queued behind an earlier one: the target misses it too; "
            f"`replicator verify --mapping {e.mapping} --repair` copies the row as the source has it now")


def _superseded_notes(outcome: deadretry.Outcome) -> dict[int, str]:
    """By id: how an applied change of a row whose first change failed again went in (deadretry.superseding)."""
    notes: dict[int, str] = {}
    for first, last in outcome.superseded:
        notes[first.id] = (f"failed again, replaced by the row's latest queued change {last.ref}, written whole "
                           f"in its place")
        for e in outcome.applied:
            same = (e.target_table, e.target_key, e.mapping) == (first.target_table, first.target_key, first.mapping)
            if first.id < e.id < last.id and same:
                notes[e.id] = f"superseded by {last.ref}"
        notes[last.id] = f"written in place of {first.ref} and the changes between them"
    return notes


def _line(what: str, e: Entry, as_json: bool, key_side: str | None, error: str | None = None,
          note: str | None = None) -> str:
    if as_json:
        d = e.as_dict(key_side)
        d["result"] = what
        if error is not None:
            d["error"] = error
        if note is not None:
            d["note"] = note
        return json.dumps(d, ensure_ascii=False)
    tail = f": {error}" if error else (" (behind a change that still fails)" if what == "waiting" else "")
    if note is not None:
        tail += f" ({note})"
    key = f"{key_side} key" if key_side else "key"
    return f"{what} {e.ref} {e.mapping} {e.target_table} {key} {show_key(list(e.target_key))} {e.op}{tail}"
