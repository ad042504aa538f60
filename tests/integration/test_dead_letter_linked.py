"""The dead-letter queue covers linked mappings (issue 9's leftovers, docs/operations.md): a row of a
crosswalk mapping that the target rejects is quarantined (table, key, error) instead of stopping its
direction, a later change of the same record waits behind it, and `replicator dlq retry` replays it
through the linker: the counterpart is created once and paired, so the record's next change updates
that counterpart instead of creating a second one."""
from __future__ import annotations

import json

from tests.integration.harness import Pair, wait_until

PG = "CREATE TABLE customer (id int PRIMARY KEY, email text NOT NULL UNIQUE, name text, val int NOT NULL)"
MY = ("CREATE TABLE customers (cid INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(200) NOT NULL UNIQUE, "
      "customer_name VARCHAR(200), val INT NOT NULL, CONSTRAINT small CHECK (val < 1000)) ENGINE=InnoDB "
      "AUTO_INCREMENT=5000")
MAP = """
mappings:
  customers:
    direction: crm_to_erp
    on_error: quarantine
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [cid]}
    link: {natural: [email], crosswalk: true}
    fields:
      email: ~
      name: {erp: customer_name}
      val: ~
"""
CONFIG = "sync: {on_first_run: false}\n"
BAD = (5, 6)


def erp(pair: Pair) -> dict[str, tuple]:
    return {e: (c, n, v) for c, e, n, v in pair.my_query("SELECT cid, email, customer_name, val FROM customers")}


def queued(pair: Pair) -> list[tuple]:
    return [tuple(r) for r in pair.my_query(
        f"SELECT mapping, target_key, op, error_class FROM `{pair.state_schema}`.dead_letter ORDER BY id")]


def test_a_rejected_crosswalk_row_is_quarantined_and_replayed_through_the_linker(make_pair) -> None:
    pair = make_pair(PG, MY, MAP, CONFIG)
    pair.start()
    pair.pg_query("INSERT INTO customer SELECT g, 'u' || g || '@x', 'n' || g, "
                  "CASE WHEN g IN (5, 6) THEN 5000 ELSE g END FROM generate_series(1, 20) g")
    wait_until(lambda: len(erp(pair)) == 18, 60, "18 rows on the erp, the 2 rejected ones quarantined")
    q = queued(pair)
    assert [(m, k, op) for m, k, op, _ in q] == [("customers", "[5]", "insert"), ("customers", "[6]", "insert")], q
    assert all(cls != "held" for *_, cls in q)
    # the key is the CRM row's (the ERP row has none yet): the error, the log and `dlq list` say so
    errors = [r[0] for r in pair.my_query(f"SELECT error FROM `{pair.state_schema}`.dead_letter ORDER BY id")]
    assert errors[0].startswith(f"table {pair.maria.dbname}.customers, crm key (5,) (the source row's; the "
                                "target row's own key comes from the link)"), errors
    assert "quarantined insert of " in pair.log() and ".customers crm key [5] (the source row's): " in pair.log()
    listed = pair.cli("dlq", "list").stdout
    assert " crm:5 " in listed and " crm:6 " in listed, listed
    as_json = [json.loads(line) for line in pair.cli("dlq", "list", "--json").stdout.splitlines()]
    assert [(d["key"], d["key_side"]) for d in as_json] == [([5], "crm"), ([6], "crm")], as_json
    # a later change of a quarantined record waits behind it; other records stream on
    pair.pg_query("UPDATE customer SET name = 'later' WHERE id IN (5, 7)")
    wait_until(lambda: erp(pair)["u7@x"][1] == "later", 30, "record 7 updated")
    wait_until(lambda: len(queued(pair)) == 3, 30, "the update of 5 queued behind its insert")
    assert queued(pair)[2][1:] == ("[5]", "update", "held")
    assert pair.proc is not None and pair.proc.poll() is None  # the direction did not stop
    # a rejected update of a record that has its counterpart: queued too, and verify knows why it differs
    pair.pg_query("UPDATE customer SET val = 7000 WHERE id = 8")
    wait_until(lambda: len(queued(pair)) == 4, 30, "the update of 8 queued")
    assert queued(pair)[3][1:3] == ("[8]", "update")
    verified = pair.cli("verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count("(known: queued in the dead-letter queue") == 3, verified.stdout

    failed = pair.cli("dlq", "retry", "--key", "5", check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr  # still rejected
    assert len(queued(pair)) == 4

    pair.my_query("ALTER TABLE customers DROP CONSTRAINT small")
    out = pair.cli("dlq", "retry", "--key", "5", "--json").stdout
    done = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [(d["result"], d["op"]) for d in done] == [("applied", "insert"), ("applied", "update")], out
    cid, name, val = erp(pair)["u5@x"]
    assert (name, val) == ("later", 5000)
    pairs = pair.my_query(f"SELECT source_key, target_key FROM `{pair.state_schema}`.crosswalk "
                          "WHERE mapping = 'customers' AND source_key = '[5]'")
    assert [tuple(r) for r in pairs] == [("[5]", f"[{cid}]")]  # paired once, by the replay
    # the record's next change finds its counterpart through the pair: no second row
    pair.pg_query("UPDATE customer SET name = 'streamed' WHERE id = 5")
    wait_until(lambda: erp(pair)["u5@x"] == (cid, "streamed", 5000), 30, "record 5 streamed after the retry")
    pair.cli("dlq", "skip", "--key", "6")
    pair.cli("dlq", "retry", "--key", "8")
    assert queued(pair) == [] and len(erp(pair)) == 19 and erp(pair)["u8@x"][2] == 7000
    assert pair.my_query("SELECT COUNT(*) FROM customers WHERE email = 'u5@x'") == [(1,)]
    assert pair.stop() == 0
