"""Rule: a trigger on a table replicator writes, whose statements write a mapped table, warns.

The trigger runs inside replicator's transaction, so what it writes carries replicator's loop tag: the reader of
that side drops it with the rest of the transaction, and the other side never gets it. A write into a table the
mapping carries from this side is lost to the other side; a write into a copy replicator keeps from the other side
makes it differ from its source. The statements are read as text (PL/pgSQL or SQL functions, MariaDB trigger
bodies); a body that runs dynamic SQL or calls a procedure, or a function in another language, warns that check
cannot tell. Triggers that write only tables no mapping carries (an audit log) are left alone.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from replicator.changes import TableRef
from replicator.mapping.check.serverside import Trigger, written_tables

if TYPE_CHECKING:
    from replicator.mapping.check.checker import _Checker
    from replicator.mapping.model import Mapping


def check_triggers(ck: _Checker) -> None:
    for side, server in ck.server.items():
        other = next((s for s in ck.kinds if s != side), "the other side")
        written = {e.table for e in ck.mset.target_endpoints(side)}
        sources = set(ck.mset.source_tables(side))
        mapped = set(ck.mset.tables(side))
        for tr in server.triggers:
            if tr.table not in written:
                continue  # replicator never writes the table: the trigger's writes are the application's
            m = _writer(ck, side, tr.table)
            head = _head(m, tr)
            if tr.body is None:
                ck.warn(side, f"{head}: its function is not SQL or PL/pgSQL, so check cannot tell which tables it "
                              f"writes; whatever it writes in replicator's transactions is tagged as replicator's "
                              f"and never reaches {other}",
                        _fix(other))
                continue
            kind = ck.kinds.get(side, "mariadb")
            tables, opaque = written_tables(tr.body, "" if kind == "postgresql" else tr.table.schema, kind)
            lost = sorted(str(t) for t in _match(tables, sources))
            copies = sorted(str(t) for t in _match(tables, mapped - sources))
            if lost:
                ck.warn(side, f"{head}: it writes {', '.join(lost)}, which replicator carries from {side} to {other}; "
                              f"the rows it writes in replicator's transactions carry replicator's loop tag and never "
                              f"reach {other}", _fix(other))
            if copies:
                ck.warn(side, f"{head}: it writes {', '.join(copies)}, which replicator keeps as a copy of {other}'s "
                              f"rows: the copy then differs from {other} until the row changes there",
                        f"let the trigger leave {', '.join(copies)} alone, or make {other} the place that writes it")
            if opaque and not lost and not copies:
                ck.warn(side, f"{head}: it runs dynamic SQL or calls a procedure, so check cannot tell which tables it "
                              f"writes; whatever it writes in replicator's transactions is tagged as replicator's "
                              f"and never reaches {other}", _fix(other))


def _writer(ck: _Checker, side: str, table: TableRef) -> Mapping | None:
    return next((m for m in ck.mset.mappings for f in m.flows
                 if f.target.side == side and f.target.table == table), None)


def _head(m: Mapping | None, tr: Trigger) -> str:
    from replicator.mapping.check.checker import _at

    at = f"{_at(m.where)}: " if m is not None else ""
    return f"{at}trigger {tr.name} ({tr.timing} {tr.events} ON {tr.table}) fires on replicator's writes"


def _match(tables: set[TableRef], candidates: set[TableRef]) -> set[TableRef]:
    """`candidates` that `tables` name; a name without a schema (PostgreSQL's search_path decides) matches any."""
    return {c for c in candidates for t in tables if t.name == c.name and t.schema in ("", c.schema)}


def _fix(other: str) -> str:
    return (f"have {other} make the same change itself (the same trigger on the counterpart table there), or let the "
            f"application write those rows instead of a trigger; `replicator verify` shows what differs")
