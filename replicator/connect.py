"""Connections to both databases, shared by the sources, the appliers and the side jobs.

One place decides how a session is set up (UTC, strict SQL mode, the text formats the decoders
read, TLS, timeouts) and which connection errors are worth waiting out (retriable) and which are
not (configuration). Neither the sources nor the appliers own this: they both use it.
"""
from __future__ import annotations

import math
import os
import ssl
import threading
from typing import Any, Callable

import psycopg2
import psycopg2.extensions
import sqlalchemy
import pymysql
import pymysql.connections
from pymysql.constants import CLIENT

from replicator.config import Account, Connection
from replicator.errors import ConfigError, ReplicatorError, RetriableError

SQL_MODE = "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"


def ssl_settings(conn: Connection) -> dict[str, Any] | None:
    """PyMySQL's `ssl` argument: verify the server against the configured CA (and its name)."""
    if not conn.ssl_ca:
        return None
    return {"ca": conn.ssl_ca, "check_hostname": conn.ssl_verify_identity}


# ---------------------------------------------------------------- error classes
# What a driver error means for the daemon, decided by SQLSTATE (PostgreSQL) or errno (MariaDB),
# never by message text: a server with another lc_messages words every message differently.
CONNECTION = "connection"  # the session is gone or cannot be had now: reconnect, resume from the checkpoint
TIMEOUT = "timeout"  # a lock wait or a statement ran out of time: roll back, back off, retry
CONFLICT = "conflict"  # deadlock, serialization failure: roll back, retry
ACCESS = "access"  # credentials, privileges, unknown database: waiting will not fix it
MISSING = "missing"  # a table or other object does not exist
ROW = "row"  # the data of one row (types, constraints, a trigger's error): name table, key, column
OTHER = "other"
RETRIABLE = frozenset({CONNECTION, TIMEOUT, CONFLICT})

_PG_CODES = {
    "57P01": CONNECTION, "57P02": CONNECTION, "57P03": CONNECTION,  # admin/crash shutdown, cannot connect now
    "55P03": TIMEOUT,  # lock_not_available: lock_timeout
    "57014": TIMEOUT,  # query_canceled: statement_timeout (or a cancel request)
    "42501": ACCESS, "3D000": ACCESS,  # insufficient_privilege, invalid_catalog_name
    "42P01": MISSING, "42704": MISSING, "42883": MISSING,  # undefined table, object, function
}
_PG_CLASSES = {
    "08": CONNECTION, "53": CONNECTION,  # connection exception; insufficient resources (too many connections)
    "40": CONFLICT,  # transaction rollback: serialization failure, deadlock
    "28": ACCESS,  # invalid authorization
    "22": ROW, "23": ROW, "42": ROW, "44": ROW,  # data, integrity, syntax/undefined column, check option
    "P0": ROW, "XX": ROW,  # a trigger's RAISE; an internal error on a row's value
}
_MY_CODES = {
    1040: CONNECTION, 1041: CONNECTION, 1053: CONNECTION, 1077: CONNECTION, 1152: CONNECTION, 1153: CONNECTION,
    1158: CONNECTION, 1159: CONNECTION, 1160: CONNECTION, 1161: CONNECTION, 1184: CONNECTION, 1927: CONNECTION,
    4031: CONNECTION,  # too many connections, shutdown, aborted/killed connection, network errors, idle timeout
    1205: TIMEOUT,  # lock wait timeout (innodb_lock_wait_timeout)
    1969: TIMEOUT, 3024: TIMEOUT, 1317: TIMEOUT,  # max_statement_time (MariaDB, MySQL); query interrupted
    1213: CONFLICT, 1020: CONFLICT,  # deadlock; record changed since read
    1044: ACCESS, 1045: ACCESS, 1049: ACCESS, 1142: ACCESS, 1143: ACCESS, 1227: ACCESS, 1370: ACCESS, 1698: ACCESS,
    1146: MISSING,  # no such table
}


def pg_error_class(exc: BaseException) -> str:
    """The class of a psycopg2 error by its SQLSTATE; errors without one (libpq could not connect,
    the socket broke, the connection is closed) by exception class."""
    code = getattr(exc, "pgcode", None)
    if code:
        found = _PG_CODES.get(code) or _PG_CLASSES.get(code[:2])
        if found:
            return found
        # an SQLSTATE we do not list: psycopg2's own grouping (OperationalError holds the server's
        # operator-intervention, resource and system classes, which a retry may cure)
        return CONNECTION if isinstance(exc, psycopg2.OperationalError) else OTHER
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return CONNECTION
    return OTHER


def my_error_class(exc: BaseException) -> str:
    """The class of a PyMySQL error by its errno: client errors (2000-2999) and errors without a
    number are a lost connection."""
    if isinstance(exc, (pymysql.InterfaceError, ConnectionError, TimeoutError)):
        return CONNECTION
    if not isinstance(exc, pymysql.MySQLError):
        return OTHER
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code is None or 2000 <= code < 3000:
        return CONNECTION
    found = _MY_CODES.get(code)
    if found:
        return found
    if isinstance(exc, (pymysql.DataError, pymysql.IntegrityError, pymysql.ProgrammingError,
                        pymysql.OperationalError, pymysql.InternalError, pymysql.NotSupportedError)):
        return ROW  # a server error about the statement's data (1048, 1062, 1264, 1292, 1366, 1406, 4025, ...)
    return OTHER


def error_class(kind: str, exc: BaseException) -> str:
    """One entry point for both databases (`kind` is a Connection's kind)."""
    return pg_error_class(exc) if kind == "postgresql" else my_error_class(exc)


def missing_state_table(conn: Connection, table: str, exc: BaseException) -> ConfigError | None:
    """A state table that an installation set up by an older version lacks (SQLSTATE 42P01, errno 1146):
    say what to run instead of the driver's error; None for any other error."""
    if error_class(conn.kind, exc) != MISSING:
        return None
    return ConfigError(f"{conn.state_schema}.{table} is missing in {conn.describe()}: run `replicator setup` "
                       f"(it adds the tables a newer version needs and keeps everything else)")


# ---------------------------------------------------------------- sessions


def my_connect(conn: Connection, account: Account, *, database: str | None | bool = True, **extra: Any) -> Any:
    """A PyMySQL connection in UTC and strict SQL mode. `database=None` connects to no database."""
    params: dict[str, Any] = dict(
        host=conn.host, port=conn.port, user=account.user, password=account.password.value,
        database=conn.database if database is True else database, charset="utf8mb4",
        # a blackholed server (connection open, no bytes) is given up after the network timeout
        connect_timeout=math.ceil(conn.timeouts.connect_seconds), read_timeout=math.ceil(conn.timeouts.network_seconds),
        write_timeout=math.ceil(conn.timeouts.network_seconds), autocommit=False, client_flag=CLIENT.FOUND_ROWS,
        ssl=ssl_settings(conn),
    )
    params.update(extra)
    try:
        db = MyConnection(**params)
    except pymysql.MySQLError as exc:
        where = f"{conn.host}:{conn.port} as {account.user}"
        if my_error_class(exc) == ACCESS:
            raise ConfigError(f"cannot connect to {where}: {mysql_message(exc)}") from None
        raise RetriableError(f"cannot connect to {where}: {mysql_message(exc)}") from None
    with db.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00', SESSION sql_mode = %s", (SQL_MODE,))
    return db


_SslKey = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, int, int, int], ...]]
_SSL_CONTEXTS: dict[_SslKey, ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()


def _ssl_key(sslp: dict[str, Any]) -> _SslKey | None:
    """What a PyMySQL TLS context is built from: the settings and the state of the files they name (a
    rotated CA or certificate makes a new key, so the next connection loads it). None: a file cannot be
    read; PyMySQL then builds (and fails) as it always did."""
    files = []
    for name in ("ca", "capath", "cert", "key"):
        path = sslp.get(name)
        if path:
            try:
                st = os.stat(path)
            except OSError:
                return None
            files.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(sorted((k, repr(v)) for k, v in sslp.items())), tuple(files)


def shared_ssl_context(sslp: Any, build: Callable[[Any], ssl.SSLContext]) -> ssl.SSLContext:
    """PyMySQL builds a TLS context for every connection, also without TLS settings (its PREFERRED mode:
    `create_default_context()`, which loads the system's CA store -- ~20 ms of CPU per connection, and
    start-up makes dozens). A context may serve any number of connections (ssl docs), so equal settings
    share the one built first; it is the very object `build` returned, so verification is unchanged."""
    if isinstance(sslp, ssl.SSLContext):
        return sslp
    key = _ssl_key(sslp) if isinstance(sslp, dict) else None
    if key is None:
        return build(sslp)
    with _SSL_LOCK:
        ctx = _SSL_CONTEXTS.get(key)
        if ctx is None:
            if len(_SSL_CONTEXTS) > 64:  # files rotated many times: forget the old ones
                _SSL_CONTEXTS.clear()
            ctx = _SSL_CONTEXTS[key] = build(sslp)
        return ctx


class MyConnection(pymysql.connections.Connection):
    """PyMySQL's connection with its TLS context shared between connections of equal settings, and a gate told
    around each statement's round trip (`gate.lend()` before, `gate.reclaim()` after: the stream's channel lets
    the reader decode while the applier waits on the server; appliers/base.IoGate)."""

    gate: Any = None

    def query(self, sql: Any, unbuffered: bool = False) -> int:
        gate = self.gate
        if gate is None:
            return int(super().query(sql, unbuffered))
        gate.lend()
        try:
            return int(super().query(sql, unbuffered))
        finally:
            gate.reclaim()

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        # a private method of PyMySQL (2.x): were it renamed, this override would go unused, not wrong
        return shared_ssl_context(sslp, super()._create_ssl_ctx)  # type: ignore[misc]


def mysql_message(exc: BaseException) -> str:
    """A PyMySQL error as `(errno) text`."""
    args: tuple[Any, ...] = getattr(exc, "args", ())
    if len(args) == 2:
        return f"({args[0]}) {args[1]}"
    return str(exc)


def pg_connect(conn: Connection, account: Account, **extra: Any) -> Any:
    """A psycopg2 connection pinned to UTC; errors never show the password."""
    params: dict[str, Any] = dict(
        host=conn.host, port=conn.port, dbname=conn.database, user=account.user,
        password=account.password.value, sslmode=conn.sslmode, connect_timeout=math.ceil(conn.timeouts.connect_seconds),
        # the pgoutput decoder reads values as text in these formats
        options="-c timezone=UTC -c datestyle=ISO -c bytea_output=hex -c intervalstyle=iso_8601",
        client_encoding="UTF8", application_name="replicator",
        keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        # unacknowledged writes (a blackholed server) fail after the network timeout; keepalives
        # cover an idle socket
        tcp_user_timeout=int(conn.timeouts.network_seconds * 1000),
    )
    if conn.sslrootcert:
        params["sslrootcert"] = conn.sslrootcert
    params.update(extra)
    try:
        return psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        text = str(exc).strip()
        where = f"{conn.host}:{conn.port}/{conn.database} as {account.user}"
        if pg_error_class(exc) == ACCESS or _refused_in_english(exc, text):
            # a wrong password or a missing grant does not heal by waiting: say so and stop
            raise ConfigError(f"cannot connect to {where}: {text}") from None
        raise RetriableError(f"cannot connect to {where}: {text}") from None


# psycopg2 gives a failed connection attempt no SQLSTATE (libpq's PQerrorMessage only), so a
# refused login cannot be told from an unreachable server by code. These English texts are a
# hint on top, never the only rule: in another lc_messages a refused login is retried with
# back-off (logged each time with the server's own words) instead of stopping at once, and
# `replicator check` reports it before the daemon starts.
_REFUSED_EN = ("password authentication failed", "no pg_hba.conf entry", "does not exist",
               "permission denied", "must be superuser or replication role")


def _refused_in_english(exc: BaseException, text: str) -> bool:
    return getattr(exc, "pgcode", None) is None and any(m in text for m in _REFUSED_EN)


def driver_error(conn: Connection, exc: BaseException, doing: str) -> ReplicatorError:
    """A driver error met while `doing` (psycopg2's, PyMySQL's, or SQLAlchemy's wrapper of either) as the daemon's
    own error, to raise `from None`: RetriableError when waiting may cure it (the connection was lost, the server is
    shutting down, a lock wait ran out), a plain ReplicatorError otherwise. Either names the server and keeps the
    server's own words; neither is a traceback."""
    orig = getattr(exc, "orig", None) or exc  # sqlalchemy.exc.DBAPIError wraps the driver's exception
    text = str(orig).strip() if conn.kind == "postgresql" else mysql_message(orig)
    kind = error_class(conn.kind, orig)
    error = RetriableError if kind in RETRIABLE else ReplicatorError
    return error(f"{doing} {conn.describe()}: {kind}: {text}")


DRIVER_ERRORS: tuple[type[BaseException], ...] = (psycopg2.Error, pymysql.MySQLError, sqlalchemy.exc.DBAPIError)


def sql_engine(conn: Connection) -> sqlalchemy.Engine:
    """A SQLAlchemy engine on the apply account, for catalog reads by one thread, closed by `dispose()`.
    It holds one connection for its life (StaticPool): an Inspector connects for every table and question
    it asks, and a connection per question made start-up's preflight dozens of logins. Each use still
    starts a fresh transaction (the pool rolls back when a use ends)."""
    if conn.kind == "postgresql":
        engine = sqlalchemy.create_engine("postgresql+psycopg2://", creator=lambda: pg_connect(conn, conn.apply),
                                          poolclass=sqlalchemy.pool.StaticPool)
    else:
        engine = sqlalchemy.create_engine("mysql+pymysql://", creator=lambda: my_connect(conn, conn.apply),
                                          poolclass=sqlalchemy.pool.StaticPool)

    def retriable(ctx: Any) -> None:
        # a server that goes away in the middle of a catalog read (a restart while `run` starts) is waited for,
        # as one that cannot be reached at all: not a traceback, not a stop (SQLAlchemy re-raises what this raises)
        if error_class(conn.kind, ctx.original_exception) in RETRIABLE:
            raise driver_error(conn, ctx.original_exception, "reading the catalog of") from None

    sqlalchemy.event.listen(engine, "handle_error", retriable)
    return engine
