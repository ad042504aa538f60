"""Changes the servers make on their own (docs/operations.md, "Changes the servers make on their own").

- MariaDB runs a foreign key's ON DELETE / ON UPDATE action inside InnoDB and writes no row event for the child
  rows it changes (binlog_format=ROW, 10.11): `check` refuses such a key on a mapped table unless PostgreSQL
  does the same to the counterparts, and with that twin the sides agree after the parent's delete and re-key.
- PostgreSQL's cascades are in the WAL, but one caused by replicator's own write is in its tagged transaction:
  refused likewise unless MariaDB does the same; with the twin both deletes agree.
- A trigger on a table replicator writes, writing another carried table: `check` warns; its rows never travel.
- A unique key or foreign key only the target has: the row is queued (on_error: quarantine) naming table, key,
  column and constraint, in both directions; the rest flows.
- PostgreSQL's foreign keys are read for the mapped tables only, among many that are not.
"""
from __future__ import annotations

import re
import time

from tests.integration.harness import Pair, wait_until, write_mappings

PG = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int, note text);
CREATE TABLE pc_parent (id int PRIMARY KEY, name text);
CREATE TABLE pc_child (id int PRIMARY KEY, parent_id int REFERENCES pc_parent ON DELETE CASCADE, note text)
"""
MY = """
CREATE TABLE parent (id int PRIMARY KEY, name text) ENGINE=InnoDB;
CREATE TABLE child (id int PRIMARY KEY, parent_id int, note text,
  CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE ON UPDATE SET NULL)
  ENGINE=InnoDB;
CREATE TABLE pc_parent (id int PRIMARY KEY, name text) ENGINE=InnoDB;
CREATE TABLE pc_child (id int PRIMARY KEY, parent_id int, note text) ENGINE=InnoDB
"""
MAPPINGS = """
mappings:
  parent: {direction: both, crm: {table: parent, key: [id]}, erp: {table: parent, key: [id]}, fields: {id: ~, name: ~}}
  child: {direction: both, crm: {table: child, key: [id]}, erp: {table: child, key: [id]},
          fields: {id: ~, parent_id: ~, note: ~}}
  pc_parent: {direction: both, crm: {table: pc_parent, key: [id]}, erp: {table: pc_parent, key: [id]},
              fields: {id: ~, name: ~}}
  pc_child: {direction: both, crm: {table: pc_child, key: [id]}, erp: {table: pc_child, key: [id]},
             fields: {id: ~, parent_id: ~, note: ~}}
"""
CONFIG = "sync: {on_first_run: false}\n"


def _check(pair: Pair) -> tuple[int, str]:
    r = pair.cli("check", check=False)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    return r.returncode, out


def _finding(out: str, constraint: str) -> str:
    return next(line for line in out.splitlines() if f":{constraint} (" in line)


def test_foreign_key_actions_refused_without_a_twin_and_agreeing_with_one(make_pair) -> None:
    pair = make_pair(PG, MY, MAPPINGS, CONFIG)
    code, out = _check(pair)
    assert code == 78
    erp = _finding(out, "child_parent")
    assert erp.startswith("[FAIL] erp:") and "mappings.child" in erp and "MariaDB writes no binlog row event" in erp
    assert "ON DELETE CASCADE" in erp and "ON UPDATE SET NULL" in erp and "crm:public.child has no foreign key" in erp
    crm = _finding(out, "pc_child_parent_id_fkey")
    assert crm.startswith("[FAIL] crm:") and "replicator deletes rows of public.pc_parent (erp_to_crm)" in crm
    assert "pc_child has no foreign key" in crm
    assert "accept_cascades: [pc_child_parent_id_fkey]" in out and "accept_cascades: [child_parent]" in out

    # the twins: PostgreSQL does what InnoDB does on a delete, MariaDB what PostgreSQL does
    pair.pg_query("ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE")
    pair.my_query("ALTER TABLE pc_child ADD CONSTRAINT pc_twin FOREIGN KEY (parent_id) REFERENCES pc_parent (id) "
                  "ON DELETE CASCADE")
    code, out = _check(pair)
    assert "erp:pc_twin does the same to" in _finding(out, "pc_child_parent_id_fkey")
    # ON UPDATE has no twin: replicator carries a key change as a delete and an insert (measured below)
    erp = _finding(out, "child_parent")
    assert code == 78 and erp.startswith("[FAIL]") and "no ON UPDATE action on crm repeats it" in erp, out
    write_mappings(pair, MAPPINGS.replace("child: {direction: both,",
                                          "child: {direction: both, accept_cascades: [child_parent],"))
    code, out = _check(pair)
    assert code == 0, out

    pair.start()
    try:
        pair.my_query("INSERT INTO parent VALUES (1, 'a'), (2, 'b')")
        pair.my_query("INSERT INTO child VALUES (10, 1, 'x'), (20, 2, 'y'), (30, 2, 'z')")
        pair.pg_query("INSERT INTO pc_parent VALUES (1, 'a'), (2, 'b')")
        pair.pg_query("INSERT INTO pc_child VALUES (10, 1, 'x'), (20, 2, 'y')")
        wait_until(lambda: len(pair.pg_query("SELECT * FROM child")) == 3
                   and len(pair.my_query("SELECT * FROM pc_child")) == 2, 30, "the rows on both sides")
        logs = pair.my_query("SHOW BINARY LOGS")
        pair.my_query("DELETE FROM parent WHERE id = 1")
        # InnoDB deleted child 10: the binlog has the parent's row only
        events = [e for log in logs for e in pair.my_query(f"SHOW BINLOG EVENTS IN '{log[0]}'")]
        tail = events[max(i for i, e in enumerate(events) if "DELETE FROM parent" in str(e[5])):]
        parent_id = _table_id(tail, "parent")
        assert [e[2] for e in tail if e[2].endswith("_rows_v1")] == ["Delete_rows_v1"], tail
        assert all(str(e[5]).startswith(f"table_id: {parent_id} ") for e in tail if e[2].endswith("_rows_v1")), tail
        assert pair.my_query("SELECT id FROM child ORDER BY id") == [(20,), (30,)]
        # on the CRM the twin did the same when the parent's delete arrived
        wait_until(lambda: pair.pg_query("SELECT id FROM child ORDER BY id") == [(20,), (30,)], 30,
                   "the CRM children as the ERP's")
        # the accepted re-key: InnoDB sets the children's parent_id to NULL; replicator deletes parent 2 on the CRM
        # and inserts 3, and the CRM's ON DELETE CASCADE takes the children (an ON UPDATE there would never fire)
        pair.my_query("UPDATE parent SET id = 3 WHERE id = 2")
        wait_until(lambda: pair.pg_query("SELECT id FROM parent") == [(3,)], 30, "the re-keyed parent")
        assert pair.my_query("SELECT id, parent_id FROM child ORDER BY id") == [(20, None), (30, None)]
        assert pair.pg_query("SELECT id FROM child") == []
        # replicator's delete of a pc_parent on the CRM cascades there in its own (tagged) transaction; MariaDB's
        # twin did it on the ERP
        pair.my_query("DELETE FROM pc_parent WHERE id = 2")
        wait_until(lambda: pair.pg_query("SELECT id FROM pc_child") == [(10,)], 30, "the CRM's cascade")
        assert pair.my_query("SELECT id FROM pc_child") == [(10,)]
        # a CRM user's delete cascades in the WAL: the child's delete arrives after MariaDB's twin removed it
        pair.pg_query("DELETE FROM pc_parent WHERE id = 1")
        wait_until(lambda: pair.my_query("SELECT id FROM pc_parent") == [], 30, "the ERP parent's delete")
        time.sleep(1)
        assert pair.my_query("SELECT id FROM pc_child") == [] and pair.pg_query("SELECT id FROM pc_child") == []
        assert pair.proc is not None and pair.proc.poll() is None, pair.log()
        verify = pair.cli("verify", check=False)
        assert verify.returncode != 0 and "child" in verify.stdout + verify.stderr  # the accepted difference
        assert "pc_child" not in (verify.stdout + verify.stderr).replace("pc_child: 0", ""), verify.stdout
    finally:
        pair.stop()


def _table_id(events: list, table: str) -> str:
    return next(str(e[5]).split()[1] for e in events if e[2] == "Table_map" and str(e[5]).endswith(f".{table})"))


def test_accept_cascades_lets_the_dba_keep_the_difference(make_pair) -> None:
    accepted = MAPPINGS.replace("child: {direction: both,", "child: {direction: both, accept_cascades: [child_parent],")
    pair = make_pair(PG, MY, accepted.replace("pc_parent: {direction: both", "pc_parent: {direction: crm_to_erp"),
                     CONFIG, setup=False)
    code, out = _check(pair)
    assert "accepted by the accept_cascades of mapping child" in _finding(out, "child_parent")
    # pc_parent flows only from the CRM: replicator never deletes one there, and the CRM's cascades are in the WAL
    assert ":pc_child_parent_id_fkey (" not in out


TRIGGER_PG = """
CREATE TABLE item (id int PRIMARY KEY, name text);
CREATE TABLE item_log (id int PRIMARY KEY, what text)
"""
TRIGGER_MY = """
CREATE TABLE item (id int PRIMARY KEY, name text) ENGINE=InnoDB;
CREATE TABLE item_log (id int PRIMARY KEY, what text) ENGINE=InnoDB;
CREATE TRIGGER item_logged AFTER INSERT ON item FOR EACH ROW INSERT INTO item_log VALUES (NEW.id, 'created')
"""
TRIGGER_MAPPINGS = """
mappings:
  item: {direction: crm_to_erp, crm: {table: item, key: [id]}, erp: {table: item, key: [id]}, fields: {id: ~, name: ~}}
  item_log: {direction: erp_to_crm, crm: {table: item_log, key: [id]}, erp: {table: item_log, key: [id]},
             fields: {id: ~, what: ~}}
"""


def test_a_target_trigger_writing_a_carried_table_warns_and_its_rows_stay_behind(make_pair) -> None:
    pair = make_pair(TRIGGER_PG, TRIGGER_MY, TRIGGER_MAPPINGS, CONFIG)
    code, out = _check(pair)
    assert code == 0, out
    (warning,) = [line for line in out.splitlines() if "trigger item_logged" in line]
    assert warning.startswith("[warn] erp:") and "mappings.item: trigger item_logged (AFTER INSERT ON " in warning
    assert f"it writes {pair.maria.dbname}.item_log, which replicator carries from erp to crm" in warning
    pair.start()
    try:
        pair.my_query("INSERT INTO item VALUES (1, 'erp')")  # an application's insert: the trigger's row travels
        pair.pg_query("INSERT INTO item VALUES (2, 'crm')")  # replicator's insert: the trigger's row is tagged
        wait_until(lambda: pair.my_query("SELECT id FROM item_log ORDER BY id") == [(1,), (2,)], 30, "both logs")
        wait_until(lambda: pair.pg_query("SELECT id FROM item_log") == [(1,)], 30, "the application's log row")
        time.sleep(1)
        assert pair.pg_query("SELECT id FROM item_log") == [(1,)]  # what check warned of
    finally:
        pair.stop()


KEYS_PG = """
CREATE TABLE account (id int PRIMARY KEY, email text UNIQUE);
CREATE TABLE owner (id int PRIMARY KEY);
CREATE TABLE pet (id int PRIMARY KEY, owner_id int REFERENCES owner);
CREATE TABLE src (id int PRIMARY KEY, email text, owner_id int)
"""
KEYS_MY = """
CREATE TABLE account (id int PRIMARY KEY, email varchar(40)) ENGINE=InnoDB;
CREATE TABLE pet (id int PRIMARY KEY, owner_id int) ENGINE=InnoDB;
CREATE TABLE owner (id int PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE dst (id int PRIMARY KEY, email varchar(40), owner_id int, CONSTRAINT uq_dst_mail UNIQUE (email),
  CONSTRAINT dst_owner FOREIGN KEY (owner_id) REFERENCES owner (id)) ENGINE=InnoDB
"""
KEYS_MAPPINGS = """
mappings:
  account: {direction: erp_to_crm, crm: {table: account, key: [id]}, erp: {table: account, key: [id]},
            fields: {id: ~, email: ~}}
  pet: {direction: erp_to_crm, crm: {table: pet, key: [id]}, erp: {table: pet, key: [id]}, fields: {id: ~, owner_id: ~}}
  dst: {direction: crm_to_erp, crm: {table: src, key: [id]}, erp: {table: dst, key: [id]},
        fields: {id: ~, email: {lossy: allow}, owner_id: ~}}
"""


def test_a_key_only_the_target_has_queues_just_that_row_naming_column_and_constraint(make_pair) -> None:
    pair = make_pair(KEYS_PG, KEYS_MY, KEYS_MAPPINGS, CONFIG + "on_error: quarantine\n")
    pair.my_query("INSERT INTO owner VALUES (1), (2)")
    pair.start()
    try:
        pair.pg_query("INSERT INTO account VALUES (1, 'a@x')")  # the CRM's own: email unique there only
        pair.my_query("INSERT INTO account VALUES (2, 'a@x'), (3, 'b@x')")
        pair.my_query("INSERT INTO pet VALUES (5, 99), (6, NULL)")  # owner 99 is not in the CRM
        # 8 shares 7's e-mail: INSERT ... ON DUPLICATE KEY UPDATE took it for 7, gave 7 its owner and never wrote 8
        pair.pg_query("INSERT INTO src VALUES (7, 'c@x', 1), (8, 'c@x', 2), (9, 'd@x', 42), (10, 'e@x', 1)")
        wait_until(lambda: sorted(pair.pg_query("SELECT id FROM account")) == [(1,), (3,)]
                   and pair.pg_query("SELECT id FROM pet") == [(6,)]
                   and sorted(pair.my_query("SELECT id FROM dst")) == [(7,), (10,)], 30, "the rows that fit")
        errors = {(t, k): e for t, k, e in pair.pg_query(
            "SELECT target_table, target_key::text, error FROM replicator.dead_letter")}
        errors.update({(t, k): e for t, k, e in pair.my_query(
            f"SELECT target_table, target_key, error FROM `{pair.state_schema}`.dead_letter")})
        assert len(errors) == 4, "\n".join(map(str, errors.items()))
        account = next(e for (t, _), e in errors.items() if t.endswith("account"))
        assert account.startswith("table public.account, key (2,), column email: duplicate key value violates "
                                  'unique constraint "account_email_key" (Key (email)=(a@x) already exists.)'), account
        pet = next(e for (t, _), e in errors.items() if t.endswith("pet"))
        assert pet.startswith("table public.pet, key (5,), column owner_id: insert or update on table \"pet\" "
                              'violates foreign key constraint "pet_owner_id_fkey" (Key (owner_id)=(99) is not '
                              'present in table "owner".)'), pet
        dup, fk = sorted((e for (t, _), e in errors.items() if t.endswith("dst")), key=lambda e: "FOREIGN" in e)
        assert dup.startswith(f"table {pair.maria.dbname}.dst, key (8,), column email: (1062) Duplicate entry 'c@x' "
                              "for key 'uq_dst_mail'"), dup
        assert fk.startswith(f"table {pair.maria.dbname}.dst, key (9,), column owner_id: (1452) Cannot add or update "
                             "a child row") and "CONSTRAINT `dst_owner`" in fk, fk
        assert pair.my_query("SELECT id, email, owner_id FROM dst WHERE id = 7") == [(7, "c@x", 1)]
        # the guarded upsert still updates a row by its key, in a batch with a new row
        pair.pg_query("UPDATE src SET owner_id = 2 WHERE id = 7; INSERT INTO src VALUES (11, 'f@x', 2)")
        wait_until(lambda: sorted(pair.my_query("SELECT id, email, owner_id FROM dst")) == [
            (7, "c@x", 2), (10, "e@x", 1), (11, "f@x", 2)], 30, "the update and the insert")
    finally:
        pair.stop()


NAMED_PG = """
CREATE TABLE owner (id int PRIMARY KEY);
CREATE TABLE acct (id int PRIMARY KEY, email text, owner_id int, qty int, code text,
  CONSTRAINT acct_mail UNIQUE (email), CONSTRAINT acct_owner FOREIGN KEY (owner_id) REFERENCES owner,
  CONSTRAINT acct_qty CHECK (qty >= 0));
CREATE UNIQUE INDEX acct_code ON acct (lower(code));
INSERT INTO owner VALUES (1), (2);
INSERT INTO acct VALUES (1, 'a@x', 1, 0, 'A')
"""


def test_postgresql_row_errors_name_the_column_from_the_constraint_not_the_message_text(pg_db) -> None:
    """PostgreSQL spells a violated key's columns out only in its DETAIL line, in the server's lc_messages language,
    and only to an account that may read them. The constraint's name comes in the error's fields either way: the
    applier names the columns from the catalog. Here the apply account may read no column but the key, so the
    DETAIL has no columns to parse (`Key is not present in table "owner".`, or no DETAIL at all)."""
    from replicator.appliers.postgres import PostgresApplier
    from replicator.changes import Op, TableRef, TargetChange
    from replicator.config import Account, Connection, Secret
    from replicator.errors import RowError

    conn = pg_db.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        for stmt in filter(str.strip, NAMED_PG.split(";")):
            cur.execute(stmt)
        cur.execute("DROP ROLE IF EXISTS narrow_apply; CREATE ROLE narrow_apply LOGIN PASSWORD 'p'; "
                    "GRANT INSERT, UPDATE ON acct TO narrow_apply; GRANT SELECT (id) ON acct, owner TO narrow_apply; "
                    "GRANT DELETE ON owner TO narrow_apply")
        cur.execute("SELECT locale FROM (VALUES ('de_DE.UTF-8'), ('de_DE.utf8'), ('fr_FR.UTF-8'), ('es_ES.UTF-8')) "
                    "l(locale) WHERE EXISTS (SELECT FROM pg_collation WHERE collcollate = l.locale) LIMIT 1")
        foreign = cur.fetchone()
    acc = Account("narrow_apply", Secret("p"))
    a = PostgresApplier(Connection("crm", "postgresql", pg_db.host, pg_db.port, pg_db.dbname, acc, acc,
                                   sslmode="disable", slot=pg_db.dbname, publication="p"), "erp_to_crm")
    a.connect()
    acct, owner = TableRef("public", "acct"), TableRef("public", "owner")
    a.load_types([acct, owner])

    def error(change: TargetChange, language: str | None = None) -> RowError:
        a.begin()
        try:
            if language:
                a.execute(f"SET LOCAL lc_messages = '{language}'", [])
            a.apply([change])
        except Exception as exc:  # noqa: BLE001 - the server's error, named as the stream names it
            return a.locate_row_error([change], exc)
        finally:
            a.rollback()
        raise AssertionError(f"{change} went in")

    def row(key: int, email: str, owner_id: int, qty: int, code: str) -> TargetChange:
        # insert-only columns (a sync's second side): ON CONFLICT (id) DO NOTHING, which needs SELECT on id only
        # (DO UPDATE SET x = EXCLUDED.x would need it on x)
        values = {"id": key, "email": email, "owner_id": owner_id, "qty": qty, "code": code}
        return TargetChange(acct, Op.INSERT, ("id",), (key,), values, insert_only=frozenset(values) - {"id"})
    try:
        cases = [(row(2, "a@x", 1, 0, "B"), "email", "acct_mail"),  # unique constraint
                 (row(3, "c@x", 99, 0, "C"), "owner_id", "acct_owner"),  # foreign key, from the child
                 (row(4, "d@x", 1, -1, "D"), "qty", "acct_qty"),  # check constraint (no text names it)
                 (row(5, "e@x", 1, 0, "a"), "lower(code)", "acct_code")]  # unique index on an expression
        for change, column, constraint in cases:
            err = error(change)
            assert err.column == column and f'"{constraint}"' in str(err), str(err)
            assert "Key (" not in str(err), str(err)  # the server spelled out no columns to this account
        # a delete of a parent still referenced: the error names the child's table and constraint, the columns
        # are the parent's (the account reads owner.id to delete by it, so here the DETAIL has them too)
        err = error(TargetChange(owner, Op.DELETE, ("id",), (1,), {"id": 1}))
        assert err.column == "id" and '"acct_owner"' in str(err), str(err)
        if foreign:
            err = error(row(2, "a@x", 1, 0, "B"), foreign[0])
            assert err.column == "email" and "duplicate key value" not in str(err), str(err)
    finally:
        a.close()
        with conn.cursor() as cur:
            cur.execute("DROP OWNED BY narrow_apply; DROP ROLE narrow_apply")
        conn.close()


BEFORE_PG = """
CREATE TABLE item (id int PRIMARY KEY, name text);
CREATE TABLE part (id int PRIMARY KEY, name text, updated_at timestamptz)
"""
BEFORE_MY = """
CREATE TABLE item (id int PRIMARY KEY, name text, touched int) ENGINE=InnoDB;
CREATE TABLE part (id int PRIMARY KEY, name text) ENGINE=InnoDB;
CREATE TRIGGER item_upper BEFORE INSERT ON item FOR EACH ROW SET NEW.Name = upper(NEW.name), NEW.touched = 1
"""
# the CRM's trigger: one column the mapping carries, one it does not (the application's bookkeeping)
BEFORE_PG_TRIGGER = """
CREATE FUNCTION part_lower() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.name = 'keep' THEN RETURN NEW; END IF;  -- a comparison, no assignment
  NEW.updated_at := now();
  NEW.name = lower(NEW.name);
  RETURN NEW;
END $$;
CREATE TRIGGER part_lower BEFORE INSERT OR UPDATE ON part FOR EACH ROW EXECUTE FUNCTION part_lower()
"""
BEFORE_MAPPINGS = """
mappings:
  item: {direction: crm_to_erp, crm: {table: item, key: [id]}, erp: {table: item, key: [id]}, fields: {id: ~, name: ~}}
  part: {direction: erp_to_crm, crm: {table: part, key: [id]}, erp: {table: part, key: [id]}, fields: {id: ~, name: ~}}
"""


def _warnings(out: str, trigger: str) -> list[str]:
    """The findings about `trigger`, each on one line (its fix too)."""
    return [" ".join(f.split()) for f in re.split(r"\n(?=\[)", out) if f"trigger {trigger} (" in f]


def test_before_triggers_assigning_carried_columns_warn_and_the_sides_differ(make_pair) -> None:
    pair = make_pair(BEFORE_PG, BEFORE_MY, BEFORE_MAPPINGS, CONFIG)
    pair.pg_query(BEFORE_PG_TRIGGER)
    code, out = _check(pair)
    assert code == 0, out  # warnings
    (crm,) = _warnings(out, "part_lower")
    assert crm.startswith("[warn] crm: ") and "mappings.part: trigger part_lower (BEFORE INSERT OR UPDATE ON " \
        "public.part) fires on replicator's writes: it assigns NEW.name, which replicator carries:" in crm, crm
    assert "never reaches erp" in crm and "updated_at" not in crm
    (erp,) = _warnings(out, "item_upper")
    assert erp.startswith("[warn] erp: ") and f"trigger item_upper (BEFORE INSERT ON {pair.maria.dbname}.item) fires " \
        "on replicator's writes: it assigns NEW.name, which replicator carries" in erp, erp
    assert "touched" not in erp

    # what the warning is about: the trigger's value stays on its side
    pair.start()
    try:
        pair.pg_query("INSERT INTO item VALUES (1, 'Abc')")
        pair.my_query("INSERT INTO part VALUES (2, 'Xyz')")
        wait_until(lambda: pair.my_query("SELECT id, name, touched FROM item") == [(1, "ABC", 1)]
                   and pair.pg_query("SELECT id, name FROM part") == [(2, "xyz")], 30, "both rows")
        time.sleep(1)
        assert pair.pg_query("SELECT name FROM item") == [("Abc",)]  # the ERP's upper case never came back
        assert pair.my_query("SELECT name FROM part") == [("Xyz",)]
        assert pair.proc is not None and pair.proc.poll() is None, pair.log()
    finally:
        pair.stop()


def test_mariadb_triggers_an_account_cannot_read_are_said_so(make_pair) -> None:
    """MariaDB 10.11 lists a table's triggers to an account with INSERT, UPDATE or DELETE on it, their statements
    only with TRIGGER; with SELECT alone none. check says which, instead of finding nothing."""
    pair = make_pair(BEFORE_PG, BEFORE_MY, BEFORE_MAPPINGS, CONFIG, setup=False)
    db = pair.maria.dbname
    apply_user, select_user = f"a{db[-8:]}", f"s{db[-8:]}"
    pair.my_query(f"CREATE USER '{apply_user}'@'%' IDENTIFIED BY 'p'")
    pair.my_query(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.* TO '{apply_user}'@'%'")
    pair.my_query(f"CREATE USER '{select_user}'@'%' IDENTIFIED BY 'p'")
    pair.my_query(f"GRANT SELECT ON `{db}`.* TO '{select_user}'@'%'")
    (pair.tmp / "narrow.pw").write_text("p")
    config = pair.config_path.read_text()
    try:
        pair.config_path.write_text(config.replace(f"user: {pair.maria.user}\n    password_file: my.pw",
                                                   f"user: {apply_user}\n    password_file: narrow.pw"))
        _code, out = _check(pair)
        (erp,) = _warnings(out, "item_upper")
        assert erp.startswith("[warn] erp: ") and "check cannot read its statements: MariaDB shows them only to an " \
            f"account with the TRIGGER privilege on {db}.item, which {apply_user}@% lacks, so check cannot tell which " \
            "tables it writes or which columns of the row it changes" in erp, erp
        assert "SHOW CREATE TRIGGER item_upper" in erp and "cannot see the triggers" not in out

        pair.config_path.write_text(config.replace(f"user: {pair.maria.user}\n    password_file: my.pw",
                                                   f"user: {select_user}\n    password_file: narrow.pw"))
        _code, out = _check(pair)
        assert "item_upper" not in out  # not even listed to it
        (unseen,) = [" ".join(f.split()) for f in re.split(r"\n(?=\[)", out) if "cannot see the triggers" in f]
        assert unseen.startswith(f"[warn] erp: the account {select_user}@% cannot see the triggers of {db}.item: "
                                 "MariaDB lists a table's triggers only to an account with INSERT, UPDATE, DELETE or "
                                 "TRIGGER on it"), unseen
        # a TRIGGER grant on the table (through a role, as a DBA may give it) shows the statements
        pair.my_query(f"CREATE ROLE r{db[-8:]}")
        pair.my_query(f"GRANT TRIGGER ON `{db}`.item TO r{db[-8:]}")
        pair.my_query(f"GRANT r{db[-8:]} TO '{select_user}'@'%'")
        pair.my_query(f"SET DEFAULT ROLE r{db[-8:]} FOR '{select_user}'@'%'")
        _code, out = _check(pair)
        assert "cannot see the triggers" not in out, out
        (erp,) = _warnings(out, "item_upper")
        assert "it assigns NEW.name, which replicator carries" in erp, erp
    finally:
        pair.config_path.write_text(config)
        for user in (apply_user, select_user):
            pair.my_query(f"DROP USER IF EXISTS '{user}'@'%'")
        pair.my_query(f"DROP ROLE IF EXISTS r{db[-8:]}")


def test_postgres_foreign_keys_are_read_for_the_mapped_tables_only(pg_db) -> None:
    """The statement filters in the server (a key whose child or parent is mapped); check keeps a mapped child's."""
    import sqlalchemy

    from replicator.changes import TableRef
    from replicator.mapping.check.serverside import ForeignKey, read_server_side

    conn = pg_db.connect()
    with conn.cursor() as cur:
        cur.execute("""CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Parent" (id int PRIMARY KEY, k int, UNIQUE (id, k));
          CREATE TABLE other_parent (id int PRIMARY KEY);
          CREATE TABLE child (id int PRIMARY KEY, a int, b int, o int REFERENCES other_parent ON DELETE SET NULL,
            CONSTRAINT two FOREIGN KEY (a, b) REFERENCES "Sales"."Parent" (id, k) ON UPDATE CASCADE);
          CREATE TABLE other_child (id int PRIMARY KEY, p int REFERENCES "Sales"."Parent");
          CREATE TABLE "Sales".parent (id int PRIMARY KEY);  -- not "Parent": no key of it is read
          CREATE TABLE "Sales".child (id int PRIMARY KEY, p int REFERENCES "Sales".parent);""")
        cur.execute(";".join(f"CREATE TABLE u{i} (id int PRIMARY KEY, p int REFERENCES other_parent)"
                             for i in range(50)))
    conn.close()
    engine = sqlalchemy.create_engine(pg_db.url())
    try:
        got = read_server_side(engine, [TableRef("public", "child"), TableRef("Sales", "Parent")]).foreign_keys
        nothing = read_server_side(engine, []).foreign_keys
    finally:
        engine.dispose()
    assert sorted(got, key=lambda fk: fk.name) == [
        ForeignKey("child_o_fkey", TableRef("public", "child"), ("o",), TableRef("public", "other_parent"), ("id",),
                   "SET NULL", "NO ACTION"),
        ForeignKey("two", TableRef("public", "child"), ("a", "b"), TableRef("Sales", "Parent"), ("id", "k"),
                   "NO ACTION", "CASCADE")]
    assert nothing == ()


SKIP_PG = "CREATE TABLE gate (id int PRIMARY KEY, name text)"
SKIP_MY = "CREATE TABLE gate (id int PRIMARY KEY, name text) ENGINE=InnoDB"
SKIP_TRIGGERS = ["""CREATE FUNCTION gate_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.name = 'refused' THEN RETURN NULL; END IF;  -- skips the row, no error
  RETURN NEW;
END $$""", "CREATE TRIGGER gate_refuse BEFORE INSERT OR UPDATE ON gate FOR EACH ROW EXECUTE FUNCTION gate_refuse()",
                 """CREATE FUNCTION gate_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RETURN NULL; END $$""",  # a soft delete's shape: the DELETE never happens
                 "CREATE TRIGGER gate_keep BEFORE DELETE ON gate FOR EACH ROW EXECUTE FUNCTION gate_keep()",
                 # a statement trigger's NULL is no row's
                 "CREATE TRIGGER gate_stmt BEFORE INSERT ON gate FOR EACH STATEMENT EXECUTE FUNCTION gate_keep()"]
SKIP_MAPPINGS = """
mappings:
  gate: {direction: both, crm: {table: gate, key: [id]}, erp: {table: gate, key: [id]}, fields: {id: ~, name: ~}}
"""


def test_a_before_trigger_returning_null_is_a_row_error_not_a_silent_skip(make_pair) -> None:
    """PostgreSQL writes nothing and raises nothing for a row a BEFORE ROW trigger returns NULL for; before, the
    row was simply missing on the CRM. `check` warns of such triggers, and the applier counts what it wrote on
    their tables: each skipped row is queued naming table and key, in small runs and in COPY-sized ones."""
    pair = make_pair(SKIP_PG, SKIP_MY, SKIP_MAPPINGS, CONFIG + "on_error: quarantine\n")
    for stmt in SKIP_TRIGGERS:
        pair.pg_query(stmt)
    code, out = _check(pair)
    assert code == 0, out
    (refuse,) = _warnings(out, "gate_refuse")
    assert refuse.startswith("[warn] crm: ") and "it may return NULL (or OLD) on INSERT and UPDATE, which skips " \
        "replicator's write without an error: a row it returns NULL for is a row error naming table and key" in refuse
    (keep,) = _warnings(out, "gate_keep")
    assert "it may return NULL on DELETE, which keeps the row without an error" in keep, keep
    assert not _warnings(out, "gate_stmt"), out
    pair.start()
    try:
        pair.my_query("INSERT INTO gate VALUES (1, 'a'), (2, 'refused'), (3, 'c')")
        pair.my_query("INSERT INTO gate SELECT seq, IF(seq % 100 = 0, 'refused', 'x') FROM seq_10_to_709")
        wait_until(lambda: len(pair.pg_query("SELECT id FROM gate")) == 2 + 700 - 7, 30, "the rows it lets in")
        pair.my_query("UPDATE gate SET name = 'refused' WHERE id = 1")
        pair.my_query("UPDATE gate SET name = 'refused' WHERE id BETWEEN 10 AND 12")  # a run of existing rows
        pair.my_query("UPDATE gate SET name = 'y' WHERE id = 3")

        def queued() -> list[tuple[str, str]]:
            return sorted(pair.pg_query("SELECT target_key::text, error FROM replicator.dead_letter"))
        wait_until(lambda: len(queued()) == 1 + 7 + 1 + 3
                   and pair.pg_query("SELECT name FROM gate WHERE id = 3") == [("y",)], 30, "the skipped rows queued")
        errors = dict(queued())
        assert set(errors) == {"[2]", "[1]", "[10]", "[11]", "[12]"} | {
            f"[{n}]" for n in range(100, 701, 100)}, errors
        assert errors["[2]"].startswith("table public.gate, key (2,): a BEFORE trigger on public.gate skipped the "
                                        "row (it returned NULL)"), errors["[2]"]
        # the rows the trigger let through are as the ERP has them
        assert pair.pg_query("SELECT name FROM gate WHERE id IN (1, 10)") == [("a",), ("x",)]
        assert pair.proc is not None and pair.proc.poll() is None, pair.log()
    finally:
        pair.stop()
