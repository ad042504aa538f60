"""How long MariaDB keeps the binlog file a checkpoint needs: the MariaDB twin of a slot's safe WAL.

MariaDB knows nothing of its readers: it purges a binlog file once the file's last write (the moment
it was closed by a rotation) is older than `binlog_expire_logs_seconds`, oldest first, at the next
rotation (or FLUSH BINARY LOGS, or a restart). So the checkpoint's file is safe for

    binlog_expire_logs_seconds - (now - the moment the file was closed)

and the current (open) file for at least the whole expiry period. SHOW BINARY LOGS has no times;
the moment a file was closed is the timestamp of the Format_description event that opens the next
one, read with a one-event, non-blocking binlog dump (server_id 0, like mysqlbinlog: it does not
take the place of the daemon's reader, whose server_id it does not use).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import FormatDescriptionEvent

from replicator.connect import my_connect, ssl_settings
from replicator.config import Connection
from replicator.errors import RetriableError

UNLIMITED = -1.0  # binlog_expire_logs_seconds = 0: files are never purged by age


@dataclass(frozen=True)
class BinlogRetention:
    """Where the checkpoint's binlog file stands against the server's expiry."""

    files: tuple[str, ...]  # SHOW BINARY LOGS, oldest first
    checkpoint_file: str
    expire_seconds: float  # binlog_expire_logs_seconds (0: never)
    closed_at: float | None  # Unix time the checkpoint's file was closed; None while it is the current file
    now: float

    @property
    def present(self) -> bool:
        return self.checkpoint_file in self.files

    @property
    def files_before(self) -> int:
        """Files older than the checkpoint's, purged before it."""
        return self.files.index(self.checkpoint_file) if self.present else 0

    @property
    def margin_seconds(self) -> float:
        """Seconds before the checkpoint's file may be purged; UNLIMITED when files never expire, 0 when
        it is already gone or due (purged at the next rotation)."""
        return margin_seconds(self.expire_seconds, self.closed_at, self.now, self.present)


def margin_seconds(expire_seconds: float, closed_at: float | None, now: float, present: bool = True) -> float:
    if not present:
        return 0.0
    if expire_seconds <= 0:
        return UNLIMITED
    if closed_at is None:
        return float(expire_seconds)  # still written to: the expiry clock has not started
    return max(0.0, expire_seconds - (now - closed_at))


def read_retention(conn: Connection, checkpoint_file: str, now: float | None = None) -> BinlogRetention:
    """Ask the server (the capture account: BINLOG MONITOR, REPLICATION SLAVE). RetriableError when it
    cannot be asked."""
    try:
        db = my_connect(conn, conn.capture, database=None)
    except pymysql.MySQLError as exc:
        raise RetriableError(f"{conn.host}:{conn.port}: {exc.args[-1]}") from None
    try:
        with db.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            files = tuple(row[0] for row in cur.fetchall())
            # the server expires files by its own clock, which stamped the file's close: its "now", not
            # ours, or a server clock ahead of the host's reads as a safer margin than there is
            cur.execute("SELECT @@global.binlog_expire_logs_seconds, UNIX_TIMESTAMP(NOW(6))")
            expire_value, server_now = cur.fetchone()
            expire = float(expire_value or 0)
    except pymysql.MySQLError as exc:
        raise RetriableError(f"SHOW BINARY LOGS on {conn.host}:{conn.port}: {exc.args[-1]}") from None
    finally:
        db.close()
    closed_at = None
    if checkpoint_file in files and files.index(checkpoint_file) + 1 < len(files):
        closed_at = _opened_at(conn, files[files.index(checkpoint_file) + 1])
    return BinlogRetention(files, checkpoint_file, expire, closed_at, float(server_now) if now is None else now)


def _opened_at(conn: Connection, name: str) -> float:
    """The Unix time binlog file `name` was opened (its Format_description event)."""
    settings: dict[str, Any] = {"host": conn.host, "port": conn.port, "user": conn.capture.user,
                                "passwd": conn.capture.password.value, "connect_timeout": 10, "read_timeout": 10}
    ssl = ssl_settings(conn)
    if ssl:
        settings["ssl"] = ssl
    stream = BinLogStreamReader(connection_settings=settings, server_id=0, resume_stream=True, log_file=name,
                                log_pos=4, blocking=False, only_events=[FormatDescriptionEvent])
    try:
        for event in stream:
            if event.timestamp:
                return float(event.timestamp)
    except (pymysql.MySQLError, OSError) as exc:
        raise RetriableError(f"cannot read the start of binlog {name} on {conn.host}:{conn.port}: "
                             f"{exc.args[-1] if exc.args else exc}") from None
    finally:
        stream.close()
    raise RetriableError(f"binlog {name} on {conn.host}:{conn.port} has no Format_description event")
