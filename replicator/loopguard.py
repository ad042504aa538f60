"""Loop prevention: how the applier tags its writes and how readers recognise them.

Each direction A_to_B writes into B; the reader of B (direction B_to_A) must drop those writes.

- PostgreSQL target: the applier's first statement in every transaction is
  `pg_logical_emit_message(true, 'replicator', '<stream>')`. No grants are needed, and pgoutput
  (with messages 'true') delivers the message at the start of the transaction, so the reader
  drops the transaction before buffering any of its rows.
- MariaDB target: the applier's first statement bumps `txn_seq` of its own row in the
  `<state_schema>.checkpoint` table (the value always changes, so a row event is always
  written). The binlog reader watches that table and drops the transaction at its first row
  event. Works with plain DML grants, no SUPER, and keeps the write in the binlog for replicas
  and point-in-time recovery (unlike sql_log_bin=0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

MESSAGE_PREFIX = "replicator"
# Sync watermarks are the other marker the daemon writes into a source's stream (replicator.sync
# explains them): a transactional logical message on PostgreSQL, a row of this table on MariaDB.
# The readers recognise them here, below both the sources and sync, so neither imports the other.
WATERMARK_TABLE = "watermark"
WATERMARK_PREFIX = "replicator.watermark"
CHECKPOINT_TABLE = "checkpoint"


def stream_name(source: str, target: str) -> str:
    """The name of one direction; also the checkpoint row's key in the target."""
    return f"{source}_to_{target}"


@dataclass(frozen=True)
class LoopGuard:
    """Recognises the tags written by the direction that targets this reader's database."""

    state_schema: str
    echo_stream: str  # the stream that writes into the database this reader captures

    def is_tag_message(self, prefix: str, content: bytes) -> bool:
        return prefix == MESSAGE_PREFIX and content.decode("utf-8", "replace") == self.echo_stream

    def is_tag_table(self, schema: str, table: str) -> bool:
        return schema == self.state_schema and table == CHECKPOINT_TABLE

    def is_tag_row(self, schema: str, table: str, row: Mapping[str, Any]) -> bool:
        return self.is_tag_table(schema, table) and row.get("stream") == self.echo_stream
