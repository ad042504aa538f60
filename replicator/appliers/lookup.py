"""Read-only lookups in a direction's source database (the crosswalk pairs the opposite direction
created), used by the stream's linker and by verify's repair."""
from __future__ import annotations

from typing import Any

from replicator.appliers import make_applier
from replicator.changes import TableRef
from replicator.config import Connection


class SourceLookup:
    """Reads the source database's crosswalk (pairs the opposite direction created), autocommit."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._db: Any = None

    def query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if self._db is None:
            self._db = make_applier(self.conn, "lookup", "")
            self._db.connect()
        table = self._db.quote_table(TableRef(self.conn.state_schema, "crosswalk"))
        rows: list[tuple[Any, ...]] = self._db.query(sql.replace("{crosswalk}", table), params)
        self._db.rollback()  # read-only: end the snapshot so the next lookup sees new pairs
        return rows

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
