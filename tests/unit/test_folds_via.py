"""`fold:` through a link table (`via:`, two hops): EspoCRM's entity_email_address -> email_address.name, SuiteCRM's
email_addr_bean_rel -> email_addresses.email_address, carried into the ERP parent's column. Parsing and the
load-time errors, routing of link and far rows, the applier's reads against a fake source, check and explain."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from replicator.changes import Op, RowChange, TableRef
from replicator.config import Config
from replicator.errors import RowError
from replicator.mapping.folds import FAR, PARENT, FoldApplier
from replicator.mapping.model import MappingSet, load_mappings
from replicator.mapping.router import LinkedChange, Ref, route

from tests.unit.test_folds import FakeTarget
from tests.unit import mapsets
from tests.unit.mapsets import config, load  # noqa: F401 (config: the fixture)

LINK = TableRef("public", "entity_email_address")  # crm: id, entity_id, entity_type, email_address_id, primary, deleted
EMAIL = TableRef("public", "email_address")  # crm: id, name, lower, deleted
CONTACT = TableRef("public", "contact")  # crm: id, first_name
PARTY = TableRef("erpdb", "party")  # erp: id, name, email

MAPS = """\
mappings:
  contacts:
    direction: both
    crm: {table: contact, key: [id], generate: {id: uuid}}
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
      via: {table: entity_email_address, key: [id], by: entity_id, to: email_address_id,
            slice: {entity_type: Contact, primary: 1, deleted: 0}}
      value: name
      into: email
"""


def error(config: Config, text: str) -> str:
    assert text != MAPS
    return mapsets.error(config, text)


def test_a_two_hop_fold_reads_the_link_table_and_the_far_table(config: Config) -> None:
    m = load(config, MAPS).by_name["contact_email"]
    link, far = m.flows  # the link table's flow first: `sync` copies the link rows
    assert (link.source.table, far.source.table) == (LINK, EMAIL)
    assert {f.stream for f in m.flows} == {"crm_to_erp"} and link.target.table == far.target.table == PARTY
    assert link.source.key == ("id",) and link.source.slice == (("entity_type", "Contact"), ("primary", 1),
                                                                 ("deleted", 0))
    # a link row's delete must say whose row it was and which far row: REPLICA IDENTITY FULL on PostgreSQL
    assert link.filter_columns == ("entity_type", "primary", "deleted", "entity_id", "email_address_id")
    assert far.filter_columns == () and far.source.slice == (("deleted", 0),)
    fold = link.fold
    assert fold is not None and fold.by == "entity_id" and fold.via is not None and fold.via.to == "email_address_id"
    assert fold.via.far is not None and fold.via.far.table == EMAIL


@pytest.mark.parametrize("change, message", [
    (("direction: crm_to_erp\n    crm: {table: email", "direction: both\n    crm: {table: email"),
     "a fold through `via` flows crm_to_erp only (the link table's rows into erp's column), not both"),
    (("direction: crm_to_erp\n    crm: {table: email", "direction: erp_to_crm\n    crm: {table: email"),
     "flows crm_to_erp only"),
    (("      value: name\n", "      value: name\n      by: entity_id\n"), "its column is via.by"),
    (("to: email_address_id,", "to: entity_id,"), "via.by and via.to are both 'entity_id'"),
    (("key: [id], by: entity_id", "by: entity_id"), "mappings.contact_email.fold.via.key: required key is missing"),
    (("to: email_address_id,", "to: email_address_id, hops: 2,"), "hops"),
    (("slice: {entity_type: Contact,", "slice: {entity_id: 1, entity_type: Contact,"),
     "via column 'entity_id' is a slice column of public.entity_email_address"),
    (("table: email_address, key: [id]", "table: email_address, key: [id, name]"),
     "the far table public.email_address has key ['id', 'name']"),
    (("table: entity_email_address, key", "table: email_address, key"), "via.table is the far table"),
])
def test_bad_two_hop_folds_name_file_line_and_key(config: Config, change: tuple[str, str], message: str) -> None:
    msg = error(config, MAPS.replace(*change))
    assert message in msg and "m.yaml:" in msg, msg


def test_a_reverse_two_hop_fold_says_which_direction_works(config: Config) -> None:
    msg = error(config, MAPS.replace("direction: crm_to_erp\n    crm: {table: email",
                                     "direction: both\n    crm: {table: email"))
    assert "m.yaml:9: mappings.contact_email.direction" in msg and "direction: crm_to_erp" in msg, msg


def _routed(mset: MappingSet, change: RowChange) -> list[LinkedChange]:
    out = route(mset, "crm", change)
    assert all(isinstance(o, LinkedChange) for o in out)
    return out  # type: ignore[return-value]


LINK_ROW = {"id": "l1", "entity_id": "c-1", "entity_type": "Contact", "email_address_id": "e1", "primary": 1,
            "deleted": 0}


def test_a_link_row_routes_its_parent_again(config: Config) -> None:
    mset = load(config, MAPS)
    parents = lambda out: [o.values[PARENT] for o in out]  # noqa: E731
    assert parents(_routed(mset, RowChange(LINK, Op.INSERT, None, LINK_ROW))) == [Ref("contacts", "c-1")]
    assert parents(_routed(mset, RowChange(LINK, Op.DELETE, LINK_ROW, None))) == [Ref("contacts", "c-1")]
    # another entity type's link row, or one not primary: not this fold's
    assert _routed(mset, RowChange(LINK, Op.INSERT, None, {**LINK_ROW, "entity_type": "Account"})) == []
    assert _routed(mset, RowChange(LINK, Op.INSERT, None, {**LINK_ROW, "primary": 0})) == []
    # the primary flag moved off it, or a soft delete: its parent takes its column again (from the source)
    assert parents(_routed(mset, RowChange(LINK, Op.UPDATE, LINK_ROW, {**LINK_ROW, "primary": 0}))) == \
        [Ref("contacts", "c-1")]
    assert parents(_routed(mset, RowChange(LINK, Op.UPDATE, {**LINK_ROW, "deleted": 1}, LINK_ROW))) == \
        [Ref("contacts", "c-1")]
    # re-pointed at another address: once; moved to another contact: both
    assert parents(_routed(mset, RowChange(LINK, Op.UPDATE, LINK_ROW, {**LINK_ROW, "email_address_id": "e2"}))) == \
        [Ref("contacts", "c-1")]
    assert parents(_routed(mset, RowChange(LINK, Op.UPDATE, LINK_ROW, {**LINK_ROW, "entity_id": "c-2"}))) == \
        [Ref("contacts", "c-1"), Ref("contacts", "c-2")]
    # nothing the fold carries changed
    assert _routed(mset, RowChange(LINK, Op.UPDATE, LINK_ROW, {**LINK_ROW, "id": "l1"})) == []
    # a PostgreSQL delete without the whole old row cannot say whose link it was
    with pytest.raises(RowError) as info:
        route(mset, "crm", RowChange(LINK, Op.DELETE, {"id": "l1"}, None))
    assert "REPLICA IDENTITY FULL" in str(info.value) and "entity_email_address" in str(info.value)


def test_a_far_row_routes_every_parent_that_links_to_it(config: Config) -> None:
    mset = load(config, MAPS)
    row = {"id": "e1", "name": "a@x.de", "lower": "a@x.de", "deleted": 0}
    (lc,) = _routed(mset, RowChange(EMAIL, Op.UPDATE, row, {**row, "name": "b@x.de"}))
    assert lc.values == {FAR: "e1"} and lc.source_key == ("e1",)
    assert _routed(mset, RowChange(EMAIL, Op.UPDATE, row, {**row, "lower": "A@x.de"})) == []
    assert [o.values for o in _routed(mset, RowChange(EMAIL, Op.UPDATE, row, {**row, "deleted": 1}))] == [{FAR: "e1"}]
    assert [o.values for o in _routed(mset, RowChange(EMAIL, Op.DELETE, {"id": "e1"}, None))] == [{FAR: "e1"}]


class FakeSource:
    """The source as the fold reads it: link rows and far rows, answering the fold's two queries."""

    def __init__(self, links: list[dict[str, Any]], emails: dict[str, tuple[str, int]]) -> None:
        self.links, self.emails = links, emails
        self.sql: list[str] = []

    def query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        self.sql.append(sql)
        live = [r for r in self.links if (r["entity_type"], r["primary"], r["deleted"]) == ("Contact", 1, 0)]
        if sql.startswith("SELECT DISTINCT"):
            assert params == ["e1", "Contact", 1, 0] or params[1:] == ["Contact", 1, 0]
            return sorted({(r["entity_id"],) for r in live if r["email_address_id"] == params[0]})
        n = len(params) - 4  # the parents asked for (one, or a run's: `IN`), then the two slices' values
        assert params[n:] == ["Contact", 1, 0, 0] and ("IN (" in sql) == (n > 1), (sql, params)
        return [(r["entity_id"], r["id"], r["email_address_id"], self.emails[r["email_address_id"]][0])
                for r in sorted(live, key=lambda r: (r["entity_id"], r["id"]))
                if r["entity_id"] in params[:n] and self.emails.get(r["email_address_id"], ("", 1))[1] == 0]


def _applier(source: FakeSource, target: FakeTarget, pairs: dict[Any, Any]) -> tuple[FoldApplier, list[Ref]]:
    parked: list[Ref] = []
    fa = FoldApplier(target, "crm_to_erp", lambda ref: pairs.get(ref.value),  # type: ignore[arg-type]
                     lambda lc, ref: parked.append(ref), source.query, "mariadb")
    return fa, parked


def test_the_applier_reads_the_value_through_the_link_table(config: Config) -> None:
    mset = load(config, MAPS)
    source = FakeSource([dict(LINK_ROW), {**LINK_ROW, "id": "l2", "entity_id": "c-2"}],
                        {"e1": ("a@x.de", 0), "e2": ("b@x.de", 0)})
    target = FakeTarget()
    target.rows[PARTY] = [{"id": 10, "email": None}, {"id": 20, "email": None}]
    fa, parked = _applier(source, target, {"c-1": 10, "c-2": 20})
    for lc in _routed(mset, RowChange(LINK, Op.INSERT, None, LINK_ROW)):
        fa.apply(lc)
    assert target.rows[PARTY] == [{"id": 10, "email": "a@x.de"}, {"id": 20, "email": None}]
    # the join names the far table once, quoted as the source's dialect quotes
    assert "JOIN `public`.`email_address` f ON f.`id` = l.`email_address_id`" in source.sql[-1], source.sql[-1]
    # the shared address renamed: both contacts that link to it
    source.emails["e1"] = ("new@x.de", 0)
    row = {"id": "e1", "name": "a@x.de", "lower": "a@x.de", "deleted": 0}
    for lc in _routed(mset, RowChange(EMAIL, Op.UPDATE, row, {**row, "name": "new@x.de"})):
        fa.apply(lc)
    assert target.rows[PARTY] == [{"id": 10, "email": "new@x.de"}, {"id": 20, "email": "new@x.de"}]
    # a parent without a counterpart parks (replayed, the change reads the source again)
    fa2, parked = _applier(source, target, {"c-1": 10})
    for lc in _routed(mset, RowChange(EMAIL, Op.UPDATE, row, {**row, "name": "new@x.de"})):
        fa2.apply(lc)
    assert parked == [Ref("contacts", "c-2")]
    # replayed when c-2 arrives (Linker._unpark), it writes c-2 only: c-1 is not written or parked again
    fa3, parked = _applier(source, target, {"c-2": 20})
    target.rows[PARTY][1]["email"] = None
    with fa3.replaying(Ref("contacts", "c-2")):
        for lc in _routed(mset, RowChange(EMAIL, Op.UPDATE, row, {**row, "name": "new@x.de"})):
            fa3.apply(lc)
    assert parked == [] and target.rows[PARTY][1] == {"id": 20, "email": "new@x.de"}
    # the link row soft-deleted: no primary address left, NULL
    source.links[0]["deleted"] = 1
    for lc in _routed(mset, RowChange(LINK, Op.UPDATE, LINK_ROW, source.links[0])):
        fa.apply(lc)
    assert target.rows[PARTY][0] == {"id": 10, "email": None}
    # two primary addresses for one contact: a row error naming table, key and column; nothing written
    source.links += [{**LINK_ROW, "id": "l3", "email_address_id": "e1"}, {**LINK_ROW, "id": "l4",
                                                                          "email_address_id": "e2"}]
    with pytest.raises(RowError) as info:
        for lc in _routed(mset, RowChange(LINK, Op.INSERT, None, source.links[-1])):
            fa.apply(lc)
    text = str(info.value)
    assert "parent 'c-1' links to 2 rows of public.email_address" in text, text
    assert "table public.entity_email_address, key ('l4',), column email_address_id" in text, text
    assert target.rows[PARTY][0] == {"id": 10, "email": None}
    # two link rows to the same address are one value, not two
    source.links.pop()
    for lc in _routed(mset, RowChange(LINK, Op.DELETE, {**LINK_ROW, "id": "l4", "email_address_id": "e2"}, None)):
        fa.apply(lc)
    assert target.rows[PARTY][0] == {"id": 10, "email": "new@x.de"}


def test_without_the_source_a_two_hop_fold_refuses_rather_than_guess(config: Config) -> None:
    mset = load(config, MAPS)
    fa = FoldApplier(FakeTarget(), "x", lambda ref: 1, lambda lc, ref: None, None, None)  # type: ignore[arg-type]
    with pytest.raises(RowError) as info:
        fa.apply(_routed(mset, RowChange(LINK, Op.INSERT, None, LINK_ROW))[0])
    assert "reads the source" in str(info.value)


def _catalogs(**over: Any) -> dict[str, dict[TableRef, dict[str, Any]]]:
    from replicator.mapping.check import ColumnInfo
    key = ColumnInfo("text", length=17, nullable=False)
    text = ColumnInfo("text", length=255)
    tiny = ColumnInfo("int", bits=8)
    crm = {
        CONTACT: {"id": key, "first_name": text},
        LINK: {"id": ColumnInfo("int", bits=32, generated=True, nullable=False), "entity_id": text,
               "entity_type": ColumnInfo("text", length=100), "email_address_id": text, "primary": tiny,
               "deleted": tiny, **over.get("link", {})},
        EMAIL: {"id": key, "name": text, "lower": text, "deleted": tiny, **over.get("email", {})},
    }
    erp = {PARTY: {"id": ColumnInfo("int", bits=32, generated=True, nullable=False), "name": text,
                   "email": ColumnInfo("text", length=255), **over.get("party", {})}}
    return {"crm": crm, "erp": erp}


def test_check_validates_a_two_hop_fold(config: Config) -> None:
    from replicator.mapping.check import ColumnInfo, check_types
    mset = load(config, MAPS)
    kinds = {"crm": "mariadb", "erp": "postgresql"}
    out = check_types(mset, _catalogs(), kinds)  # type: ignore[arg-type]
    assert not [f for f in out if not f.ok and not f.warning], [f.what for f in out if not f.ok]
    assert any(f.ok and "public.email_address.name (deleted = 0) through public.entity_email_address (entity_id -> "
               "email_address_id, entity_type = 'Contact', primary = 1, deleted = 0) folds into "
               "erpdb.party.email (crm_to_erp only" in f.what for f in out), [f.what for f in out]

    def failures(**over: Any) -> list[str]:
        return [f.what for f in check_types(mset, _catalogs(**over), kinds)  # type: ignore[arg-type]
                if not f.ok and not f.warning]
    cats = _catalogs()
    del cats["crm"][LINK]["email_address_id"]
    missing = [f.what for f in check_types(mset, cats, kinds) if not f.ok]  # type: ignore[arg-type]
    assert any("m.yaml:" in w and "mappings.contact_email.fold.via: column email_address_id does not exist in "
               "public.entity_email_address" in w for w in missing), missing
    bad_slice = failures(link={"entity_type": ColumnInfo("int", bits=32)})
    assert any("mappings.contact_email.fold.via.slice: slice value 'Contact' for crm:public.entity_email_address."
               "entity_type" in w for w in bad_slice), bad_slice
    bad_cast = failures(email={"name": ColumnInfo("date")}, party={"email": ColumnInfo("int", bits=32)})
    assert any("crm:public.email_address.name" in w and "-> erp:erpdb.party.email" in w and "incompatible" in w
               for w in bad_cast), bad_cast


def test_explain_shows_the_path_of_a_two_hop_fold(config: Config) -> None:
    from replicator.mapping.explain.command import run
    import json
    mset = load(config, MAPS)
    text = run(config, mset, mapping="contact_email", side="crm", offline=True, row=json.dumps(LINK_ROW))
    assert "a fold, crm public.entity_email_address -> erp erpdb.party" in text, text
    assert ("path: contacts key = public.entity_email_address.entity_id (entity_type = \"Contact\", primary = 1, "
            "deleted = 0) -> public.entity_email_address.email_address_id = public.email_address.id (deleted = 0) "
            "-> public.email_address.name -> erp erpdb.party.email") in text, text
    assert 'parent: contacts "c-1" -> (not looked up)' in text and "(read from crm when applied)" in text, text


def test_explain_key_of_a_two_hop_fold_is_the_parents_key(config: Config) -> None:
    """`explain --key` names the parent (the link rows' entity_id), not a link row: the source is read as the
    applier reads it (folds.far_rows_sql) and the parent's column is said -- the value, NULL when no link row
    of the slice points at a far row, the row error for two far rows."""
    from replicator.mapping.explain.fold import explain_parent, render_fold
    from replicator.mapping.explain.inputs import find_flow
    mset = load(config, MAPS)
    _m, flow = find_flow(mset, "contact_email", "crm")
    asked: list[tuple[str, list[Any]]] = []
    found: list[tuple[Any, ...]] = [("c-1", "l7", "e1", "ann@x.de")]  # parent, link key, far key, value

    def query(sql: str, params: Any) -> list[tuple[Any, ...]]:
        asked.append((sql, list(params)))
        return found

    def explained() -> str:
        return render_fold(explain_parent(flow, {"id": "c-1", "first_name": "Ann"}, "c-1", query, "mariadb", None,
                                          "parent contacts: read from crm by id = 'c-1' (read-only)", "--offline"))
    text = explained()
    sql, params = asked[0]
    assert params == ["c-1", "Contact", 1, 0, 0], params  # the parent, the link slice, the far slice
    assert "FROM `public`.`entity_email_address` l JOIN `public`.`email_address` f ON f.`id` = " \
           "l.`email_address_id`" in sql, sql
    assert 'row: id = "c-1", first_name = "Ann"' in text and "path: contacts key = " in text, text
    assert 'link row ["l7"] -> far row "e1": "ann@x.de"' in text, text
    assert 'parent: contacts "c-1" -> (not looked up)' in text, text
    assert 'result: erpdb.party.email of the parent = "ann@x.de"' in text, text
    found[:] = []
    assert "result: erpdb.party.email of the parent = NULL: no public.entity_email_address row " \
           '(entity_type = "Contact", primary = 1, deleted = 0) points at a public.email_address row (deleted = 0)' \
           in explained(), explained()
    found[:] = [("c-1", "l7", "e1", "ann@x.de"), ("c-1", "l8", "e2", "a2@x.de")]
    assert "result: a row error: the parent links to 2 rows of public.email_address" in explained(), explained()


@pytest.mark.parametrize("page, crm, erp, mapping", [
    ("walkthrough-suitecrm-idempiere.md", "suitecrm", "idempiere", "contact_email"),
    ("walkthrough-espocrm-tryton.md", "espocrm", "tryton", "account_email"),
])
def test_the_walkthroughs_email_mappings_load_with_their_pages(tmp_path: Path, page: str, crm: str, erp: str,
                                                               mapping: str) -> None:
    """The e-mail mapping each walkthrough shows (not among its files) compiles beside the page's mappings."""
    import re

    from replicator.config import Account, Batching, Connection, Secret

    from tests.unit.test_walkthrough_doc import blocks
    path = Path(__file__).parents[2] / "docs" / page
    acc = Account("u", Secret(""))
    config = Config(tmp_path / "replicator.yaml", (Connection(crm, "mariadb", "h", 3306, "crmdb", acc, acc),
                                                   Connection(erp, "postgresql", "h", 5432, "erpdb", acc, acc)),
                    tmp_path / "maps", Batching())
    config.mappings_dir.mkdir()
    for name, text in blocks(path).items():
        if name.startswith("mappings/"):
            (config.mappings_dir / name.split("/", 1)[1]).write_text(text, encoding="utf-8")
    (snippet,) = re.findall(rf"  ```yaml\n(    {mapping}:.*?)  ```", path.read_text(encoding="utf-8"), re.DOTALL)
    (config.mappings_dir / "90-email.yaml").write_text("mappings:\n" + "\n".join(
        line[2:] for line in snippet.splitlines()) + "\n", encoding="utf-8")
    m = load_mappings(config).by_name[mapping]
    assert [f.stream for f in m.flows] == [f"{crm}_to_{erp}"] * 2
    assert m.flows[0].fold is not None and m.flows[0].fold.via is not None


def test_setup_gives_a_postgresql_link_table_the_whole_old_row(config: Config) -> None:
    """A link row's delete must say whose link it was: `setup` sets REPLICA IDENTITY FULL on the link table (the
    far table's delete needs only its key)."""
    from replicator.admin.provision import full_identity_tables
    tables = full_identity_tables(config.side("crm"), load(config, MAPS))
    assert LINK in tables and EMAIL not in tables


@pytest.mark.parametrize("kind, q", [("postgresql", '"'), ("mariadb", "`")])
def test_a_null_via_slice_reads_the_current_link_rows_only(config: Config, kind: str, q: str) -> None:
    """OFBiz's party_contact_mech: the current link rows are `thru_date IS NULL`; the two-hop read renders the
    link slice and the far slice through appliers/slices.py, never `thru_date = NULL`."""
    from replicator.mapping.folds import far_rows_sql
    text = MAPS.replace("slice: {entity_type: Contact, primary: 1, deleted: 0}",
                        "slice: {entity_type: Contact, thru_date: null}")
    fold = load(config, text).by_name["contact_email"].flows[0].fold
    assert fold is not None
    sql, params = far_rows_sql(fold, kind, ["c1", "c2"])
    assert (f"WHERE l.{q}entity_id{q} IN (%s, %s) AND l.{q}entity_type{q} = %s AND l.{q}thru_date{q} IS NULL "
            f"AND f.{q}deleted{q} = %s ORDER BY") in sql, sql
    assert params == ["c1", "c2", "Contact", 0]
