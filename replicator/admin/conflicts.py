"""`replicator conflicts`: list recorded conflicts, resolve a pending one; and the daemon's housekeeping.

    replicator conflicts [--mapping M] [--key K[,K2]] [--since 1h] [--pending] [--json] [--limit N]
    replicator conflicts resolve ID --take SIDE
    replicator conflicts trim      (the housekeeping pass once: with conflicts.housekeeping_seconds 0)

Each direction records the conflicts it decided in its *target* database (`<state_schema>.conflicts`),
so a listing reads both databases and merges them, newest first. Ids are per database: a record is
named `<side>:<id>` (`erp:17`); a bare number is accepted when only one database has it.

`resolve` makes both sides equal to the row as SIDE has it, through verify's repair (the tagged apply
path: the other direction drops the write as replicator's own, no echo), then marks every pending
record of that row resolved in both databases (a manual conflict is usually recorded once per
direction), with the time and the OS user. Only a pending (`manual`) conflict can be resolved.

`Housekeeping` is the daemon's side job: every `conflicts.housekeeping_seconds` it deletes decided
records older than `conflicts.retention_days` on both databases and refreshes the pending gauges.
"""
from __future__ import annotations

import getpass
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from itertools import product
from typing import Any, Callable, Sequence, TextIO

from replicator import metrics
from replicator.appliers import make_applier
from replicator.appliers.base import Applier
from replicator.config import Config
from replicator.conflicts import store
from replicator.conflicts.model import PENDING
from replicator.errors import ConfigError, FatalError, ReplicatorError
from replicator.mapping.explain.inputs import json_key_parts
from replicator.mapping.model import MappingSet

log = logging.getLogger("replicator.conflicts")

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# ---------------------------------------------------------------- arguments


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since 90m`, `1h`, `2d`, `1w`, or an ISO time (`2026-12-06T09:00`, UTC unless it says otherwise)."""
    now = now or datetime.now(timezone.utc)
    m = _SINCE.match(text.strip())
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since {text!r}: give a duration (30m, 1h, 2d, 1w) or an ISO time "
                          f"(2026-12-06T09:00)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def key_candidates(text: str) -> tuple[tuple[Any, ...], ...]:
    """`--key 42`, `--key 7,2` or `--key '["Acme, Inc.", 2]'` as the typed keys it may stand for: a part that
    looks like an integer is tried as an integer and as text (the stored keys keep their types: 42 is not
    "42"). Which mapping's key is meant is not known here, so a text with commas is also tried whole, as a
    one-column key (ERPNext names rows "Doe, John"), as `explain --key` reads it; a JSON array gives the
    parts of a key whose values hold commas."""
    stripped = text.strip()
    whole: tuple[Any, ...] | None = None
    if stripped.startswith("["):
        parts = list(json_key_parts(text, "the key's values (strings or numbers)"))
        if not parts:
            raise ConfigError(f"--key {text!r}: a JSON array of the key's values, not an empty one")
    else:
        parts = [p.strip() for p in text.split(",")]
        if any(p == "" for p in parts):
            raise ConfigError(f"--key {text!r}: give the key's values separated by commas (42 or 7,2), or a "
                              f"JSON array when a value holds a comma")
        if len(parts) > 1:
            whole = (stripped,)
    options = [_typed(p) for p in parts]
    return tuple([tuple(c) for c in product(*options)] + ([whole] if whole is not None else []))


def _typed(part: Any) -> list[Any]:
    """The stored forms a typed key part may have: an integer column's 42, a numeric column's Decimal (iDempiere
    keys are numeric(10): `dlq list` printed `idempiere:1000000` and `--key 1000000` matched nothing, the key
    being stored as a decimal), or the text."""
    if not isinstance(part, str):
        return [part]
    if re.fullmatch(r"-?\d+", part):
        return [int(part), Decimal(part), part]
    if re.fullmatch(r"-?\d+\.\d+", part):
        return [Decimal(part), part]
    if _UUID.fullmatch(part):
        # a uuid column's key (Twenty's): stored as a uuid, listed as its text; `dlq list --key` with the key
        # `dlq list` printed matched nothing
        return [uuid.UUID(part), part]
    return [part]


_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Ref:
    side: str | None  # None: a bare id
    id: int


def parse_ref(text: str, sides: Sequence[str]) -> Ref:
    side, _, num = text.rpartition(":")
    if not num.isdigit() or (side and side not in sides):
        raise ConfigError(f"conflict id {text!r}: give it as `replicator conflicts` lists it "
                          f"({sides[0]}:17, or 17 when only one database has that id)")
    return Ref(side or None, int(num))


def add_arguments(parser: Any) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "resolve", "trim"), default="list",
                        help="list (default), resolve, or trim (delete decided records older than "
                             "conflicts.retention_days, as the daemon's housekeeping does)")
    parser.add_argument("id", nargs="?", help="resolve: the conflict, as listed (erp:17)")
    parser.add_argument("--take", help="resolve: the side whose row both sides get (a connection name)")
    parser.add_argument("--mapping", help="only this mapping")
    parser.add_argument("--key", help="only this row: its key on either side (K or K1,K2)")
    parser.add_argument("--since", help="only conflicts detected since: 30m, 1h, 2d, 1w or an ISO time")
    parser.add_argument("--pending", action="store_true", help="only manual conflicts waiting for a person")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default: %(default)s)")


# ---------------------------------------------------------------- connections


def _open(config: Config, side: str) -> Applier:
    db = make_applier(config.side(side), "conflicts", "")
    db.connect()
    return db


class Databases:
    """One apply-account session per side, opened on first use."""

    def __init__(self, config: Config, opener: Callable[[Config, str], Any] | None = None):
        self.config = config
        self._opener = opener or _open
        self._dbs: dict[str, Any] = {}

    def __getitem__(self, side: str) -> Any:
        if side not in self._dbs:
            self._dbs[side] = self._opener(self.config, side)
        return self._dbs[side]

    def sides(self) -> list[str]:
        return [c.name for c in self.config.connections]

    def close(self) -> None:
        for db in self._dbs.values():
            try:
                db.rollback()
                db.close()
            except Exception:
                pass
        self._dbs.clear()


def _require_table(db: Any) -> None:
    if not store.exists(db):
        raise ConfigError(f"{db.conn.name} has no {db.conn.state_schema}.{store.TABLE} table: run "
                          f"`replicator setup` (it creates it; nothing else changes)")


# ---------------------------------------------------------------- listing


def collect(dbs: Databases, since: datetime | None = None, mapping: str | None = None,
            keys: Sequence[tuple[Any, ...]] = (), pending_only: bool = False, limit: int = 50) -> list[store.Recorded]:
    """Conflicts of both databases, newest first, at most `limit`."""
    out: list[store.Recorded] = []
    for side in dbs.sides():
        db = dbs[side]
        _require_table(db)
        out += store.list_conflicts(db, since=since, mapping=mapping, keys=keys, pending_only=pending_only,
                                    limit=limit)
        db.rollback()
    out.sort(key=lambda r: (r.detected_at, r.id), reverse=True)
    return out[:limit]


def jsonable(value: Any) -> Any:
    """Values for --json: plain JSON stays; Decimal, dates, times and UUIDs as text, bytes as 0x hex."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def as_dict(r: store.Recorded, sides: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.ref, "detected_at": r.detected_at, "direction": r.stream, "decided_in": r.side,
        "mapping": r.mapping, "kind": r.kind, "table": r.target_table,
        "key": {s: list(r.key_of(s)) for s in sides}, "field": r.field,
    }
    for s in sides:
        out[f"{s}_value"] = r.value_of(s)
    out.update({"rule": r.rule, "winner": r.winner, "resolution": r.resolution, "detail": r.detail,
                "source_commit_time": r.source_commit_time, "resolved_at": r.resolved_at,
                "resolved_by": r.resolved_by})
    shown: dict[str, Any] = jsonable(out)
    return shown


def _show(value: Any, limit: int = 24) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = "0x" + bytes(value).hex()
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _key(key: Sequence[Any]) -> str:
    return ",".join(str(v) for v in key)


def render_table(records: Sequence[store.Recorded], sides: Sequence[str]) -> str:
    """A readable table, newest first: one line per conflict."""
    if not records:
        return "no conflicts recorded (for these filters)"
    a, b = sides
    head = ["ID", "DETECTED (UTC)", "DIRECTION", "MAPPING", "KIND", f"KEY ({a})", "FIELD", f"{a.upper()} VALUE",
            f"{b.upper()} VALUE", "RULE", "OUTCOME"]
    rows = []
    for r in records:
        if r.resolution == PENDING:
            outcome = "pending"
        elif r.resolved_by:
            outcome = f"resolved by {r.resolved_by}"
        else:
            outcome = f"{r.winner or '-'} won ({r.resolution})"
        rows.append([r.ref, r.detected_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), r.stream,
                     r.mapping, r.kind, _key(r.key_of(a)), r.field or "(row)",
                     _show(r.value_of(a)) if r.field else "-", _show(r.value_of(b)) if r.field else "-", r.rule,
                     outcome])
    widths = [max(len(str(x[i])) for x in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head] + rows]
    return "\n".join(lines)


def list_command(args: Any, config: Config, out: TextIO, dbs: Databases | None = None) -> int:
    if args.limit <= 0:
        raise ConfigError("--limit must be a positive number")
    since = parse_since(args.since) if args.since else None
    keys = key_candidates(args.key) if args.key else ()
    own = dbs is None
    dbs = dbs or Databases(config)
    try:
        records = collect(dbs, since=since, mapping=args.mapping, keys=keys, pending_only=args.pending,
                          limit=args.limit)
    finally:
        if own:
            dbs.close()
    sides = dbs.sides()
    if args.json:
        for r in records:
            print(json.dumps(as_dict(r, sides), ensure_ascii=False), file=out)
    else:
        print(render_table(records, sides), file=out)
    return 0


def recent_for_row(config: Config, mapping: str, keys: Sequence[tuple[Any, ...]], limit: int = 10,
                   dbs: Databases | None = None) -> list[dict[str, Any]] | None:
    """For `explain`: the row's recent conflicts in both databases (None when neither has the table)."""
    own = dbs is None
    dbs = dbs or Databases(config)
    try:
        present = [s for s in dbs.sides() if store.exists(dbs[s])]
        if not present:
            return None
        found: list[store.Recorded] = []
        for side in present:
            found += store.list_conflicts(dbs[side], mapping=mapping, keys=keys, limit=limit)
            dbs[side].rollback()
    finally:
        if own:
            dbs.close()
    found.sort(key=lambda r: (r.detected_at, r.id), reverse=True)
    return [as_dict(r, dbs.sides()) for r in found[:limit]]


# ---------------------------------------------------------------- resolving


def find(dbs: Databases, ref: Ref) -> store.Recorded:
    found = []
    for side in ([ref.side] if ref.side else dbs.sides()):
        db = dbs[side]
        _require_table(db)
        rec = store.get(db, ref.id)
        db.rollback()
        if rec is not None:
            found.append(rec)
    if not found:
        where = ref.side or " or ".join(dbs.sides())
        raise ConfigError(f"no conflict {ref.id} in {where} (`replicator conflicts` lists them)")
    if len(found) > 1:
        raise ConfigError(f"conflict id {ref.id} exists in both databases: say {found[0].ref} or {found[1].ref}")
    return found[0]


def resolve_command(args: Any, config: Config, mset: MappingSet, out: TextIO, dbs: Databases | None = None,
                    user: str | None = None) -> int:
    sides = [c.name for c in config.connections]
    if not args.id:
        raise ConfigError(f"resolve needs the conflict's id: replicator conflicts resolve {sides[-1]}:17 "
                          f"--take {sides[0]}")
    if args.take not in sides:
        raise ConfigError(f"resolve needs --take with the side whose row wins: one of {', '.join(sides)}")
    ref = parse_ref(args.id, sides)
    own = dbs is None
    dbs = dbs or Databases(config)
    try:
        rec = find(dbs, ref)
        if rec.resolution != PENDING:
            when = f" by {rec.resolved_by} at {rec.resolved_at:%Y-%m-%d %H:%M:%S}" if rec.resolved_by else ""
            raise ConfigError(f"conflict {rec.ref} is not pending: it was {rec.resolution}{when} "
                              f"(only conflicts of `conflicts: manual` wait for a person)")
        m = mset.by_name.get(rec.mapping)
        if m is None:
            raise ConfigError(f"conflict {rec.ref} is of mapping {rec.mapping!r}, which the mappings no longer have")
        if m.flow(args.take) is None:
            raise ConfigError(f"mapping {rec.mapping} does not flow from {args.take}: its rows cannot be taken "
                              f"from there")
        written = take_side(config, mset, rec, args.take, out)
        by = user or _os_user()
        marked = []
        for side in sides:
            db = dbs[side]
            other = sides[1] if side == sides[0] else sides[0]
            ids = store.pending_of_row(db, rec.mapping, rec.key_of(side), rec.key_of(other))
            store.mark_resolved(db, ids, by)
            db.commit_untracked()
            marked += [f"{side}:{i}" for i in ids]
        print(f"resolved {', '.join(marked) or rec.ref}: both sides have {args.take}'s row "
              f"({written} row(s) written, by {by})", file=out)
        return 0
    finally:
        if own:
            dbs.close()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without USER): say so rather than fail
        return "unknown"


def take_side(config: Config, mset: MappingSet, rec: store.Recorded, take: str, out: TextIO) -> int:
    """Write `take`'s row of the conflict onto the other side through verify's repair (tagged, no echo):
    the row's current state on `take` is compared with the other side and what differs is written; a
    row gone on `take` is deleted on the other side when the mapping propagates deletes."""
    from replicator.verify.report import DIFFERS, EXTRA, Difference
    from replicator.verify.repair import repair
    from replicator.verify.run import Verifier

    from replicator.verify.flow import FlowCheck

    m = mset.by_name[rec.mapping]
    flow = m.flow(take)
    assert flow is not None
    other = flow.target.side
    verifier = Verifier(config, mset)
    try:
        # a person's decision: `take` wins every differing field. Verify's repair decides a two-way flow's
        # fields by the mapping's conflict rules (and never writes a `manual` field), so the repair runs
        # on the flow without its rules, which is a plain one-way copy of `take`'s row
        fc = FlowCheck(verifier, m, replace(flow, conflicts=None))
        src_key, tgt_key = tuple(rec.key_of(take)), tuple(rec.key_of(other))
        suspects = [(fc, Difference(rec.mapping, flow.stream, fc.table, DIFFERS, take, src_key, tgt_key)),
                    (fc, Difference(rec.mapping, flow.stream, fc.table, EXTRA, take, None, tgt_key))]
        # (the suspects name the row, not what verify saw of it: whatever differs under the repair's locks is written)
        written, remaining = repair(verifier, suspects, out, as_seen=False)
        if remaining:
            raise FatalError(f"conflict {rec.ref}: the row still differs after writing {take}'s row "
                             f"({remaining[0][1].line()}); it stays pending — try again when the row is quiet")
        return written
    finally:
        verifier.close()


def trim_command(config: Config, out: TextIO, opener: Callable[[Config, str], Any] | None = None) -> int:
    """The housekeeping pass once, for installations that run it from cron (housekeeping_seconds: 0)."""
    dbs = Databases(config, opener)
    try:
        for side in dbs.sides():
            _require_table(dbs[side])
            dbs[side].rollback()
    finally:
        dbs.close()
    trimmed = Housekeeping(config, threading.Event(), opener).run_once(raise_errors=True)
    print(f"trimmed conflict records older than {config.conflicts.retention_days:g} days: "
          + ", ".join(f"{n} in {side}" for side, n in trimmed.items()), file=out)
    return 0


def command(args: Any, config: Config, mset: MappingSet, out: TextIO) -> int:
    if args.action == "resolve":
        return resolve_command(args, config, mset, out)
    if args.id or args.take:
        raise ConfigError("an id and --take belong to `replicator conflicts resolve ID --take SIDE`")
    if args.action == "trim":
        return trim_command(config, out)
    return list_command(args, config, out)


# ---------------------------------------------------------------- check and run


def table_findings(config: Config, mset: MappingSet, opener: Callable[[Config, str], Any] | None = None
                   ) -> list[Any]:
    """`check` and `run`: every database a two-way mapping writes into needs the conflicts table, or the
    first conflict would stop the direction (an installation set up by an older version: run setup).
    A database that cannot be reached raises RetriableError (the daemon waits for it)."""
    from replicator.mapping.check import Finding

    targets = sorted({f.target.side for m in mset.mappings for f in m.flows if f.two_way})
    out = []
    dbs = Databases(config, opener)
    try:
        for side in targets:
            db = dbs[side]
            table = f"{db.conn.state_schema}.{store.TABLE}"
            if store.exists(db):
                out.append(Finding(True, side, f"{table} exists (conflicts of two-way mappings are recorded there)"))
            else:
                out.append(Finding(False, side, f"{table} is missing: conflicts of two-way mappings cannot be "
                                                f"recorded", "run `replicator setup` (it adds the table and keeps "
                                                             "everything else)"))
            db.rollback()
    finally:
        dbs.close()
    return out


# ---------------------------------------------------------------- housekeeping (daemon side job)


class Housekeeping:
    """Every `conflicts.housekeeping_seconds`: trim decided records older than `conflicts.retention_days`
    on both databases and refresh replicator_conflicts_pending / _oldest_pending_timestamp_seconds. A
    failing pass is logged and counted; the next period tries again. Never stops the daemon."""

    def __init__(self, config: Config, stop: threading.Event,
                 opener: Callable[[Config, str], Any] | None = None):
        self.config = config
        self.stop = stop
        self.opener = opener
        self._tables: set[str] = set()
        metrics.errors.labels("conflicts", "retriable")

    def run(self) -> None:
        every = self.config.conflicts.housekeeping_seconds
        if every <= 0:
            return
        self.run_once()  # the gauges are right from the start, not only after the first period
        while not self.stop.wait(every):
            self.run_once()

    def run_once(self, now: datetime | None = None, raise_errors: bool = False) -> dict[str, int]:
        """One pass; returns the records trimmed per side. The daemon's pass logs a failure and goes on;
        `replicator conflicts trim` (raise_errors) reports it."""
        now = now or datetime.now(timezone.utc)
        cutoff = now - timedelta(days=self.config.conflicts.retention_days)
        trimmed: dict[str, int] = {}
        pending: dict[str, tuple[int, datetime]] = {}
        dbs = Databases(self.config, self.opener)
        try:
            for side in dbs.sides():
                db = dbs[side]
                if not store.exists(db):
                    db.rollback()
                    continue
                trimmed[side] = store.trim(db, cutoff)
                db.commit_untracked()
                metrics.conflicts_trimmed.labels(side).inc(trimmed[side])
                for table, (n, oldest) in store.pending_by_table(db).items():
                    count, first = pending.get(table, (0, oldest))
                    pending[table] = (count + n, min(first, oldest))
                db.rollback()
        except ReplicatorError as exc:
            if raise_errors:
                raise
            metrics.errors.labels("conflicts", exc.kind).inc()
            log.warning("conflict housekeeping failed, trying again in %.0f s: %s",
                        self.config.conflicts.housekeeping_seconds, exc)
            return trimmed
        except Exception as exc:  # a driver error we did not wrap: logged, never fatal to the daemon
            if raise_errors:
                raise FatalError(f"conflict housekeeping failed: {str(exc).strip()}") from None
            metrics.errors.labels("conflicts", "error").inc()
            log.warning("conflict housekeeping failed: %s", exc)
            return trimmed
        finally:
            dbs.close()
        for table, (n, oldest) in pending.items():
            metrics.conflicts_pending.labels(table).set(n)
            metrics.conflicts_oldest_pending.labels(table).set(oldest.timestamp())
        for table in self._tables - set(pending):  # resolved meanwhile: no stale sample keeps an alert firing
            metrics.conflicts_pending.labels(table).set(0)
            metrics.conflicts_oldest_pending.remove(table)
        self._tables = set(pending)
        if any(trimmed.values()):
            log.info("conflicts: trimmed %s record(s) older than %g days",
                     ", ".join(f"{n} in {s}" for s, n in trimmed.items()), self.config.conflicts.retention_days)
        return trimmed
