"""Issue 13, parts 2, 4 and 5 against real servers: `replicator status` with the daemon running and
stopped, the binlog retention margin, the lag gauge against measured end-to-end lag, deadlocks retried
at once, and SIGTERM during a back-off."""
from __future__ import annotations

import json
import re
import statistics
import threading
import time
from datetime import timezone

import pytest

from tests.integration.harness import Pair, wait_until

# written_at: the source row's own sub-second time (mapped); applied_at: when the applier wrote the row on
# the target (unmapped, the target's default). Both clocks are this host's.
PG_SCHEMA = """CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, written_at timestamptz(6),
                                    applied_at timestamptz(6) DEFAULT clock_timestamp())"""
MY_SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, customer_name varchar(200) NOT NULL, written_at datetime(6),
                        applied_at datetime(6) DEFAULT UTC_TIMESTAMP(6));
CREATE TABLE ballast (id int PRIMARY KEY, n int NOT NULL)
"""
MAPPINGS = """
mappings:
  customers:
    direction: both
    crm: {table: customer, key: [id]}
    erp: {table: customers, key: [id]}
    fields:
      id: ~
      name: {erp: customer_name}
      written_at: ~
"""


@pytest.fixture
def pair(make_pair) -> Pair:
    return make_pair(PG_SCHEMA, MY_SCHEMA, MAPPINGS)


def status(pair: Pair, *args: str) -> tuple[int, dict]:
    result = pair.cli("status", "--json", "--sample", "0.5", *args, check=False)
    assert result.returncode in (0, 1, 2), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def _lag(pair: Pair, direction: str) -> float:
    return pair.metric("replicator_lag_seconds", direction=direction)


# ---------------------------------------------------------------- status


def test_a_second_installation_on_the_same_servers_sets_up_and_runs_next_to_the_first(
        pair: Pair, pg_server, maria_server, tmp_path) -> None:
    """Another pair of databases on the same two servers (a second company's CRM and ERP), its own state
    schema and slot. MariaDB's GET_LOCK is server-wide: with the stream name alone as the lock's name, the
    second installation's `setup` failed ("stream crm_to_erp is being applied by another replicator
    instance") while the first one ran."""
    import uuid as _uuid

    from tests.integration.conftest import _exec
    pair.start()
    name = f"t_second_{_uuid.uuid4().hex[:8]}"
    pg2, my2 = pg_server.create_database(name), maria_server.create_database(name)
    second: Pair | None = None
    try:
        for stmt in filter(str.strip, PG_SCHEMA.split(";")):
            _exec(pg2, stmt)
        for stmt in filter(str.strip, MY_SCHEMA.split(";")):
            _exec(my2, stmt)
        (tmp_path / "second").mkdir()
        second = Pair(tmp_path / "second", pg2, my2, MAPPINGS)
        second.setup()
        second.start()
        second.pg_query("INSERT INTO customer (id, name) VALUES (2, 'second')")
        pair.pg_query("INSERT INTO customer (id, name) VALUES (1, 'first')")
        wait_until(lambda: second.my_query("SELECT id FROM customers") == [(2,)], 30, "the second's row")
        wait_until(lambda: pair.my_query("SELECT id FROM customers") == [(1,)], 30, "the first's row")
        running = {d["name"]: d["running"] for d in status(second)[1]["directions"]}
        assert running == {"crm_to_erp": True, "erp_to_crm": True}, running
        assert second.stop() == 0
        # the first installation's daemon still holds its own: the second, stopped, is not shown running
        assert {d["name"]: d["running"] for d in status(second)[1]["directions"]} == {
            "crm_to_erp": False, "erp_to_crm": False}
        assert {d["name"]: d["running"] for d in status(pair)[1]["directions"]} == {
            "crm_to_erp": True, "erp_to_crm": True}
    finally:
        if second is not None:
            second.close()
        _exec(pg2, f"SELECT pg_drop_replication_slot('{name}') FROM pg_replication_slots WHERE slot_name = '{name}'")
        pg_server.drop_database(name)
        maria_server.drop_database(name)
    assert pair.stop() == 0


def test_another_databases_daemon_on_the_same_postgresql_server_is_not_this_one(pair: Pair, pg_server) -> None:
    """Two installations on one PostgreSQL server (a test and a production CRM database, or two companies)
    use the same stream names. Advisory locks belong to a database; status looked at every database's and
    said erp_to_crm was running while nothing applied it here."""
    other = pg_server.connect("postgres")
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(hashtext('replicator:erp_to_crm'))")
            assert cur.fetchone()[0]
        code, st = status(pair)
        running = {d["name"]: d["running"] for d in st["directions"]}
        assert running["erp_to_crm"] is False, st
        assert code == 2 and st["state_name"] == "stopped", st
    finally:
        other.close()
    pair.start()  # this database's own daemon is still seen
    wait_until(lambda: {d["name"]: d["running"] for d in status(pair)[1]["directions"]}
               == {"crm_to_erp": True, "erp_to_crm": True}, 30, "both directions held")
    assert pair.stop() == 0


def test_status_running_then_stopped_and_the_binlog_margin_shrinking(pair: Pair) -> None:
    pair.start()
    pair.pg_query("INSERT INTO customer VALUES (1, 'a', now())")
    wait_until(lambda: pair.my_query("SELECT 1 FROM customers WHERE id = 1"), what="row 1 on erp")
    code, st = status(pair)
    assert code == 0, st["reasons"]
    assert st["state_name"] == "healthy" and st["daemon"]["reachable"] is True
    by_name = {d["name"]: d for d in st["directions"]}
    assert set(by_name) == {"crm_to_erp", "erp_to_crm"}
    for d in by_name.values():
        assert d["running"] is True and d["checkpoint"] and d["source_position"]
        assert d["holder"] == "127.0.0.1" and d["lag_seconds"] is not None and d["queue_depth"] is not None
    assert by_name["erp_to_crm"]["since"] is not None  # a PostgreSQL target tells when the session began
    crm, erp = st["sources"]
    assert crm["kind"] == "postgresql" and crm["wal_status"] in ("reserved", "extended")
    assert erp["kind"] == "mariadb" and erp["checkpoint_file"] and erp["files_before_checkpoint"] >= 0
    text = pair.cli("status", "--sample", "0").stdout
    assert "replicator: healthy" in text and "erp_to_crm: running since" in text
    # the daemon exports the margin (the checkpoint is in the current file: the whole expiry period)
    expire = float(pair.my_query("SELECT @@global.binlog_expire_logs_seconds")[0][0])
    wait_until(lambda: pair.metrics_text() and "replicator_binlog_retention_margin_seconds" in pair.metrics_text(),
               what="the binlog margin metric")
    margin = pair.metric("replicator_binlog_retention_margin_seconds", side="erp")
    assert margin == (expire if expire > 0 else -1)

    assert pair.stop() == 0
    old_expire = pair.my_query("SELECT @@global.binlog_expire_logs_seconds")[0][0]
    pair.my_query("SET GLOBAL binlog_expire_logs_seconds = 3600")
    try:
        pair.my_query("FLUSH BINARY LOGS")  # the checkpoint's file is closed: its expiry clock starts
        t0 = time.time()
        code, st = status(pair)
        t1 = time.time()
        assert code == 2 and st["state_name"] == "stopped"
        assert st["daemon"]["reachable"] is False and "daemon not reachable" in st["daemon"]["error"]
        assert all(d["running"] is False and d["lag_seconds"] is None for d in st["directions"])
        first = st["sources"][1]["margin_seconds"]
        assert 3590 <= first <= 3600
        time.sleep(2.2)
        t2 = time.time()
        _code, st = status(pair)
        t3 = time.time()
        second = st["sources"][1]["margin_seconds"]
        # the margin shrinks with the clock: by at least the time between the two reads, at most the time
        # from the first call's start to the second's end (a status call is slow on a loaded machine)
        assert (t2 - t1) - 0.5 <= first - second <= (t3 - t0) + 0.5, (first, second, t2 - t1, t3 - t0)
        text = pair.cli("status", check=False).stdout
        assert "no daemon is running: the figures below are what the databases hold" in text
        assert "lag              daemon not reachable" in text
        assert re.search(r"purgeable in \d+ min", text), text
    finally:
        pair.my_query(f"SET GLOBAL binlog_expire_logs_seconds = {int(old_expire)}")


# ---------------------------------------------------------------- the lag gauge


MEASURING = 0.1  # seconds between the applier's row write and its commit and gauge update, on a loaded machine


class GaugeSampler(threading.Thread):
    """Reads the direction's lag gauge from the daemon every 25 ms: (time, value)."""

    def __init__(self, pair: Pair, direction: str):
        super().__init__(daemon=True)
        self.pair, self.direction = pair, direction
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            value = _lag(self.pair, self.direction)
            self.samples.append((time.time(), value))
            time.sleep(0.025)  # often enough to see each reading, rarely enough not to load the daemon

    def max_between(self, start: float, end: float) -> float | None:
        values = [v for t, v in self.samples if start <= t <= end]
        return max(values) if values else None


def _measure(pair: Pair, origin: str, n: int, first_id: int) -> list[tuple[float, float, float]]:
    """Write n rows one at a time on `origin` (each stamped with its sub-second write time) and poll the
    other side on an open connection: for each row, the lower and upper bound of its true lag and the
    highest gauge value seen from the applier's write of the row until just after it became visible."""
    direction = "crm_to_erp" if origin == "crm" else "erp_to_crm"
    pg, my = pair.pg.connect(), pair.maria.connect()
    sampler = GaugeSampler(pair, direction)
    sampler.start()
    rows = []
    try:
        with pg.cursor() as pcur, my.cursor() as mcur:
            for i in range(first_id, first_id + n):
                if origin == "crm":
                    pcur.execute("INSERT INTO customer (id, name, written_at) VALUES (%s, 'x', clock_timestamp())",
                                 (i,))
                    cur, sql = mcur, "SELECT written_at, applied_at FROM customers WHERE id = %s"
                else:
                    mcur.execute("INSERT INTO customers (id, customer_name, written_at) "
                                 "VALUES (%s, 'x', UTC_TIMESTAMP(6))", (i,))
                    cur, sql = pcur, "SELECT written_at, applied_at FROM customer WHERE id = %s"
                committed = time.time()  # autocommit: the statement returned after its commit
                while True:
                    cur.execute(sql, (i,))
                    row = cur.fetchone()
                    if row:
                        break
                    time.sleep(0.002)
                seen = time.time()
                written, applied = (t.timestamp() for t in
                                    (t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in row))
                assert written <= committed + 0.001  # the row's own time: before its commit
                # the true lag lies between these two: the source commit is after the row's own time and
                # before the client got the answer; the target commit is after the applier wrote the row
                # and before the poll saw it
                rows.append((applied - committed, seen - written, applied, seen))
                time.sleep(0.137)  # land anywhere in the binlog's second
    finally:
        pg.close()
        my.close()
        time.sleep(0.2)
        sampler.done.set()
        sampler.join()
    out = []
    for lo, hi, applied, seen in rows:
        gauge = sampler.max_between(applied - 0.01, seen + 0.15)
        assert gauge is not None
        out.append((lo, hi, gauge))
    return out


@pytest.mark.parametrize("origin", ["erp", "crm"])
def test_lag_gauge_against_measured_lag(pair: Pair, origin: str) -> None:
    direction = "crm_to_erp" if origin == "crm" else "erp_to_crm"
    pair.start()
    samples = _measure(pair, origin, 25, 100)
    low = [lo for lo, _hi, _g in samples]
    gauges = [g for _lo, _hi, g in samples]
    print(f"\n{direction}: true lag p50 {statistics.median(low):.3f} max {max(low):.3f} s (lower bound); "
          f"gauge p50 {statistics.median(gauges):.3f} max {max(gauges):.3f} s; gauge - lower bound p50 "
          f"{statistics.median(g - lo for lo, _hi, g in samples):+.3f} "
          f"max |.| {max(abs(g - lo) for lo, _hi, g in samples):.3f} s")
    # Never quiet when it should not be: not below the true lag less the source's time resolution (1 s
    # binlog, 0 WAL) and the time from commit to gauge. Not above it by more than a second either: the
    # readings around a row may be those of an echo of our own write that waited in the same stall of
    # the source's delivery (seen here on two shared cores: a second and more), committed up to a
    # heartbeat (1 s) before the row. The typical reading is the row's own lag.
    # The old gauge read the binlog's truncation on top: 0.5 s on average, up to 1 s.
    # The sampler polls every 25 ms over HTTP; the reading a row's commit leaves may be replaced within
    # that time (the next keepalive or echo: caught up as of now), so on a loaded machine one row's
    # reading can be missed: one of the 25 may read low (seen in CI: 0.04 s against 0.20). A gauge that
    # reads low systematically fails this and the median below.
    resolution = 1.0 if origin == "erp" else 0.0
    previous_hi = 0.0
    low_readings = []
    for lo, hi, g in samples:
        assert g <= max(hi, previous_hi) + 1.0 + MEASURING, (lo, hi, g)
        if g < lo - resolution - MEASURING:
            low_readings.append((lo, hi, g))
        previous_hi = hi
    assert len(low_readings) <= 1, low_readings
    assert statistics.median(abs(g - lo) for lo, _hi, g in samples) < MEASURING
    # the direction goes idle: the gauge drops to 0 instead of freezing at its last value
    pair.pg_query("UPDATE customer SET name = 'y' WHERE id = 100") if origin == "crm" else \
        pair.my_query("UPDATE customers SET customer_name = 'y' WHERE id = 100")
    wait_until(lambda: _lag(pair, direction) == 0.0, 5, "lag 0 when idle")
    # an idle source for longer than a binlog heartbeat: still 0
    time.sleep(2)
    assert _lag(pair, direction) == 0.0
    # the other direction only takes echoes of this one's writes (its idle checkpoint bumps among them): one
    # taken just before the reading reads as the microseconds since it was taken (seen in CI: 1.4e-05 s),
    # then 0 at the next idle tick; frozen at a stall it would read seconds
    assert _lag(pair, "erp_to_crm" if origin == "crm" else "crm_to_erp") < MEASURING
    assert pair.stop() == 0


# ---------------------------------------------------------------- retries


def test_deadlocks_with_the_applier_are_retried_at_once(pair: Pair) -> None:
    """A scaled-down version of the issue's test: an ERP client that holds row 2, waits for the applier to
    block on it with row 1 locked, then asks for row 1. InnoDB rolls back the lighter transaction; the
    client has written 200 ballast rows first, so it is the applier. The change still arrives within 2 s."""
    pair.my_query("INSERT INTO ballast SELECT seq, 0 FROM seq_1_to_200")
    pair.pg_query("INSERT INTO customer SELECT g, 'n', now() FROM generate_series(1, 2) g")
    pair.start()
    wait_until(lambda: len(pair.my_query("SELECT id FROM customers")) == 2, what="rows 1, 2 on erp")
    rounds, lags = 8, []
    for r in range(rounds):
        client = pair.maria.connect(autocommit=False)
        try:
            with client.cursor() as cur:
                cur.execute("UPDATE ballast SET n = n + 1")
                cur.execute("SELECT id FROM customers WHERE id = 2 FOR UPDATE")
                with pair.pg.connect() as pg, pg.cursor() as pcur:  # one source transaction: rows 1 then 2
                    pcur.execute("UPDATE customer SET name = %s WHERE id = 1", (f"r{r}",))
                    pcur.execute("UPDATE customer SET name = %s WHERE id = 2", (f"r{r}",))
                committed = time.time()
                wait_until(lambda: pair.my_query(
                    "SELECT 1 FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'"), 5,
                    "the applier waiting for row 2")
                cur.execute("SELECT id FROM customers WHERE id = 1 FOR UPDATE")  # the applier is the victim
            client.commit()
        finally:
            client.close()
        wait_until(lambda: pair.my_query("SELECT customer_name FROM customers WHERE id = 2")[0][0] == f"r{r}",
                   5, f"round {r} on erp")
        lags.append(time.time() - committed)
        time.sleep(0.3)  # streaming goes on between the deadlocks
    deadlocks = pair.metric("replicator_retries_total", direction="crm_to_erp", cause="deadlock")
    waits = [float(w) for w in re.findall(r"crm_to_erp: .*retrying in ([0-9.]+) s \(deadlock\)", pair.log())]
    print(f"\n{rounds} rounds: {deadlocks:.0f} deadlock retries, waits max {max(waits, default=0):.3f} s, "
          f"end-to-end lag p50 {statistics.median(lags):.3f} max {max(lags):.3f} s")
    assert deadlocks >= rounds - 1 and len(waits) == deadlocks
    assert max(waits) <= 0.05 and max(lags) < 2.0
    assert pair.metric("replicator_direction_running", direction="crm_to_erp") == 1
    assert pair.stop() == 0


def test_sigterm_during_a_back_off_stops_at_once(pair: Pair, maria_server) -> None:
    text = pair.config_path.read_text()
    pair.config_path.write_text(text.replace("reconnect: {initial_seconds: 0.2, max_seconds: 2}",
                                             "reconnect: {initial_seconds: 20, max_seconds: 60}"))
    pair.start()
    maria_server.stop()
    try:
        wait_until(lambda: re.search(r"retrying in (1[89]|2[0-2])\.\d+ s", pair.log()), 30, "a 20 s back-off")
        started = time.monotonic()
        code = pair.stop(timeout=10)
        took = time.monotonic() - started
        print(f"\nSIGTERM during a 20 s back-off: exit {code} after {took:.2f} s")
        assert code == 0 and took < 2.0
        # status with a database down: what cannot be read is named, the rest is still shown
        result = pair.cli("status", check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
        assert "crm_to_erp: unknown" in result.stdout and "erp_to_crm: not running" in result.stdout
        assert "! target erp:" in result.stdout and "! source erp:" in result.stdout
    finally:
        maria_server.start()
