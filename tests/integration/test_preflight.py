"""`replicator check` (and the same checks at `replicator run`) against real, deliberately
misconfigured servers: each finding is named with its fix, and the exit code is 78 (EX_CONFIG,
which the systemd unit does not restart on)."""
from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Iterator

import psycopg2
import pytest

from replicator.testing.devservers import Database, MariaDBServer, PostgresServer
from tests.integration.harness import Pair

EXIT_CONFIG = 78

PG_SCHEMA = "CREATE TABLE customer (id int PRIMARY KEY, name text)"
MY_SCHEMA = "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100))"
MAPPINGS = """\
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      name: ~
"""


def _run_sql(db: Database, sql: str) -> None:
    for stmt in filter(str.strip, sql.split(";")):
        conn = db.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(stmt)
        finally:
            conn.close()


@pytest.fixture
def pairs() -> Iterator[list[Pair]]:
    made: list[Pair] = []
    yield made
    for p in made:
        p.close()


def new_pair(pairs: list[Pair], tmp: Path, pg: Database, maria: Database, pg_sql: str = PG_SCHEMA,
             my_sql: str = MY_SCHEMA, mappings: str = MAPPINGS, track: bool = True) -> Pair:
    _run_sql(pg, pg_sql)
    _run_sql(maria, my_sql)
    pair = Pair(tmp, pg, maria, mappings)
    if track:  # pairs on a server of the test's own are thrown away with the server
        pairs.append(pair)
    return pair


def check(pair: Pair):
    result = pair.cli("check", check=False, timeout=120)
    return result.returncode, result.stdout + result.stderr


def run_refused(pair: Pair):
    """`replicator run` must refuse to start: it returns (it would otherwise stream until killed)."""
    result = pair.cli("run", check=False, timeout=90)
    return result.returncode, result.stdout + result.stderr


def failed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[FAIL]")]


def finding(output: str, text: str) -> str:
    """The finding containing `text`, with its `fix:` line."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("[") and text in line:
            fix = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].strip().startswith("fix:") else ""
            return line + ("\n" + fix if fix else "")
    raise AssertionError(f"no finding mentions {text!r}:\n{output}")


# ------------------------------------------------------------------------------------------------
# servers started here, each with one setting wrong


@pytest.mark.parametrize("setting, bad, good, fix", [
    ("binlog_row_metadata", "MINIMAL", "FULL", "SET GLOBAL binlog_row_metadata = FULL"),
    ("binlog_row_image", "MINIMAL", "FULL", "SET GLOBAL binlog_row_image = FULL"),
    ("binlog_format", "MIXED", "ROW", "SET GLOBAL binlog_format = ROW"),
])
def test_misconfigured_mariadb_is_refused(require_mariadb, tmp_path, pg_db, pairs, setting, bad, good, fix):
    with MariaDBServer(tmp_path / "maria", settings={setting: bad}) as server:
        assert server.execute(f"SELECT @@{setting}")[0][0] == bad
        maria = server.create_database("erp_" + uuid.uuid4().hex[:8])
        pair = new_pair(pairs, tmp_path, pg_db, maria, track=False)
        pair.setup()

        code, out = check(pair)
        assert code == EXIT_CONFIG, out
        bad_finding = finding(out, f"{setting} = {bad}")
        assert bad_finding.startswith("[FAIL] erp:"), bad_finding
        assert f"(needs {good})" in bad_finding and fix in bad_finding, bad_finding
        assert failed_lines(out) == [bad_finding.splitlines()[0]], out  # nothing else is wrong
        assert re.search(r"^\d+ ok, (\d+ warnings, )?1 failed$", out, re.M), out

        code, err = run_refused(pair)
        assert code == EXIT_CONFIG, err
        assert bad_finding in err, err  # the same finding, with its fix
        assert "preflight failed" in err
        assert pair.my_query("SELECT * FROM customers") == []


def test_postgres_without_logical_wal_is_refused(require_postgres, tmp_path, maria_db, pairs):
    with PostgresServer(tmp_path / "pg", settings={"wal_level": "replica"}) as server:
        assert server.execute("SHOW wal_level")[0][0] == "replica"
        pg = server.create_database("crm_" + uuid.uuid4().hex[:8])
        pair = new_pair(pairs, tmp_path, pg, maria_db, track=False)

        code, out = check(pair)
        assert code == EXIT_CONFIG, out
        wal = finding(out, "wal_level = replica")
        assert wal.startswith("[FAIL] crm:"), wal
        assert "(needs logical)" in wal and "ALTER SYSTEM SET wal_level = logical" in wal and "restart" in wal, wal

        code, err = run_refused(pair)
        assert code == EXIT_CONFIG, err
        assert wal in err, err


# ------------------------------------------------------------------------------------------------
# catalog and privilege problems on the session servers


def line_of(pair: Pair, text: str) -> int:
    lines = (pair.tmp / "mappings" / "test.yaml").read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if text in line)


def test_table_without_primary_key_is_refused(tmp_path, pg_db, maria_db, pairs):
    mappings = MAPPINGS + """\
  audit:
    direction: erp_to_crm
    crm: {table: audit, key: [id]}
    erp: {table: audit, key: [id]}
    fields:
      id: ~
      what: ~
"""
    pair = new_pair(pairs, tmp_path, pg_db, maria_db,
                    pg_sql=PG_SCHEMA + "; CREATE TABLE audit (id int PRIMARY KEY, what text)",
                    my_sql=MY_SCHEMA + "; CREATE TABLE audit (id INT NOT NULL, what TEXT)",  # no key
                    mappings=mappings)
    pair.setup()
    code, out = check(pair)
    assert code == EXIT_CONFIG, out
    path = str(pair.tmp / "mappings" / "test.yaml")
    nopk = finding(out, "has no primary key")
    assert nopk.startswith("[FAIL] erp:"), nopk
    assert f"{maria_db.dbname}.audit" in nopk and "mapping audit" in nopk, nopk
    m = re.search(re.escape(path) + r":(\d+)", nopk)
    assert m, f"no {path}:<line> in {nopk!r}"
    # the line is inside the mapping's block: its name, or one of the lines under it
    assert line_of(pair, "  audit:") <= int(m.group(1)) <= line_of(pair, "erp: {table: audit"), nopk
    assert "primary key" in nopk.split("fix:", 1)[-1], nopk
    assert len(failed_lines(out)) == 1, out

    code, err = run_refused(pair)
    assert code == EXIT_CONFIG and nopk in err, err


def test_mapped_column_that_does_not_exist_is_refused(tmp_path, pg_db, maria_db, pairs):
    mappings = MAPPINGS.replace("      name: ~\n", "      name: ~\n      nickname: {erp: nick}\n")
    pair = new_pair(pairs, tmp_path, pg_db, maria_db,
                    pg_sql=PG_SCHEMA + "; ALTER TABLE customer ADD COLUMN nickname text", mappings=mappings)
    pair.setup()
    code, out = check(pair)
    assert code == EXIT_CONFIG, out
    path = str(pair.tmp / "mappings" / "test.yaml")
    line = line_of(pair, "nickname: {erp: nick}")
    missing = finding(out, "column nick does not exist")
    assert missing.startswith("[FAIL] erp:"), missing
    assert f"{path}:{line}: mappings.customers.fields.nickname" in missing, missing
    assert f"{maria_db.dbname}.customers" in missing, missing
    assert len(failed_lines(out)) == 1, out  # the crm column nickname exists

    code, err = run_refused(pair)
    assert code == EXIT_CONFIG and missing in err, err


def _with_capture_user(pair: Pair, user: str, password: str) -> None:
    """Point the erp connection's capture account at `user` (the apply account stays root)."""
    (pair.tmp / "cap.pw").write_text(password)
    text = pair.config_path.read_text()
    anchor = f"    state_schema: {pair.state_schema}\n"
    assert anchor in text
    pair.config_path.write_text(text.replace(
        anchor, anchor + f"    capture_user: {user}\n    capture_password_file: cap.pw\n"))


@pytest.fixture
def maria_user(maria_server) -> Iterator[str]:
    name = "cap_" + uuid.uuid4().hex[:8]
    yield name
    maria_server.execute("DROP USER IF EXISTS %s@'%%'", (name,))


def test_capture_user_without_replication_slave_is_flagged(tmp_path, pg_db, maria_db, maria_server, maria_user,
                                                           pairs):
    maria_server.create_user(maria_user, "pw-cap", grants=["BINLOG MONITOR ON *.*",
                                                           f"SELECT ON `{maria_db.dbname}`.*"])
    pair = new_pair(pairs, tmp_path, pg_db, maria_db)
    _with_capture_user(pair, maria_user, "pw-cap")
    pair.setup()
    code, out = check(pair)
    assert code == EXIT_CONFIG, out
    repl = finding(out, f"capture user {maria_user} has REPLICATION SLAVE")
    assert repl.startswith("[FAIL] erp:"), repl
    assert f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{maria_user}'" in repl, repl
    assert finding(out, f"capture user {maria_user} has BINLOG MONITOR").startswith("[ok  ] erp:"), out
    assert failed_lines(out) == [repl.splitlines()[0]], out

    code, err = run_refused(pair)
    assert code == EXIT_CONFIG and repl in err, err


def test_least_privilege_capture_user_passes(tmp_path, pg_db, maria_db, maria_server, maria_user, pairs):
    """Exactly the grants of deploy/grants-mariadb.sql: REPLICATION SLAVE, BINLOG MONITOR, no SELECT."""
    maria_server.create_user(maria_user, "pw-cap", grants=["REPLICATION SLAVE, BINLOG MONITOR ON *.*"])
    pair = new_pair(pairs, tmp_path, pg_db, maria_db)
    _with_capture_user(pair, maria_user, "pw-cap")
    pair.setup()
    code, out = check(pair)
    assert failed_lines(out) == [], out
    assert code == 0, out
    assert finding(out, f"capture user {maria_user} has REPLICATION SLAVE").startswith("[ok  ] erp:")


def test_good_configuration_passes(tmp_path, pg_db, maria_db, pairs):
    pair = new_pair(pairs, tmp_path, pg_db, maria_db)
    pair.setup()
    code, out = check(pair)
    assert code == 0, out
    assert failed_lines(out) == [], out
    findings = [line for line in out.splitlines() if line.startswith("[")]
    assert findings and all(line.startswith(("[ok  ]", "[warn]")) for line in findings), out
    for expected in ("crm: wal_level = logical", "erp: binlog_format = ROW", "erp: binlog_row_image = FULL",
                     "erp: binlog_row_metadata = FULL", f"replication slot {pg_db.dbname} (plugin pgoutput",
                     "publication replicator exists", "public.customer has primary key ['id']",
                     f"{maria_db.dbname}.customers has primary key ['id']"):
        assert any(expected in line for line in findings), f"{expected!r} not in\n{out}"
    warned = sum(1 for line in findings if line.startswith("[warn]"))
    assert re.search(rf"^{len(findings) - warned} ok, " + (rf"{warned} warnings, " if warned else "") + "0 failed$",
                     out, re.M), out


def test_preflight_logs_in_a_few_times_and_not_once_per_catalog_question(tmp_path, pg_db, maria_db, pairs,
                                                                          monkeypatch):
    """`replicator run` starts with these checks: a catalog read holds one connection per engine (it used to
    log in again for every table, column list and key the Inspector asked for). The findings are those of
    test_good_configuration_passes; this counts logins, as start-up time depends on them."""
    from replicator import connect
    from replicator.admin.preflight import failures, run_checks
    from replicator.config import load
    from replicator.mapping.model import load_mappings

    pair = new_pair(pairs, tmp_path, pg_db, maria_db)
    pair.setup()
    config = load(pair.config_path)
    mset = load_mappings(config)
    logins = {"pg": 0, "my": 0}
    pg_login, my_login = connect.psycopg2.connect, connect.MyConnection

    def counted_pg(*a, **kw):
        logins["pg"] += 1
        return pg_login(*a, **kw)

    def counted_my(*a, **kw):
        logins["my"] += 1
        return my_login(*a, **kw)
    monkeypatch.setattr(connect.psycopg2, "connect", counted_pg)
    monkeypatch.setattr(connect, "MyConnection", counted_my)
    findings = run_checks(config, mset, raise_unreachable=True)
    assert failures(findings) == [], findings
    assert any("has primary key ['id']" in f.what for f in findings)
    # PostgreSQL: one apply session for settings, privileges, publication and replica identity, one catalog
    # engine, the stored checkpoint, the slot, one `check` catalog engine; MariaDB: settings, capture
    # grants, catalog, checkpoint, binlog files, `check` catalog (a login per Inspector question and per
    # check made it 14 and 13 here, and 4 more per mapped table)
    assert logins["pg"] <= 5 and logins["my"] <= 6, logins


def test_apply_user_without_a_grant_on_a_mapped_table_is_named_not_a_traceback(tmp_path, pg_db, maria_db,
                                                                               maria_server, maria_user, pairs):
    """deploy/grants-mariadb.sql with the tables listed one by one, one forgotten: MariaDB hides that table
    from the account and DESCRIBE fails (1142), which `check` and `run` printed as a traceback."""
    mappings = MAPPINGS + """\
  orders:
    direction: crm_to_erp
    crm: {table: orders, key: [id]}
    erp: {table: orders, key: [id]}
    fields: {id: ~, total: ~}
"""
    pair = new_pair(pairs, tmp_path, pg_db, maria_db, mappings=mappings,
                    pg_sql=PG_SCHEMA + "; CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2))",
                    my_sql=MY_SCHEMA + "; CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2))")
    pair.setup()  # as the administrator
    db, state = maria_db.dbname, pair.state_schema
    maria_server.create_user(maria_user, "pw-apply", grants=[f"SELECT, INSERT, UPDATE, DELETE ON `{db}`.`customers`",
                                                            f"SELECT, INSERT, UPDATE, DELETE ON `{state}`.*"])
    (pair.tmp / "apply.pw").write_text("pw-apply")
    text = pair.config_path.read_text()
    anchor = f"    user: {maria_db.user}\n    password_file: my.pw\n"
    assert anchor in text
    pair.config_path.write_text(text.replace(anchor, f"    user: {maria_user}\n    password_file: apply.pw\n"))
    code, out = check(pair)
    assert code == EXIT_CONFIG and "Traceback" not in out, out
    denied = finding(out, f"cannot read {db}.orders")
    assert denied.startswith(f"[FAIL] erp: mapping orders ({pair.tmp / 'mappings' / 'test.yaml'}:"), denied
    assert f"the apply user {maria_user} cannot read {db}.orders" in denied, denied
    assert f"fix: GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.orders TO '{maria_user}'@'%'" in denied, denied
    assert finding(out, f"{db}.customers has primary key").startswith("[ok  ] erp:"), out

    code, err = run_refused(pair)
    assert code == EXIT_CONFIG and "Traceback" not in err and denied.splitlines()[0] in err, err


@pytest.mark.parametrize("side", ["postgresql", "mysql"])
def test_a_server_lost_in_the_middle_of_the_checks_is_waited_for_not_a_traceback(tmp_path, pg_db, maria_db, pairs,
                                                                                 monkeypatch, side):
    """`run` checks both servers before it streams. A server restarted in the middle of a catalog read (the
    CI's test_sigterm_during_a_back_off stopped MariaDB just then) raised SQLAlchemy's OperationalError through
    `run` as a traceback, exit 1, and the daemon never waited for the server. Now the lost session is the
    RetriableError that `run` waits out, and `check` lists it as a finding."""
    from replicator.admin import preflight
    from replicator.admin.preflight import failures, run_checks
    from replicator.config import load
    from replicator.errors import RetriableError
    from replicator.mapping.model import load_mappings

    pair = new_pair(pairs, tmp_path, pg_db, maria_db)
    pair.setup()
    config = load(pair.config_path)
    mset = load_mappings(config)
    original = preflight.inspected_columns
    killed: list[int] = []

    def kill_then_read(insp, table):
        if insp.bind.dialect.name == side and not killed:
            # every other session on the database, the catalog read's own included: a server restart, seen
            # from the client
            if side == "postgresql":
                rows = pair.pg_query("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                                     "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            else:
                ids = pair.my_query("SELECT id FROM information_schema.PROCESSLIST "
                                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()")
                for (pid,) in ids:
                    pair.my_query(f"KILL {int(pid)}")
                rows = ids
            killed.append(len(rows))
        return original(insp, table)

    monkeypatch.setattr(preflight, "inspected_columns", kill_then_read)
    with pytest.raises(RetriableError) as caught:
        run_checks(config, mset, raise_unreachable=True)
    assert killed and killed[0] >= 1, killed
    server = pair.pg if side == "postgresql" else pair.maria
    assert f":{server.port}" in str(caught.value) and "connection" in str(caught.value), caught.value

    killed.clear()  # `check`: a finding naming the server, and the other server's findings still there
    findings = run_checks(config, mset, raise_unreachable=False)
    bad = failures(findings)
    assert len(bad) == 1 and bad[0].what.startswith("cannot check: ") and f":{server.port}" in bad[0].what, bad
    assert any(f.ok and "has primary key" in f.what for f in findings), findings

    monkeypatch.setattr(preflight, "inspected_columns", original)  # the server is back: everything passes
    assert failures(run_checks(config, mset, raise_unreachable=True)) == []


def test_row_level_security_that_applies_to_the_accounts_is_refused(tmp_path, pg_server, pg_db, maria_db, pairs):
    """A PostgreSQL table with row-level security shows and lets an account write only the rows its policies
    allow: an UPDATE or DELETE of a row they hide touches nothing and raises nothing (a delete lost without a
    word) and `sync` copies the rows they show. Refused as PostgreSQL's own logical replication refuses it,
    until the account bypasses the policies."""
    pair = new_pair(pairs, tmp_path, pg_db, maria_db)
    pair.setup()  # as the administrator
    role = f"rls{pg_db.dbname[-8:]}"
    pg_server.create_user(role, "pw-rls", replication=True)
    for stmt in (f"GRANT ALL ON ALL TABLES IN SCHEMA public, replicator TO {role}",
                 f"GRANT USAGE ON SCHEMA replicator TO {role}",
                 "ALTER TABLE customer ENABLE ROW LEVEL SECURITY",
                 f"CREATE POLICY tenant ON customer TO {role} USING (id < 100)"):
        pair.pg_query(stmt)
    # what it is about: the policy hides row 200, and deleting it does nothing, without an error
    pair.pg_query("INSERT INTO customer (id, name) VALUES (1, 'a'), (200, 'b')")
    conn = psycopg2.connect(host=pg_db.host, port=pg_db.port, dbname=pg_db.dbname, user=role, password="pw-rls")
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM customer WHERE id = 200")
            assert cur.rowcount == 0
        conn.rollback()
    finally:
        conn.close()
    (pair.tmp / "rls.pw").write_text("pw-rls")
    text = pair.config_path.read_text()
    anchor = f"    user: {pg_db.user}\n    password_file: pg.pw\n"
    assert anchor in text
    pair.config_path.write_text(text.replace(anchor, f"    user: {role}\n    password_file: rls.pw\n"))
    code, out = check(pair)
    assert code == EXIT_CONFIG and "Traceback" not in out, out
    refused = finding(out, "public.customer has row-level security")
    assert refused.startswith(f"[FAIL] crm: public.customer has row-level security: its policies apply to the "
                              f"apply and capture account {role}: replicator's updates and deletes of a row they "
                              f"hide touch nothing and say nothing, and verify does not see it; `sync` copies only "
                              f"the rows they show"), refused
    assert f"fix: ALTER ROLE {role} BYPASSRLS (as a superuser)" in refused, refused
    pair.pg_query(f"ALTER ROLE {role} BYPASSRLS")
    _code, out = check(pair)
    assert finding(out, "public.customer has row-level security").startswith(
        f"[ok  ] crm: public.customer has row-level security: its policies do not apply to the apply and capture "
        f"account {role}"), out
