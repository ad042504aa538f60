"""Appliers write mapped changes into a target database, with the tag and the checkpoint."""
from __future__ import annotations

from replicator.appliers.base import Applier
from replicator.config import Connection


def make_applier(conn: Connection, stream: str, echo_stream: str) -> Applier:
    if conn.kind == "postgresql":
        from replicator.appliers.postgres import PostgresApplier

        return PostgresApplier(conn, stream)
    from replicator.appliers.mariadb import MariaDBApplier

    return MariaDBApplier(conn, stream)
