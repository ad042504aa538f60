"""`check` and the foreign key actions and triggers a server runs on its own (mapping/check/cascades.py,
triggers.py, serverside.py): what replicator cannot see must be done alike on the other side, or accepted."""
from __future__ import annotations

from pathlib import Path

import pytest

from replicator.changes import TableRef
from replicator.errors import ConfigError
from replicator.mapping.check.serverside import (HIDDEN, ForeignKey, ServerSide, Trigger, assigned_columns, skipped_events,
                                                may_see_triggers, written_tables)
from tests.unit.test_mapping_check import Env

MAPPINGS = """\
mappings:
  orders:
    direction: {orders}
    crm: {{table: orders, key: [id]}}
    erp: {{table: orders, key: [id]}}
{orders_extra}    fields: {{id: ~, name: ~}}
  lines:
    direction: {lines}
    crm: {{table: lines, key: [id]}}
    erp: {{table: lines, key: [id]}}
{lines_extra}    fields: {{id: ~, order_id: {{erp: ord}}, qty: ~}}
"""


def text(orders: str = "both", lines: str = "both", orders_extra: str = "", lines_extra: str = "") -> str:
    return MAPPINGS.format(orders=orders, lines=lines, orders_extra=orders_extra, lines_extra=lines_extra)


def fk(side: str, name: str, on_delete: str = "CASCADE", on_update: str = "RESTRICT",
       columns: tuple[str, ...] | None = None) -> ForeignKey:
    schema = "public" if side == "crm" else "erpdb"
    col = "order_id" if side == "crm" else "ord"
    return ForeignKey(name, TableRef(schema, "lines"), columns or (col,), TableRef(schema, "orders"), ("id",),
                      on_delete, on_update)


def server(crm: tuple = (), erp: tuple = (), crm_triggers: tuple = (), erp_triggers: tuple = ()) -> dict:
    return {"crm": ServerSide(tuple(crm), tuple(crm_triggers)), "erp": ServerSide(tuple(erp), tuple(erp_triggers))}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def about(findings: list[str], name: str) -> list[str]:
    """The findings about constraint `name` (of the side it is on, not those naming it as the other's twin)."""
    return [f for f in findings if f":{name} (" in f]


def test_a_mariadb_cascade_without_its_twin_on_postgresql_is_refused_naming_both_ways_out(env: Env) -> None:
    (msg,) = about(env.failures(text(), server=server(erp=[fk("erp", "fk_lines_order")])), "fk_lines_order")
    assert msg.startswith("erp: m.yaml:8: mappings.lines: erp:fk_lines_order (erpdb.lines(ord) REFERENCES "
                          "erpdb.orders(id) ON DELETE CASCADE ON UPDATE RESTRICT), on a table mapping lines carries: "
                          "a delete of a row of erpdb.orders deletes its erpdb.lines rows (ON DELETE CASCADE) and "
                          "MariaDB writes no binlog row event for the child rows that changes; crm:public.lines has "
                          "no foreign key to the parent's counterpart that would do the same"), msg
    assert ("ALTER TABLE public.lines ADD FOREIGN KEY (order_id) REFERENCES public.orders (id) ON DELETE CASCADE"
            in msg), msg
    assert "`accept_cascades: [fk_lines_order]`" in msg


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL", "SET DEFAULT"])
def test_the_same_action_on_the_other_side_passes(env: Env, action: str) -> None:
    findings = env.check(text(), server=server(erp=[fk("erp", "fk_my", action)], crm=[fk("crm", "fk_pg", action)]))
    assert about([f.what for f in findings if not f.ok], "fk_my") == []
    (ok,) = about([f.what for f in findings if f.ok], "fk_my")
    assert "crm:fk_pg does the same to public.lines" in ok


def test_another_action_on_the_other_side_is_refused(env: Env) -> None:
    (msg,) = about(env.failures(text(), server=server(erp=[fk("erp", "fk_my", "SET NULL")],
                                                      crm=[fk("crm", "fk_pg", "CASCADE")])), "fk_my")
    assert "crm:public.lines does otherwise: crm:fk_pg is ON DELETE CASCADE" in msg, msg


def test_a_foreign_key_on_other_columns_is_no_twin(env: Env) -> None:
    other = fk("crm", "fk_pg", columns=("qty",))
    assert len(about(env.failures(text(), server=server(erp=[fk("erp", "fk_my")], crm=[other])), "fk_my")) == 1


def test_an_update_action_is_judged_too(env: Env) -> None:
    (msg,) = about(env.failures(text(), server=server(erp=[fk("erp", "fk_my", "RESTRICT", "CASCADE")])), "fk_my")
    assert "a change of the key of erpdb.orders changes the parent key in its erpdb.lines rows (ON UPDATE CASCADE)" \
           in msg and "ON DELETE" not in msg.split("ON UPDATE RESTRICT", 1)[-1].split("|")[0].replace(
               "ON DELETE RESTRICT", ""), msg


def test_an_update_action_has_no_twin_because_a_key_change_travels_as_delete_and_insert(env: Env) -> None:
    """replicator applies a changed key as a delete of the old row and an insert of the new one: an ON UPDATE
    CASCADE on the other side never fires, its ON DELETE CASCADE does (measured: the CRM's children went)."""
    (msg,) = about(env.failures(text(), server=server(erp=[fk("erp", "fk_my", "CASCADE", "CASCADE")],
                                                      crm=[fk("crm", "fk_pg", "CASCADE", "CASCADE")])), "fk_my")
    assert "replicator carries a change of a key as a delete of the old row and an insert of the new one, so no " \
           "ON UPDATE action on crm repeats it" in msg, msg
    assert "crm:public.lines has no foreign key" not in msg  # the delete's twin is there
    assert "if no application ever changes the key of a row of erpdb.orders (a surrogate key), add fk_my to the " \
           "accept_cascades of mapping lines" in msg, msg


def test_what_the_mapping_would_not_carry_anyway_is_left_alone(env: Env) -> None:
    # deletes of lines do not travel to the CRM: a cascaded one would not either
    t = text(lines_extra="    delete: {erp_to_crm: ignore}\n")
    assert about(env.failures(t, server=server(erp=[fk("erp", "fk_my")])), "fk_my") == []
    # ... but a SET NULL changes the reference, which does
    assert len(about(env.failures(t, server=server(erp=[fk("erp", "fk_my", "SET NULL")])), "fk_my")) == 1
    # a reference written once, when the row is made (Twenty's opportunity -> Akaunting's invoice)
    t = text().replace("order_id: {{erp: ord}}".replace("{{", "{").replace("}}", "}"),
                       "order_id: {erp: ord, insert_only: true}")
    assert about(env.failures(t, server=server(erp=[fk("erp", "fk_my", "SET NULL")])), "fk_my") == []
    assert len(about(env.failures(t, server=server(erp=[fk("erp", "fk_my", "CASCADE")])), "fk_my")) == 1


@pytest.mark.parametrize("action", ["RESTRICT", "NO ACTION"])
def test_a_foreign_key_that_only_refuses_is_left_alone(env: Env, action: str) -> None:
    findings = env.check(text(), server=server(erp=[fk("erp", "fk_my", action, action)]))
    assert [f for f in findings if "fk_my" in f.what] == []


def test_accept_cascades_names_the_constraint_the_dba_accepts(env: Env) -> None:
    t = text(lines_extra="    accept_cascades: [fk_my]\n")
    findings = env.check(t, server=server(erp=[fk("erp", "fk_my")]))
    assert about([f.what for f in findings if not f.ok], "fk_my") == []
    assert any("accepted by the accept_cascades of mapping lines" in f.what for f in findings if f.ok)
    # another constraint is not accepted by it
    assert len(about(env.failures(t, server=server(erp=[fk("erp", "fk_other")])), "fk_other")) == 1


@pytest.mark.parametrize("value", ["fk_my", "[fk_my, fk_my]", "[1]"])
def test_accept_cascades_is_a_list_of_names(env: Env, value: str) -> None:
    with pytest.raises(ConfigError) as e:
        env.load(text(lines_extra=f"    accept_cascades: {value}\n"))
    assert "m.yaml" in str(e.value) and "accept_cascades" in str(e.value)


def test_a_postgresql_cascade_reaches_the_wal_unless_replicator_wrote_the_parent(env: Env) -> None:
    # the CRM is the only source of orders: its own deletes cascade in the WAL, and the lines' deletes travel
    assert about(env.failures(text(orders="crm_to_erp"), server=server(crm=[fk("crm", "fk_pg")])), "fk_pg") == []
    # replicator deletes orders in the CRM (erp_to_crm): the cascade is in its own transaction, dropped as an echo
    (msg,) = about(env.failures(text(), server=server(crm=[fk("crm", "fk_pg")])), "fk_pg")
    assert "replicator deletes rows of public.orders (erp_to_crm): the child rows that changes then are in " \
           "replicator's own transaction, tagged, and never carried back" in msg, msg
    # ... unless it never deletes them
    t = text(orders_extra="    delete: {erp_to_crm: ignore}\n")
    assert about(env.failures(t, server=server(crm=[fk("crm", "fk_pg")])), "fk_pg") == []


def test_a_cascade_onto_a_one_way_copy_is_not_judged(env: Env) -> None:
    """lines flow only erp_to_crm: nothing of the CRM's lines travels, so a cascade there changes nothing replicator
    would carry. A CRM user's delete of an order takes the copies like the user's own delete of a copy would; an
    order replicator deletes in the CRM was deleted in the ERP, whose lines went before it or with it."""
    for orders in ("crm_to_erp", "both"):
        assert about(env.failures(text(orders=orders, lines="erp_to_crm"),
                                  server=server(crm=[fk("crm", "fk_pg")])), "fk_pg") == []


def test_an_unread_side_is_not_judged(env: Env) -> None:
    findings = env.check(text(), server={"erp": ServerSide((fk("erp", "fk_my"),))})
    assert [f for f in findings if "fk_my" in f.what] == []


# ---------------------------------------------------------------- triggers

def trigger(side: str, body: str | None, table: str = "orders", name: str = "t1") -> Trigger:
    return Trigger(name, TableRef("public" if side == "crm" else "erpdb", table), "AFTER", "INSERT", body)


def warnings(env: Env, t: str, **kw: tuple) -> list[str]:
    return [f"{f.side}: {f.what} | {f.fix}".replace(str(env.config.mappings_dir) + "/", "")
            for f in env.check(t, server=server(**kw)) if f.warning]


def test_a_trigger_on_a_table_replicator_writes_that_writes_a_carried_table_warns(env: Env) -> None:
    (msg,) = warnings(env, text(), crm_triggers=(trigger("crm", "BEGIN INSERT INTO lines (id) VALUES (1); END"),))
    assert msg.startswith("crm: m.yaml:3: mappings.orders: trigger t1 (AFTER INSERT ON public.orders) fires on "
                          "replicator's writes: it writes public.lines, which replicator carries from crm to erp; the "
                          "rows it writes in replicator's transactions carry replicator's loop tag and never reach "
                          "erp"), msg


def test_a_trigger_that_writes_a_copy_warns_that_the_copy_differs(env: Env) -> None:
    (msg,) = warnings(env, text(lines="erp_to_crm"),
                      crm_triggers=(trigger("crm", "BEGIN UPDATE public.lines SET qty = 0; END"),))
    assert "it writes public.lines, which replicator keeps as a copy of erp's rows" in msg


@pytest.mark.parametrize("body", ["BEGIN INSERT INTO audit_log VALUES (NEW.id); RETURN NEW; END",
                                  "BEGIN NEW.name := upper(NEW.name); RETURN NEW; END"])
def test_a_trigger_that_writes_no_mapped_table_is_left_alone(env: Env, body: str) -> None:
    assert warnings(env, text(), crm_triggers=(trigger("crm", body),)) == []


def test_a_trigger_on_a_table_replicator_never_writes_is_the_applications(env: Env) -> None:
    t = text(orders="crm_to_erp")
    assert warnings(env, t, crm_triggers=(trigger("crm", "BEGIN INSERT INTO lines VALUES (1); END"),)) == []


@pytest.mark.parametrize("body, why", [(None, "not SQL or PL/pgSQL"),
                                       ("BEGIN EXECUTE format('DELETE FROM %I', TG_ARGV[0]); END", "dynamic SQL"),
                                       ("CALL refresh_totals(NEW.id)", "dynamic SQL or calls a procedure")])
def test_a_trigger_whose_writes_check_cannot_read_warns(env: Env, body: str | None, why: str) -> None:
    (msg,) = warnings(env, text(), erp_triggers=(trigger("erp", body),))
    assert why in msg and "check cannot tell which tables it writes" in msg


def before(side: str, body: str | None, events: str = "INSERT OR UPDATE", unread: str = "") -> Trigger:
    return Trigger("b1", TableRef("public" if side == "crm" else "erpdb", "lines"), "BEFORE", events, body, unread)


def test_a_before_trigger_assigning_a_carried_column_warns_naming_it(env: Env) -> None:
    body = "BEGIN NEW.qty := greatest(NEW.qty, 1); NEW.updated_at = now(); RETURN NEW; END"
    (msg,) = warnings(env, text(), crm_triggers=(before("crm", body),))
    assert msg.startswith("crm: m.yaml:8: mappings.lines: trigger b1 (BEFORE INSERT OR UPDATE ON public.lines) fires "
                          "on replicator's writes: it assigns NEW.qty, which replicator carries: the value replicator "
                          "wrote is changed inside its own transaction, which carries replicator's loop tag, so the "
                          "change never reaches erp and the two sides differ in qty without a word"), msg
    assert "| have the trigger leave qty alone on replicator's writes, or have erp compute the same value" in msg
    # MariaDB: names are case-insensitive, the mapping's column there is `ord`
    (msg,) = warnings(env, text(), erp_triggers=(before("erp", "SET NEW.Ord = 1, NEW.note = 'x'", "INSERT"),))
    assert "trigger b1 (BEFORE INSERT ON erpdb.lines)" in msg and "it assigns NEW.ord, which" in msg, msg


@pytest.mark.parametrize("trig", [
    before("crm", "BEGIN NEW.updated_at := now(); NEW.note = 'x'; RETURN NEW; END"),  # columns no mapping carries
    before("crm", "BEGIN IF NEW.qty = 0 THEN RAISE EXCEPTION 'no'; END IF; RETURN NEW; END"),  # a comparison
    before("crm", "BEGIN NEW.qty := 1; RETURN NEW; END", events="DELETE"),  # no NEW on a delete
    Trigger("a1", TableRef("public", "lines"), "AFTER", "UPDATE", "BEGIN NEW.qty := 1; RETURN NEW; END"),
])
def test_a_trigger_changing_no_carried_column_of_the_row_is_left_alone(env: Env, trig: Trigger) -> None:
    assert warnings(env, text(), crm_triggers=(trig,)) == []


def test_a_before_trigger_stamping_a_column_replicator_only_stamps_is_left_alone(env: Env) -> None:
    # `now: true`: replicator writes its apply time there, which no side compares; the trigger's stamp is as good
    t = text().replace("fields: {id: ~, order_id: {erp: ord}, qty: ~}",
                       "fields: {id: ~, order_id: {erp: ord}, qty: ~, modified: {crm: ~, now: true}}")
    trig = before("erp", "SET NEW.modified = IF(NEW.modified <=> OLD.modified, NOW(6), NEW.modified)", "UPDATE")
    assert warnings(env, t, erp_triggers=(trig,)) == []
    assert len(warnings(env, t, erp_triggers=(before("erp", "SET NEW.modified = NOW(6), NEW.qty = 0"),))) == 1


@pytest.mark.parametrize("body, why", [
    ("BEGIN NEW := jsonb_populate_record(NEW, '{\"qty\": 1}'); RETURN NEW; END", "it assigns the whole NEW row"),
    ("DECLARE r lines; BEGIN r := NEW; r.qty := 1; RETURN r; END", "it returns a row other than NEW"),
])
def test_a_before_trigger_whose_changes_of_the_row_check_cannot_read_warns(env: Env, body: str, why: str) -> None:
    (msg,) = warnings(env, text(), crm_triggers=(before("crm", body),))
    assert f"{why}, so check cannot tell which columns of the row it changes" in msg, msg


def test_a_mariadb_trigger_listed_without_its_statements_warns_naming_the_privilege(env: Env) -> None:
    (msg,) = warnings(env, text(), erp_triggers=(before("erp", None, "INSERT", HIDDEN),))
    assert ("trigger b1 (BEFORE INSERT ON erpdb.lines) fires on replicator's writes: check cannot read its statements: "
            "MariaDB shows them only to an account with the TRIGGER privilege on erpdb.lines, which this account "
            "lacks, so check cannot tell which tables it writes or which columns of the row it changes") in msg, msg
    assert "SHOW CREATE TRIGGER b1" in msg


def test_tables_whose_triggers_the_account_cannot_see_warn_instead_of_none(env: Env) -> None:
    hidden = ServerSide(unseen=(TableRef("erpdb", "lines"), TableRef("erpdb", "orders")), account="ro@%")
    findings = [f for f in env.check(text(orders="erp_to_crm"), server={"erp": hidden}) if f.warning]
    # orders flows only from erp: replicator never writes it there, so its triggers do not matter
    (msg,) = [f.what for f in findings]
    assert msg == ("the account ro@% cannot see the triggers of erpdb.lines: MariaDB lists a table's triggers only to "
                   "an account with INSERT, UPDATE, DELETE or TRIGGER on it, so check cannot tell whether triggers run "
                   "on replicator's writes there (none listed is not none there)"), msg


@pytest.mark.parametrize("grants, seen", [
    (["GRANT USAGE ON *.* TO `a`@`%`", "GRANT SELECT ON `erpdb`.* TO `a`@`%`"], False),
    (["GRANT SELECT, INSERT, UPDATE, DELETE ON `erpdb`.* TO `a`@`%`"], True),
    (["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"], True),
    (["GRANT `trg` TO `a`@`%`", "GRANT TRIGGER ON `erpdb`.`lines` TO `trg`"], True),  # the enabled role's grants
    (["GRANT TRIGGER ON `erpdb`.`orders` TO `a`@`%`"], False),
    (["GRANT SELECT, INSERT (qty) ON `erpdb`.`lines` TO `a`@`%`"], False),  # a column's privilege: not counted
    (["GRANT DELETE ON `erp\\_%`.* TO `a`@`%`"], False), (["GRANT DELETE ON `erp%`.* TO `a`@`%`"], True),
])
def test_which_grants_let_an_account_see_a_tables_triggers(grants: list[str], seen: bool) -> None:
    assert may_see_triggers(grants, TableRef("erpdb", "lines")) is seen


def test_assigned_columns_reads_assignments_not_comparisons() -> None:
    body = """DECLARE r record;
    BEGIN
      -- NEW.commented := 1;
      IF NEW.total = 0 THEN NEW.total := NEW.qty * NEW.price; END IF;
      NEW."Name" = upper(NEW."Name");
      SELECT x INTO NEW.Code FROM t WHERE y = NEW.id;
      PERFORM 'NEW.s := 1';
      RETURN NEW;
    END"""
    assert assigned_columns(body, postgres=True) == ({"total", "Name", "code"}, "")
    assert assigned_columns("BEGIN IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NULL; END", True) == (set(), "")
    my = "BEGIN IF NEW.a = 1 THEN SET NEW.`Weird` := 3, NEW.b = IF(NEW.a = 2, 1, 2); END IF; SET @x = 1, NEW.c = 4; END"
    assert assigned_columns(my, postgres=False) == ({"Weird", "b", "c"}, "")
    assert assigned_columns("INSERT INTO log SET a = NEW.a, b = NEW.b", postgres=False) == (set(), "")


def test_written_tables_reads_the_statements_that_write() -> None:
    body = """BEGIN
      -- UPDATE commented_out SET x = 1;
      INSERT INTO `erpdb`.`Audit` (id) VALUES (NEW.id);
      REPLACE INTO totals SELECT 1;
      UPDATE IGNORE stock SET n = n - 1;
      DELETE FROM "Mixed""Name" WHERE id = OLD.id;
      SET NEW.x = 1;
    END"""
    tables, opaque = written_tables(body, "erpdb", "mariadb")
    assert tables == {TableRef("erpdb", "Audit"), TableRef("erpdb", "totals"), TableRef("erpdb", "stock"),
                      TableRef("erpdb", 'Mixed"Name')}
    assert not opaque
    assert written_tables("BEGIN UPDATE Stock SET n = 0; END", "", "postgresql")[0] == {TableRef("", "stock")}


def test_an_accepted_name_that_matches_no_foreign_key_warns_naming_file_line_and_the_names_there(env: Env) -> None:
    t = text(lines_extra="    accept_cascades:\n      - fk_my\n      - fk_typo\n")
    findings = env.check(t, server=server(erp=[fk("erp", "fk_my")], crm=[fk("crm", "fk_crm", "RESTRICT")]))
    (warning,) = [f for f in findings if f.warning]
    assert warning.what.endswith("m.yaml:13: mappings.lines.accept_cascades[1]: fk_typo is no foreign key of "
                                 "crm:public.lines and erp:erpdb.lines, so it accepts nothing (their foreign keys: "
                                 "fk_crm, fk_my)"), warning.what
    assert "correct the name" in warning.fix
    assert any("accepted by the accept_cascades of mapping lines" in f.what for f in findings if f.ok)
    # a foreign key of another table is not one of the mapping's
    other = ForeignKey("fk_typo", TableRef("erpdb", "orders"), ("x",), TableRef("erpdb", "lines"), ("id",),
                       "RESTRICT", "RESTRICT")
    assert [f.what for f in env.check(t, server=server(erp=[fk("erp", "fk_my"), other])) if f.warning] == \
        [warning.what.replace("fk_crm, ", "")]
    # every name matches: no word; a side not read: not judged
    assert [f for f in env.check(t, server=server(erp=[fk("erp", "fk_my"), fk("erp", "fk_typo")])) if f.warning] == []
    assert [f for f in env.check(t, server={"erp": ServerSide((fk("erp", "fk_my"),))}) if f.warning] == []


def test_accept_cascades_survives_on_a_mapping_another_references(env: Env) -> None:
    t = text(lines_extra="    accept_cascades: [fk_my]\n").replace("order_id: {erp: ord}", "order_id: {erp: ord, "
                                                                      "references: orders}")
    t = t.replace("    direction: both\n    crm: {table: orders", "    accept_cascades: [fk_o]\n    direction: both\n"
                  "    crm: {table: orders")
    mset = env.load(t)
    assert {m.name: m.accept_cascades for m in mset.mappings} == {"orders": ("fk_o",), "lines": ("fk_my",)}


FOLD = """\
  order_note:
    direction: both
    crm: {table: notes, key: [id], slice: {kind: note}, generate: {id: uuid}}
    erp: {table: orders, key: [id]}
    fold: {parent: orders, child: crm, by: order_id, value: body, into: note}
"""


def test_a_before_trigger_assigning_a_folded_column_warns_naming_it(env: Env) -> None:
    """A fold has no field plans: the parent's column it writes (erp orders.note) and the child row's columns
    (crm notes.body, its `by` and slice) are carried all the same."""
    t = text() + FOLD
    assert warnings(env, text(), erp_triggers=(before("erp", "SET NEW.note = 'x'", "UPDATE"),)) == []  # no fold yet
    parent = Trigger("b1", TableRef("erpdb", "orders"), "BEFORE", "UPDATE", "SET NEW.note = upper(NEW.note)")
    (msg,) = warnings(env, t, erp_triggers=(parent,))
    assert "trigger b1 (BEFORE UPDATE ON erpdb.orders)" in msg and "it assigns NEW.note, which replicator carries" \
        in msg and "differ in note" in msg, msg
    for column in ("body", "kind", "order_id"):
        child = Trigger("b2", TableRef("public", "notes"), "BEFORE", "INSERT OR UPDATE",
                        f"BEGIN NEW.{column} := 'x'; RETURN NEW; END")
        (msg,) = warnings(env, t, crm_triggers=(child,))
        assert f"mappings.order_note: trigger b2 (BEFORE INSERT OR UPDATE ON public.notes)" in msg \
            and f"it assigns NEW.{column}, which" in msg, msg
    other = Trigger("b3", TableRef("public", "notes"), "BEFORE", "INSERT", "BEGIN NEW.edited := now(); RETURN NEW; END")
    assert warnings(env, t, crm_triggers=(other,)) == []


def test_a_before_trigger_making_a_key_the_database_generates_is_left_alone(env: Env) -> None:
    """`generate: {id: default}`: replicator leaves the crosswalk key to the database and reads back what it made
    (vtiger's crmid from its sequence table, by a trigger): not a carried value. A key replicator makes itself
    (uuid) that a trigger overwrites is still named."""
    assign = Trigger("b4", TableRef("public", "notes"), "BEFORE", "INSERT",
                     "BEGIN NEW.id := nextval('notes_seq'); RETURN NEW; END")
    by_database = text() + FOLD.replace("generate: {id: uuid}", "generate: {id: default}")
    assert warnings(env, by_database, crm_triggers=(assign,)) == []
    (msg,) = warnings(env, text() + FOLD, crm_triggers=(assign,))
    assert "it assigns NEW.id, which replicator carries" in msg, msg


def test_a_before_trigger_making_the_key_of_rows_replicator_never_creates_there_is_left_alone(env: Env) -> None:
    """A crosswalk `created_by: crm`: replicator never inserts orders on crm, so a BEFORE INSERT trigger making their key
    there (vtiger's contacts, numbered by vtiger's own trigger) never fires on replicator's writes."""
    assign = Trigger("b4", TableRef("public", "orders"), "BEFORE", "INSERT",
                     "BEGIN NEW.id := nextval('orders_seq'); RETURN NEW; END")
    crosswalk = text().replace("    erp: {table: orders, key: [id]}\n    fields: {id: ~, name: ~}",
                               "    erp: {table: orders, key: [id], generate: {id: uuid}}\n    link: {crosswalk: true}\n"
                               "    created_by: crm\n    fields: {name: ~}")
    assert "created_by: crm" in crosswalk
    assert warnings(env, crosswalk, crm_triggers=(assign,)) == []
    (msg,) = warnings(env, crosswalk.replace("    created_by: crm\n", "    created_by: erp\n"), crm_triggers=(assign,))
    assert "it assigns NEW.id, which replicator carries" in msg, msg


def test_skipped_events_reads_a_before_row_trigger_returning_null_or_old() -> None:
    t = TableRef("public", "t")

    def events(body: str, on: str = "INSERT OR UPDATE", timing: str = "BEFORE", row: bool = True) -> tuple[str, ...]:
        return skipped_events(Trigger("tr", t, timing, on, body, row=row))
    guard = "BEGIN IF NEW.x IS NULL THEN RETURN NULL; END IF; RETURN NEW; END"
    assert events(guard) == ("INSERT", "UPDATE")
    assert events("BEGIN RETURN OLD; END", "UPDATE") == ("UPDATE",)  # the update keeps the old values
    # a function serving DELETE too returns OLD there, as it must; its NULL is still a skip
    shared = "BEGIN IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; NEW.t := now(); RETURN NEW; END"
    assert events(shared, "INSERT OR DELETE OR UPDATE") == ()
    assert events("BEGIN UPDATE t SET gone = true WHERE id = OLD.id; RETURN NULL; END", "DELETE") == ("DELETE",)
    # NULL in a comment or a string, an AFTER or a statement trigger, a body check cannot read: none
    assert events("BEGIN -- RETURN NULL would skip\n RAISE NOTICE 'RETURN NULL'; RETURN NEW; END") == ()
    assert events(guard, timing="AFTER") == ()
    assert events(guard, row=False) == ()
    assert skipped_events(Trigger("tr", t, "BEFORE", "INSERT", None)) == ()
    assert events("BEGIN RETURN NEW; END") == ()


@pytest.mark.parametrize("any_case, warned", [(True, True), (False, False)])
def test_a_mariadb_trigger_writing_a_carried_table_in_another_case_warns_where_the_server_ignores_case(
        env: Env, any_case: bool, warned: bool) -> None:
    """`INSERT INTO ERPDB.Lines` writes erpdb.lines on a server with lower_case_table_names 1 or 2 (any_case);
    with 0 it is another table."""
    tr = trigger("erp", "BEGIN INSERT INTO ERPDB.Lines (id) VALUES (1); END")
    side = {"crm": ServerSide(), "erp": ServerSide((), (tr,), any_case=any_case)}
    found = [f.what for f in env.check(text(), server=side) if f.warning and "it writes erpdb.lines" in f.what]
    assert bool(found) == warned, found
