"""sources/binlog: the binlog source as a Source (no server): transaction boundaries, echoes dropped at
the loop tag row, sync watermark rows as Watermarks, chunks of a large transaction, TRUNCATE.

Events are instances of mysql-replication's own classes with just the attributes the source reads;
row decoding (tested in test_rowdecode.py) is replaced by the rows the test gives each event.
"""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from pymysqlreplication.event import MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

from replicator.changes import BinlogPosition, Op, RowChange, SourceMessage, TableRef, Transaction, Watermark
from replicator.config import Account, Connection, Secret
from replicator.identifiers import my_ident, pg_ident
from replicator.loopguard import LoopGuard
from replicator.sources.base import Source
from replicator.errors import DecodeError
from replicator.sources import binlog
from replicator.sources.binlog import BinlogSource, renamed_tables
from tests.unit.test_shape import Watch

T = TableRef("erp", "t")


def event(cls: type, **attrs: Any) -> Any:
    e = cls.__new__(cls)
    e.timestamp = 1_700_000_000
    for k, v in attrs.items():
        setattr(e, k, v)
    return e


def gtid(n: int) -> Any:
    return event(MariadbGtidEvent, gtid=f"0-1-{n}", flags=0)


class Write(WriteRowsEvent):
    rows: Any = None  # the library's property decodes the packet; here the test gives the rows


class Update(UpdateRowsEvent):
    rows: Any = None


def rows(schema: str, table: str, *values: dict[str, Any], cls: type = Write) -> Any:
    key = "after_values" if cls is Update else "values"
    return event(cls, schema=schema, table=table, rows=[{key: v} for v in values])


class FakeStream:
    """What BinlogSource._read uses of BinLogStreamReader: fetchone() and the position after the event."""

    def __init__(self, events: list[Any]):
        self.events = list(events)
        self.log_file, self.log_pos = "bin.000001", 4

    def fetchone(self) -> Any:
        if not self.events:
            return None
        self.log_pos += 100
        return self.events.pop(0)


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> BinlogSource:
    conn = Connection("erp", "mariadb", "h", 3306, "erp", Account("a", Secret("")), Account("c", Secret("")))
    s = BinlogSource(conn, "erp_to_crm", [T], LoopGuard("replicator", "crm_to_erp"), BinlogPosition("bin.000001", 4),
                     chunk_rows=2)

    def changes(ev: Any, table: TableRef) -> list[RowChange]:
        op = Op.UPDATE if isinstance(ev, UpdateRowsEvent) else Op.INSERT
        return [RowChange(table, op, None, dict(r.get("after_values") or r["values"])) for r in ev.rows]

    monkeypatch.setattr(s, "_changes", changes)
    return s


def read(source: BinlogSource, events: list[Any]) -> list[SourceMessage]:
    stream = FakeStream(events)
    out: list[SourceMessage] = []
    for msg in source._read(stream):  # type: ignore[arg-type]
        out.append(msg)
        if not stream.events:
            source._stop.set()  # the stream "ends": return instead of raising RetriableError
    return out


def test_the_binlog_source_keeps_the_source_protocol(source: BinlogSource) -> None:
    as_source: Source = source
    assert as_source.keep_echoes is False
    assert as_source.safe_position is None  # no idle position past the last transaction boundary


def test_a_transaction_ends_at_its_xid_with_the_position_after_it(source: BinlogSource) -> None:
    out = read(source, [gtid(5), rows("erp", "t", {"id": 1}), rows("erp", "other", {"id": 9}), event(XidEvent)])
    assert len(out) == 1 and isinstance(out[0], Transaction)
    txn = out[0]
    assert txn.txid == "0-1-5" and txn.final and not txn.echo
    assert txn.position == BinlogPosition("bin.000001", 404, "0-1-5")
    assert [c.after for c in txn.changes] == [{"id": 1}]  # the unmapped table left out


def test_an_echo_is_dropped_at_its_tag_row(source: BinlogSource) -> None:
    tag = rows("replicator", "checkpoint", {"stream": "crm_to_erp", "txn_seq": 3}, cls=Update)
    out = read(source, [gtid(6), tag, rows("erp", "t", {"id": 1}), event(XidEvent)])
    assert isinstance(out[0], Transaction) and out[0].echo and out[0].changes == ()


def test_a_watermark_row_becomes_a_watermark(source: BinlogSource) -> None:
    mark = rows("replicator", "watermark", {"stream": "erp_to_crm", "mark": "m1", "kind": "high"}, cls=Update)
    out = read(source, [gtid(7), mark, event(XidEvent)])
    assert isinstance(out[0], Transaction)
    assert out[0].changes == () and out[0].watermarks == (Watermark("erp_to_crm", "high", "m1"),)


def test_a_large_transaction_comes_in_chunks_only_the_last_final(source: BinlogSource) -> None:
    out = read(source, [gtid(8), rows("erp", "t", {"id": 1}, {"id": 2}), rows("erp", "t", {"id": 3}), event(XidEvent)])
    txns = [m for m in out if isinstance(m, Transaction)]
    assert [(len(t.changes), t.final, t.txid) for t in txns] == [(2, False, "0-1-8"), (1, True, "0-1-8")]
    assert txns[0].position == source.start  # a chunk's position is the last boundary, never inside


def test_a_truncate_is_a_change_of_its_own(source: BinlogSource) -> None:
    ddl = event(QueryEvent, query="TRUNCATE TABLE `erp`.`t`", schema=b"erp")
    out = read(source, [event(MariadbGtidEvent, gtid="0-1-9", flags=1), ddl])
    assert isinstance(out[0], Transaction)
    assert [(c.table, c.op) for c in out[0].changes] == [(T, Op.TRUNCATE)]


@pytest.mark.parametrize("query, table", [
    ("TRUNCATE t", T), ("truncate table `t`;", T), ("TRUNCATE erp.t", T), ("TRUNCATE TABLE `erp` . `t`", T),
    ("/* x */ TRUNCATE `erp`.t", T), ("TRUNCATE other.t", None), ("TRUNCATE `T`", None),
    ('TRUNCATE "t"', None),  # a string literal: the event's sql_mode has no ANSI_QUOTES
    ("-- c\nTRUNCATE t", T), ("# c\nTRUNCATE TABLE t;", T), ("TRUNCATE t NOWAIT", T), ("TRUNCATE t WAIT 3", T),
    ("TRUNCATE t /* x */", T), ("--x\nTRUNCATE t", None),  # `--x` is no comment: the statement is not a TRUNCATE
])
def test_the_table_a_truncate_empties_is_read_with_mariadb_quoting(source: BinlogSource, query: str,
                                                                    table: TableRef | None) -> None:
    assert source._truncated(event(QueryEvent, query=query, schema=b"erp")) == table
    assert source._truncated(event(QueryEvent, query=query, schema=b"erp", sql_mode=0x1 | 0x8)) == table


ANSI = 0x4 | 0x20000000  # ANSI_QUOTES among other sql_mode bits (STRICT_ALL_TABLES)


@pytest.mark.parametrize("query, table", [
    ('TRUNCATE "t"', T), ('truncate table "erp"."t";', T), ('/* x */ TRUNCATE "erp" . t', T),
    ('TRUNCATE `erp`."t"', T), ('TRUNCATE "T"', None), ('TRUNCATE "other"."t"', None), ('TRUNCATE "t" NOWAIT', T),
    ('TRUNCATE "t""x"', None), ("TRUNCATE 't'", None),
])
def test_under_ansi_quotes_a_double_quoted_name_in_a_truncate_is_a_name(source: BinlogSource, query: str,
                                                                         table: TableRef | None) -> None:
    assert source._truncated(event(QueryEvent, query=query, schema=b"erp", sql_mode=ANSI)) == table


def test_a_double_quoted_name_with_quotes_inside_is_read_back_under_ansi_quotes(source: BinlogSource) -> None:
    odd = TableRef("erp", 'a"b`c')
    source.tables = frozenset({odd})
    assert source._truncated(event(QueryEvent, query='TRUNCATE "erp"."a""b`c"', schema=b"x", sql_mode=ANSI)) == odd
    assert source._truncated(event(QueryEvent, query="TRUNCATE `a\"b``c`", schema=b"erp", sql_mode=ANSI)) == odd
    assert source._truncated(event(QueryEvent, query="TRUNCATE `a\"b``c`", schema=b"erp")) == odd


def test_chunks_carry_the_gtid_time_and_the_final_part_the_commit_time(source: BinlogSource) -> None:
    start, commit = event(MariadbGtidEvent, gtid="0-1-10", flags=0), event(XidEvent)
    start.timestamp, commit.timestamp = 1_700_000_000, 1_700_000_007
    out = read(source, [start, rows("erp", "t", {"id": 1}, {"id": 2}), commit])
    txns = [m for m in out if isinstance(m, Transaction)]
    assert [t.commit_time.timestamp() for t in txns if t.commit_time] == [1_700_000_000, 1_700_000_007]


def test_what_a_table_is_to_the_reader_holds_for_every_transaction(source: BinlogSource) -> None:
    """Tables are classified once (mapped, unmapped, tag, watermark); later transactions see the same."""
    tag = rows("replicator", "checkpoint", {"stream": "crm_to_erp", "txn_seq": 3}, cls=Update)
    script: list[Any] = []
    for n in range(3):
        script += [gtid(20 + n), rows("erp", "other", {"id": 9}), rows("erp", "t", {"id": n}), event(XidEvent)]
    script += [gtid(30), tag, rows("erp", "t", {"id": 7}), event(XidEvent)]
    out = [m for m in read(source, script) if isinstance(m, Transaction)]
    assert [[c.after for c in t.changes] for t in out] == [[{"id": 0}], [{"id": 1}], [{"id": 2}], []]
    assert [t.echo for t in out] == [False, False, False, True]


def test_an_echo_kept_for_a_sync_keeps_its_rows_marked(source: BinlogSource) -> None:
    source.keep_echoes = True
    tag = rows("replicator", "checkpoint", {"stream": "crm_to_erp", "txn_seq": 3}, cls=Update)
    out = read(source, [gtid(40), tag, rows("erp", "t", {"id": 1}, {"id": 2}), rows("erp", "t", {"id": 3}),
                        rows("erp", "other", {"id": 9}), event(XidEvent)])
    txns = [m for m in out if isinstance(m, Transaction)]
    assert [(len(t.changes), t.final, t.echo) for t in txns] == [(2, False, True), (1, True, True)]


def test_events_are_dispatched_by_class_subclasses_as_their_base(source: BinlogSource) -> None:
    from pymysqlreplication.event import HeartbeatLogEvent, RotateEvent

    class MyXid(XidEvent):
        pass

    out = read(source, [event(RotateEvent), gtid(50), event(HeartbeatLogEvent), rows("erp", "t", {"id": 1}),
                        event(MyXid), event(HeartbeatLogEvent), gtid(51), rows("erp", "t", {"id": 2}), event(XidEvent)])
    txns = [m for m in out if isinstance(m, Transaction)]
    assert [(t.txid, [c.after for c in t.changes]) for t in txns] == [("0-1-50", [{"id": 1}]), ("0-1-51", [{"id": 2}])]


@pytest.mark.parametrize("plain", [True, False])
def test_row_changes_are_the_constructors_objects(monkeypatch: pytest.MonkeyPatch, plain: bool) -> None:
    """row_changes builds RowChanges without their __init__: the same objects as the constructor's (type,
    fields in order, equality, repr, pickling), and the constructor itself when RowChange is not plain."""
    import pickle

    from replicator import changes
    from replicator.sources import binlog

    # the fast path is the one in use with today's RowChange (changes.new_row_change)
    assert changes._PLAIN_ROW_CHANGE and changes.new_row_change is changes._new_row_change
    monkeypatch.setattr(binlog, "new_row_change", changes._new_row_change if plain else RowChange)
    pairs = [(None, {"id": 1, "v": "a"}), ({"id": 1}, {"id": 1, "v": None}), ({"id": 2}, None)]
    for op in (Op.INSERT, Op.UPDATE, Op.DELETE):
        got = binlog.row_changes(T, op, pairs)
        want = [RowChange(T, op, before, after) for before, after in pairs]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert type(g) is RowChange and list(vars(g).items()) == list(vars(w).items())
            assert g == w and repr(g) == repr(w) and pickle.loads(pickle.dumps(g)) == w
            assert g.before is w.before and g.after is w.after  # the decoder's dicts, not copies
            with pytest.raises(AttributeError):
                g.op = Op.DELETE  # type: ignore[misc]  # still frozen
    key_only = binlog.row_changes(T, Op.DELETE, [((1, 2), None)])[0]
    assert hash(key_only) == hash(RowChange(T, Op.DELETE, (1, 2), None))  # type: ignore[arg-type]
    assert binlog.row_changes(T, Op.INSERT, []) == []


class LeanFakeStream(FakeStream):
    """FakeStream as FastBinLogStreamReader.fetchone(lean=True) gives it: the library's own GTID and XID events
    (exactly those classes, the ones the fast reader builds) as binlogfast's tuples."""

    lean_events = True

    def fetchone(self, lean: bool = False) -> Any:
        from replicator.sources.binlogfast import LEAN_GTID, LEAN_XID
        ev = super().fetchone()
        if lean and ev.__class__ is MariadbGtidEvent:
            return (LEAN_GTID, ev.gtid, ev.timestamp, ev.flags)
        if lean and ev.__class__ is XidEvent:
            return (LEAN_XID, ev.timestamp)
        return ev


def _plain_source() -> BinlogSource:
    conn = Connection("erp", "mariadb", "h", 3306, "erp", Account("a", Secret("")), Account("c", Secret("")))
    s = BinlogSource(conn, "erp_to_crm", [T], LoopGuard("replicator", "crm_to_erp"), BinlogPosition("bin.000001", 4),
                     chunk_rows=2)

    def changes(ev: Any, table: TableRef) -> list[RowChange]:
        op = Op.UPDATE if isinstance(ev, UpdateRowsEvent) else Op.INSERT
        return [RowChange(table, op, None, dict(r.get("after_values") or r["values"])) for r in ev.rows]

    s._changes = changes  # type: ignore[method-assign]
    return s


def _script(steps: list[tuple[str, int]]) -> list[Any]:
    """Events from (what, n): transactions of any shape, times that move or stay, XIDs without a time."""
    from pymysqlreplication.event import HeartbeatLogEvent, RotateEvent
    tag = {"stream": "crm_to_erp", "txn_seq": 3}
    out: list[Any] = []
    for what, n in steps:
        ts = 1_700_000_000 + n // 3
        if what == "gtid":
            out.append(event(MariadbGtidEvent, gtid=f"0-1-{n}", flags=n % 2, timestamp=ts))
        elif what == "xid":
            out.append(event(XidEvent, timestamp=ts if n % 4 else 0))
        elif what == "rows":
            out.append(rows("erp", "t", *({"id": i} for i in range(n % 3 + 1))))
        elif what == "other":
            out.append(rows("erp", "other", {"id": n}))
        elif what == "tag":
            out.append(rows("replicator", "checkpoint", tag, cls=Update))
        elif what == "mark":
            out.append(rows("replicator", "watermark", {"stream": "erp_to_crm", "mark": f"m{n}", "kind": "high"},
                            cls=Update))
        elif what == "query":
            text = ("BEGIN", "COMMIT", "TRUNCATE TABLE `erp`.`t`", "ALTER TABLE t ADD c INT")[n % 4]
            out.append(event(QueryEvent, query=text, schema=b"erp", timestamp=ts))
        else:
            out.append(event(HeartbeatLogEvent if n % 2 else RotateEvent))
    return out


_STEPS = st.lists(st.tuples(st.sampled_from(["gtid", "xid", "rows", "other", "tag", "mark", "query", "beat"]),
                            st.integers(0, 40)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_STEPS, st.booleans())
def test_lean_gtid_and_xid_events_read_as_the_librarys_objects(steps: list[tuple[str, int]], keep: bool) -> None:
    """The reader's GTID/XID tuples (fetchone(lean=True)) give the same messages as the library's event objects:
    transactions, positions, GTIDs, commit times (a datetime made once per second now), echoes, watermarks."""
    def run(stream_cls: type) -> tuple[list[Any], Any]:
        s = _plain_source()
        s.keep_echoes = keep
        stream = stream_cls(_script(steps))
        out: list[Any] = []
        try:
            for msg in s._read(stream):
                out.append((msg, msg.position.gtid, msg.commit_time, msg.txid))
                if not stream.events:
                    s._stop.set()
        except Exception as exc:  # noqa: BLE001 - the same error either way
            out.append((type(exc), str(exc)))
        return out, s._idle

    plain, lean = run(FakeStream), run(LeanFakeStream)
    assert plain == lean


class LeanRowsFakeStream(LeanFakeStream):
    """LeanFakeStream whose rows events also come as FastBinLogStreamReader.fetchone(lean=True) gives them once
    BinlogSource set row_decoder and lean_rows_wanted: (LEAN_ROWS, handle, event class, pairs, zero dates) for
    the tables lean_rows_wanted gives a handle for (asked once per table, as once per table map), unless
    lean_rows_paused; the pairs are what _plain_source's _changes makes of the event's rows."""

    row_decoder: Any = None
    lean_rows_wanted: Any = None
    lean_rows_paused = False

    def __init__(self, events: list[Any]):
        super().__init__(events)
        self.handles: dict[tuple[str, str], Any] = {}
        self.lean_rows = 0

    def fetchone(self, lean: bool = False) -> Any:
        from replicator.sources.binlogfast import LEAN_ROWS
        ev = super().fetchone(lean)
        if not (lean and isinstance(ev, (WriteRowsEvent, UpdateRowsEvent)) and self.row_decoder is not None):
            return ev
        key = (ev.schema, ev.table)
        if key not in self.handles:
            self.handles[key] = self.lean_rows_wanted(ev.schema, ev.table, [])
        if self.handles[key] is None or self.lean_rows_paused:
            return ev
        self.lean_rows += 1
        cls = UpdateRowsEvent if isinstance(ev, UpdateRowsEvent) else WriteRowsEvent
        return (LEAN_ROWS, self.handles[key], cls,
                [(None, dict(r.get("after_values") or r["values"])) for r in ev.rows], 0)


@settings(max_examples=300, deadline=None)
@given(_STEPS, st.booleans())
def test_lean_rows_read_as_the_rows_events(steps: list[tuple[str, int]], keep: bool) -> None:
    """_read's LEAN_ROWS branch against rows events, over any sequence of transactions: mapped rows in chunks,
    echoes (the tag anywhere, kept for a sync or dropped, lean_rows_paused in between), watermarks, unmapped
    tables, queries, heartbeats: the same messages, positions, GTIDs, commit times and errors."""
    def run(stream_cls: type) -> tuple[list[Any], Any, Any]:
        s = _plain_source()
        s.keep_echoes = keep
        stream = stream_cls(_script(steps))
        out: list[Any] = []
        try:
            for msg in s._read(stream):
                out.append((msg, msg.position.gtid, msg.commit_time, msg.txid))
                if not stream.events:
                    s._stop.set()
        except Exception as exc:  # noqa: BLE001 - the same error either way
            out.append((type(exc), str(exc)))
        return out, s._idle, stream

    events, events_idle, _ = run(LeanFakeStream)
    lean, lean_idle, stream = run(LeanRowsFakeStream)
    assert events == lean and events_idle == lean_idle
    if any(what in ("rows", "mark") for what, _ in steps) and not any(what == "tag" for what, _ in steps):
        assert stream.lean_rows or not any(isinstance(m[0], Transaction) for m in events)


def test_lean_rows_are_paused_in_a_dropped_echo() -> None:
    s = _plain_source()
    tag = rows("replicator", "checkpoint", {"stream": "crm_to_erp", "txn_seq": 3}, cls=Update)
    script = [gtid(1), rows("erp", "t", {"id": 1}), event(XidEvent), gtid(2), tag, rows("erp", "t", {"id": 2}),
              event(XidEvent), gtid(3), rows("erp", "t", {"id": 3}), event(XidEvent)]
    stream = LeanRowsFakeStream(script)
    out = []
    for msg in s._read(stream):  # type: ignore[arg-type]
        out.append(msg)
        if not stream.events:
            s._stop.set()
    assert [(t.echo, [c.after for c in t.changes]) for t in out] == [
        (False, [{"id": 1}]), (True, []), (False, [{"id": 3}])]
    assert stream.lean_rows == 2  # the echo's row came as an event, dropped undecoded
    assert stream.lean_rows_paused is False  # and the transaction after it is lean again


def test_each_new_table_map_of_a_mapped_table_tells_its_shape(source: BinlogSource) -> None:
    """`_lean_wanted` is asked once per table map (table id): an ALTER TABLE gives the table a new one."""
    from types import SimpleNamespace

    from pymysqlreplication.constants import FIELD_TYPE

    seen: list[tuple[TableRef, Any]] = []
    source.shapes = Watch(seen.append)  # type: ignore[assignment]
    narrow = [SimpleNamespace(name="id", type=FIELD_TYPE.LONG),
              SimpleNamespace(name="credit", type=FIELD_TYPE.NEWDECIMAL, precision=12, decimals=2)]
    wide = [SimpleNamespace(name="id", type=FIELD_TYPE.LONG),
            SimpleNamespace(name="credit", type=FIELD_TYPE.NEWDECIMAL, precision=14, decimals=4)]
    assert source._lean_wanted("erp", "t", narrow) is not None
    assert source._lean_wanted("erp", "other", wide) is None  # not mapped: no shape
    assert source._lean_wanted("erp", "t", wide) is not None
    assert seen == [(T, (("id", "int"), ("credit", "decimal(12,2)"))), (T, (("id", "int"), ("credit", "decimal(14,4)")))]


def test_a_shape_refused_inside_the_binlog_reader_comes_out_as_it_is_not_as_a_decode_error(
        source: BinlogSource) -> None:
    from replicator.errors import SchemaChangeError

    class Refusing(FakeStream):
        def fetchone(self) -> Any:
            raise SchemaChangeError("credit refused")

    with pytest.raises(SchemaChangeError, match="credit refused"):
        list(source._read(Refusing([])))  # type: ignore[arg-type]


@pytest.mark.parametrize("query, renamed", [
    ("RENAME TABLE t TO t_old", [("erp.t", "erp.t_old")]),
    ("rename table `erp`.`t` to erp.x, y TO z", [("erp.t", "erp.x"), ("erp.y", "erp.z")]),
    ("ALTER TABLE t RENAME TO t2", [("erp.t", "erp.t2")]),
    ("ALTER TABLE t ADD COLUMN c int, RENAME AS other.t", [("erp.t", "other.t")]),
    ("ALTER TABLE t RENAME COLUMN a TO b", []), ("ALTER TABLE t RENAME INDEX a TO b", []),
    ("ALTER TABLE t ADD COLUMN renamed int", []), ("DROP TABLE t", []),
])
def test_renames_are_read_from_ddl_statements(query: str, renamed: list[tuple[str, str]]) -> None:
    assert [(str(a), str(b)) for a, b in renamed_tables(query, "erp")] == renamed
    assert [(str(a), str(b)) for a, b in renamed_tables(query, "erp", ansi_quotes=True)] == renamed


@pytest.mark.parametrize("query, renamed", [
    ('RENAME TABLE "t" TO "t_old"', [("erp.t", "erp.t_old")]),
    ('-- why\nrename table "erp"."t" to erp.x, "y" TO `z`', [("erp.t", "erp.x"), ("erp.y", "erp.z")]),
    ('RENAME TABLE IF EXISTS "t" NOWAIT TO "t2"', [("erp.t", "erp.t2")]),
    ('ALTER TABLE "t" RENAME TO "t2"', [("erp.t", "erp.t2")]),
    ('Alter Table "erp" . "t" WAIT 2 add column c int, Rename As "other"."t"', [("erp.t", "other.t")]),
    ('ALTER TABLE "t" RENAME COLUMN "a" TO "b"', []),
])
def test_under_ansi_quotes_double_quoted_names_are_read_from_renames(query: str, renamed: list[tuple[str, str]]) -> None:
    assert [(str(a), str(b)) for a, b in renamed_tables(query, "erp", ansi_quotes=True)] == renamed
    # without ANSI_QUOTES a "t" is a string, never the table t
    assert T not in [old for old, _ in renamed_tables(query, "erp")]


@given(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1))
def test_any_double_quoted_name_is_read_back_from_a_rename_under_ansi_quotes(db: str, old: str, new: str) -> None:
    assert renamed_tables(f"RENAME TABLE {pg_ident(db, old)} TO {pg_ident(new)}", "erp", ansi_quotes=True) == \
        [(TableRef(db, old), TableRef("erp", new))]
    assert renamed_tables(f"ALTER TABLE {pg_ident(old)} RENAME TO {pg_ident(db, new)}", "erp", ansi_quotes=True) == \
        [(TableRef("erp", old), TableRef(db, new))]


@given(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1))
def test_any_backquoted_name_is_read_back_from_a_rename(db: str, old: str, new: str) -> None:
    assert renamed_tables(f"RENAME TABLE {my_ident(db, old)} TO {my_ident(new)}", "erp") == \
        [(TableRef(db, old), TableRef("erp", new))]
    assert renamed_tables(f"ALTER TABLE {my_ident(old)} RENAME TO {my_ident(db, new)}", "erp") == \
        [(TableRef("erp", old), TableRef(db, new))]


def test_a_mapped_table_renamed_away_is_told_to_the_watch_at_its_ddl(source: BinlogSource) -> None:
    watch = Watch()
    source.shapes = watch  # type: ignore[assignment]
    ddl = event(MariadbGtidEvent, gtid="0-1-6", flags=1)  # standalone: a DDL
    read(source, [ddl, event(QueryEvent, query="RENAME TABLE other TO other2, t TO t_old", schema=b"erp")])
    assert watch.gone == [(T, "renamed to erp.t_old")]


def test_a_rename_is_read_with_the_quoting_of_the_events_own_sql_mode(source: BinlogSource) -> None:
    watch = Watch()
    source.shapes = watch  # type: ignore[assignment]
    query = 'RENAME TABLE "t" TO "t_old"'
    # the first without ANSI_QUOTES: "t" is a string and names no table (the server refuses such a statement)
    read(source, [event(MariadbGtidEvent, gtid="0-1-6", flags=1), event(QueryEvent, query=query, schema=b"erp"),
                  event(MariadbGtidEvent, gtid="0-1-7", flags=1),
                  event(QueryEvent, query=query.replace("t_old", "t_new"), schema=b"erp", sql_mode=ANSI)])
    assert watch.gone == [(T, "renamed to erp.t_new")]


def test_a_table_map_asked_again_is_not_told_to_the_watch_again(source: BinlogSource) -> None:
    """binlogfast asks _lean_wanted again when a table's rows events switch type; the column list is the same."""
    from types import SimpleNamespace

    from pymysqlreplication.constants import FIELD_TYPE

    seen: list[Any] = []
    source.shapes = Watch(seen.append)  # type: ignore[assignment]
    columns = [SimpleNamespace(name="id", type=FIELD_TYPE.LONG)]
    for _ in range(3):
        source._lean_wanted("erp", "t", columns)
    assert len(seen) == 1
    source._lean_wanted("erp", "t", list(columns))  # a new table map (after an ALTER): told, the guard compares
    assert len(seen) == 2


class _Unreadable(WriteRowsEvent):
    """A rows event the library cannot decode: its reader raises (as its DATE reader did on 2024-02-30)."""

    def __init__(self) -> None:
        pass

    @property
    def rows(self) -> Any:
        raise ValueError("year 0 is out of range")


def test_a_value_the_library_cannot_decode_names_the_table_never_a_bare_traceback() -> None:
    conn = Connection("erp", "mariadb", "h", 3306, "erp", Account("a", Secret("")), Account("c", Secret("")))
    s = BinlogSource(conn, "erp_to_crm", [T], LoopGuard("replicator", "crm_to_erp"), BinlogPosition("bin.000001", 4),
                     chunk_rows=2)
    ev = _Unreadable()
    ev.schema, ev.table = T.schema, T.name
    with pytest.raises(DecodeError, match=rf"table {T}: mysql-replication cannot decode a value of this rows event "
                                          r"\(ValueError: year 0 is out of range\)"):
        s._library_changes(ev, T, ((), (), ((), (), ())), binlog._NOT_COUNTED)


# ---------------------------------------------------------------- names matched as the server does (lower_case_table_names)

MIXED = TableRef("ERP", "Customers")  # a mapping that spells its table in mixed case


@pytest.fixture
def mixed(monkeypatch: pytest.MonkeyPatch) -> BinlogSource:
    conn = Connection("erp", "mariadb", "h", 3306, "erp", Account("a", Secret("")), Account("c", Secret("")))
    s = BinlogSource(conn, "erp_to_crm", [T, MIXED], LoopGuard("Replicator", "crm_to_erp"),
                     BinlogPosition("bin.000001", 4), chunk_rows=100)

    def changes(ev: Any, table: TableRef) -> list[RowChange]:
        return [RowChange(table, Op.INSERT, None, dict(r["values"])) for r in ev.rows]

    monkeypatch.setattr(s, "_changes", changes)
    return s


@pytest.mark.parametrize("query", ["TRUNCATE T", "TRUNCATE `ERP`.`T`", "truncate table Erp.t"])
def test_with_lower_case_table_names_0_a_name_in_another_case_is_another_table(mixed: BinlogSource, query: str) -> None:
    mixed.names_as_server(0)
    assert mixed._truncated(event(QueryEvent, query=query, schema=b"erp")) is None
    watch = Watch()
    mixed.shapes = watch  # type: ignore[assignment]
    mixed._renames(event(QueryEvent, query="RENAME TABLE T TO x, erp.customers TO y", schema=b"erp"))
    assert watch.gone == []


@pytest.mark.parametrize("lctn", [1, 2])
@pytest.mark.parametrize("query, table", [
    ("TRUNCATE T", T), ("TRUNCATE `ERP`.`T`", T), ("truncate table Erp.t", T), ("TRUNCATE customers", MIXED),
    ("TRUNCATE t2", None),
    ("TRUNCATE erp.CUSTOMERS", MIXED), ("TRUNCATE `erp`.`customers`", MIXED), ("TRUNCATE other.t", None),
])
def test_with_lower_case_table_names_a_truncate_matches_its_table_in_any_case(mixed: BinlogSource, lctn: int,
                                                                              query: str, table: TableRef | None) -> None:
    mixed.names_as_server(lctn)
    # the binlog gives the statement's default database in the server's spelling (lower case under 1)
    assert mixed._truncated(event(QueryEvent, query=query, schema=b"erp")) == table


def test_with_lower_case_table_names_a_rename_of_a_mapped_table_in_another_case_stops(mixed: BinlogSource) -> None:
    mixed.names_as_server(1)
    watch = Watch()
    mixed.shapes = watch  # type: ignore[assignment]
    mixed._renames(event(QueryEvent, query="RENAME TABLE T TO t_old, ERP.CUSTOMERS TO c2", schema=b"erp"))
    mixed._renames(event(QueryEvent, query="ALTER TABLE `Erp`.`customers` RENAME TO c3", schema=b"x"))
    assert watch.gone == [(T, "renamed to erp.t_old"), (MIXED, "renamed to erp.c2"), (MIXED, "renamed to x.c3")]


def test_with_lower_case_table_names_1_rows_in_the_servers_spelling_are_the_mappings_table(mixed: BinlogSource) -> None:
    """The server binlogs `erp`.`customers` for the mapping's ERP.Customers: the reader hands the rows on under the
    mapping's spelling, and its loop tag in a mixed-case state schema (Replicator, stored as replicator) is still
    recognised."""
    mixed.names_as_server(1)
    out = read(mixed, [gtid(5), rows("erp", "customers", {"id": 1}), rows("erp", "t", {"id": 2}), event(XidEvent)])
    assert [(c.table, c.after) for c in out[0].changes] == [(MIXED, {"id": 1}), (T, {"id": 2})]
    tag = rows("replicator", "checkpoint", {"stream": "crm_to_erp", "txn_seq": 3}, cls=Update)
    mixed._stop.clear()  # read() stopped it at the end of the first stream
    out = read(mixed, [gtid(6), tag, rows("erp", "customers", {"id": 1}), event(XidEvent)])
    assert out[0].echo and out[0].changes == ()


def test_with_lower_case_table_names_0_rows_of_another_spelling_are_not_read(mixed: BinlogSource) -> None:
    mixed.names_as_server(0)
    out = read(mixed, [gtid(5), rows("erp", "customers", {"id": 1}), rows("erp", "T", {"id": 2}), event(XidEvent)])
    assert out[0].changes == ()


# ---------------------------------------------------------------- a string in an ALTER TABLE renames nothing

@pytest.mark.parametrize("query, renamed", [
    ("ALTER TABLE t COMMENT 'x, RENAME TO y'", []),
    ("ALTER TABLE t COMMENT = 'it''s, rename to y', ADD COLUMN c INT", []),
    ("ALTER TABLE t ADD COLUMN c INT COMMENT 'a\\', RENAME TO y'", []),  # \' escapes: one string
    ('ALTER TABLE t COMMENT "x, RENAME TO y"', []),  # a string without ANSI_QUOTES
    ("ALTER TABLE t COMMENT 'x, RENAME TO y', RENAME TO z", [("erp.t", "erp.z")]),
    ("ALTER TABLE t COMMENT '', RENAME TO `a,'b`", [("erp.t", "erp.a,'b")]),  # a quoted name is kept
])
def test_a_string_in_an_alter_table_is_no_rename(query: str, renamed: list[tuple[str, str]]) -> None:
    assert [(str(a), str(b)) for a, b in renamed_tables(query, "erp")] == renamed


def test_under_ansi_quotes_a_double_quoted_name_is_kept_and_a_single_quoted_string_emptied() -> None:
    q = """ALTER TABLE "t" COMMENT 'x, RENAME TO y', RENAME TO "a, RENAME TO b" """
    assert renamed_tables(q, "erp", ansi_quotes=True) == [(T, TableRef("erp", "a, RENAME TO b"))]


def test_without_backslash_escapes_a_backslash_ends_no_string() -> None:
    """Under sql_mode NO_BACKSLASH_ESCAPES 'a\\' is a whole string: the rename after it is real (read with the
    backslash as an escape, it would be taken for part of the string and missed: a silent loss)."""
    q = "ALTER TABLE t COMMENT 'a\\', RENAME TO y"
    assert renamed_tables(q, "erp", backslash_escapes=False) == [(T, TableRef("erp", "y"))]
    assert renamed_tables(q, "erp") == []


def test_the_events_sql_mode_says_whether_a_backslash_escapes(source: BinlogSource) -> None:
    watch = Watch()
    source.shapes = watch  # type: ignore[assignment]
    q = "ALTER TABLE t COMMENT 'a\\', RENAME TO y"
    source._renames(event(QueryEvent, query=q, schema=b"erp", sql_mode=0x54200000))
    assert watch.gone == []
    source._renames(event(QueryEvent, query=q, schema=b"erp", sql_mode=0x100000))  # NO_BACKSLASH_ESCAPES
    assert watch.gone == [(T, "renamed to erp.y")]


# ---------------------------------------------------------------- a DROP of a mapped table: its rows are gone

@pytest.mark.parametrize("query, tables", [
    ("DROP TABLE t", [T]), ("DROP TABLE IF EXISTS `other`, `erp`.`t` /* generated by server */", [T]),
    ("drop table x, t nowait cascade;", [T]), ("DROP TABLE /* c */ erp . t WAIT 3 RESTRICT", [T]),
    ("DROP DATABASE erp", [T]), ("DROP SCHEMA IF EXISTS `erp`;", [T]),
    ("DROP TEMPORARY TABLE t", []), ("DROP TABLE other.t", []), ("DROP TABLE `T`", []), ('DROP TABLE "t"', []),
    ("DROP DATABASE other", []), ("DROP INDEX i ON t", []), ("DROP VIEW t", []), ("DROP TABLE t2, `t,x`", []),
])
def test_a_drop_of_a_mapped_table_is_read_as_its_truncate(source: BinlogSource, query: str,
                                                         tables: list[TableRef]) -> None:
    out = read(source, [event(MariadbGtidEvent, gtid="0-1-9", flags=1), event(QueryEvent, query=query, schema=b"erp")])
    assert isinstance(out[0], Transaction)
    assert [(c.table, c.op) for c in out[0].changes] == [(t, Op.TRUNCATE) for t in tables]


def test_a_drop_is_read_with_the_events_quoting_and_the_servers_name_case(mixed: BinlogSource) -> None:
    ansi = event(QueryEvent, query='DROP TABLE "t", "ERP"."Customers"', schema=b"erp", sql_mode=ANSI)
    assert mixed._dropped(ansi) == [T, MIXED]
    assert mixed._dropped(event(QueryEvent, query="DROP DATABASE erp", schema=b"x")) == [T]  # ERP is another
    mixed.names_as_server(1)
    assert mixed._dropped(event(QueryEvent, query="DROP TABLE T, erp.CUSTOMERS", schema=b"erp")) == [T, MIXED]
    assert mixed._dropped(event(QueryEvent, query="DROP DATABASE erp", schema=b"x")) == [MIXED, T]


def test_a_table_is_classified_once_under_the_binlogs_own_spelling(mixed: BinlogSource) -> None:
    mixed.names_as_server(1)
    assert mixed._classify("erp", "customers")[1] == MIXED
    assert ("erp", "customers") in mixed._seen_tables  # what _read looks the next rows event up by
