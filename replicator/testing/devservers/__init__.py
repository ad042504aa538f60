"""Throwaway PostgreSQL and MariaDB servers for tests and the demo.

Each server owns a directory, listens on 127.0.0.1 on a free port and is configured for change data capture
(PostgreSQL ``wal_level=logical``; MariaDB ROW binlog with full row image and metadata). Settings can be
overridden, or removed with ``None``, to start deliberately misconfigured servers::

    with MariaDBServer(tmp, settings={"binlog_row_metadata": "MINIMAL"}) as maria:
        conn = maria.connect()

``python -m replicator.testing.devservers --dir D`` starts both servers, prints their connection details as one JSON
line and runs until SIGINT/SIGTERM.

Modules: ``processes`` (server programs, ports, process groups), ``server`` (the lifecycle both servers
share, ``Database``), ``postgres``, ``mariadb``, ``cli`` (the command above).
"""
from replicator.testing.devservers.cli import main
from replicator.testing.devservers.mariadb import MARIA_USER, MariaDBServer
from replicator.testing.devservers.postgres import PG_USER, PostgresServer
from replicator.testing.devservers.processes import (HOST, ServerError, faketime_env, faketime_library, free_port,
                                                     missing_binaries, postgres_bindir)
from replicator.testing.devservers.server import Database, Settings, SettingValue

__all__ = ["HOST", "MARIA_USER", "PG_USER", "Database", "MariaDBServer", "PostgresServer", "ServerError",
           "SettingValue", "Settings", "faketime_env", "faketime_library", "free_port", "main", "missing_binaries", "postgres_bindir"]
