"""The counterpart lookup of a crosswalk link: which target row a source row is paired with.

A pair lives in the crosswalk table of the database its flow wrote to: a pair this direction created
is in the target's crosswalk (`source_side` = our source); one the other direction created is in our
source's crosswalk, seen from the other side (`source_side` = our target, the keys swapped). The
stream (links.Linker), verify (verify.flow) and explain all look pairs up here, the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from replicator.codec import dumps_key, loads_key

# a read on one database: SQL whose "{crosswalk}" stands for that database's quoted crosswalk table
Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]

PROBE = 1000  # keys per IN (...) lookup


@dataclass(frozen=True)
class Pair:
    target_key: tuple[Any, ...]
    in_source: bool  # found in our source's crosswalk (created by the other direction)


class CrosswalkLookup:
    def __init__(self, target: Query, source: Query | None, source_side: str, target_side: str,
                 probe: int = PROBE):
        self.target = target
        self.source = source  # None: the other database is out of reach (only the target's pairs are found)
        self.source_side = source_side
        self.target_side = target_side
        self.probe = probe

    def pairs(self, mapping: str, source_keys: Sequence[tuple[Any, ...]]) -> dict[str, Pair]:
        """The pairs of `mapping` for these source rows, by the source key's text (codec.dumps_key)."""
        texts = sorted({dumps_key(k) for k in source_keys})
        found: dict[str, Pair] = {}
        for part in self._parts(texts):
            marks = ", ".join(["%s"] * len(part))
            for sk, tk in self.target(f"SELECT source_key, target_key FROM {{crosswalk}} WHERE mapping = %s "
                                      f"AND source_side = %s AND source_key IN ({marks})",
                                      [mapping, self.source_side, *part]):
                found[sk] = Pair(loads_key(tk), False)
        if self.source is None:
            return found
        for part in self._parts([t for t in texts if t not in found]):
            marks = ", ".join(["%s"] * len(part))
            for tk, sk in self.source(f"SELECT target_key, source_key FROM {{crosswalk}} WHERE mapping = %s "
                                      f"AND source_side = %s AND target_key IN ({marks})",
                                      [mapping, self.target_side, *part]):
                found.setdefault(tk, Pair(loads_key(sk), True))
        return found

    def pair(self, mapping: str, source_key: tuple[Any, ...]) -> Pair | None:
        return self.pairs(mapping, [source_key]).get(dumps_key(source_key))

    def _parts(self, texts: list[str]) -> list[list[str]]:
        return [texts[i:i + self.probe] for i in range(0, len(texts), self.probe)]
