"""Connections to both databases, shared by the sources, the appliers and the side jobs.

One place decides how a session is set up (UTC, strict SQL mode, the text formats the decoders
read, TLS, timeouts) and which connection errors are worth waiting out (retriable) and which are
not (configuration). Neither the sources nor the appliers own this: they both use it.
"""
from __future__ import annotations

from typing import Any

import psycopg2
import sqlalchemy
import pymysql
from pymysql.constants import CLIENT

from replicator.config import Account, Connection
from replicator.errors import ConfigError, RetriableError

SQL_MODE = "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"


def ssl_settings(conn: Connection) -> dict[str, Any] | None:
    """PyMySQL's `ssl` argument: verify the server against the configured CA (and its name)."""
    if not conn.ssl_ca:
        return None
    return {"ca": conn.ssl_ca, "check_hostname": conn.ssl_verify_identity}


# access denied, unknown database: waiting will not fix these
NOT_TRANSIENT_CODES = {1044, 1045, 1049, 1227, 1698}


def my_connect(conn: Connection, account: Account, *, database: str | None | bool = True, **extra: Any) -> Any:
    """A PyMySQL connection in UTC and strict SQL mode. `database=None` connects to no database."""
    params: dict[str, Any] = dict(
        host=conn.host, port=conn.port, user=account.user, password=account.password.value,
        database=conn.database if database is True else database, charset="utf8mb4", connect_timeout=10,
        read_timeout=3600, write_timeout=3600, autocommit=False, client_flag=CLIENT.FOUND_ROWS,
        ssl=ssl_settings(conn),
    )
    params.update(extra)
    try:
        db = pymysql.connect(**params)
    except pymysql.MySQLError as exc:
        where = f"{conn.host}:{conn.port} as {account.user}"
        if exc.args and exc.args[0] in NOT_TRANSIENT_CODES:
            raise ConfigError(f"cannot connect to {where}: {mysql_message(exc)}") from None
        raise RetriableError(f"cannot connect to {where}: {mysql_message(exc)}") from None
    with db.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00', SESSION sql_mode = %s", (SQL_MODE,))
    return db


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
        password=account.password.value, sslmode=conn.sslmode, connect_timeout=10,
        # the pgoutput decoder reads values as text in these formats
        options="-c timezone=UTC -c datestyle=ISO -c bytea_output=hex -c intervalstyle=iso_8601",
        client_encoding="UTF8", application_name="replicator",
        keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
    )
    if conn.sslrootcert:
        params["sslrootcert"] = conn.sslrootcert
    params.update(extra)
    try:
        return psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        text = str(exc).strip()
        where = f"{conn.host}:{conn.port}/{conn.database} as {account.user}"
        if any(m in text for m in _NOT_TRANSIENT):
            # a wrong password or a missing grant does not heal by waiting: say so and stop
            raise ConfigError(f"cannot connect to {where}: {text}") from None
        raise RetriableError(f"cannot connect to {where}: {text}") from None


_NOT_TRANSIENT = ("password authentication failed", "no pg_hba.conf entry", "does not exist",
                  "permission denied", "must be superuser or replication role")


def sql_engine(conn: Connection) -> sqlalchemy.Engine:
    """A SQLAlchemy engine on the apply account, for catalog reads (no pool: each use connects anew)."""
    if conn.kind == "postgresql":
        return sqlalchemy.create_engine("postgresql+psycopg2://", creator=lambda: pg_connect(conn, conn.apply),
                                        poolclass=sqlalchemy.pool.NullPool)
    return sqlalchemy.create_engine("mysql+pymysql://", creator=lambda: my_connect(conn, conn.apply),
                                    poolclass=sqlalchemy.pool.NullPool)
