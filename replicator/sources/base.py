"""The contract every change stream keeps with the stream (replicator.stream.pipeline).

A source is read by one reader thread (`messages`) and steered by the apply thread (`ack`,
`keep_echoes`) and, on shutdown, by any thread (`stop`). It yields, in commit order, `Transaction`s
(a large one cut into chunks sharing `txid`, only the last `final`) and `Keepalive`s between
transactions. Echo transactions (our own writes, recognised by the loop guard) come through with
`echo=True` and no rows, unless `keep_echoes` asks for their rows (a sync is running).
"""
from __future__ import annotations

from typing import Iterator, Protocol

from replicator.changes import Position, SourceMessage


class Source(Protocol):
    # set by the apply thread; read by the reader once per transaction, at its start, so that an
    # echo transaction is kept whole or dropped whole
    keep_echoes: bool

    @property
    def safe_position(self) -> Position | None:
        """Where a stopping stream may record it resumes (everything before was handed over and held
        nothing for us), or None when the source has no such idle position."""

    def transactions(self) -> Iterator[SourceMessage]:
        """The messages from the start position on; raises RetriableError, SourceLostError, FatalError
        or DecodeError. Returns quietly after `stop`."""

    def ack(self, position: Position) -> None:
        """The target committed everything up to `position` (called by the apply thread)."""

    def stop(self) -> None:
        """Stop reading soon; safe from any thread."""
