"""sources/tablescan.KeyCursor: the one keyed snapshot reader of sync and verify (a fake scanner)."""
from __future__ import annotations

from typing import Any

from replicator.sources.tablescan import KeyCursor


class FakeScanner:
    def __init__(self, ids: list[int]):
        self.ids = ids
        self.calls: list[tuple[Any, int]] = []

    def chunk(self, after: tuple[Any, ...] | None, limit: int) -> list[dict[str, Any]]:
        self.calls.append((after, limit))
        return [{"id": i} for i in self.ids if after is None or (i,) > after][:limit]

    def key_of(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return (row["id"],)


def test_chunks_follow_each_other_by_key_and_a_short_one_ends_the_table() -> None:
    scanner = FakeScanner([1, 2, 3, 4, 5])
    cursor = KeyCursor(scanner, 2)  # type: ignore[arg-type]
    assert [r["id"] for r in cursor.next()] == [1, 2] and not cursor.done and cursor.after == (2,)
    assert [r["id"] for r in cursor.next()] == [3, 4]
    assert [r["id"] for r in cursor.next()] == [5] and cursor.done and cursor.after == (5,)
    assert cursor.next() == [] and len(scanner.calls) == 3  # done: the table is not asked again


def test_an_exact_multiple_ends_with_an_empty_chunk_that_keeps_the_last_key() -> None:
    cursor = KeyCursor(FakeScanner([1, 2]), 2)  # type: ignore[arg-type]
    cursor.next()
    assert cursor.next() == [] and cursor.done and cursor.after == (2,)


def test_a_resumed_read_starts_after_the_saved_key() -> None:
    scanner = FakeScanner([1, 2, 3, 4])
    cursor = KeyCursor(scanner, 10, after=(2,))  # type: ignore[arg-type]
    assert [r["id"] for r in cursor.next()] == [3, 4] and scanner.calls == [((2,), 10)]
