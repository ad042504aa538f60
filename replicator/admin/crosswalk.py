"""`replicator crosswalk rename`: move a crosswalk pair to a record's new key after its application renamed it.

Some applications change a row's key (ERPNext's "Rename" rewrites a customer's `name`). A crosswalk pair
holds the old key, and the stream refuses the update as a row error (links.Linker._refuse_rename): the pair
may live in either database -- the direction that created the counterpart wrote it -- so no one target
transaction can move it. This command does, with the daemon stopped (the stream caches pairs): it takes the
session lock of both directions (a daemon running, or starting meanwhile, is refused), reads the record
under its new key on its side (which must exist, and the old key must be gone: a rename, not a second
record), finds the one pair that holds the old key -- in the other database as `source_key` (made by this
side's direction), or in this side's as `target_key` (made by the other's) -- and moves it in one
transaction carrying the loop tag. The changes parked until the record had a counterpart (children that
reference it, waiting in `other`'s parked table under its old key) move with it: they wait for the new key, and
the column of each that names the record is rewritten to it (mapping/parking.move_waiting) -- left behind, they
would wait for good. They are moved in the pair's transaction when the pair lives in `other`'s database too;
else they commit first, just before the pair. Then `run` applies the refused change (or `dlq retry` does, for a
mapping that quarantines), and the parked children when it next looks at them.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.changes import TableRef
from replicator.codec import dumps_key
from replicator.config import Config
from replicator.errors import ConfigError, FatalError, ReplicatorError
from replicator.loopguard import stream_name
from replicator.mapping.explain.inputs import parse_key
from replicator.mapping.explain.lookup import ReadOnlyDb
from replicator.mapping import parking
from replicator.mapping.links import CROSSWALK, PARKED
from replicator.mapping.model import MappingSet


def add_arguments(parser: Any) -> None:
    parser.add_argument("action", choices=("rename",),
                        help="rename: move the pair of a record whose key its application changed")
    parser.add_argument("--mapping", required=True, help="the crosswalk-linked mapping")
    parser.add_argument("--side", required=True, help="the side whose application renamed the record")
    parser.add_argument("--from", dest="old", required=True, metavar="KEY",
                        help="the old key (K, K1,K2 or a JSON array), as the row error shows it")
    parser.add_argument("--to", dest="new", required=True, metavar="KEY", help="the new key")


@dataclass(frozen=True)
class Moved:
    mapping: str
    side: str
    old: str  # keys as the crosswalk holds them (codec.dumps_key)
    new: str
    other_key: str  # the counterpart's key on the other side
    database: str  # the connection whose crosswalk held the pair
    column: str  # source_key or target_key
    children: int = 0  # changes parked until the record had a counterpart, moved to the new key


def rename(config: Config, mset: MappingSet, mapping: str, side: str, old: str, new: str) -> Moved:
    m = mset.by_name.get(mapping)
    if m is None:
        raise ConfigError(f"unknown mapping {mapping!r} (mappings: {', '.join(sorted(mset.by_name)) or 'none'})")
    sides = [e.side for e in m.endpoints]
    if side not in sides:
        raise ConfigError(f"unknown side {side!r} for mapping {mapping!r} (sides: {', '.join(sides)})")
    if not m.link.crosswalk:
        raise ConfigError(f"mapping {mapping!r} has no crosswalk (link: {{crosswalk: true}}): its records are paired "
                          f"by their keys, and there is no pair to move")
    endpoint = m.endpoint(side)
    other = next(s for s in sides if s != side)
    old_parts, new_parts = parse_key(old, endpoint), parse_key(new, endpoint)
    if old_parts == new_parts:
        raise ConfigError(f"--from and --to name the same key {json.dumps(list(old_parts))}")
    held = _locked(config)
    try:
        reader = ReadOnlyDb(config.side(side))
        try:
            row = reader.read_row(endpoint, new_parts)
            if row is None:
                raise ConfigError(f"no row in {side} {endpoint.table} with key {json.dumps(list(new_parts))}: a "
                                  f"renamed record is found under its new key (is --to right?)")
            if reader.read_row(endpoint, old_parts) is not None:
                raise ConfigError(f"{side} {endpoint.table} still holds a row with key {json.dumps(list(old_parts))}: "
                                  f"that is two records, not a rename; nothing moved")
        finally:
            reader.close()
        new_key = tuple(row[c] for c in endpoint.key)
        old_key = tuple(_like(part, value) for part, value in zip(old_parts, new_key))
        new_text, old_text = dumps_key(new_key), dumps_key(old_key)
        # (database, column the side's key is in, the other side's key column, the WHERE's source_side)
        places = [(other, "source_key", "target_key", side), (side, "target_key", "source_key", other)]
        for db_side, col, _o, source_side in places:
            taken = _pairs(held[db_side], mapping, source_side, col, new_text)
            if taken:
                raise ConfigError(f"{side} key {new_text} of mapping {mapping} has a crosswalk pair already (with "
                                  f"{other} key {taken[0]}, in {db_side}'s {CROSSWALK}): the stream linked or created a "
                                  f"counterpart for the new key since; nothing moved. `replicator explain --mapping "
                                  f"{mapping} --side {side} --key ...` shows both records")
        found = [(db_side, col, o, source_side, k) for db_side, col, o, source_side in places
                 for k in _pairs(held[db_side], mapping, source_side, col, old_text, other=o)]
        if not found:
            raise ConfigError(f"no crosswalk pair of mapping {mapping} holds {side} key {old_text} (in either "
                              f"database): nothing to move (is --from right? the row error names it)")
        db_side, col, o, source_side, other_key = found[0]
        # the changes parked until the record had a counterpart wait in the database its direction writes
        # (`other`'s); they move with the pair, in its transaction when the pair lives there too
        waiting = held[other]
        opened = [held[db_side]] + ([waiting] if waiting is not held[db_side] else [])
        try:
            for db in opened:
                db.begin()
            children = 0
            if len(old_key) == 1:  # a reference names one key column
                children = parking.move_waiting(
                    waiting, waiting.quote_table(TableRef(waiting.conn.state_schema, PARKED)),
                    waiting.quote_col("change"), waiting.stream, mset, side, mapping, old_key[0], new_key[0])
            db = held[db_side]
            n = db.execute(f"UPDATE {db.quote_table(TableRef(db.conn.state_schema, CROSSWALK))} SET {col} = %s "
                           f"WHERE mapping = %s AND source_side = %s AND {col} = %s",
                           [new_text, mapping, source_side, old_text])
            if n != 1:
                raise ReplicatorError(f"moving the pair touched {n} rows, not 1: rolled back")
            # two databases: the parked changes commit first; a failure before the pair's commit leaves a rename
            # that running the command again completes (it finds the pair under the old key, nothing parked there)
            for db in reversed(opened):
                db.commit_untracked()
        except BaseException:
            for db in opened:
                db.rollback()
            raise
        return Moved(mapping, side, old_text, new_text, other_key, db_side, col, children)
    finally:
        for db in held.values():
            db.close()


def _locked(config: Config) -> dict[str, Applier]:
    """An apply session into each database holding its direction's session lock, as a daemon would: a
    running daemon (it caches pairs) is refused, and none starts while the pair moves."""
    held: dict[str, Applier] = {}
    try:
        for conn in config.connections:
            other = next(c for c in config.connections if c is not conn)
            db = make_applier(conn, stream_name(other.name, conn.name), "")
            db.connect()
            held[conn.name] = db
            try:
                db.lock(fail_fast=True)
            except FatalError:
                raise FatalError(f"a replicator daemon is running (it holds the {stream_name(other.name, conn.name)} "
                                 f"lock in {conn.name}) and caches crosswalk pairs: stop it first "
                                 f"(`systemctl stop replicator`), move the pair, then start it") from None
    except BaseException:
        for db in held.values():
            db.close()
        raise
    return held


def _pairs(db: Applier, mapping: str, source_side: str, column: str, key: str,
           other: str | None = None) -> list[str]:
    """The other-side keys of the pairs whose `column` holds `key` (for `source_side`)."""
    table = db.quote_table(TableRef(db.conn.state_schema, CROSSWALK))
    pick = other or ("target_key" if column == "source_key" else "source_key")
    rows = db.query(f"SELECT {pick} FROM {table} WHERE mapping = %s AND source_side = %s AND {column} = %s",
                    [mapping, source_side, key])
    return [str(r[0]) for r in rows]


def _like(part: str, value: Any) -> Any:
    """The old key's text given on the command line as the value of the new key's column reads: the
    crosswalk holds typed keys ([7] is not ["7"])."""
    try:
        if isinstance(value, bool):
            return part
        if isinstance(value, int):
            return int(part)
        if isinstance(value, Decimal):
            return Decimal(part)
        if isinstance(value, uuid.UUID):
            return uuid.UUID(part)
    except (ValueError, ArithmeticError):
        raise ConfigError(f"--from {part!r} is not a key of the column's type ({type(value).__name__})") from None
    return part


def render(moved: Moved, sides: Sequence[str]) -> str:
    other = next(s for s in sides if s != moved.side)
    children = (f"moved {moved.children} change(s) parked until the record had a counterpart (in {other}'s "
                f"{PARKED}) to the new key: they are applied as before, when the stream next looks at them\n"
                if moved.children else "")
    return (f"moved the crosswalk pair of mapping {moved.mapping}: {moved.side} key {moved.old} -> {moved.new} "
            f"(paired with {other} key {moved.other_key}; {moved.column} in {moved.database}'s {CROSSWALK})\n"
            f"{children}"
            f"next: start replicator; the refused rename is applied from the stream, or, for a mapping that "
            f"quarantines, by `replicator dlq retry --mapping {moved.mapping}`\n")
