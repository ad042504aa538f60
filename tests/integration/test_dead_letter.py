"""The dead-letter queue against the real daemon (issue 13 part 1, docs/operations.md).

One batch of 1,000 rows per direction with 3 rows the target rejects (a CHECK constraint the source
does not have) in the middle: 997 go in, 3 are queued in the target's dead_letter table in the same
transaction as the checkpoint. A later update of a queued row waits behind it; kill -9 and a restart
neither lose nor double anything; `dlq retry` after the fix (the constraint dropped) applies the
queued changes of a row in order, through the tagged path (no echo); `dlq skip` drops them.
"""
from __future__ import annotations

import json
import time

import pytest

from tests.integration.harness import Pair, wait_until

PG_SCHEMA = """
CREATE TABLE a (id int PRIMARY KEY, val int NOT NULL, note text);
CREATE TABLE b (id int PRIMARY KEY, val int NOT NULL CHECK (val < 1000), note text)
"""
MY_SCHEMA = """
CREATE TABLE a (id int PRIMARY KEY, val int NOT NULL, note varchar(40), CONSTRAINT small CHECK (val < 1000))
  ENGINE=InnoDB;
CREATE TABLE b (id int PRIMARY KEY, val int NOT NULL, note varchar(40)) ENGINE=InnoDB
"""
MAPPINGS = """
mappings:
  a:
    direction: crm_to_erp
    on_error: quarantine
    crm: {table: a, key: [id]}
    erp: {table: a, key: [id]}
    fields: {id: ~, val: ~, note: ~}
  b:
    direction: erp_to_crm
    crm: {table: b, key: [id]}
    erp: {table: b, key: [id]}
    fields: {id: ~, val: ~, note: ~}
"""
# `b` quarantines by the configuration's default, `a` by its own on_error
CONFIG = "sync: {on_first_run: false}\non_error: quarantine\n"
ROWS = 1000
BAD = (400, 500, 600)


@pytest.fixture
def pair(make_pair) -> Pair:
    return make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS, CONFIG)


def _insert_batch(pair: Pair) -> None:
    """One source transaction per side, the bad rows in the middle."""
    rows = [(i, 5000 if i in BAD else i % 1000, "first") for i in range(1, ROWS + 1)]
    conn = pair.pg.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO a VALUES (%s, %s, %s)", rows)
        conn.commit()
    finally:
        conn.close()
    my = pair.maria.connect(autocommit=False)
    try:
        with my.cursor() as cur:
            cur.executemany("INSERT INTO b VALUES (%s, %s, %s)", rows)
        my.commit()
    finally:
        my.close()


def _erp_a(pair: Pair) -> dict[int, tuple[int, str]]:
    return {i: (v, n) for i, v, n in pair.my_query("SELECT id, val, note FROM a")}


def _crm_b(pair: Pair) -> dict[int, tuple[int, str]]:
    return {i: (v, n) for i, v, n in pair.pg_query("SELECT id, val, note FROM b")}


def _queued(pair: Pair) -> tuple[list[tuple], list[tuple]]:
    """(erp's queue, crm's queue): (target key, op, error class) in queue order."""
    erp = pair.my_query(f"SELECT target_key, op, error_class FROM `{pair.state_schema}`.dead_letter ORDER BY id")
    crm = pair.pg_query("SELECT target_key, op, error_class FROM replicator.dead_letter ORDER BY id")
    return [tuple(r) for r in erp], [tuple(r) for r in crm]


def _update(pair: Pair, key: int, note: str) -> None:
    pair.pg_query("UPDATE a SET note = %s WHERE id = %s", (note, key))
    pair.my_query("UPDATE b SET note = %s WHERE id = %s", (note, key))


def _dlq(pair: Pair, *args: str) -> list[dict]:
    out = pair.cli("dlq", *args, "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_quarantine_order_kill_retry_skip(pair: Pair) -> None:
    pair.start()
    started = time.monotonic()
    _insert_batch(pair)
    wait_until(lambda: len(_erp_a(pair)) == ROWS - 3 and len(_crm_b(pair)) == ROWS - 3, 60, "997 rows each way")
    erp_q, crm_q = _queued(pair)
    assert [k for k, _, _ in erp_q] == [f"[{k}]" for k in BAD]
    assert [k for k, _, _ in crm_q] == [f"[{k}]" for k in BAD]
    assert all(op == "insert" and cls != "held" for _, op, cls in erp_q + crm_q)
    assert not set(BAD) & set(_erp_a(pair)) and not set(BAD) & set(_crm_b(pair))
    wait_until(lambda: pair.metric("replicator_dead_letter_rows", direction="crm_to_erp", table=f"{pair.maria.dbname}.a") == 3,
               10, "the gauge of crm_to_erp")
    assert pair.metric("replicator_dead_letter_rows", direction="erp_to_crm", table="public.b") == 3
    print(f"1,000-row batches with 3 bad rows applied each way in {time.monotonic() - started:.1f} s")
    status = pair.cli("status", "--json", check=False)
    assert status.returncode == 1, status.stdout + status.stderr  # degraded: rows wait in the queue
    queued = {d["name"]: d["dead_letter_rows"] for d in json.loads(status.stdout)["directions"]}
    assert queued == {"crm_to_erp": 3, "erp_to_crm": 3}

    # a later update of a queued row waits behind it; another row's update goes through
    _update(pair, 500, "later")
    _update(pair, 501, "later")
    wait_until(lambda: _erp_a(pair)[501][1] == "later" and _crm_b(pair)[501][1] == "later", 30, "row 501 updated")
    wait_until(lambda: all(len(q) == 4 for q in _queued(pair)), 30, "the update of 500 queued behind its insert")
    erp_q, crm_q = _queued(pair)
    assert erp_q[3] == ("[500]", "update", "held") and crm_q[3] == ("[500]", "update", "held")

    # verify: the queued rows are known differences, not drift
    verified = pair.cli("verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count("(known: queued in the dead-letter queue") == 6, verified.stdout
    assert "the sides agree but for 6 row(s)" in verified.stdout

    # kill -9 between quarantine and retry: nothing lost, nothing doubled
    pair.kill()
    pair.start()
    pair.pg_query("INSERT INTO a VALUES (1001, 1, 'after kill')")
    pair.my_query("INSERT INTO b VALUES (1001, 1, 'after kill')")
    wait_until(lambda: 1001 in _erp_a(pair) and 1001 in _crm_b(pair), 30, "row 1001 after the restart")
    assert [len(q) for q in _queued(pair)] == [4, 4]
    listed = _dlq(pair, "list")
    assert len(listed) == 8 and {d["mapping"] for d in listed} == {"a", "b"}

    # retry before the fix: still rejected, both changes of 500 stay queued, exit status 1
    failed = pair.cli("dlq", "retry", "--key", "500", check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert [len(q) for q in _queued(pair)] == [4, 4]

    # the fix: the targets accept the values now; retry applies insert then update, in order
    pair.my_query("ALTER TABLE a DROP CONSTRAINT small")
    pair.pg_query("ALTER TABLE b DROP CONSTRAINT b_val_check")
    done = _dlq(pair, "retry", "--key", "500")
    assert [(d["result"], d["op"]) for d in done] == [("applied", "insert"), ("applied", "update")] * 2
    assert _erp_a(pair)[500] == (5000, "later") and _crm_b(pair)[500] == (5000, "later")
    # the row is no longer held: its next change streams straight through the running daemon
    _update(pair, 500, "streamed")
    wait_until(lambda: _erp_a(pair)[500][1] == "streamed" and _crm_b(pair)[500][1] == "streamed", 30,
               "row 500 streamed after the retry")

    # skip drops and says what it dropped
    skipped = _dlq(pair, "skip", "--key", "600")
    assert sorted((d["result"], d["mapping"], d["key"][0]) for d in skipped) == [("skipped", "a", 600), ("skipped", "b", 600)]
    assert 600 not in _erp_a(pair) and 600 not in _crm_b(pair)
    _dlq(pair, "retry", "--all")
    assert [len(q) for q in _queued(pair)] == [0, 0]
    # the daemon sees the emptied queue at its next transaction
    pair.pg_query("INSERT INTO a VALUES (1002, 1, 'x')")
    pair.my_query("INSERT INTO b VALUES (1002, 1, 'x')")
    wait_until(lambda: pair.metric("replicator_dead_letter_rows") == 0, 30, "the gauge back at 0")

    # every row exactly once, as the source has it (600 skipped); no echo of the retried rows came back
    src_a = {i: (v, n) for i, v, n in pair.pg_query("SELECT id, val, note FROM a")}
    src_b = {i: (v, n) for i, v, n in pair.my_query("SELECT id, val, note FROM b")}
    del src_a[600], src_b[600]
    wait_until(lambda: _erp_a(pair) == src_a and _crm_b(pair) == src_b, 30, "both targets equal their sources")
    assert pair.pg_query("SELECT count(*) FROM a")[0][0] == ROWS + 2  # no echo wrote back into a source
    assert pair.stop() == 0


def test_stop_is_still_the_default(make_pair) -> None:
    """Without on_error, a rejected row stops its direction naming table, key and column, as before."""
    pair = make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS.replace("    on_error: quarantine\n", ""),
                     "sync: {on_first_run: false}\n")
    pair.start()
    pair.pg_query("INSERT INTO a VALUES (1, 1, 'ok'), (2, 5000, 'bad')")
    assert pair.wait_exit(60) != 0
    assert "key (2,)" in pair.log() or "key [2]" in pair.log() or "(2,)" in pair.log(), pair.log()[-2000:]
    assert pair.my_query("SELECT count(*) FROM a")[0][0] == 0  # the whole batch, as before


MAP_PG = "CREATE TABLE c (id int PRIMARY KEY, status text NOT NULL, note text)"
MAP_MY = "CREATE TABLE c (id int PRIMARY KEY, status char(1) NOT NULL, note varchar(40)) ENGINE=InnoDB"
MAP_V1 = """
mappings:
  c:
    direction: crm_to_erp
    on_error: quarantine
    crm: {table: c, key: [id]}
    erp: {table: c, key: [id]}
    fields:
      id: ~
      note: ~
      status:
        map: [{crm: active, erp: A}, {crm: blocked, erp: B}]
"""
# the operator's fix: the code the value map did not know
MAP_V2 = MAP_V1.replace("{crm: blocked, erp: B}]", "{crm: blocked, erp: B}, {crm: zombie, erp: Z}]")


def test_failed_value_map_is_queued_and_retried_after_a_reload(make_pair) -> None:
    from tests.integration.harness import reload, write_mappings

    pair = make_pair(MAP_PG, MAP_MY, MAP_V1, "sync: {on_first_run: false}\n")
    pair.start()
    pair.pg_query("INSERT INTO c VALUES (1, 'active', 'x'), (2, 'zombie', 'x'), (3, 'blocked', 'x')")
    rows = lambda: {i: (s, n) for i, s, n in pair.my_query("SELECT id, status, note FROM c")}  # noqa: E731
    wait_until(lambda: set(rows()) == {1, 3}, 30, "the rows the value map knows")
    pair.pg_query("UPDATE c SET note = 'later' WHERE id = 2")
    queue = lambda: pair.my_query(  # noqa: E731
        f"SELECT target_key, op, error_class, error FROM `{pair.state_schema}`.dead_letter ORDER BY id")
    wait_until(lambda: len(queue()) == 2, 30, "the update of 2 queued behind its insert")
    (k1, op1, cls1, err1), (k2, op2, cls2, _) = queue()
    assert (k1, op1, cls1, k2, op2, cls2) == ("[2]", "insert", "mapping", "[2]", "update", "held")
    assert "zombie" in err1 and "status" in err1, err1
    shown = pair.cli("dlq", "show", "erp:" + str(pair.my_query(
        f"SELECT MIN(id) FROM `{pair.state_schema}`.dead_letter")[0][0])).stdout
    assert "zombie" in shown and "mapping" in shown

    write_mappings(pair, MAP_V2)
    reload(pair)  # the daemon retries its queue by itself once the new mapping is in force
    wait_until(lambda: rows().get(2) == ("Z", "later"), 30, "row 2 applied in order after the reload")
    assert queue() == []
    pair.pg_query("UPDATE c SET note = 'streamed' WHERE id = 2")
    wait_until(lambda: rows().get(2) == ("Z", "streamed"), 30, "row 2 no longer held")
    assert "dead-letter queue retried after the reload: 2 applied" in pair.log()
    assert pair.stop() == 0


# ---------------------------------------------------------------- a two-way row edited while its change waits

BOTH_PG = """
CREATE TABLE q (id int PRIMARY KEY, qty int NOT NULL CHECK (qty < 1000), note text);
CREATE TABLE r (id int PRIMARY KEY, qty int NOT NULL CHECK (qty < 1000), note text)
"""
BOTH_MY = """
CREATE TABLE q (id int PRIMARY KEY, qty int NOT NULL, note varchar(40)) ENGINE=InnoDB;
CREATE TABLE r (id int PRIMARY KEY, qty int NOT NULL, note varchar(40)) ENGINE=InnoDB
"""
# the same table twice: crm wins q's conflicts, erp wins r's
BOTH = """
mappings:
  q:
    direction: both
    on_error: quarantine
    conflicts: {priority: crm}
    crm: {table: q, key: [id]}
    erp: {table: q, key: [id]}
    fields: {id: ~, qty: ~, note: ~}
  r:
    direction: both
    on_error: quarantine
    conflicts: {priority: erp}
    crm: {table: r, key: [id]}
    erp: {table: r, key: [id]}
    fields: {id: ~, qty: ~, note: ~}
"""


def test_a_retry_does_not_overwrite_an_edit_made_while_the_change_was_queued(make_pair) -> None:
    """ERP changes a row, CRM rejects it (queued in CRM's dead_letter); CRM's users edit the same field
    meanwhile and crm_to_erp decides that conflict by the rule. After the fix neither `dlq retry` nor the
    daemon's retry after a reload writes the queued value over CRM's edit: the entry stays queued (class
    conflict, the error names table, key, field and values), the databases keep agreeing where they
    agreed; `--force` writes it; a queued change whose row nobody touched is applied."""
    from tests.integration.harness import reload, write_mappings

    pair = make_pair(BOTH_PG, BOTH_MY, BOTH, "sync: {on_first_run: false}\n")
    pair.start()
    rows = lambda table: (  # noqa: E731
        {i: (n, t) for i, n, t in pair.pg_query(f"SELECT id, qty, note FROM {table}")},
        {i: (n, t) for i, n, t in pair.my_query(f"SELECT id, qty, note FROM {table}")})
    pair.my_query("INSERT INTO q VALUES (1, 1, 'a'), (2, 1, 'a')")
    pair.my_query("INSERT INTO r VALUES (1, 1, 'a')")
    wait_until(lambda: len(rows("q")[0]) == 2 and len(rows("r")[0]) == 1, 30, "the rows on crm")

    # erp: 1 -> 5000, which crm rejects (its CHECK): queued in crm's dead_letter
    pair.my_query("UPDATE q SET qty = 5000 WHERE id IN (1, 2)")
    pair.my_query("UPDATE r SET qty = 5000 WHERE id = 1")
    queue = lambda: pair.pg_query(  # noqa: E731
        "SELECT mapping, target_key, op, error_class, error FROM replicator.dead_letter ORDER BY id")
    wait_until(lambda: len(queue()) == 3, 30, "three updates queued in crm")
    # crm's users edit the same field meanwhile: crm_to_erp finds erp's 5000 where it expected 1
    pair.pg_query("UPDATE q SET qty = 5 WHERE id = 1")  # crm wins q: erp gets 5
    pair.pg_query("UPDATE r SET qty = 7 WHERE id = 1")  # erp wins r: erp keeps 5000, recorded
    decided = lambda: pair.my_query(  # noqa: E731
        f"SELECT mapping, winner FROM `{pair.state_schema}`.conflicts ORDER BY mapping")
    wait_until(lambda: [tuple(d) for d in decided()] == [("q", "crm"), ("r", "erp")], 30, "both conflicts decided")
    assert rows("q")[1][1] == (5, "a") and rows("r")[1][1] == (5000, "a")

    # the fix; a retry of row 1 refuses both entries, naming table, key, field and the three values
    pair.pg_query("ALTER TABLE q DROP CONSTRAINT q_qty_check")
    pair.pg_query("ALTER TABLE r DROP CONSTRAINT r_qty_check")
    refused = pair.cli("dlq", "retry", "--key", "1", "--json", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    results = [json.loads(line) for line in refused.stdout.splitlines() if line.strip()]
    assert sorted((d["mapping"], d["result"]) for d in results) == [("q", "failed"), ("r", "failed")]
    error = next(d["error"] for d in results if d["mapping"] == "q")
    assert error.startswith("table public.q, key (1,), column qty: the row changed on crm since this change was "
                            "queued: qty is 5 there; the change expected 1 and carries 5000"), error
    assert "`replicator dlq retry --force` writes it anyway" in error and "`replicator dlq skip` drops it" in error
    classes = [(m, k, c) for m, k, _, c, _ in queue()]
    assert [(m, k) for m, k, _ in classes] == [("q", "[1]"), ("q", "[2]"), ("r", "[1]")]
    assert classes[0][2] == classes[2][2] == "conflict" and classes[1][2] != "conflict"  # 2: never retried yet
    crm_q, erp_q = rows("q")
    assert crm_q[1] == erp_q[1] == (5, "a")  # still agreeing: crm's edit kept on both sides

    # the daemon's retry after a reload refuses the same way, and applies the row nobody touched
    write_mappings(pair, BOTH + "# reloaded\n")
    reload(pair)
    wait_until(lambda: rows("q")[0][2] == (5000, "a"), 30, "row 2 applied by the daemon's retry")
    wait_until(lambda: "erp_to_crm: dead-letter queue retried after the reload: 1 applied, 2 still failing"
               in pair.log(), 30, "the reload's retry")
    assert [(m, k, c) for m, k, _, c, _ in queue()] == [("q", "[1]", "conflict"), ("r", "[1]", "conflict")]
    assert rows("q")[0][1] == (5, "a")

    # --force writes r's queued value (erp won r's conflict: now both agree), skip drops q's
    forced = pair.cli("dlq", "retry", "--mapping", "r", "--key", "1", "--force", "--json")
    assert [json.loads(line)["result"] for line in forced.stdout.splitlines() if line.strip()] == ["applied"]
    pair.cli("dlq", "skip", "--mapping", "q", "--key", "1")
    assert queue() == []
    # the rows stream again, and both tables agree on every row with no echo
    pair.pg_query("UPDATE q SET note = 'b' WHERE id = 1")
    pair.my_query("UPDATE r SET note = 'c' WHERE id = 1")
    wait_until(lambda: rows("q")[0] == rows("q")[1] == {1: (5, "b"), 2: (5000, "a")}, 30, "q agrees")
    wait_until(lambda: rows("r")[0] == rows("r")[1] == {1: (5000, "c")}, 30, "r agrees")
    assert pair.stop() == 0


def test_a_copied_row_the_target_rejects_is_queued_and_the_copy_goes_on(make_pair) -> None:
    """The first sync stopped the direction on a row the target rejects (a MariaDB TINYINT(1) 2 into a
    boolean, a PostgreSQL smallint 47 into a YEAR), `on_error: quarantine` or not: now the row is queued
    with its source row, the rest of the copy is written, the stream goes on, and `dlq retry` after the fix
    at the source writes the row (tests/integration/test_type_values.py found it)."""
    pair = make_pair("CREATE TABLE f (id int PRIMARY KEY, flag boolean); CREATE TABLE y (id int PRIMARY KEY, y smallint)",
                     "CREATE TABLE f (id INT PRIMARY KEY, flag BOOLEAN); CREATE TABLE y (id INT PRIMARY KEY, y YEAR)",
                     "mappings:\n"
                     "  f: {direction: erp_to_crm, crm: {table: f, key: [id]}, erp: {table: f, key: [id]},"
                     " fields: {id: ~, flag: ~}}\n"
                     "  y: {direction: crm_to_erp, crm: {table: y, key: [id]}, erp: {table: y, key: [id]},"
                     " fields: {id: ~, y: ~}}\n", "on_error: quarantine\n", setup=False)
    pair.my_query("INSERT INTO f VALUES (1, 1), (2, 2), (3, 0)")
    pair.pg_query("INSERT INTO y VALUES (1, 2024), (2, 47), (3, 0)")
    pair.setup()
    pair.start()
    wait_until(lambda: "sync of f done" in pair.log() and "sync of y done" in pair.log()
               or pair.proc.poll() is not None, 60, "both copies")
    assert pair.proc.poll() is None, pair.log()[-3000:]
    assert pair.pg_query("SELECT id, flag FROM f ORDER BY id") == [(1, True), (3, False)]
    assert pair.my_query("SELECT id, y + 0 FROM y ORDER BY id") == [(1, 2024), (3, 0)]
    queued = pair.pg_query("SELECT target_key, op, error_class, error, source_row FROM replicator.dead_letter")
    assert [q[:2] for q in queued] == [("[2]", "insert")], queued
    assert "public.f, key (2,), column flag" in queued[0][3] and queued[0][4], queued
    queued = pair.my_query(f"SELECT target_key, error FROM `{pair.state_schema}`.dead_letter")
    assert len(queued) == 1 and queued[0][0] == "[2]" and "key (2,), column y" in queued[0][1], queued
    pair.my_query("INSERT INTO f VALUES (4, 1)")  # the stream goes on
    wait_until(lambda: pair.pg_query("SELECT count(*) FROM f")[0][0] == 3, 30, "a streamed row")
    pair.my_query("UPDATE f SET flag = 1 WHERE id = 2")  # fixed at the source: waits behind the queued row
    wait_until(lambda: len(pair.pg_query("SELECT 1 FROM replicator.dead_letter")) == 2, 30, "the fix queued")
    pair.cli("dlq", "retry", "--key", "2", "--mapping", "f")
    assert pair.pg_query("SELECT id, flag FROM f ORDER BY id") == [(1, True), (2, True), (3, False), (4, True)]
    assert pair.stop() == 0
