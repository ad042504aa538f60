"""Our own change model. Sources turn third-party events into these at once.

A source yields `Transaction` objects in commit order. A large source transaction is cut into
several chunks that share `txid`; only the last has `final=True` and only the final chunk's
`position` is a safe place to resume from (positions are never inside a transaction).
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Callable, ClassVar, Mapping, Sequence, Union


class Op(enum.Enum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    TRUNCATE = "truncate"


@dataclass(frozen=True, order=True)
class TableRef:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    @classmethod
    def parse(cls, text: str, default_schema: str) -> "TableRef":
        schema, _, name = text.rpartition(".")
        return cls(schema or default_schema, name)


class _Unchanged:
    """Marker for a value the source did not send (PostgreSQL unchanged TOAST). Never NULL."""

    _instance: ClassVar[_Unchanged | None] = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __reduce__(self) -> tuple[type[_Unchanged], tuple[()]]:
        return (_Unchanged, ())


UNCHANGED: Any = _Unchanged()

Row = Mapping[str, Any]


class ZeroDatedRow(dict):  # type: ignore[type-arg]
    """A MariaDB row image holding zero dates (0000-00-00, a date with a zero month or day, the zero TIMESTAMP) or
    impossible ones (2024-02-30, stored under ALLOW_INVALID_DATES: `impossible_date` tells them apart by their text):
    their values are None, as the decoders read them, and `zero_dates` names their columns. Made only for such a
    row (the binlog reader when an event counted zero dates, the table scanner when a value read as one), so
    that the router can refuse it for a column a mapping carries without `zero_date: null` (a row error naming
    the column) -- instead of a NULL nobody asked for. A plain dict for everything else."""

    __slots__ = ("zero_dates", "zero_texts")

    def __init__(self, values: Mapping[str, Any], zero_dates: tuple[str, ...],
                 zero_texts: Mapping[str, str] | None = None):
        super().__init__(values)
        self.zero_dates = zero_dates
        # column -> the value as MariaDB shows it ('2024-00-15'), where the reader knows it
        self.zero_texts: dict[str, str] = dict(zero_texts or {})

    def __reduce__(self) -> Any:  # copies and pickles keep the columns
        return (ZeroDatedRow, (dict(self), self.zero_dates, self.zero_texts))


def impossible_date(text: str | None) -> bool:
    """Whether a date a reader read as None (a `ZeroDatedRow` column's text, '2024-02-30' or '2024-02-30 10:00:00')
    is an impossible date -- year, month and day all set, but no calendar has the day (MariaDB stores one under
    ALLOW_INVALID_DATES) -- rather than a zero date (a zero year, month or day; the zero TIMESTAMP). No text (the
    reader did not keep it): False. `zero_date: null` carries a zero date as NULL, never an impossible one."""
    if not text or len(text) < 10 or text[4] != "-" or text[7] != "-":
        return False
    y, m, d = text[:4], text[5:7], text[8:10]
    return y.isdigit() and m.isdigit() and d.isdigit() and int(y) > 0 and int(m) > 0 and int(d) > 0


def zero_dated(values: dict[str, Any], zero_dates: Sequence[str],
               zero_texts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`values` as a ZeroDatedRow naming `zero_dates` (in column order, once each) and, where known, their texts;
    `values` itself when none."""
    if not zero_dates:
        return values
    return ZeroDatedRow(values, tuple(dict.fromkeys(zero_dates)), zero_texts)


@dataclass(frozen=True)
class RowChange:
    table: TableRef
    op: Op
    before: Row | None = None  # old row (full or key only), None for inserts
    after: Row | None = None  # new row, None for deletes; may hold UNCHANGED values


@dataclass(frozen=True)
class UndecodedRowChange(RowChange):
    """A source row with a value no codec reads exactly (a byte a single-byte MariaDB character set leaves
    undefined: MariaDB shows '?'), made only for a table whose mappings quarantine: the dead-letter queue
    takes it as a row error naming `column` (stream/deadletter.py) and never writes it. Its images hold
    U+FFFD for each such byte, so that the queue can store them."""

    column: str = ""
    reason: str = ""


@dataclass(frozen=True)
class BinlogPosition:
    """Start of the next transaction in a MariaDB/MySQL binlog, plus the GTID just applied."""

    file: str
    pos: int
    gtid: str | None = field(default=None, compare=False)

    def _sort_key(self) -> tuple[str, int, int]:
        # "%06lu" grows to 7 digits after .999999: compare the extension as a number
        base, _, ext = self.file.rpartition(".")
        return (base, int(ext), self.pos) if ext.isdigit() else (self.file, -1, self.pos)

    def __lt__(self, other: "BinlogPosition") -> bool:
        if not isinstance(other, BinlogPosition):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    def __le__(self, other: "BinlogPosition") -> bool:
        if not isinstance(other, BinlogPosition):
            return NotImplemented
        return self._sort_key() <= other._sort_key()

    def __gt__(self, other: "BinlogPosition") -> bool:
        if not isinstance(other, BinlogPosition):
            return NotImplemented
        return self._sort_key() > other._sort_key()

    def __ge__(self, other: "BinlogPosition") -> bool:
        if not isinstance(other, BinlogPosition):
            return NotImplemented
        return self._sort_key() >= other._sort_key()

    def to_json(self) -> str:
        return json.dumps({"file": self.file, "pos": self.pos, "gtid": self.gtid})

    def __str__(self) -> str:
        gtid = f" (gtid {self.gtid})" if self.gtid else ""
        return f"{self.file}:{self.pos}{gtid}"


@dataclass(frozen=True, order=True)
class LSN:
    """A PostgreSQL WAL position: the end LSN of a committed transaction."""

    value: int

    @classmethod
    def parse(cls, text: str) -> "LSN":
        hi, _, lo = text.partition("/")
        return cls((int(hi, 16) << 32) | int(lo, 16))

    def to_json(self) -> str:
        return json.dumps({"lsn": str(self)})

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"


Position = Union[BinlogPosition, LSN]


def position_from_json(text: str) -> Position:
    data = json.loads(text)
    if "lsn" in data:
        return LSN.parse(data["lsn"])
    return BinlogPosition(data["file"], int(data["pos"]), data.get("gtid"))


@dataclass(frozen=True)
class Transaction:
    """One committed source transaction, or one chunk of a large one.

    `echo` is set when the loop guard recognised the transaction as our own write: it carries no
    changes, only a position to move past.
    """

    txid: str
    position: Position
    commit_time: datetime | None
    changes: tuple[RowChange, ...]
    final: bool = True
    echo: bool = False
    # sync watermarks met in this transaction, after its rows (replicator.sync.driver); a snapshotter
    # writes each in a transaction of its own
    watermarks: tuple["Watermark", ...] = ()


_NEW = object.__new__


def _plain(cls: Any, names: tuple[str, ...]) -> bool:
    """Whether the dataclass `cls` is still a plain one of exactly these fields, in this order: no
    __post_init__, no slots, object's __new__ -- so that filling a new instance's __dict__ builds the
    object its constructor would."""
    return (tuple(f.name for f in fields(cls)) == names and not hasattr(cls, "__post_init__")
            and "__slots__" not in cls.__dict__ and cls.__new__ is object.__new__)


# Transaction is a frozen dataclass: its __init__ sets each of its seven fields through object.__setattr__
# (~1 us, for every single-row source transaction on the reader thread). `final_transaction` builds the same
# object by filling a new instance's __dict__ -- only while Transaction stays a plain frozen dataclass of
# exactly these fields, else through its constructor.
_PLAIN_TRANSACTION = _plain(Transaction, ("txid", "position", "commit_time", "changes", "final", "echo",
                                          "watermarks"))


def final_transaction(txid: str, position: Position, commit_time: datetime | None, changes: tuple[RowChange, ...],
                      echo: bool, watermarks: tuple[Watermark, ...]) -> Transaction:
    """`Transaction(txid, position, commit_time, changes, final=True, echo=echo, watermarks=watermarks)`, the
    same object (tests/unit/test_changes.py compares them), for a source's per-transaction yield."""
    if not _PLAIN_TRANSACTION:
        return Transaction(txid, position, commit_time, changes, final=True, echo=echo, watermarks=watermarks)
    txn = _NEW(Transaction)
    d = txn.__dict__
    d["txid"] = txid
    d["position"] = position
    d["commit_time"] = commit_time
    d["changes"] = changes
    d["final"] = True
    d["echo"] = echo
    d["watermarks"] = watermarks
    return txn


# RowChange likewise (its __init__ is a third of a reader's cost per row beyond decoding): `new_row_change`
# fills a new instance's __dict__ -- the same fields in the same order, nothing else -- only while RowChange
# stays a plain frozen dataclass of exactly these fields, else it is RowChange itself.
_PLAIN_ROW_CHANGE = _plain(RowChange, ("table", "op", "before", "after"))


def _new_row_change(table: TableRef, op: Op, before: Row | None, after: Row | None) -> RowChange:
    change = _NEW(RowChange)
    d = change.__dict__
    d["table"] = table
    d["op"] = op
    d["before"] = before
    d["after"] = after
    return change


# `RowChange(table, op, before, after)` for the sources' per-row hot paths (tests/unit/test_changes.py)
new_row_change: Callable[[TableRef, Op, "Row | None", "Row | None"], RowChange] = (
    _new_row_change if _PLAIN_ROW_CHANGE else RowChange)


# BinlogPosition likewise (the binlog reader makes one per source transaction): `binlog_position`
_PLAIN_BINLOG_POSITION = _plain(BinlogPosition, ("file", "pos", "gtid"))


def _new_binlog_position(file: str, pos: int, gtid: str | None) -> BinlogPosition:
    position = _NEW(BinlogPosition)
    d = position.__dict__
    d["file"] = file
    d["pos"] = pos
    d["gtid"] = gtid
    return position


# `BinlogPosition(file, pos, gtid)` for the binlog reader's per-transaction boundary (tests/unit/test_changes.py)
binlog_position: Callable[[str, int, "str | None"], BinlogPosition] = (
    _new_binlog_position if _PLAIN_BINLOG_POSITION else BinlogPosition)


@dataclass(frozen=True)
class Keepalive:
    """The source is idle between transactions and has handed over everything before `position`:
    nothing there for us, so it is a safe place to resume from (a PostgreSQL WAL end)."""

    position: Position


@dataclass(frozen=True)
class Watermark:
    """A sync watermark the snapshotter wrote into the source (replicator.sync.driver): a PostgreSQL
    logical message, or a row of `<state_schema>.watermark` on MariaDB. `mark` names a chunk."""

    stream: str
    kind: str  # "high" (the only kind written today)
    mark: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Watermark":
        return cls(str(row.get("stream") or ""), str(row.get("kind") or ""), str(row.get("mark") or ""))


# what a Source yields, in commit order
SourceMessage = Union[Transaction, Keepalive]


@dataclass(frozen=True)
class TargetChange:
    """One row operation for the target, produced by a mapping from a source RowChange.

    INSERT and UPDATE are both applied as upserts by key (idempotent); `values` holds only
    the columns to write (unchanged TOAST values are left out, so the target keeps them).
    """

    table: TableRef
    op: Op
    key_columns: tuple[str, ...]
    key: tuple[Any, ...]
    values: Mapping[str, Any]
    # columns written only when the row is created, never over an existing row's values (a sync's
    # second side: fields without an owner already hold the first side's values)
    insert_only: frozenset[str] = frozenset()
    # update the row only if it exists, never create it (a sync copying a row the other side wrote)
    must_exist: bool = False
    # -- set only by two-way mappings (`direction: both`), so the applier checks for conflicts
    # (replicator.conflicts): the row as the source saw it before this change, in target terms (every
    # field the flow writes; an UPDATE's `values` then hold only the fields that changed, plus the key);
    # for an INSERT an empty mapping (there was no row before)
    expect: Mapping[str, Any] | None = None
    mapping: str = ""  # the mapping that produced it (its conflict rules)
    source_key: tuple[Any, ...] = ()
    commit_time: datetime | None = None  # the source transaction's commit time
    # of insert_only, the columns an existing row still gets where its value is NULL (never over a value it
    # holds): the second side of a first copy, sync/driver.py `_fill`; the applier writes them after the run
    fill: frozenset[str] = frozenset()
