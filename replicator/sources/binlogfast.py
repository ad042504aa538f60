"""A faster binlog event loop for mysql-replication's BinLogStreamReader.

`FastBinLogStreamReader` is a drop-in subclass (same constructor) whose ``fetchone()`` is the library's
loop (mysql-replication 1.0.x, ``BinLogStreamReader.fetchone``) with the per-event overhead cut for the
events every transaction carries:

- the 19-byte event header is parsed once, with one ``struct.unpack_from`` on the packet's buffer, without
  consuming it;
- ``MariadbGtidEvent``, ``XidEvent`` and ``HeartbeatLogEvent`` are built directly (instances of exactly the
  library's classes, with the attributes the library's constructors set), without ``BinLogPacketWrapper``;
- events whose class the reader would drop anyway (not in ``only_events``, and not one of the
  Rotate/FormatDescription/TableMap events the reader needs for itself) are skipped after the position
  bookkeeping, without building a wrapper or an event;
- with ``fetchone(lean=True)`` (BinlogSource's call, when ``lean_events``) the GTID and XID events are returned as
  tuples (``LEAN_GTID``/``LEAN_XID``) instead of objects: what BinlogSource reads of them, after the same
  bookkeeping;
- a table map the reader does not return, byte-equal to its table id's last one, only registers its table; a
  rows event's attributes that depend on its table map and the reader's state are made once per table map;
- with ``fetchone(lean=True)`` and a ``row_decoder`` (BinlogSource's RowDecoder), a rows event of a table the
  caller wants (``lean_rows_wanted(schema, table, columns)``, asked once per table map, returned a handle) is
  not built at all: after the same filters, checks and position bookkeeping, its bitmaps and rows body go to
  ``RowDecoder.decode_lean`` with the table map's compiled decoder (found once per table map), and the event
  comes as ``(LEAN_ROWS, handle, event class, pairs, zero_dates)``. Only what ``RowDecoder.decode`` would
  decode itself: whatever it would refuse (no compiled decoder, another column count, a partial bitmap, a body
  that fails to decode or does not end where the event does) or ``skip_to_timestamp`` builds the event as below,
  untouched; with ``lean_rows_paused`` (set by the caller while it drops a transaction's rows unread: an echo)
  a rows event of a table map the reader keeps is dropped after the same checks and position bookkeeping, no
  event built;
- everything else (TableMap, Rows, Query, Rotate, FormatDescription, unknown types, short packets) goes
  through ``BinLogPacketWrapper`` on the untouched packet, followed by the library's own bookkeeping
  (position, rotation and the table-map reset, format description, table-map registration, filters).

Positions (``log_file``, ``log_pos``), ``table_map``, filtering (``only_events``, ``ignored_events``,
``only_tables``, ``only_schemas``, ...), ``skip_to_timestamp``, ``end_log_pos``, reconnects and errors behave
as the library's. With ``verify_checksum=True`` the library's own ``fetchone`` is used unchanged.

The library's private state is reached through its name-mangled attributes (``_BinLogStreamReader__...``);
``check_library()`` verifies they exist, and the reader falls back to the library's ``fetchone`` if they do
not (a different mysql-replication version).
"""
from __future__ import annotations

import logging
import struct
from typing import Any, Callable, Optional

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication import binlogstream as _bls
from pymysqlreplication.constants.BINLOG import (DELETE_ROWS_EVENT_V1, DELETE_ROWS_EVENT_V2, FORMAT_DESCRIPTION_EVENT,
                                                 HEARTBEAT_LOG_EVENT, MARIADB_GTID_EVENT, ROTATE_EVENT, TABLE_MAP_EVENT,
                                                 UPDATE_ROWS_EVENT_V1, UPDATE_ROWS_EVENT_V2, WRITE_ROWS_EVENT_V1,
                                                 WRITE_ROWS_EVENT_V2, XID_EVENT)
from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, NotImplementedEvent, XidEvent
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from replicator.mypackets import PacketReader, packet, usable
from replicator.sources.rowcompile import DELETE, UPDATE, WRITE

log = logging.getLogger(__name__)

# OK byte already checked; then timestamp, type, server id, event size, next position, flags
_HEADER = struct.Struct("<IBIIIH").unpack_from
_GTID_BODY = struct.Struct("<QIB").unpack_from  # seq_no, domain_id, flags (MariaDB GTID_EVENT)
_XID_BODY = struct.Struct("<Q").unpack_from
_ROWS_V1 = struct.Struct("<H").unpack_from  # flags
_ROWS_V2 = struct.Struct("<HH").unpack_from  # flags, extra data length
# rows event type -> (class, post-header length the library knows, version 2)
_ROWS_TYPES = {
    WRITE_ROWS_EVENT_V1: (WriteRowsEvent, 8, False), UPDATE_ROWS_EVENT_V1: (UpdateRowsEvent, 8, False),
    DELETE_ROWS_EVENT_V1: (DeleteRowsEvent, 8, False), WRITE_ROWS_EVENT_V2: (WriteRowsEvent, 10, True),
    UPDATE_ROWS_EVENT_V2: (UpdateRowsEvent, 10, True), DELETE_ROWS_EVENT_V2: (DeleteRowsEvent, 10, True),
}
_DROPPED = object()  # the library would build this event, find it filtered out (not _processed) and drop it
_MISS = object()
_REGISTERED = object()  # a table map the reader does not return: its table registered, no event built
_TABLE_MAP_CACHE_SIZE = 1024
# fetchone(lean=True): a MariaDB GTID event as (LEAN_GTID, gtid, header timestamp, GTID flags) and an XID event as
# (LEAN_XID, header timestamp) -- all BinlogSource reads of them --, tuples instead of two library objects, a
# _Header and _base's sixteen attributes each (two of a single-row transaction's four events)
LEAN_GTID = 1
LEAN_XID = 2
# fetchone(lean=True), with a row decoder: a rows event of a wanted table whose body the decoder took as
# (LEAN_ROWS, handle, event class, pairs, zero_dates) -- no BinLogPacketWrapper, no RowsEvent and its ~25
# attributes, which RowDecoder.decode only read a few of; the handle is what lean_rows_wanted returned for the
# table map (made once per table map, not per event)
LEAN_ROWS = 3
_ROWS_KIND = {WriteRowsEvent: WRITE, UpdateRowsEvent: UPDATE, DeleteRowsEvent: DELETE}
_UNCACHED = ("packet", "table_map", "_ctl_connection")
_EVENT_MAP: dict[int, Any] = BinLogPacketWrapper._BinLogPacketWrapper__event_map  # type: ignore[attr-defined]
_EXPECTED_ERRORS = tuple(_bls.MYSQL_EXPECTED_ERROR_CODES)
_NEEDED = ("_BinLogStreamReader__connected_stream", "_BinLogStreamReader__connected_ctl",
           "_BinLogStreamReader__use_checksum", "_BinLogStreamReader__allowed_events",
           "_BinLogStreamReader__allowed_events_in_packet", "_BinLogStreamReader__only_tables",
           "_BinLogStreamReader__ignored_tables", "_BinLogStreamReader__only_schemas",
           "_BinLogStreamReader__ignored_schemas", "_BinLogStreamReader__freeze_schema",
           "_BinLogStreamReader__ignore_decode_errors", "_BinLogStreamReader__verify_checksum",
           "_BinLogStreamReader__optional_meta_data", "_BinLogStreamReader__enable_logging",
           "_BinLogStreamReader__use_column_name_cache", "_BinLogStreamReader__post_header_lengths")


class _Header:
    """What the library's events reach through ``event.packet`` besides the bytes: the event header.

    Stands in for BinLogPacketWrapper on the events built here (``event.packet.log_pos`` etc., used by
    ``dump()``/``to_dict()``); ``read_bytes`` is what the library's wrapper counts after the event's body.
    """

    __slots__ = ("timestamp", "event_type", "server_id", "event_size", "log_pos", "flags", "read_bytes",
                 "packet")

    def __init__(self, timestamp: int, event_type: int, server_id: int, event_size: int, log_pos: int,
                 flags: int, read_bytes: int, packet: Any) -> None:
        self.timestamp = timestamp
        self.event_type = event_type
        self.server_id = server_id
        self.event_size = event_size
        self.log_pos = log_pos
        self.flags = flags
        self.read_bytes = read_bytes
        self.packet = packet


def check_library() -> Optional[str]:
    """Why the fast path cannot be used with the installed mysql-replication, or None if it can."""
    probe = BinLogStreamReader.__new__(BinLogStreamReader)
    try:
        BinLogStreamReader.__init__(probe, connection_settings={}, server_id=1, enable_logging=False)
    except Exception as exc:  # noqa: BLE001
        return f"BinLogStreamReader() probe failed: {type(exc).__name__}: {exc}"
    missing = [name for name in _NEEDED if name not in probe.__dict__]
    if missing:
        return f"mysql-replication internals changed: no {', '.join(missing)}"
    if not isinstance(_EVENT_MAP, dict) or _EVENT_MAP.get(MARIADB_GTID_EVENT) is not MariadbGtidEvent:
        return "mysql-replication internals changed: BinLogPacketWrapper event map"
    return None


_LIBRARY_PROBLEM = check_library()
if _LIBRARY_PROBLEM:
    log.warning("binlog fast path disabled: %s", _LIBRARY_PROBLEM)


class _PyMySQLPackets:
    """PacketReader's interface over PyMySQL's own _read_packet (a connection PacketReader cannot read)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def read(self) -> Any:
        return self.conn._read_packet()

    def read_data(self) -> bytes:
        data: bytes = self.conn._read_packet()._data
        return data


class FastBinLogStreamReader(BinLogStreamReader):
    """BinLogStreamReader with a faster ``fetchone()``; same constructor, same events and positions."""

    # the library's private attributes this class assigns (mypy does not mangle names: it sees them as ours)
    _BinLogStreamReader__connected_stream: bool
    _BinLogStreamReader__post_header_lengths: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._fast = (_LIBRARY_PROBLEM is None
                      and not self._BinLogStreamReader__verify_checksum)  # type: ignore[attr-defined]
        self.fast_events = 0  # built here
        self.dropped_events = 0  # skipped without a wrapper or without an event
        self.library_events = 0  # through BinLogPacketWrapper
        self._packets: Any = None  # the stream connection's packet reader (_packet_reader)
        self.lean_events = False  # set below when fetchone(lean=True) can give tuples
        # fetchone(lean=True) hands a rows event's body to row_decoder.decode_lean (a RowDecoder) when
        # lean_rows_wanted(schema, table, columns) -- asked once per table map -- returned a handle (not None) and
        # lean_rows_paused is off (the caller pauses it where it would drop the rows undecoded: an echo)
        self.row_decoder: Any = None
        self.lean_rows_wanted: Optional[Callable[[str, str, Any], Any]] = None
        self.lean_rows_paused = False
        self.lean_rows = 0  # rows events returned as LEAN_ROWS tuples
        if not self._fast:
            return
        allowed = self._BinLogStreamReader__allowed_events  # type: ignore[attr-defined]
        in_packet = self._BinLogStreamReader__allowed_events_in_packet  # type: ignore[attr-defined]
        # event types built here (only when the reader returns that class at all)
        self._build = {t: c for t, c in ((MARIADB_GTID_EVENT, MariadbGtidEvent), (XID_EVENT, XidEvent),
                                         (HEARTBEAT_LOG_EVENT, HeartbeatLogEvent)) if c in allowed}
        self._rows_types = {t: v for t, v in _ROWS_TYPES.items() if v[0] in allowed}
        # table id -> (table, event type, the reader state they were made from, a rows event's attributes that
        # depend only on them): the same table map's next rows event skips the filters and _base (_rows)
        self._rows_consts: dict[int, tuple[Any, ...]] = {}
        # event types the library builds a wrapper for and then drops without looking at the event: not in
        # allowed_events_in_packet (so BinLogPacketWrapper returns before the body), and not ROTATE (whose
        # bookkeeping reads the event); unknown types map to NotImplementedEvent
        self._drop_unknown = NotImplementedEvent not in in_packet
        self._drop = frozenset(t for t, c in _EVENT_MAP.items() if c not in in_packet and t != ROTATE_EVENT)
        # parsed table maps by their bytes; with freeze_schema the outcome depends on the table map: no cache
        self._table_maps_on = not self._BinLogStreamReader__freeze_schema  # type: ignore[attr-defined]
        self._table_maps: dict[tuple[Any, ...], Any] = {}
        self._table_maps_format: tuple[Any, ...] = (None, None)
        # table id bytes -> (event size, packet size, use_checksum, post-header lengths, version, body, table id,
        # table, position after it) of the last map of that id registered from the cache (fetchone's shortcut)
        self._last_table_maps: dict[bytes, tuple[Any, ...]] = {}
        # BinlogSource does not ask for TableMapEvents: a cached one then only registers its table
        self._table_map_events = TableMapEvent in allowed
        # fetchone(lean=True) gives GTID and XID events as tuples (LEAN_GTID, LEAN_XID) when they are returned
        self.lean_events = True

    def fetchone(self, lean: bool = False) -> Any:
        """The next event, as the library's fetchone(); with ``lean`` (only when ``lean_events``) a GTID or XID
        event the reader returns comes as a tuple (LEAN_GTID, gtid, timestamp, flags) / (LEAN_XID, timestamp),
        after the same position bookkeeping and filters."""
        if not self._fast:
            return super().fetchone()  # type: ignore[no-untyped-call]
        build = self._build
        drop = self._drop
        rows_types = self._rows_types
        allowed = self._BinLogStreamReader__allowed_events  # type: ignore[attr-defined]
        while True:
            if self.end_log_pos and self.is_past_end_log_pos:
                return None

            if not self._BinLogStreamReader__connected_stream:
                self._BinLogStreamReader__connect_to_stream()  # type: ignore[attr-defined]

            if not self._BinLogStreamReader__connected_ctl:  # type: ignore[attr-defined]
                self._BinLogStreamReader__connect_to_ctl()  # type: ignore[attr-defined]

            # the packet's bytes; its MysqlPacket (pkt) only made for an event that reads it (not a lean GTID,
            # XID or rows event, nor a registered table map)
            pkt: Any = None
            try:
                if _bls.PYMYSQL_VERSION_LT_06:
                    pkt = self._stream_connection.read_packet()
                    data = pkt._data
                else:
                    packets = self._packets
                    if packets is None or packets.conn is not self._stream_connection:
                        packets = self._packet_reader()
                    data = packets.read_data()
            except pymysql.OperationalError as error:
                code, message = error.args
                if code in _EXPECTED_ERRORS:
                    self._stream_connection.close()
                    self._BinLogStreamReader__connected_stream = False
                    _bls.logger.warning(
                        """
                          A pymysql.OperationalError error occurred, Re-request the connection.
                        """,
                    )
                    continue
                raise

            first = data[0]
            size = len(data)
            if first == 0xFE and size < 9:  # pkt.is_eof_packet()
                self.close()  # type: ignore[no-untyped-call]
                return None
            if first != 0 or size < 7:  # not pkt.is_ok_packet()
                continue

            table_map_key = None
            if size >= 20 and (pkt is None or pkt._position == 0):
                timestamp, event_type, server_id, event_size, log_pos, flags = _HEADER(data, 1)
                event: Any = None
                cls = build.get(event_type)
                if cls is not None:
                    if lean and event_type == MARIADB_GTID_EVENT and size >= 33:  # what _make reads, no objects
                        seq_no, domain_id, gtid_flags = _GTID_BODY(data, 20)
                        event = (LEAN_GTID, f"{domain_id}-{server_id}-{seq_no}", timestamp, gtid_flags)
                    elif lean and event_type == XID_EVENT and size >= 28:
                        event = (LEAN_XID, timestamp)
                    else:
                        if pkt is None:
                            pkt = packet(data)
                        event = self._make(cls, pkt, data, size, timestamp, event_type, server_id, event_size,
                                           log_pos, flags)
                elif event_type in rows_types:
                    event = self._rows(rows_types[event_type], pkt, data, size, timestamp, event_type, server_id,
                                       event_size, log_pos, flags, lean)
                elif event_type == TABLE_MAP_EVENT:
                    if self._table_maps_on:
                        # the same bytes as this table id's last registered map (every transaction repeats it):
                        # what _table_map's cache hit does, without the call, the key or the bytes' hash
                        last = self._last_table_maps.get(data[20:26])
                        if (last is not None and last[0] == event_size and last[1] == size
                                and last[2] is self._BinLogStreamReader__use_checksum  # type: ignore[attr-defined]
                                and last[3] is self._BinLogStreamReader__post_header_lengths
                                and last[4] is self.mysql_version and data[20:20 + len(last[5])] == last[5]):
                            self.table_map[last[6]] = last[7]
                            event = _REGISTERED
                        else:
                            if pkt is None:
                                pkt = packet(data)
                            event, table_map_key = self._table_map(pkt, data, size, timestamp, event_type,
                                                                   server_id, event_size, log_pos, flags)
                elif event_type in drop or (self._drop_unknown and event_type not in _EVENT_MAP):
                    event = _DROPPED  # BinLogPacketWrapper stops after the header: no event
                if event is not None:
                    # the library's bookkeeping for an event that is not a Rotate or FormatDescription
                    if log_pos:
                        self.log_pos = log_pos
                    if self.end_log_pos and self.log_pos >= self.end_log_pos:
                        self.is_past_end_log_pos = True
                    if event is _DROPPED:
                        self.dropped_events += 1
                        continue
                    if event is _REGISTERED:  # counted as the library would, never returned
                        if not (self.skip_to_timestamp and timestamp < self.skip_to_timestamp):
                            self.fast_events += 1
                        continue
                    if self.skip_to_timestamp and timestamp < self.skip_to_timestamp:
                        continue
                    self.fast_events += 1
                    if event.__class__ not in allowed and event.__class__ is not tuple:  # a lean one is allowed
                        continue
                    return event

            event = self._library_event(packet(data) if pkt is None else pkt, allowed, table_map_key)
            if event is not None:
                return event

    def _packet_reader(self) -> Any:
        """The reader of the stream connection's packets: buffered (mypackets.py), or PyMySQL's own
        _read_packet on a connection it cannot read. A new one for each connection: a reconnect starts afresh."""
        conn = self._stream_connection
        packets: Any = PacketReader(conn) if usable(conn) else _PyMySQLPackets(conn)
        self._packets = packets
        return packets

    def _base(self, event: Any, packet: Any, event_type: int, timestamp: int, body: int) -> dict[str, Any]:
        """What BinLogEvent.__init__ sets (without checksum verification: the fast path is off with it)."""
        ctl = self._ctl_connection
        d: dict[str, Any] = event.__dict__
        d["packet"] = packet
        d["table_map"] = self.table_map
        d["event_type"] = event_type
        d["timestamp"] = timestamp
        d["event_size"] = body
        d["_post_header_lengths"] = self._BinLogStreamReader__post_header_lengths
        d["_ctl_connection"] = ctl
        d["mysql_version"] = self.mysql_version
        d["_ignore_decode_errors"] = self._BinLogStreamReader__ignore_decode_errors  # type: ignore[attr-defined]
        d["_verify_checksum"] = False
        d["_is_event_valid"] = None
        d["_processed"] = True
        d["complete"] = True
        d["dbms"] = self.dbms or ctl._get_dbms()
        return d

    def _make(self, cls: Any, pkt: Any, data: bytes, size: int, timestamp: int, event_type: int,
              server_id: int, event_size: int, log_pos: int, flags: int) -> Any:
        """The MariadbGtid/Xid/Heartbeat event the library would build, or None to let the library build it."""
        use_checksum = self._BinLogStreamReader__use_checksum  # type: ignore[attr-defined]
        body = event_size - 23 if use_checksum else event_size - 19
        if cls is MariadbGtidEvent:
            if size < 33:
                return None
            seq_no, domain_id, gtid_flags = _GTID_BODY(data, 20)
            state = {"server_id": server_id, "gtid_seq_no": seq_no, "domain_id": domain_id,
                     "flags": gtid_flags, "gtid": f"{domain_id}-{server_id}-{seq_no}"}
            read = 13
        elif cls is XidEvent:
            if size < 28:
                return None
            state = {"xid": _XID_BODY(data, 20)[0]}
            read = 8
        else:  # HeartbeatLogEvent: ident = packet.read(event_size).decode()
            if body < 0 or 20 + body > size:
                return None
            state = {"ident": data[20:20 + body].decode()}
            read = body
        event = cls.__new__(cls)
        header = _Header(timestamp, event_type, server_id, event_size, log_pos, flags, read, pkt)
        self._base(event, header, event_type, timestamp, body).update(state)
        pkt._position = 20 + read  # as far as the library's reads went
        return event

    def _rows(self, spec: tuple[Any, ...], pkt: Any, data: bytes, size: int, timestamp: int, event_type: int,
              server_id: int, event_size: int, log_pos: int, flags: int, lean: bool = False) -> Any:
        """RowsEvent.__init__ and its subclasses' up to the rows (left to ``event.rows`` or RowDecoder); with
        ``lean``, a LEAN_ROWS tuple instead when the row decoder takes the body (_lean_rows)."""
        cls, known, v2 = spec
        if size < 26:
            return None
        table_id = int.from_bytes(data[20:26], "little")
        table = self.table_map.get(table_id)
        if table is None:  # table map filtered out (or never seen)
            return _DROPPED
        ctl = self._ctl_connection
        lengths = self._BinLogStreamReader__post_header_lengths
        known_consts = self._rows_consts.get(table_id)
        # the same table object, event type and reader state (identities: a change only costs the long way)
        if (known_consts is not None and known_consts[0] is table and known_consts[1] == event_type
                and known_consts[2] is self.table_map and known_consts[3] is ctl and known_consts[4] is lengths
                and known_consts[5] is self.mysql_version and known_consts[6] is self.dbms):
            consts = known_consts[7]
            lean_to = known_consts[8]
        else:
            consts = self._rows_constants(table_id, table, cls, known, event_type)
            if consts is None:
                return None
            if consts is _DROPPED:
                return _DROPPED
            lean_to = self._rows_consts[table_id][8]
        use_checksum = self._BinLogStreamReader__use_checksum  # type: ignore[attr-defined]
        body = event_size - 23 if use_checksum else event_size - 19
        if v2:
            if size < 31:
                return None
            row_flags, extra = _ROWS_V2(data, 26)
            if extra > 2:  # extra data (NDB, partition): the library's code
                return None
            pos = 30
        else:
            if size < 29:
                return None
            row_flags = _ROWS_V1(data, 26)[0]
            pos = 28
        if body < pos - 20:  # _advance_to_payload raises MalformedBinLogEvent
            return None
        ncols = data[pos]
        if ncols >= 251:  # a longer length-coded number: the library's code
            return None
        pos += 1
        blen = (ncols + 7) // 8
        end = pos + (2 * blen if cls is UpdateRowsEvent else blen)
        if end > size or end - 20 > body:
            return None
        if lean and lean_to is not None and not self.lean_rows_paused and not self.skip_to_timestamp:
            dec = lean_to[1]
            if dec is None:
                # the table map's decoder, found (compiled) at its first event to decode, as decode() finds it:
                # not for rows dropped undecoded; False when decode() would not decode these rows at all
                dec = self.row_decoder.table_decoder(table_id, table, consts["_ignore_decode_errors"])
                lean_to[1] = dec = dec if dec is not None and len(table.columns) == dec.ncolumns else False
            # RowDecoder.decode's read of the body: the rest of the event after the bitmaps, checksum excluded
            stop = 20 + body
            if dec is not False and stop <= size:
                p = pos + blen
                decoded = self.row_decoder.decode_lean(
                    dec, _ROWS_KIND[cls], ncols, data[pos:p], data[p:end] if cls is UpdateRowsEvent else None,
                    data[end:stop])
                if decoded is not None:
                    if pkt is not None:
                        pkt._position = stop
                    self.lean_rows += 1
                    return (LEAN_ROWS, lean_to[0], cls, decoded[0], decoded[1])
        if lean and self.lean_rows_paused:
            # the caller drops this transaction's rows unread (an echo of our own writes): no event for it to
            # drop. A built event and its wrapper reference each other, a cycle only the collector frees, and it
            # holds the packet's bytes until then (crm_to_erp reads every row it wrote back as echoes)
            return _DROPPED
        # the wrapper the library would have made, at the same place (RowDecoder and event.rows read on)
        if pkt is None:
            pkt = packet(data)
        wrapper = BinLogPacketWrapper.__new__(BinLogPacketWrapper)
        wrapper.__dict__.update({
            "read_bytes": end - 20, "_BinLogPacketWrapper__data_buffer": b"", "packet": pkt,
            "charset": ctl.charset, "enable_logging": self._BinLogStreamReader__enable_logging,  # type: ignore
            "use_column_name_cache": self._BinLogStreamReader__use_column_name_cache,  # type: ignore
            "timestamp": timestamp, "event_type": event_type, "server_id": server_id, "event_size": event_size,
            "log_pos": log_pos, "flags": flags, "event": None,
        })
        event = cls.__new__(cls)
        d = event.__dict__
        d.update(consts)  # what _base and RowsEvent.__init__ set from the table and the reader
        d["packet"] = wrapper
        d["timestamp"] = timestamp
        d["event_size"] = body
        d["_RowsEvent__rows"] = None
        d["_RowsEvent__none_sources"] = {}
        d["table_id"] = table_id
        d["flags"] = row_flags
        if v2:
            d["extra_data_length"] = extra
        d["number_of_columns"] = ncols
        p = pos + blen
        d["columns_present_bitmap"] = data[pos:p]
        if cls is UpdateRowsEvent:
            d["columns_present_bitmap2"] = data[p:end]
        wrapper.__dict__["event"] = event
        pkt._position = end
        return event

    def _rows_constants(self, table_id: int, table: Any, cls: Any, known: int, event_type: int) -> Any:
        """A rows event's attributes that depend only on its table map and the reader's state (remembered by
        table id in _rows_consts), _DROPPED when the filters drop the table's rows, None when the post-header
        length is not the one the library knows (its own code then)."""
        name, schema = table.table, table.schema
        only_tables = self._BinLogStreamReader__only_tables  # type: ignore[attr-defined]
        ignored_tables = self._BinLogStreamReader__ignored_tables  # type: ignore[attr-defined]
        only_schemas = self._BinLogStreamReader__only_schemas  # type: ignore[attr-defined]
        ignored_schemas = self._BinLogStreamReader__ignored_schemas  # type: ignore[attr-defined]
        if only_tables is not None and name not in only_tables:
            return _DROPPED
        elif ignored_tables is not None and name in ignored_tables:
            return _DROPPED
        if only_schemas is not None and schema not in only_schemas:
            return _DROPPED
        elif ignored_schemas is not None and schema in ignored_schemas:
            return _DROPPED
        # _advance_to_payload(known): only the post-header length the library knows; else its own code
        declared = known
        lengths = self._BinLogStreamReader__post_header_lengths
        if lengths:
            index = event_type - 1
            if 0 <= index < len(lengths):
                declared = lengths[index]
        if declared != known:
            return None
        ctl = self._ctl_connection
        dbms = self.dbms
        holder = cls.__new__(cls)
        consts = self._base(holder, None, event_type, 0, 0)  # dbms: self.dbms, or asked of the server once
        del consts["packet"], consts["timestamp"], consts["event_size"]
        consts.update({
            "_RowsEvent__only_tables": only_tables, "_RowsEvent__ignored_tables": ignored_tables,
            "_RowsEvent__only_schemas": only_schemas, "_RowsEvent__ignored_schemas": ignored_schemas,
            "_RowsEvent__use_column_name_cache": self._BinLogStreamReader__use_column_name_cache,  # type: ignore
            "_RowsEvent__enable_logging": self._BinLogStreamReader__enable_logging,  # type: ignore
            "primary_key": table.__dict__["primary_key"],  # Table.data["primary_key"]
            "schema": schema, "table": name, "columns": table.columns,
        })
        if len(self._rows_consts) >= _TABLE_MAP_CACHE_SIZE:
            self._rows_consts.clear()
        # whether fetchone(lean=True) may hand this table's rows to the row decoder: [the caller's handle, the
        # decoder RowDecoder.decode would use -- None until _rows first needs it, False if there is none or it
        # has another column count than the table map], or None
        lean_to: Optional[list[Any]] = None
        if self.row_decoder is not None and self.lean_rows_wanted is not None:
            handle = self.lean_rows_wanted(schema, name, table.columns)
            if handle is not None:
                lean_to = [handle, None]
        # dbms as it was before _base (None then: the next event, with self.dbms set, makes them anew)
        self._rows_consts[table_id] = (
            table, event_type, self.table_map, ctl, lengths, self.mysql_version, dbms, consts, lean_to)
        return consts

    def _table_map(self, pkt: Any, data: bytes, size: int, timestamp: int, event_type: int, server_id: int,
                   event_size: int, log_pos: int, flags: int) -> tuple[Any, Optional[tuple[Any, ...]]]:
        """(a TableMapEvent parsed before from the same bytes -- _REGISTERED instead when the reader does not
        return TableMapEvents --, _DROPPED if it was filtered out, or None; the cache key when it was not
        cached)."""
        use_checksum = self._BinLogStreamReader__use_checksum  # type: ignore[attr-defined]
        body = event_size - 23 if use_checksum else event_size - 19
        if body < 0 or 20 + body > size:
            return None, None
        # the parse depends on the bytes, the bytes after them (the optional metadata loop stops 4 bytes before
        # the end of the packet), the format description and the reader's filters (constant)
        fmt = (self._BinLogStreamReader__post_header_lengths, self.mysql_version)
        if fmt[0] is not self._table_maps_format[0] or fmt[1] != self._table_maps_format[1]:
            self._table_maps.clear()
            self._table_maps_format = fmt
        key = (data[20:20 + body], size - 20 - body)
        hit = self._table_maps.get(key, _MISS)
        if hit is _MISS:
            return None, key
        if hit is None:
            self._forget_table_id(key[0])
            return _DROPPED, None
        state, read = hit
        if not self._table_map_events:
            # what TableMapEvent.__init__ leaves behind when nobody looks at the event: the table registered
            self.table_map[state["table_id"]] = state["table_obj"]
            pkt._position = 20 + read
            # fetchone's shortcut for the same bytes next time (by table id: a transaction may map several)
            if len(self._last_table_maps) >= _TABLE_MAP_CACHE_SIZE:
                self._last_table_maps.clear()
            self._last_table_maps[key[0][:6]] = (event_size, size, use_checksum, fmt[0], fmt[1], key[0],
                                                 state["table_id"], state["table_obj"], 20 + read)
            return _REGISTERED, None
        event = TableMapEvent.__new__(TableMapEvent)
        d = event.__dict__
        d.update(state)
        d["packet"] = _Header(timestamp, event_type, server_id, event_size, log_pos, flags, read, pkt)
        d["table_map"] = self.table_map
        d["_ctl_connection"] = self._ctl_connection
        d["timestamp"] = timestamp
        pkt._position = 20 + read
        # TableMapEvent.__init__ registers the table (the library's fetchone() again, unless skip_to_timestamp)
        self.table_map[d["table_id"]] = d["table_obj"]
        return event, None

    def _forget_table_id(self, body: bytes) -> None:
        """A table map for a table we do not read: forget what its id meant before. Table ids start over
        when the server restarts, and the library keeps its id -> table map across that (it only clears
        it on a rotate with a timestamp): rows of an unread table would be decoded as the old table's."""
        if len(body) >= 6:
            self.table_map.pop(int.from_bytes(body[:6], "little"), None)

    def _remember_table_map(self, key: tuple[Any, ...], pkt: Any, binlog_event: Any) -> None:
        event = binlog_event.event
        if event is None:  # filtered out by table or schema (freeze_schema is off): the bytes decide
            self._forget_table_id(key[0])
            value = None
        else:
            columns = event.columns
            meta = getattr(event, "optional_metadata", None)
            names = getattr(meta, "column_name_list", None)
            # names from the event itself only (not looked up in information_schema, which may change),
            # and nothing read past the event into the checksum
            if (not event.__dict__.get("_TableMapEvent__optional_meta_data") or not names
                    or len(names) != len(columns) or not all(c.name for c in columns)
                    or pkt._position > 20 + len(key[0]) or binlog_event.read_bytes != pkt._position - 20):
                return
            value = ({k: v for k, v in event.__dict__.items() if k not in _UNCACHED}, binlog_event.read_bytes)
        if len(self._table_maps) >= _TABLE_MAP_CACHE_SIZE:
            self._table_maps.clear()
        self._table_maps[key] = value

    def _library_event(self, pkt: Any, allowed: frozenset[Any], table_map_key: Optional[tuple[Any, ...]] = None) -> Any:
        """The library's fetchone() body after the packet was read: BinLogPacketWrapper and bookkeeping."""
        self.library_events += 1
        binlog_event: Any = BinLogPacketWrapper(
            pkt,
            self.table_map,
            self._ctl_connection,
            self.mysql_version,
            self._BinLogStreamReader__use_checksum,  # type: ignore[attr-defined]
            self._BinLogStreamReader__allowed_events_in_packet,  # type: ignore[attr-defined]
            self._BinLogStreamReader__only_tables,  # type: ignore[attr-defined]
            self._BinLogStreamReader__ignored_tables,  # type: ignore[attr-defined]
            self._BinLogStreamReader__only_schemas,  # type: ignore[attr-defined]
            self._BinLogStreamReader__ignored_schemas,  # type: ignore[attr-defined]
            self._BinLogStreamReader__freeze_schema,  # type: ignore[attr-defined]
            self._BinLogStreamReader__ignore_decode_errors,  # type: ignore[attr-defined]
            self._BinLogStreamReader__verify_checksum,  # type: ignore[attr-defined]
            self._BinLogStreamReader__optional_meta_data,  # type: ignore[attr-defined]
            self._BinLogStreamReader__enable_logging,  # type: ignore[attr-defined]
            self._BinLogStreamReader__use_column_name_cache,  # type: ignore[attr-defined]
            self._BinLogStreamReader__post_header_lengths,
        )
        if table_map_key is not None:
            self._remember_table_map(table_map_key, pkt, binlog_event)

        if binlog_event.event_type == ROTATE_EVENT:
            self.log_pos = binlog_event.event.position
            self.log_file = binlog_event.event.next_binlog
            # table ids are not persistent across a server restart, which always rotates (see the library)
            if binlog_event.timestamp != 0:
                self.table_map = {}
        elif binlog_event.log_pos:
            self.log_pos = binlog_event.log_pos

        if self.end_log_pos and self.log_pos >= self.end_log_pos:
            self.is_past_end_log_pos = True

        if binlog_event.event_type == FORMAT_DESCRIPTION_EVENT and binlog_event.event is not None:
            self.mysql_version = binlog_event.event.mysql_version
            self._BinLogStreamReader__post_header_lengths = binlog_event.event.post_header_len

        # after the table-map reset of a RotateEvent (see the library)
        if self.skip_to_timestamp and binlog_event.timestamp < self.skip_to_timestamp:
            return None

        if binlog_event.event_type == TABLE_MAP_EVENT and binlog_event.event is not None:
            self.table_map[binlog_event.event.table_id] = binlog_event.event.get_table()

        if binlog_event.event is None or binlog_event.event.__class__ not in allowed:
            return None
        return binlog_event.event
