"""Appliers write mapped changes into a target database, with the tag and the checkpoint."""
from __future__ import annotations

from replicator.appliers.base import Applier
from replicator.config import Connection


def make_applier(conn: Connection, stream: str, echo_stream: str) -> Applier:
    """`echo_stream` is given by the daemon's stream alone: its session is the one whose state
    `replicator_connection_up{role="apply"}` reports."""
    applier: Applier
    if conn.kind == "postgresql":
        from replicator.appliers.postgres import PostgresApplier

        applier = PostgresApplier(conn, stream)
    else:
        from replicator.appliers.mariadb import MariaDBApplier

        applier = MariaDBApplier(conn, stream)
    applier.reports_up = bool(echo_stream)
    return applier
