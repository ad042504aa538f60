"""Rule: a foreign key whose action changes rows of a mapped table where replicator cannot see it is refused,
unless the other side does the same or the mapping accepts it (`accept_cascades`).

ON DELETE / ON UPDATE CASCADE, SET NULL and SET DEFAULT change child rows on their own. replicator carries
those changes only when it reads them: never on MariaDB (InnoDB runs the action inside the storage engine and
writes no row event for the child), and on PostgreSQL only when the parent's change was not replicator's own
(a cascade of a row replicator wrote is in its transaction, tagged, and dropped as an echo). Where it cannot,
the counterpart child table must do the same by itself: a foreign key on the other side from the child's
counterpart to the parent's counterpart with the same action, which fires when replicator carries the parent's
change there. Otherwise the child's copies keep rows (or parent keys) the source no longer has, and only
`verify` would show it. docs/operations.md, "Changes the servers make on their own".

A name in `accept_cascades` that is no foreign key of the mapping's tables (child side, either server) accepts
nothing: a typo leaves the refusal it was meant to lift, a stale name (the constraint dropped or renamed) would
accept a later constraint of that name unseen. A warning, not a refusal: it carries no data wrongly by itself,
and `check` runs before every start and reload, where a DBA dropping a constraint must not stop replication.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from replicator.mapping.check.serverside import ACTING, ForeignKey

if TYPE_CHECKING:
    from replicator.changes import TableRef
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import Mapping

_DOES = {"CASCADE": {"delete": "deletes", "update": "changes the parent key in"},
         "SET NULL": {"delete": "sets the parent key to NULL in", "update": "sets the parent key to NULL in"},
         "SET DEFAULT": {"delete": "sets the parent key to its default in", "update": "sets the parent key to its "
                                                                                    "default in"}}


def check_cascades(ck: _Checker) -> None:
    from replicator.mapping.check.checker import _at

    sides = list(ck.kinds)
    for side, server in ck.server.items():
        other = next((s for s in sides if s != side), None)
        if other is None or other not in ck.server:
            continue  # the other side could not be read: run_checks reports the server
        for fk in server.foreign_keys:
            for m in _plain_mappings(ck, side, fk.child):
                events = [(e, why) for e in ("delete", "update") if fk.action(e) in ACTING and _carried(m, side, fk, e)
                          for why in [_unseen(ck, m, side, fk, e)] if why is not None]
                if not events:
                    continue
                child = m.endpoint(other).table
                pms = _plain_mappings(ck, side, fk.parent)
                parents = [pm.endpoint(other).table for pm in pms]
                columns = _counterpart_columns(m, side, other, fk.columns)
                parent_columns = _counterpart_columns(pms[0], side, other, fk.parent_columns) if pms else None
                theirs = [g for g in ck.server[other].foreign_keys
                          if g.child == child and g.parent in parents
                          and (columns is None or set(g.columns) == set(columns))]
                what = "; ".join(f"{'a delete of a row' if e == 'delete' else 'a change of the key'} of "
                                 f"{fk.parent} {_DOES[fk.action(e)][e]} its {fk.child} rows (ON {e.upper()} "
                                 f"{fk.action(e)}) and {why}" for e, why in events)
                head = f"{_at(m.where)}: {side}:{fk.describe()}, on a table mapping {m.name} carries: {what}"
                delete_twins = [g for g in theirs if g.action("delete") == fk.action("delete")]
                unrepeated = any(e == "delete" for e, _ in events) and not delete_twins
                rekey = any(e == "update" for e, _ in events)
                if not unrepeated and not rekey:
                    ck.ok(side, f"{head}; {other}:{delete_twins[0].name} does the same to {child} when replicator "
                                f"carries the parent's delete there")
                elif fk.name in m.accept_cascades:
                    ck.ok(side, f"{head}; accepted by the accept_cascades of mapping {m.name}: {other}:{child} "
                                f"keeps its rows as they were (verify lists them)")
                else:
                    why_not = ([f"{other}:{child} " + _what_other_does(theirs, other)] if unrepeated else []) + (
                        [f"replicator carries a change of a key as a delete of the old row and an insert of the new "
                         f"one, so no ON UPDATE action on {other} repeats it (an ON DELETE action there fires "
                         f"instead)"] if rekey else [])
                    ck.fail(side, f"{head}; " + "; ".join(why_not) + f": {other}'s copies would keep what {side} "
                                  f"changed, without a word (only verify shows it)",
                            _fix(fk, unrepeated, rekey, other, child, parents, columns, parent_columns, m.name))


def check_accepted_names(ck: _Checker) -> None:
    """Warn for each `accept_cascades` name that matches no foreign key on the mapping's tables."""
    if len(ck.server) < 2:
        return  # a side could not be read: run_checks reports the server
    for m in ck.mset.mappings:
        if not m.accept_cascades:
            continue
        exist = sorted({fk.name for e in m.endpoints if e.side in ck.server
                        for fk in ck.server[e.side].foreign_keys if fk.child == e.table})
        for i, name in enumerate(m.accept_cascades):
            if name in exist:
                continue
            where = m.accept_cascades_where[i] if i < len(m.accept_cascades_where) else m.where
            tables = " and ".join(f"{e.side}:{e.table}" for e in m.endpoints)
            ck.warn(m.endpoints[0].side,
                    f"{where.file}:{where.line}: {where.key}: {name} is no foreign key of {tables}, so it accepts "
                    f"nothing (their foreign keys: {', '.join(exist) or 'none'})",
                    "correct the name to one of those check reports, or remove it if the constraint is gone")


def _plain_mappings(ck: _Checker, side: str, table: TableRef) -> list[Mapping]:
    """The mappings (folds aside: a folded child goes with its parent record) with `table` on `side`."""
    return [m for m in ck.mset.mappings if not any(f.fold is not None for f in m.flows)
            and m.endpoint(side).table == table]


def _carried(m: Mapping, side: str, fk: ForeignKey, event: str) -> bool:
    """Whether the mapping would carry what `fk`'s action on `event` does to a child row, had it seen it: a
    delete where the flow from `side` propagates deletes (or soft-deletes), a changed parent key where it writes
    one of the key's columns after the insert. A one-way copy of the other side's rows, `delete: ignore` or an
    `insert_only` reference keep what they have anyway."""
    flow = m.flow(side)
    if flow is None:
        return False
    if event == "delete" and fk.on_delete == "CASCADE":
        return flow.delete != "ignore"
    return any(p.source in fk.columns and not p.insert_only for p in flow.plans)


def _unseen(ck: _Checker, m: Mapping, side: str, fk: ForeignKey, event: str) -> str | None:
    """Why replicator does not carry the rows `fk`'s action on `event` changes, or None when it does."""
    if ck.kinds.get(side) == "mariadb":
        return "MariaDB writes no binlog row event for the child rows that changes"
    writers = [f.stream for pm in ck.mset.mappings for f in pm.flows if f.target.side == side
               and f.target.table == fk.parent and (
                   "propagate" in (f.delete, f.leave) if event == "delete"
                   else any(p.target in fk.parent_columns for p in f.plans))]
    if writers:
        # PostgreSQL's WAL has the child rows, but in replicator's own transaction: dropped as an echo
        return (f"replicator {'deletes' if event == 'delete' else 'changes the key of'} rows of {fk.parent} "
                f"({writers[0]}): the child rows that changes then are in replicator's own transaction, tagged, "
                f"and never carried back")
    # a user's delete of a parent on PostgreSQL: the WAL has the child rows. Where the mapping carries the child
    # only into this side, they are a local edit of a one-way copy, as a user's own delete of such a row would be
    return None


def _counterpart_columns(m: Mapping, side: str, other: str, columns: tuple[str, ...]) -> tuple[str, ...] | None:
    """The columns on `other` that `m` fills from `columns` of `side`; None if one is not mapped."""
    out = []
    for col in columns:
        f = next((f for f in m.fields if f.column(side) == col), None)
        target = f.column(other) if f is not None else None
        if target is None:
            return None
        out.append(target)
    return tuple(out)


def _what_other_does(theirs: list[ForeignKey], other: str) -> str:
    if not theirs:
        return "has no foreign key to the parent's counterpart that would do the same"
    return f"does otherwise: {other}:{theirs[0].name} is ON DELETE {theirs[0].on_delete}"


def _fix(fk: ForeignKey, unrepeated: bool, rekey: bool, other: str, child: TableRef, parents: list[TableRef],
         columns: tuple[str, ...] | None, parent_columns: tuple[str, ...] | None, mapping: str) -> str:
    accept = (f"add {fk.name} to the accept_cascades of mapping {mapping} (`accept_cascades: [{fk.name}]`) if "
              f"{other} is to keep those rows")
    out = []
    if unrepeated and not parents:
        out.append(f"map {fk.parent} (so that its deletes reach {other}) and give {other}:{child} a foreign key to "
                   f"its counterpart ON DELETE {fk.on_delete}")
    elif unrepeated:
        cols = ", ".join(columns) if columns else "..."
        pcols = ", ".join(parent_columns) if parent_columns else "..."
        out.append(f"give {other}:{child} the same action, e.g. ALTER TABLE {child} ADD FOREIGN KEY ({cols}) "
                   f"REFERENCES {parents[0]} ({pcols}) ON DELETE {fk.on_delete} (replacing a foreign key there that "
                   f"does otherwise)")
    if rekey:
        out.append(f"if no application ever changes the key of a row of {fk.parent} (a surrogate key), "
                   + accept.replace(f" if {other} is to keep those rows", "") + "; otherwise make it "
                   f"ON UPDATE RESTRICT, so that such a change fails where it is made")
        return "; ".join(out)
    return "; ".join(out) + f"; or {accept}"
