"""stream/shapes: a mapped source table's columns changing under a running direction (ALTER TABLE).

The guard is fed shapes as a reader would and decides against catalogs handed to it (no server): carry on
for columns nobody maps, stop naming the column when a mapped one is gone, and ask `check` again -- through
mapping/check/recheck -- when a mapped column's type changed.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator import metrics
from replicator.changes import TableRef
from replicator.errors import RetriableError, SchemaChangeError
from replicator.mapping.check import ColumnInfo
from replicator.mapping.check.recheck import refused_casts
from replicator.mapping.model import load_mappings
from replicator.stream.shapes import ShapeGuard, TargetShapes, describe_change
from tests.unit.test_mapping_check import CRM, ERP, KINDS, PK, Env, dec, make_config, vc

MAPPING = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      credit: ~
      note: ~
"""
BEFORE = (("id", "integer"), ("credit", "numeric(12,2)"), ("note", "character varying(50)"))


class Catalogs:
    """What the guard would read from both servers after the change; records each read."""

    def __init__(self, crm: dict[str, ColumnInfo], erp: dict[str, ColumnInfo]):
        self.catalogs = {"crm": {CRM: crm}, "erp": {ERP: erp}}
        self.asked: list[dict[str, list[TableRef]]] = []

    def __call__(self, tables: dict[str, list[TableRef]]) -> dict:
        self.asked.append(tables)
        return {side: {t: self.catalogs[side][t] for t in ts if t in self.catalogs[side]}
                for side, ts in tables.items()}


def guard(tmp_path: Path, catalogs: Catalogs, mapping: str = MAPPING) -> ShapeGuard:
    env = Env(tmp_path)
    g = ShapeGuard(env.config, env.config.connections[0], "crm_to_erp", read_catalogs=catalogs)
    g.use(env.load(mapping))
    return g


def seen_first(g: ShapeGuard, table: TableRef, shape: tuple[tuple[str, str], ...]) -> None:
    """The table's first shape, taken without the first-shape check (the tests below are about changes)."""
    g.check_first = False
    g.seen(table, shape)
    g.check_first = True


def test_the_first_shape_is_checked_once_and_a_repeat_changes_nothing(tmp_path: Path) -> None:
    catalogs = Catalogs({"id": PK, "credit": dec(12, 2), "note": vc(50)}, {"id": PK, "credit": dec(12, 2),
                                                                          "note": vc(200)})
    g = guard(tmp_path, catalogs)
    g.seen(CRM, BEFORE)
    g.seen(CRM, BEFORE)  # a Relation message sent again (a relcache invalidation): no news
    assert catalogs.asked == [{"crm": [CRM], "erp": [ERP]}]


def test_a_first_shape_check_now_refuses_stops_it_changed_after_the_start_up_check(tmp_path: Path) -> None:
    """A quiet table altered after the start: its first Relation message already has the new type."""
    catalogs = Catalogs({"id": PK, "credit": dec(14, 4), "note": vc(50)}, {"id": PK, "credit": dec(12, 2),
                                                                          "note": vc(200)})
    with pytest.raises(SchemaChangeError, match="column credit: the table changed after the start-up check .* NUMERIC.14,4."):
        guard(tmp_path, catalogs).seen(CRM, (BEFORE[0], ("credit", "numeric(14,4)"), BEFORE[2]))
    waived = guard(tmp_path, catalogs)
    waived.check_first = False  # run --skip-check
    waived.seen(CRM, (BEFORE[0], ("credit", "numeric(14,4)"), BEFORE[2]))


def test_columns_nobody_maps_may_come_and_go_and_move(tmp_path: Path) -> None:
    catalogs = Catalogs({}, {})
    g = guard(tmp_path, catalogs)
    seen_first(g, CRM, BEFORE + (("extra", "integer"),))
    before = metrics.source_schema_changes.labels("crm_to_erp", str(CRM))._value.get()
    g.seen(CRM, (("flag", "text"),) + BEFORE)  # added first, extra dropped: the mapped columns go by name
    assert catalogs.asked == []  # no mapped column's type changed: nothing to check again
    assert metrics.source_schema_changes.labels("crm_to_erp", str(CRM))._value.get() == before + 1


@pytest.mark.parametrize("after, said", [
    (BEFORE[:2], "column note: the column that mapping customers reads is gone"),
    (BEFORE[:2] + (("memo", "character varying(50)"),), "renamed to memo? then map that column: `crm: memo`"),
])
def test_a_mapped_column_gone_stops_naming_table_column_and_mapping(tmp_path: Path, after, said: str) -> None:
    g = guard(tmp_path, Catalogs({}, {}))
    seen_first(g, CRM, BEFORE)
    with pytest.raises(SchemaChangeError) as info:
        g.seen(CRM, after)
    assert said in str(info.value) and f"crm table {CRM}" in str(info.value)
    assert info.value.kind == "schema"


def test_a_type_change_the_other_side_still_holds_is_checked_again_and_goes_on(tmp_path: Path) -> None:
    catalogs = Catalogs({"id": PK, "credit": dec(12, 2), "note": vc(120)}, {"id": PK, "credit": dec(12, 2),
                                                                            "note": vc(200)})
    g = guard(tmp_path, catalogs)
    seen_first(g, CRM, BEFORE)
    g.seen(CRM, BEFORE[:2] + (("note", "character varying(120)"),))
    assert catalogs.asked == [{"crm": [CRM], "erp": [ERP]}]


def test_a_type_change_check_now_refuses_stops_with_old_and_new_type_and_the_fix(tmp_path: Path) -> None:
    catalogs = Catalogs({"id": PK, "credit": dec(14, 4), "note": vc(50)}, {"id": PK, "credit": dec(12, 2),
                                                                          "note": vc(200)})
    g = guard(tmp_path, catalogs)
    seen_first(g, CRM, BEFORE)
    with pytest.raises(SchemaChangeError) as info:
        g.seen(CRM, (BEFORE[0], ("credit", "numeric(14,4)"), BEFORE[2]))
    text = str(info.value)
    assert f"crm table {CRM}, column credit: its type changed from numeric(12,2) to numeric(14,4)" in text
    assert "lossy cast" in text and "fix: widen" in text and "change credit back to numeric(12,2)" in text
    # refused: the shape stays the old one, so that the same change is judged again after a reconnect
    with pytest.raises(SchemaChangeError):
        g.seen(CRM, (BEFORE[0], ("credit", "numeric(14,4)"), BEFORE[2]))


def test_a_catalog_that_cannot_be_read_is_retried_not_taken_as_fine(tmp_path: Path) -> None:
    def unreachable(_tables: dict) -> dict:
        raise RetriableError("server gone")
    g = guard(tmp_path, Catalogs({}, {}))
    g._read_catalogs = unreachable
    seen_first(g, CRM, BEFORE)
    with pytest.raises(RetriableError):
        g.seen(CRM, (BEFORE[0], ("credit", "numeric(14,4)"), BEFORE[2]))


def test_recheck_judges_only_the_changed_columns(tmp_path: Path) -> None:
    """note was already a loud lossy cast (varchar(200) into varchar(50): strict mode refuses a longer value, a
    warning of `check`); only credit, changed, is judged, and only refusals count."""
    env = Env(tmp_path)
    mset = env.load(MAPPING)
    catalogs = {"crm": {CRM: {"id": PK, "credit": dec(14, 4), "note": vc(50)}},
                "erp": {ERP: {"id": PK, "credit": dec(12, 2), "note": vc(200)}}}
    assert refused_casts(mset, catalogs, KINDS, "erp", ERP, ["note"]) == []
    refused = refused_casts(mset, catalogs, KINDS, "crm", CRM, ["credit", "note"])
    assert [column for column, _f in refused] == ["credit"]


def test_a_change_is_described_by_name() -> None:
    assert describe_change(dict(BEFORE), {"extra": "int", **dict(BEFORE[:2]), "note": "text"}) == \
        "added extra int; note character varying(50) -> text"
    assert describe_change(dict(BEFORE), dict(reversed(BEFORE))) == "columns reordered"


def test_a_column_narrowed_that_the_other_direction_writes_into_stops_too(tmp_path: Path) -> None:
    """decimal(12,2) -> decimal(12,1) on the MariaDB side of a two-way mapping: erp_to_crm reads it fine, but
    crm_to_erp's writes into it would be rounded by MariaDB: the reader of the narrowed table stops."""
    env = Env(tmp_path)
    catalogs = Catalogs({"id": PK, "credit": dec(12, 2), "note": vc(50)},
                        {"id": PK, "credit": dec(12, 1), "note": vc(200)})
    g = ShapeGuard(env.config, env.config.connections[1], "erp_to_crm", read_catalogs=catalogs)
    g.use(env.load(MAPPING))
    shape = (("id", "int"), ("credit", "decimal(12,2)"), ("note", "varchar(800 bytes)"))
    seen_first(g, ERP, shape)
    with pytest.raises(SchemaChangeError) as info:
        g.seen(ERP, (shape[0], ("credit", "decimal(12,1)"), shape[2]))
    text = str(info.value)
    assert "column credit: its type changed from decimal(12,2) to decimal(12,1)" in text
    assert "(crm_to_erp)" in text and "values it wrote since the change may have been rounded" in text
    assert catalogs.asked == [{"erp": [ERP], "crm": [CRM]}]


def test_a_table_renamed_away_stops_unless_a_table_of_its_name_exists_again(tmp_path: Path) -> None:
    missing = Catalogs({}, {})
    missing.catalogs["crm"] = {}
    g = guard(tmp_path, missing)
    with pytest.raises(SchemaChangeError, match="public.customer was renamed to public.old while replicator ran"):
        g.left(CRM, "renamed to public.old")
    # renamed back before the start that replays the rename: the stream goes on with the table
    guard(tmp_path, Catalogs({"id": PK}, {})).left(CRM, "renamed to public.old")


PLAN = {"id": "int", "credit": "decimal(12,2)", "note": "varchar(200)"}


def target_shapes(tmp_path: Path, catalogs: Catalogs, mapping: str = MAPPING) -> TargetShapes:
    env = Env(tmp_path)
    t = TargetShapes(env.config, env.config.connections[1], "crm_to_erp", read_catalogs=catalogs)
    t.use(env.load(mapping))
    return t


def test_a_written_table_narrowed_stops_naming_old_and_new_type_and_the_rollback(tmp_path: Path) -> None:
    """crm_to_erp writes customers; the applier's plan read again after a commit found it moved: decimal(12,2)
    -> decimal(12,1) would round what crm's numeric(12,2) sends. The plan before stays (judged again)."""
    catalogs = Catalogs({"id": PK, "credit": dec(12, 2), "note": vc(50)},
                        {"id": PK, "credit": dec(12, 1), "note": vc(200)})
    t = target_shapes(tmp_path, catalogs)
    assert t.planned({ERP: PLAN}) is False and catalogs.asked == []  # the first plan: the start-up check's
    for _ in range(2):
        with pytest.raises(SchemaChangeError) as info:
            t.planned({ERP: {**PLAN, "credit": "decimal(12,1)"}})
        text = str(info.value)
        assert f"erp table {ERP}, column credit: its type changed from decimal(12,2) to decimal(12,1)" in text
        assert "lossy cast" in text and "rolled back, nothing of it was committed" in text


def test_a_written_table_widened_is_planned_anew_and_counted(tmp_path: Path) -> None:
    """A one-way mapping's target (in a two-way one, the other direction would now read decimal(14,4) into
    crm's numeric(12,2): refused, as for a source)."""
    catalogs = Catalogs({"id": PK, "credit": dec(12, 2), "note": vc(50)},
                        {"id": PK, "credit": dec(14, 4), "note": vc(200)})
    t = target_shapes(tmp_path, catalogs, MAPPING.replace("direction: both", "direction: crm_to_erp"))
    t.planned({ERP: PLAN})
    counter = metrics.target_schema_changes.labels("crm_to_erp", str(ERP))
    before = counter._value.get()
    assert t.planned({ERP: {**PLAN, "credit": "decimal(14,4)"}}) is True
    assert counter._value.get() == before + 1
    assert t.planned({ERP: {**PLAN, "credit": "decimal(14,4)"}}) is False  # the new plan is the one now
    # a column nobody maps: no catalog read, planned anew
    asked = len(catalogs.asked)
    assert t.planned({ERP: {**PLAN, "credit": "decimal(14,4)", "extra": "int"}}) is True
    assert len(catalogs.asked) == asked


def test_a_first_plan_is_judged_only_when_asked_and_names_table_and_column(tmp_path: Path) -> None:
    """`dlq retry` (check_first): no start-up check ran before it, the table may have changed since the change was
    queued. A refused first plan stops before anything is written; a carried one is kept as the plan to compare
    the next one with."""
    narrowed = {**PLAN, "credit": "decimal(12,1)"}
    catalogs = Catalogs({"id": PK, "credit": dec(12, 2), "note": vc(50)},
                        {"id": PK, "credit": dec(12, 1), "note": vc(200)})
    with pytest.raises(SchemaChangeError) as info:
        target_shapes(tmp_path, catalogs).planned({ERP: narrowed}, check_first=True)
    text = str(info.value)
    assert f"erp table {ERP}, column credit: `check` refuses the field in the table's shape now" in text, text
    assert "lossy cast" in text and "Nothing was written" in text, text
    assert target_shapes(tmp_path, catalogs).planned({ERP: narrowed}) is False  # the stream's: not judged here

    fine = Catalogs({"id": PK, "credit": dec(12, 2), "note": vc(50)}, {"id": PK, "credit": dec(12, 2), "note": vc(200)})
    t = target_shapes(tmp_path, fine)
    assert t.planned({ERP: PLAN}, check_first=True) is False and len(fine.asked) == 1
    assert t.planned({ERP: PLAN}, check_first=True) is False and len(fine.asked) == 1  # judged once


def test_the_live_catalog_read_of_an_unreachable_server_is_retriable(tmp_path: Path) -> None:
    """Without `read_catalogs` the guard reads through `mapping/check`'s `live_catalogs`; a server that cannot be
    read is a RetriableError naming the server, never a pass."""
    config = make_config(tmp_path, crm_port=1, erp_port=1)  # nothing listens on port 1
    config.mappings_dir.mkdir()
    (config.mappings_dir / "m.yaml").write_text(MAPPING, encoding="utf-8")
    g = ShapeGuard(config, config.connections[0], "crm_to_erp")
    g.use(load_mappings(config))
    seen_first(g, CRM, BEFORE)
    with pytest.raises(RetriableError) as info:
        g.seen(CRM, (BEFORE[0], ("credit", "numeric(14,4)"), BEFORE[2]))
    assert "cannot connect to 127.0.0.1:1" in str(info.value)


def test_the_checker_judges_the_casts_its_scope_names_and_tells_it_each_verdict(tmp_path: Path) -> None:
    """recheck's restriction is a `CastScope` handed to `_Checker` (a typed contract), not an override of its
    `plan_cast`: a scope that judges only `credit` hears credit's refusal and nothing of `note`, and with
    `values = False` no value spelled out in the mapping is judged."""
    from replicator.mapping.check.checker import Finding, _Checker

    class OnlyCredit:
        values = False

        def __init__(self) -> None:
            self.heard: list[tuple[str | None, list[str]]] = []

        def judges(self, flow: object, plan: object) -> bool:
            return getattr(plan, "source", None) == "credit"

        def judged(self, flow: object, plan: object, findings: list) -> None:
            self.heard.append((getattr(plan, "source", None), [f.what for f in findings]))

    env = Env(tmp_path)
    mset = env.load(MAPPING)
    catalogs = {"crm": {CRM: {"id": PK, "credit": dec(14, 4), "note": vc(500)}},
                "erp": {ERP: {"id": PK, "credit": dec(12, 2), "note": vc(50)}}}
    scope = OnlyCredit()
    _Checker(mset, catalogs, KINDS, None, Finding, scope=scope).run()
    assert [source for source, _w in scope.heard] == ["credit", "credit"]  # crm_to_erp and erp_to_crm
    assert any("lossy cast" in w for w in scope.heard[0][1] + scope.heard[1][1])
