"""A run of two-hop fold changes applied together (`FoldApplier.through_all`): each parent read and written once,
the reads of many parents in one query, and the parents' own queries again when the server's comparison, not
Python's, decides which rows are whose (a case-insensitive collation). Real servers: the differential test
tests/integration/test_folds_via_coalesce.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from replicator.changes import Op, RowChange, TableRef
from replicator.config import Config
from replicator.mapping.folds import FoldApplier
from replicator.mapping.model import MappingSet, load_mappings
from replicator.mapping.router import LinkedChange, Ref, route

from tests.unit.test_folds import FakeTarget
from tests.unit.test_mapping import make_config

LINK = TableRef("public", "entity_email_address")
EMAIL = TableRef("public", "email_address")
PARTY = TableRef("erpdb", "party")
MAPS = """\
mappings:
  contacts:
    direction: crm_to_erp
    crm: {table: contact, key: [id]}
    erp: {table: party, key: [id]}
    link: {crosswalk: true}
    fields: {first_name: {erp: name}}
  contact_email:
    direction: crm_to_erp
    crm: {table: email_address, key: [id], slice: {deleted: 0}}
    erp: {table: party, key: [id]}
    fold:
      parent: contacts
      child: crm
      via: {table: entity_email_address, key: [id], by: entity_id, to: email_address_id, slice: {primary: 1}}
      value: name
      into: email
"""


@pytest.fixture
def mset(tmp_path: Path) -> MappingSet:
    (tmp_path / "maps").mkdir()
    config: Config = make_config(tmp_path)
    (config.mappings_dir / "m.yaml").write_text(MAPS, encoding="utf-8")
    return load_mappings(config)


class Source:
    """Link rows (id, entity_id, email_address_id, primary) and addresses; `fold` compares parent keys as a
    case-insensitive collation would (MariaDB's default), returning the stored spelling."""

    def __init__(self, links: list[tuple[Any, ...]], emails: dict[str, str], fold: bool = False) -> None:
        self.links, self.emails, self.fold = links, emails, fold
        self.queries: list[tuple[str, list[Any]]] = []

    def query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        self.queries.append((sql, params))
        norm = (lambda v: v.lower()) if self.fold else (lambda v: v)
        if sql.startswith("SELECT DISTINCT"):  # the parents linked to a far row
            return sorted({(r[1],) for r in self.links if r[2] == params[0] and r[3] == 1})
        asked = {norm(p) for p in params[:-2]}  # then the slices' values (primary, deleted)
        return [(r[1], r[0], r[2], self.emails[r[2]]) for r in sorted(self.links, key=lambda r: (r[1], r[0]))
                if norm(r[1]) in asked and r[3] == 1]


def _changes(mset: MappingSet, links: list[tuple[Any, ...]], flipped: list[tuple[Any, ...]]) -> list[LinkedChange]:
    out: list[LinkedChange] = []
    for old, new in zip(links, flipped):
        b, a = (dict(zip(("id", "entity_id", "email_address_id", "primary", "deleted"), (*r, 0))) for r in (old, new))
        out += route(mset, "crm", RowChange(LINK, Op.UPDATE, b, a))  # type: ignore[arg-type]
    return out


def _applier(source: Source, target: FakeTarget, pairs: dict[Any, Any]) -> tuple[FoldApplier, list[Any]]:
    parked: list[Any] = []
    fa = FoldApplier(target, "crm_to_erp", lambda ref: pairs.get(ref.value),  # type: ignore[arg-type]
                     lambda lc, ref: parked.append((lc.source_key, ref)), source.query, "mariadb")
    return fa, parked


def test_each_parent_is_read_and_written_once(mset: MappingSet) -> None:
    # three contacts with two link rows each; the primary flag flips on all six in one statement
    before = [(i, f"c{i // 2}", f"e{i}", 1 - i % 2) for i in range(6)]
    after = [(i, c, e, 1 - p) for i, c, e, p in before]
    source = Source(after, {f"e{i}": f"{i}@x.de" for i in range(6)})
    target = FakeTarget()
    target.rows[PARTY] = [{"id": 10 + n, "email": None} for n in range(3)]
    writes: list[Any] = []
    update = target.update_by_key
    target.update_by_key = lambda *a: writes.append(a[2]) or update(*a)  # type: ignore[method-assign]
    changes = _changes(mset, before, after)
    assert len(changes) == 6
    fa, parked = _applier(source, target, {"c0": 10, "c1": 11, "c2": 12})
    fa.through_all(changes)
    assert [r["email"] for r in target.rows[PARTY]] == ["1@x.de", "3@x.de", "5@x.de"]
    assert sorted(writes) == [(10,), (11,), (12,)] and parked == []
    assert len(source.queries) == 1 and "IN (%s, %s, %s)" in source.queries[0][0], source.queries
    # one by one: the same rows, two reads and two writes a contact
    target.rows[PARTY] = [{"id": 10 + n, "email": None} for n in range(3)]
    writes.clear()
    for lc in changes:
        fa.apply(lc)
    assert [r["email"] for r in target.rows[PARTY]] == ["1@x.de", "3@x.de", "5@x.de"] and len(writes) == 6
    # a contact without a counterpart parks once, with the last change that concerns it
    fa, parked = _applier(source, target, {"c0": 10, "c1": 11})
    fa.through_all(changes)
    assert parked == [((5,), Ref("contacts", "c2"))]


def test_a_row_under_another_spelling_of_the_parent_is_read_per_parent(mset: MappingSet) -> None:
    """A link row stored as 'C1' matches the parent 'c1' on a case-insensitive collation: read together, the
    rows could not be told apart by Python's comparison, so each parent is read with its own query."""
    before = [(0, "c0", "e0", 0), (1, "c1", "e1", 0)]
    after = [(0, "c0", "e0", 1), (1, "c1", "e1", 1)]
    stored = [(0, "c0", "e0", 1), (1, "C1", "e1", 1)]
    source = Source(stored, {"e0": "a@x.de", "e1": "b@x.de"}, fold=True)
    target = FakeTarget()
    target.rows[PARTY] = [{"id": 10, "email": None}, {"id": 11, "email": None}]
    fa, _ = _applier(source, target, {"c0": 10, "c1": 11})
    fa.through_all(_changes(mset, before, after))
    assert [r["email"] for r in target.rows[PARTY]] == ["a@x.de", "b@x.de"]
    assert ["IN (" in sql for sql, _ in source.queries] == [True, False, False], source.queries


# Into another fold's child row (EspoCRM's e-mail -> Tryton's party_contact_mechanism of type email): not built, so
# refused where the mapping asks for it, with the workaround (docs/mappings.md, "Into a child row")
MECHANISM = "erp: {table: party_contact_mechanism, key: [id], slice: {type: email}, generate: {id: default}}"
OTHER_FOLD = """\
  mechanism_email:
    direction: both
    crm: {table: address, key: [id], slice: {kind: email}, generate: {id: uuid}}
    erp: {table: party, key: [id]}
    fold: {parent: contacts, child: crm, by: owner_id, value: value, into: email2}
"""


@pytest.mark.parametrize("text, where", [
    (MAPS.replace("erp: {table: party, key: [id]}\n    fold:", MECHANISM + "\n    fold:"),
     "m.yaml:11: mappings.contact_email.erp.slice: a fold through `via` writes a column of the parent's own row"),
    (MAPS.replace("erp: {table: party, key: [id]}\n    fold:", "erp: {table: party_contact_mechanism, key: [id]}\n"
                  "    fold:"), "m.yaml:9: mappings.contact_email: contact_email.erp: the parent's table on erp is"),
    (MAPS.replace("      parent: contacts\n      child: crm\n      via", "      parent: mechanism_email\n      child: "
                  "crm\n      via") + OTHER_FOLD, "m.yaml:9: mappings.contact_email: fold.parent: 'mechanism_email' is "
                                              "a fold: a two-hop fold writes a column of the parent's own row"),
])
def test_a_two_hop_fold_into_a_child_row_is_refused_with_the_workaround(tmp_path: Path, text: str, where: str) -> None:
    from replicator.errors import ConfigError

    (tmp_path / "maps").mkdir()
    config = make_config(tmp_path)
    (config.mappings_dir / "m.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_mappings(config)
    msg = str(info.value)
    assert where in msg and "(fix: carry the value into a column of the parent's own table" in msg \
        and '"Into a child row"' in msg, msg
