"""One error root, classified by what the daemon does next.

- ConfigError: bad configuration or mapping; exit with EXIT_CONFIG, systemd must not restart.
- RetriableError: a connection dropped or a server is restarting; back off and retry.
- RowError: one row the target rejects; quarantine or stop, never skip silently.
- FatalError: the stream cannot continue safely (purged binlog, lost slot, stale checkpoint);
  stop with a clear message so an operator acts.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h; RestartPreventExitStatus=78 in the unit file
EXIT_OPERATOR = 79  # the source lost data we need (purged binlog, lost slot, stale checkpoint): no restart


class ReplicatorError(Exception):
    """Root of every error replicator raises on purpose."""

    kind = "error"


@dataclass(frozen=True)
class Where:
    """Where in a YAML file a problem is: file, line (1-based) and dotted key path."""

    file: str
    line: int | None
    key: str

    def __str__(self) -> str:
        line = f":{self.line}" if self.line else ""
        return f"{self.file}{line}: {self.key}"


class ConfigError(ReplicatorError):
    """Configuration or mapping is wrong; fix the file and start again."""

    kind = "config"

    def __init__(self, message: str, where: Where | None = None, hint: str | None = None):
        self.where = where
        self.hint = hint
        text = f"{where}: {message}" if where else message
        if hint:
            text += f" (fix: {hint})"
        super().__init__(text)


class PreflightError(ConfigError):
    """A server setting or privilege is wrong; `replicator check` lists each finding."""

    kind = "preflight"


class SchemaChangeError(ConfigError):
    """A mapped source table changed while the daemon ran (ALTER TABLE) in a way the mappings cannot carry
    exactly any more: a mapped column is gone, or `check` now refuses its new type. Nothing of the change's
    rows was applied; fix the schema or the mapping (the message says which), then start again."""

    kind = "schema"


class RetriableError(ReplicatorError):
    """Transient: a connection dropped or a server is restarting. Back off and retry."""

    kind = "retriable"


class TargetShapeChanged(RetriableError):
    """A table written in the open target transaction no longer has the shape the applier planned with (an
    ALTER TABLE committed before our write): the transaction was rolled back, nothing of it committed. The stream
    checks the new shape against the mappings (stream/shapes.py): a refusal stops the direction (schema), a shape
    the mappings still carry exactly is planned with anew and the rolled back transactions applied again."""

    def __init__(self, message: str, tables: list[object]):
        super().__init__(message)
        self.tables = tables


class FatalError(ReplicatorError):
    """The stream cannot go on without losing or doubling data; an operator must act."""

    kind = "fatal"


class LockBusy(FatalError):
    """Another instance holds the direction's session lock (a standby waits; see stream/lease.py)."""


class SourceLostError(FatalError):
    """The source no longer holds the data we need (purged binlog, dropped or invalidated slot)."""

    kind = "source_lost"


class CheckpointError(FatalError):
    """The stored checkpoint and the source disagree (restored backup, another slot)."""

    kind = "checkpoint"


def show_key(key: object) -> str:
    """A key as an operator reads it: `(1000000,)`, `('5b7e...',)`, `[7, 'A-1']`. repr() printed iDempiere's
    numeric(10) keys as `(Decimal('1000000'),)` and a timestamp key as `datetime.datetime(2024, ...)`; text
    keeps its quotes (a key may hold commas and spaces)."""
    def one(value: object) -> str:
        if isinstance(value, (tuple, list)):
            return show_key(value)
        if isinstance(value, (str, bytes)) or value is None or isinstance(value, bool):
            return repr(value)
        if isinstance(value, (int, float, Decimal)):
            return str(value)
        if isinstance(value, (datetime, date, time)):
            return repr(value.isoformat())
        return repr(str(value))  # a UUID as its text
    if isinstance(key, tuple):
        inner = ", ".join(one(v) for v in key)
        return f"({inner},)" if len(key) == 1 else f"({inner})"
    if isinstance(key, list):
        return "[" + ", ".join(one(v) for v in key) + "]"
    return one(key)


class RowError(ReplicatorError):
    """The target rejected one row: names table, key and column."""

    kind = "row"

    def __init__(self, message: str, *, table: str, key: object = None, column: str | None = None,
                 key_side: str | None = None):
        """`key_side`: the side whose key `key` is when it is not `table`'s own -- a linked mapping's change
        (crosswalk, natural key) is known by the source row's key; the target row's key is found or made
        by the link, and for an insert does not exist yet."""
        self.table = table
        self.key = key
        self.column = column
        self.key_side = key_side
        parts = [f"table {table}"]
        if key is not None and key_side is not None:
            parts.append(f"{key_side} key {show_key(key)} (the source row's; the target row's own key comes from "
                         f"the link)")
        elif key is not None:
            parts.append(f"key {show_key(key)}")
        if column:
            parts.append(f"column {column}")
        super().__init__(f"{', '.join(parts)}: {message}")


class DecodeError(FatalError):
    """A source event could not be decoded; names the position."""

    kind = "decode"
