"""Rule: a trigger on a table replicator writes, whose statements write a mapped table, warns.

The trigger runs inside replicator's transaction, so what it writes carries replicator's loop tag: the reader of
that side drops it with the rest of the transaction, and the other side never gets it. A write into a table the
mapping carries from this side is lost to the other side; a write into a copy replicator keeps from the other side
makes it differ from its source. The statements are read as text (PL/pgSQL or SQL functions, MariaDB trigger
bodies); a body that runs dynamic SQL or calls a procedure, or a function in another language, warns that check
cannot tell. Triggers that write only tables no mapping carries (an audit log) are left alone.

A BEFORE INSERT or UPDATE trigger that assigns a column of NEW which a mapping carries (`NEW.x := ...`,
`SET NEW.x = ...`; a fold's parent column and its child row's columns are carried too) changes the value replicator wrote, inside its tagged transaction: the other side keeps the
value replicator wrote, so it warns naming the columns; columns no mapping carries (an `updated_at` the
application keeps for itself) are left alone. A body that assigns the whole NEW row, returns another row or calls
a procedure warns that check cannot tell. A PostgreSQL BEFORE ROW trigger that may return NULL (or OLD) skips the
row without an error: on INSERT or UPDATE the applier counts what it wrote on such a table and makes a skipped row
a row error (appliers/postgres.py `_SKIPPING_SQL`), on DELETE the row silently stays; both warn. MariaDB shows a trigger's statements only to an account with the
TRIGGER privilege on its table (its name to one with INSERT, UPDATE or DELETE): a trigger listed without them,
and a table the account cannot see the triggers of at all, warn that check cannot read them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from replicator.changes import TableRef
from replicator.mapping.check.serverside import (HIDDEN, ServerSide, Trigger, assigned_columns, skipped_events,
                                                 written_tables)

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import Endpoint, Flow, Mapping


def check_triggers(ck: _Checker) -> None:
    for side, server in ck.server.items():
        other = next((s for s in ck.kinds if s != side), "the other side")
        written = {e.table for e in ck.mset.target_endpoints(side)}
        sources = set(ck.mset.source_tables(side))
        mapped = set(ck.mset.tables(side))
        postgres = ck.kinds.get(side) == "postgresql"
        _unseen(ck, side, server, written)
        for tr in server.triggers:
            if tr.table not in written:
                continue  # replicator never writes the table: the trigger's writes are the application's
            m = _writer(ck, side, tr.table)
            head = _head(m, tr)
            what = "which tables it writes" + (" or which columns of the row it changes" if tr.changes_row else "")
            if tr.body is None and tr.unread == HIDDEN:
                ck.warn(side, f"{head}: check cannot read its statements: MariaDB shows them only to an account "
                              f"with the TRIGGER privilege on {tr.table}, which {server.account or 'this account'} "
                              f"lacks, so check cannot tell {what}; whatever it does in replicator's transactions "
                              f"is tagged as replicator's and never reaches {other}",
                        _hidden_fix(tr))
                continue
            if tr.body is None:
                ck.warn(side, f"{head}: its function is not SQL or PL/pgSQL, so check cannot tell {what}; whatever "
                              f"it writes in replicator's transactions is tagged as replicator's and never reaches "
                              f"{other}",
                        _fix(other))
                continue
            if tr.changes_row:
                _assigns(ck, side, other, tr, head, postgres)
            if postgres:
                _skips(ck, side, other, tr, head)
            tables, opaque = written_tables(tr.body, "" if postgres else tr.table.schema,
                                            "postgresql" if postgres else "mariadb")
            lost = sorted(str(t) for t in _match(tables, sources, server.any_case))
            copies = sorted(str(t) for t in _match(tables, mapped - sources, server.any_case))
            if lost:
                ck.warn(side, f"{head}: it writes {', '.join(lost)}, which replicator carries from {side} to {other}; "
                              f"the rows it writes in replicator's transactions carry replicator's loop tag and never "
                              f"reach {other}", _fix(other))
            if copies:
                ck.warn(side, f"{head}: it writes {', '.join(copies)}, which replicator keeps as a copy of {other}'s "
                              f"rows: the copy then differs from {other} until the row changes there",
                        f"let the trigger leave {', '.join(copies)} alone, or make {other} the place that writes it")
            if opaque and not lost and not copies:
                ck.warn(side, f"{head}: it runs dynamic SQL or calls a procedure, so check cannot tell {what}; "
                              f"whatever it writes in replicator's transactions is tagged as replicator's "
                              f"and never reaches {other}", _fix(other))


def _unseen(ck: _Checker, side: str, server: ServerSide, written: set[TableRef]) -> None:
    hidden = [t for t in server.unseen if t in written]
    if hidden:
        ck.warn(side, f"the account {server.account or 'check logs in with'} cannot see the triggers of "
                      f"{', '.join(map(str, hidden))}: MariaDB lists a table's triggers only to an account with "
                      f"INSERT, UPDATE, DELETE or TRIGGER on it, so check cannot tell whether triggers run on "
                      f"replicator's writes there (none listed is not none there)",
                f"run check with the apply account (it writes those tables), or once with an account that has "
                f"TRIGGER on them (deploy/grants-mariadb.sql)")


def _assigns(ck: _Checker, side: str, other: str, tr: Trigger, head: str, postgres: bool) -> None:
    """A BEFORE INSERT/UPDATE trigger assigning carried columns of NEW (module docstring)."""
    assert tr.body is not None
    names, why = assigned_columns(tr.body, postgres)
    carried = _carried(ck, side, tr.table)
    fold = (lambda c: c) if postgres else str.lower  # MariaDB's column names are case-insensitive
    by = {fold(c): c for c in carried}
    hit = sorted({by[fold(n)] for n in names if fold(n) in by})
    if hit:
        cols = ", ".join(hit)
        ck.warn(side, f"{head}: it assigns NEW.{', NEW.'.join(hit)}, which replicator carries: the value replicator "
                      f"wrote is changed inside its own transaction, which carries replicator's loop tag, so the "
                      f"change never reaches {other} and the two sides differ in {cols} without a word",
                f"have the trigger leave {cols} alone on replicator's writes, or have {other} compute the same "
                f"value itself (the same trigger on the counterpart table there), or leave {cols} out of the "
                f"mapping; `replicator verify` shows what differs")
    elif why:
        ck.warn(side, f"{head}: {why}, so check cannot tell which columns of the row it changes; a change of a "
                      f"carried column on replicator's writes never reaches {other}",
                f"make sure it changes no column a mapping carries, or have {other} do the same itself")


def _skips(ck: _Checker, side: str, other: str, tr: Trigger, head: str) -> None:
    """A PostgreSQL BEFORE ROW trigger that may return NULL (or OLD) skips the row without an error (module
    docstring)."""
    events = skipped_events(tr)
    writes = [e for e in events if e != "DELETE"]
    if writes:
        ck.warn(side, f"{head}: it may return NULL (or OLD) on {' and '.join(writes)}, which skips replicator's "
                      f"write without an error: a row it returns NULL for is a row error naming table and key (the "
                      f"direction stops, or queues the row under `on_error: quarantine`); an update it returns OLD "
                      f"for keeps the old values, and the two sides differ",
                f"have the trigger return NEW on replicator's writes, or filter out on {other} the rows it "
                f"refuses")
    if "DELETE" in events:
        ck.warn(side, f"{head}: it may return NULL on DELETE, which keeps the row without an error (a soft "
                      f"delete): a row {other} deleted then stays on {side}, and the two sides differ until "
                      f"`replicator verify --repair` or an edit",
                f"have the trigger let replicator's deletes through, or carry the soft delete as a field "
                f"(the mapping's `leave:` or a filter on {other}) instead of a delete")


def _carried(ck: _Checker, side: str, table: TableRef) -> set[str]:
    """The columns of `table` on `side` any mapping reads or writes (keys included, a fold's columns too), but a
    column only stamped with the apply time (`now: true`), and a crosswalk key the database makes (`generate:
    {col: default}`: replicator writes the DEFAULT and reads back what the server -- a trigger, say -- made)."""
    out: set[str] = set()
    for m in ck.mset.mappings:
        for e in m.endpoints:
            if e.side == side and e.table == table:
                out.update(_written_keys(m, e))
        for f in m.flows:
            if f.target.side == side and f.target.table == table:
                # a `now: true` stamp holds replicator's apply time, which no side compares (verify skips it)
                out.update(p.target for p in f.plans if not p.stamp)
            if f.source.side == side and f.source.table == table:
                out.update(p.source for p in f.plans if p.source is not None)
            if f.fold is not None:
                out.update(_folded(f, side, table))
    return out


def _written_keys(m: Mapping, e: Endpoint) -> tuple[str, ...]:
    """The key columns of an endpoint whose values replicator writes. Not a key the database makes (`generate:
    {col: default}`: replicator writes the DEFAULT and reads back what the server -- a trigger, say -- made), nor
    a crosswalk's key on a side where the mapping never creates rows (`created_by` that side): a crosswalk key is
    the side's own, which no side compares. A key replicator makes itself (`uuid`, a template) that a trigger
    overwrites still counts: the pair would name a row that is not there."""
    if m.link.crosswalk and all(f.created_by == e.side for f in m.flows if f.target.side == e.side):
        return ()
    made = {g.column for g in e.generate if g.by_database}
    return tuple(k for k in e.key if k not in made)


def _folded(f: Flow, side: str, table: TableRef) -> set[str]:
    """The columns of `table` on `side` a fold's flow reads or writes (a fold has no field plans): the parent's
    column (`into`) on the column's side; the child's `by`, `value` and slice columns on the child's side (a
    two-hop fold's link table: `by`, `to` and its slice; the far table: `value` and its slice)."""
    fold = f.fold
    assert fold is not None
    out: set[str] = set()
    for end in (f.source, f.target):
        if end.side != side or end.table != table:
            continue
        if side != fold.child:
            out.add(fold.into)
        elif fold.via is not None and end.table == fold.via.endpoint.table:
            out.update((fold.by, fold.via.to, *(c for c, _ in fold.via.endpoint.slice)))
        else:
            out.update((fold.value, *(c for c, _ in end.slice)) if fold.via is not None
                       else (fold.by, fold.value, *(c for c, _ in end.slice)))
    return out


def _hidden_fix(tr: Trigger) -> str:
    return (f"run check once with an account that has TRIGGER on {tr.table} (a DBA's: TRIGGER also lets it create "
            f"and drop triggers; see deploy/grants-mariadb.sql), or read SHOW CREATE TRIGGER {tr.name} as such an "
            f"account and judge it as this check would")


def _writer(ck: _Checker, side: str, table: TableRef) -> Mapping | None:
    return next((m for m in ck.mset.mappings for f in m.flows
                 if f.target.side == side and f.target.table == table), None)


def _head(m: Mapping | None, tr: Trigger) -> str:
    from replicator.mapping.check.checker import _at

    at = f"{_at(m.where)}: " if m is not None else ""
    return f"{at}trigger {tr.name} ({tr.timing} {tr.events} ON {tr.table}) fires on replicator's writes"


def _match(tables: set[TableRef], candidates: set[TableRef], any_case: bool = False) -> set[TableRef]:
    """`candidates` that `tables` name; a name without a schema (PostgreSQL's search_path decides) matches any.
    `any_case`: as a MariaDB server with lower_case_table_names 1 or 2 matches them, in any letter case."""
    if any_case:
        return {c for c in candidates for t in tables if t.name.lower() == c.name.lower()
                and t.schema.lower() in ("", c.schema.lower())}
    return {c for c in candidates for t in tables if t.name == c.name and t.schema in ("", c.schema)}


def _fix(other: str) -> str:
    return (f"have {other} make the same change itself (the same trigger on the counterpart table there), or let the "
            f"application write those rows instead of a trigger; `replicator verify` shows what differs")
