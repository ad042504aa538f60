"""mapping/crosswalk: the one counterpart lookup of crosswalk links (fake databases, no servers)."""
from __future__ import annotations

from typing import Any

from replicator.codec import dumps_key
from replicator.mapping.crosswalk import CrosswalkLookup, Pair


class FakeCrosswalk:
    """A crosswalk table: rows (mapping, source_side, source_key, target_key); answers the lookup's two
    queries and records them."""

    def __init__(self, table: str, rows: list[tuple[str, str, tuple[Any, ...], tuple[Any, ...]]]):
        self.table = table
        self.rows = [(m, s, dumps_key(sk), dumps_key(tk)) for m, s, sk, tk in rows]
        self.statements: list[tuple[str, list[Any]]] = []

    def query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        sql = sql.replace("{crosswalk}", self.table)
        self.statements.append((sql, params))
        mapping, side, *keys = params
        if "source_key IN" in sql:
            return [(sk, tk) for m, s, sk, tk in self.rows if m == mapping and s == side and sk in keys]
        return [(tk, sk) for m, s, sk, tk in self.rows if m == mapping and s == side and tk in keys]


def test_a_pair_this_direction_made_is_found_in_the_target() -> None:
    target = FakeCrosswalk("erp.crosswalk", [("customers", "crm", (1,), ("C-1",))])
    source = FakeCrosswalk("crm.crosswalk", [])
    lookup = CrosswalkLookup(target.query, source.query, "crm", "erp")
    assert lookup.pair("customers", (1,)) == Pair(("C-1",), in_source=False)
    assert len(source.statements) == 0, "found in the target: the source is not asked"


def test_a_pair_the_other_direction_made_is_found_in_the_source_with_the_keys_swapped() -> None:
    target = FakeCrosswalk("erp.crosswalk", [])
    source = FakeCrosswalk("crm.crosswalk", [("customers", "erp", ("C-2",), (2,))])
    lookup = CrosswalkLookup(target.query, source.query, "crm", "erp")
    assert lookup.pair("customers", (2,)) == Pair(("C-2",), in_source=True)
    assert lookup.pair("customers", (3,)) is None
    assert lookup.pair("orders", (2,)) is None  # another mapping's pair is not this one's


def test_many_keys_are_looked_up_in_parts_and_only_the_missing_ones_in_the_source() -> None:
    target = FakeCrosswalk("t", [("m", "crm", (k,), (f"T{k}",)) for k in range(0, 10, 2)])
    source = FakeCrosswalk("s", [("m", "erp", (f"S{k}",), (k,)) for k in range(1, 10, 2)])
    lookup = CrosswalkLookup(target.query, source.query, "crm", "erp", probe=3)
    found = lookup.pairs("m", [(k,) for k in range(12)])
    assert {t: p.target_key for t, p in found.items()} == {
        dumps_key((k,)): ((f"T{k}",) if k % 2 == 0 else (f"S{k}",)) for k in range(10)}
    assert len(target.statements) == 4  # 12 keys, 3 at a time
    assert len(source.statements) == 3  # the 7 not found in the target
    assert all(len(params) <= 2 + 3 for _, params in target.statements + source.statements)


def test_without_the_source_database_only_the_targets_pairs_are_found() -> None:
    target = FakeCrosswalk("t", [("m", "crm", (1,), (10,))])
    lookup = CrosswalkLookup(target.query, None, "crm", "erp")
    assert set(lookup.pairs("m", [(1,), (2,)])) == {dumps_key((1,))}
