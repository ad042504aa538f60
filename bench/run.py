#!/usr/bin/env python3
"""End-to-end benchmark of the replicator daemon: burst throughput, steady lag, memory.

Starts its own PostgreSQL ("crm") and MariaDB ("erp") with replicator.testing.devservers in a temporary
directory (fast, non-durable settings), creates one benchmark table on each side, writes a
configuration and a `direction: both` mapping, runs `replicator setup`, and drives
`python -m replicator run` as a subprocess. For each direction separately (the other side idle):

1. burst: N single-row transactions are generated on the source while the daemon is stopped;
   the daemon is then started and timed until the target holds the last change.
   rows/s = N / (daemon "streaming from" log line -> last change visible on the target).
   Context: how fast the source generated them, and how fast the direction's source reader alone
   (replicator.sources, in this process, no applier) decodes the same changes.
2. steady: a paced writer produces R rows/s (transactions of --txn-rows rows) for T seconds while
   the daemon runs. True end-to-end lag per transaction = first time the target shows it minus the
   wall-clock time its source commit returned (polled every --poll-ms); the daemon's own
   replicator_lag_seconds gauge is sampled as well.
3. memory: the daemon's peak RSS in each phase (VmRSS sampled, VmHWM reset at phase start).

    python bench/run.py                              # both directions, update scenario
    python bench/run.py --rows 20000 --seconds 10 --direction erp_to_crm --scenario insert
    python bench/run.py --json > results.json        # JSON on stdout, the table on stderr
    python bench/run.py --profile /tmp/prof          # py-spy the daemon during each burst

Ctrl-C stops the daemon and the servers. Only the project's dependencies and the standard
library are used (py-spy is optional, for --profile).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from replicator.testing.devservers import MariaDBServer, PostgresServer, free_port, missing_binaries  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402

DB = "bench"
TABLE = "bench_item"
MARIA_STATE = "rs_bench"
PG_SLOT = "bench"
DECODE_SLOT = "bench_decode"
DIRECTIONS = ("crm_to_erp", "erp_to_crm")

PG_DDL = f"""
CREATE TABLE {TABLE} (
    id         bigint PRIMARY KEY,
    qty        integer NOT NULL,
    name       varchar(100) NOT NULL,
    amount     numeric(12,2) NOT NULL,
    changed_at timestamptz NOT NULL,
    note       text NOT NULL,
    seq        bigint NOT NULL
)"""

PG_PROCS = [
    f"""CREATE OR REPLACE PROCEDURE bench_burst_update(n int, nrows int, first_seq bigint, k int, base bigint)
LANGUAGE plpgsql AS $$
DECLARE lo bigint;
BEGIN
    -- n / k transactions of k rows: transaction j updates ids lo .. lo + k - 1, seq first_seq + j * k + (id - lo)
    -- (ids base + 1 .. base + nrows)
    FOR j IN 0 .. n / k - 1 LOOP
        lo := base + (j * k) % nrows + 1;
        UPDATE {TABLE} SET qty = qty + 1, amount = amount + 0.01, changed_at = clock_timestamp(),
               seq = first_seq + j * k + (id - lo)
         WHERE id BETWEEN lo AND lo + k - 1;
        COMMIT;
    END LOOP;
END $$""",
    f"""CREATE OR REPLACE PROCEDURE bench_burst_insert(n int, first_id bigint, first_seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 0 .. n - 1 LOOP
        INSERT INTO {TABLE} (id, qty, name, amount, changed_at, note, seq)
        VALUES (first_id + i, i % 1000, 'item ' || (first_id + i), (i % 100000) / 100.0, clock_timestamp(),
                rpad('note ' || (first_id + i) || ' ', 100, 'x'), first_seq + i);
        COMMIT;
    END LOOP;
END $$""",
]

MARIA_DDL = f"""
CREATE TABLE {TABLE} (
    id         bigint NOT NULL PRIMARY KEY,
    qty        int NOT NULL,
    name       varchar(100) NOT NULL,
    amount     decimal(12,2) NOT NULL,
    changed_at datetime(6) NOT NULL,
    note       text NOT NULL,
    seq        bigint NOT NULL
) ENGINE=InnoDB"""

MARIA_PROCS = [
    f"""CREATE PROCEDURE bench_burst_update(IN n INT, IN nrows INT, IN first_seq BIGINT, IN k INT, IN base BIGINT)
BEGIN
    DECLARE j INT DEFAULT 0;
    DECLARE lo BIGINT;
    WHILE j < n DIV k DO
        SET lo = base + (j * k) MOD nrows + 1;
        START TRANSACTION;
        UPDATE {TABLE} SET qty = qty + 1, amount = amount + 0.01, changed_at = NOW(6),
               seq = first_seq + j * k + (id - lo)
         WHERE id BETWEEN lo AND lo + k - 1;
        COMMIT;
        SET j = j + 1;
    END WHILE;
END""",
    f"""CREATE PROCEDURE bench_burst_insert(IN n INT, IN first_id BIGINT, IN first_seq BIGINT)
BEGIN
    DECLARE i INT DEFAULT 0;
    WHILE i < n DO
        START TRANSACTION;
        INSERT INTO {TABLE} (id, qty, name, amount, changed_at, note, seq)
        VALUES (first_id + i, i MOD 1000, CONCAT('item ', first_id + i), (i MOD 100000) / 100, NOW(6),
                RPAD(CONCAT('note ', first_id + i, ' '), 100, 'x'), first_seq + i);
        COMMIT;
        SET i = i + 1;
    END WHILE;
END""",
]

MAPPING = f"""\
mappings:
  {TABLE}:
    direction: both
    crm: {{table: {TABLE}, key: [id]}}
    erp: {{table: {TABLE}, key: [id]}}
    fields:
      id: ~
      qty: ~
      name: ~
      amount: ~
      changed_at: ~
      note: ~
      seq: ~
"""

# The tables start identical on both sides (preloaded): no first-run copy. Left on, it ran in the first
# measured burst, and a daemon stopped before it finished resumed it against the next burst's backlog.
SYNC_SETTING = "sync: {on_first_run: false}\n"

_interrupted = False
STOP = threading.Event()  # set when the benchmark is stopping: background threads end quietly


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


def percentile(values: list[float], p: float) -> Optional[float]:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------------ sides


class Side:
    """One database: how to create, load, generate changes on and probe the benchmark table."""

    kind = ""

    def __init__(self, name: str, server: Any):
        self.name = name
        self.server = server

    def connect(self) -> Any:
        return self.server.connect(DB)

    def exec_all(self, statements: list[str]) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
        finally:
            conn.close()

    def preload(self, rows: int) -> None:
        raise NotImplementedError

    def burst(self, scenario: str, n: int, nrows: int, first_id: int, first_seq: int, k: int = 1,
              base: int = 0) -> None:
        """n changes; update: of ids base + 1 .. base + nrows, k per transaction; insert: ids first_id .., one each."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                if scenario == "update":
                    cur.execute("CALL bench_burst_update(%s, %s, %s, %s, %s)", (n, nrows, first_seq, k, base))
                else:
                    cur.execute("CALL bench_burst_insert(%s, %s, %s)", (n, first_id, first_seq))
        finally:
            conn.close()

    now_sql = ""

    def big_insert(self, n: int, first_id: int, first_seq: int) -> None:
        """One source transaction inserting n new rows (ids first_id .., seq first_seq ..)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(self.big_insert_sql(n), (first_id, first_id, first_id, first_seq))
            conn.commit()
        finally:
            conn.close()

    def big_insert_sql(self, n: int) -> str:
        raise NotImplementedError

    def upsert_rate(self, n: int, page: int = 500, commit_every: int = 5000) -> float:
        """The target's own batched-upsert rate (rows/s): n rows of the benchmark shape into a scratch
        table, then the same ids again with other values (the update pass is timed), `page` rows per
        statement, a commit every `commit_every` rows (as ../shared/bench/peers/raw_ingest.py does)."""
        rows = preload_rows(n)
        changed = [(i, q + 1, nm, a, t, nt, 1) for i, q, nm, a, t, nt, _ in rows]
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS bench_upsert")
                cur.execute(self.ddl.replace(f"CREATE TABLE {TABLE}", "CREATE TABLE bench_upsert"))
            conn.commit()
            self._upsert_pass(conn, rows, page, commit_every)
            t0 = time.monotonic()
            self._upsert_pass(conn, changed, page, commit_every)
            seconds = time.monotonic() - t0
            with conn.cursor() as cur:
                cur.execute("DROP TABLE bench_upsert")
            conn.commit()
        finally:
            conn.close()
        return n / seconds

    ddl = ""

    def _upsert_pass(self, conn: Any, rows: list[tuple], page: int, commit_every: int) -> None:
        raise NotImplementedError

    def update_sql(self) -> str:
        return (f"UPDATE {TABLE} SET qty = qty + 1, amount = amount + 0.01, changed_at = {self.now_sql}, "
                f"seq = %s WHERE id BETWEEN %s AND %s")

    def insert_sql(self, rows: int) -> str:
        return (f"INSERT INTO {TABLE} (id, qty, name, amount, changed_at, note, seq) VALUES "
                + ", ".join([f"(%s, %s, %s, %s, {self.now_sql}, %s, %s)"] * rows))


class PgSide(Side):
    kind = "postgresql"
    now_sql = "clock_timestamp()"
    ddl = PG_DDL

    def big_insert_sql(self, n: int) -> str:
        return (f"INSERT INTO {TABLE} (id, qty, name, amount, changed_at, note, seq) "
                f"SELECT %s + g, g %% 1000, 'item ' || (%s + g), (g %% 100000) / 100.0, clock_timestamp(), "
                f"rpad('note ' || (%s + g) || ' ', 100, 'x'), %s + g FROM generate_series(0, {int(n) - 1}) AS g")

    def _upsert_pass(self, conn: Any, rows: list[tuple], page: int, commit_every: int) -> None:
        import psycopg2.extras

        conn.autocommit = False
        with conn.cursor() as cur:
            for i in range(0, len(rows), commit_every):
                psycopg2.extras.execute_values(
                    cur, "INSERT INTO bench_upsert (id, qty, name, amount, changed_at, note, seq) VALUES %s "
                         "ON CONFLICT (id) DO UPDATE SET qty = EXCLUDED.qty, name = EXCLUDED.name, "
                         "amount = EXCLUDED.amount, changed_at = EXCLUDED.changed_at, note = EXCLUDED.note, "
                         "seq = EXCLUDED.seq", rows[i:i + commit_every], page_size=page)
                conn.commit()
        conn.autocommit = True

    def create(self) -> None:
        self.exec_all([PG_DDL] + PG_PROCS)

    def preload(self, rows: int) -> None:
        import psycopg2.extras

        conn = self.connect()
        try:
            with conn.cursor() as cur:
                psycopg2.extras.execute_values(
                    cur, f"INSERT INTO {TABLE} (id, qty, name, amount, changed_at, note, seq) VALUES %s",
                    preload_rows(rows), page_size=1000)
                cur.execute(f"ANALYZE {TABLE}")
        finally:
            conn.close()


class MariaSide(Side):
    kind = "mariadb"
    now_sql = "NOW(6)"
    ddl = MARIA_DDL

    def big_insert_sql(self, n: int) -> str:
        # seq_0_to_N: MariaDB's Sequence engine
        return (f"INSERT INTO {TABLE} (id, qty, name, amount, changed_at, note, seq) "
                f"SELECT %s + seq, seq MOD 1000, CONCAT('item ', %s + seq), (seq MOD 100000) / 100, NOW(6), "
                f"RPAD(CONCAT('note ', %s + seq, ' '), 100, 'x'), %s + seq FROM seq_0_to_{int(n) - 1}")

    def _upsert_pass(self, conn: Any, rows: list[tuple], page: int, commit_every: int) -> None:
        conn.autocommit(False)
        with conn.cursor() as cur:
            for i in range(0, len(rows), commit_every):
                part = rows[i:i + commit_every]
                for j in range(0, len(part), page):
                    cur.executemany(
                        "INSERT INTO bench_upsert (id, qty, name, amount, changed_at, note, seq) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE qty = VALUES(qty), "
                        "name = VALUES(name), amount = VALUES(amount), changed_at = VALUES(changed_at), "
                        "note = VALUES(note), seq = VALUES(seq)", part[j:j + page])
                conn.commit()
        conn.autocommit(True)

    def create(self) -> None:
        self.exec_all([MARIA_DDL] + MARIA_PROCS)

    def preload(self, rows: int) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {TABLE} (id, qty, name, amount, changed_at, note, seq) "
                                f"VALUES (%s, %s, %s, %s, %s, %s, %s)", preload_rows(rows))
        finally:
            conn.close()


def preload_rows(n: int) -> list[tuple]:
    from datetime import datetime, timezone
    from decimal import Decimal

    t = datetime(2024, 1, 1, tzinfo=timezone.utc).replace(tzinfo=None)
    return [(i, i % 1000, f"item {i}", Decimal(i % 100000) / 100, t, note_text(i), 0) for i in range(1, n + 1)]


def note_text(i: int) -> str:
    return f"note {i} ".ljust(100, "x")


# ------------------------------------------------------------------------------------------------ daemon


class Daemon:
    """`python -m replicator run` as a subprocess; stderr is copied to a log and watched for the
    per-direction 'streaming from' line."""

    STREAMING = re.compile(r"(\w+_to_\w+): streaming from")

    def __init__(self, workdir: Path, config: Path, metrics_port: int):
        self.workdir = workdir
        self.config = config
        self.metrics_port = metrics_port
        self.log_path = workdir / "daemon.log"
        self.proc: Optional[subprocess.Popen] = None
        self.spawned_at = 0.0
        self.streaming_at: dict[str, float] = {}
        self._tee: Optional[threading.Thread] = None

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def cli(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "replicator", *args, "--config", str(self.config)],
                           capture_output=True, text=True, timeout=300, cwd=self.workdir, env=_env())
        if r.returncode != 0:
            raise BenchError(f"replicator {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def start(self) -> None:
        assert self.pid is None, "daemon already running"
        self.streaming_at = {}
        setpriv = shutil.which("setpriv")  # the daemon dies with us even on SIGKILL
        prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        self.spawned_at = time.time()
        self.proc = subprocess.Popen(
            prefix + [sys.executable, "-m", "replicator", "run", "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=self.workdir, env=_env())
        self._tee = threading.Thread(target=self._copy_log, args=(self.proc,), daemon=True, name="daemon-log")
        self._tee.start()

    def _copy_log(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for line in proc.stdout:
                now = time.time()
                log.write(line)
                log.flush()
                m = self.STREAMING.search(line.decode("utf-8", "replace"))
                if m and m.group(1) not in self.streaming_at:
                    self.streaming_at[m.group(1)] = now

    def wait_streaming(self, direction: str, timeout: float = 120) -> float:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"daemon exited {self.proc.returncode}:\n{self.log_tail()}")
            return direction in self.streaming_at
        wait_for(ready, timeout, f"the daemon to start streaming {direction}")
        return self.streaming_at[direction]

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"daemon exited {self.proc.returncode}:\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"daemon did not stop within {timeout:.0f} s; killing it")
                proc.kill()
                proc.wait()
        if self._tee is not None:
            self._tee.join(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- metrics
    def metrics_text(self) -> Optional[str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None

    def metric(self, name: str, text: Optional[str] = None, **labels: str) -> Optional[float]:
        """Sum of a metric's samples whose labels include `labels`; None if the endpoint is down."""
        text = self.metrics_text() if text is None else text
        if text is None:
            return None
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            m = re.match(r"^([a-zA-Z_:]+)(\{(.*)\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(m.group(4))
        return total


CODE = ROOT  # the checkout the daemon runs from (--code: an older commit, for before/after on one machine)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(CODE) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ------------------------------------------------------------------------------------------------ samplers


class Sampler:
    """Background sampling of the daemon's RSS and lag gauge during one phase."""

    def __init__(self, daemon: Daemon, direction: str, lag_interval: float = 0.5):
        self.daemon = daemon
        self.direction = direction
        self.lag_interval = lag_interval
        self.rss_max_kb = 0
        self.lag_samples: list[float] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.pid = daemon.pid

    def start(self) -> "Sampler":
        if self.pid:
            try:  # reset the peak RSS so that VmHWM covers this phase only (Linux >= 4.0)
                Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            except OSError:
                pass
        for fn in (self._rss, self._lag):
            t = threading.Thread(target=fn, daemon=True, name=fn.__name__)
            t.start()
            self._threads.append(t)
        return self

    def _status(self) -> dict[str, int]:
        out = {}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
        except (OSError, ValueError):
            pass
        return out

    def _rss(self) -> None:
        while not self._stop.is_set():
            self.rss_max_kb = max(self.rss_max_kb, self._status().get("VmRSS", 0))
            self._stop.wait(0.2)

    def _lag(self) -> None:
        while not self._stop.is_set():
            v = self.daemon.metric("replicator_lag_seconds", direction=self.direction)
            if v is not None:
                self.lag_samples.append(v)
            self._stop.wait(self.lag_interval)

    def stop(self) -> float:
        """Stop sampling; returns the peak RSS in MB."""
        st = self._status()
        self.rss_max_kb = max(self.rss_max_kb, st.get("VmRSS", 0), st.get("VmHWM", 0))
        self._stop.set()
        for t in self._threads:
            t.join(5)
        return self.rss_max_kb / 1024


class Profiler:
    """Optional py-spy recording of the daemon (raw collapsed stacks), summarised per thread."""

    def __init__(self, pid: int, out: Path, rate: int, wall: bool = False):
        self.out = out
        self.rate = rate
        self.wall = wall
        self.started = time.monotonic()
        exe = shutil.which("py-spy")
        if exe is None:
            raise BenchError("--profile needs py-spy on PATH (pip install py-spy)")
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--threads",
             # wall: every thread sampled, waiting or not (where each thread spends its time); else only
             # the thread holding the GIL (where the interpreter's time goes)
             "--idle" if wall else "--gil", "--nonblocking", "--output", str(out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.out.exists():
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            return {"error": f"py-spy wrote nothing: {err.strip()[-500:]}"}
        summary = summarize_profile(self.out)
        # with --gil only the thread holding the GIL is sampled: samples per possible sample is how busy
        # the interpreter was (near 1.0: the daemon is bound by Python CPU time)
        summary["seconds"] = round(seconds, 2)
        if self.wall:
            return summary
        summary["gil_busy"] = round(min(1.0, summary["samples"] / max(1.0, seconds * self.rate)), 2)
        return summary


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """Per thread: its share of the samples, top functions by self and by inclusive samples (frames
    present in nearly every sample of the thread, its entry points, are left out of the latter)."""
    threads: dict[str, dict[str, Any]] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = re.sub(r"^thread \(\w+\): ?", "", frames[0]) or frames[0]
        thread = re.sub(r"-?\d+$", "", thread) if thread.startswith("Thread-") else thread
        funcs = [re.sub(r":\d+\)$", ")", f) for f in frames[1:]]  # drop line numbers
        t = threads.setdefault(thread, {"samples": 0, "self": {}, "incl": {}})
        t["samples"] += count
        if funcs:
            t["self"][funcs[-1]] = t["self"].get(funcs[-1], 0) + count
            for f in set(funcs):
                t["incl"][f] = t["incl"].get(f, 0) + count
    total = sum(t["samples"] for t in threads.values()) or 1
    out: dict[str, Any] = {"file": str(path), "samples": total, "threads": {}}
    for name, t in sorted(threads.items(), key=lambda kv: -kv[1]["samples"]):
        n = t["samples"]
        out["threads"][name] = {
            "samples": n,
            "share": round(n / total, 3),
            "top_self": [(f, round(c / n, 3)) for f, c in sorted(t["self"].items(), key=lambda kv: -kv[1])[:top]],
            "top_inclusive": [(f, round(c / n, 3)) for f, c in sorted(t["incl"].items(), key=lambda kv: -kv[1])
                              if c < 0.95 * n][:top],
        }
    return out


# ------------------------------------------------------------------------------------------------ the benchmark


@dataclasses.dataclass
class Result:
    direction: str
    scenario: str
    phase: str
    rows: int
    seconds: float
    rows_per_s: float
    lag_p50: Optional[float] = None
    lag_p99: Optional[float] = None
    lag_max: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.pg: Optional[PostgresServer] = None
        self.maria: Optional[MariaDBServer] = None
        self.daemon: Optional[Daemon] = None
        self.sides: dict[str, Side] = {}
        self.results: list[Result] = []
        self.seq = 0  # every generated change carries a seq larger than all earlier ones
        self.next_id_block = 1
        self.table_rows = max(args.txn_rows, args.table_rows // args.txn_rows * args.txn_rows)
        self.profiles: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.upsert_rates: dict[str, float] = {}  # target side -> its own batched-upsert rows/s
        self.notes: list[str] = []  # lines printed under the figures (skipped peers, scales)

    # -- setup
    def start_servers(self) -> None:
        say(f"starting PostgreSQL and MariaDB in {self.workdir}")
        pg_settings = {"synchronous_commit": self.args.pg_synchronous_commit}
        self.pg = PostgresServer(self.workdir / "postgres", settings=pg_settings)
        self.maria = MariaDBServer(self.workdir / "mariadb")
        self.pg.start()
        self.maria.start()
        self.pg.create_database(DB)
        self.maria.create_database(DB)
        self.sides = {"crm": PgSide("crm", self.pg), "erp": MariaSide("erp", self.maria)}

    def setup(self) -> None:
        assert self.pg and self.maria
        for side in self.sides.values():
            side.create()  # type: ignore[attr-defined]
            side.preload(self.table_rows)
        say(f"created {TABLE} on both sides with {self.table_rows} identical rows")
        w = self.workdir
        (w / "mappings").mkdir(exist_ok=True)
        mapping = MAPPING if self.args.mapping_direction == "both" else MAPPING.replace(
            "direction: both", f"direction: {self.args.direction}")  # one-way: no conflict detection
        (w / "mappings" / "bench.yaml").write_text(mapping)
        (w / "pg.pw").write_text(self.pg.password)
        (w / "my.pw").write_text(self.maria.password)
        metrics_port = free_port()
        config = w / "replicator.yaml"
        config.write_text(textwrap.dedent(f"""\
            connections:
              crm:
                kind: postgresql
                host: {self.pg.host}
                port: {self.pg.port}
                database: {DB}
                user: {self.pg.user}
                password_file: pg.pw
                slot: {PG_SLOT}
                publication: replicator
              erp:
                kind: mariadb
                host: {self.maria.host}
                port: {self.maria.port}
                database: {DB}
                user: {self.maria.user}
                password_file: my.pw
                state_schema: {MARIA_STATE}
                server_id: 4242
            mappings: mappings
            metrics: {{port: {metrics_port}}}
            reconnect: {{initial_seconds: 0.2, max_seconds: 2}}
            """) + SYNC_SETTING + (f"batch: {{{', '.join(f'{k}: {v}' for k, v in self.args.batch)}}}\n" if self.args.batch else ""))
        self.daemon = Daemon(w, config, metrics_port)
        self.daemon.cli("setup")
        say("replicator setup done")

    # -- helpers
    def source_target(self, direction: str) -> tuple[Side, Side]:
        src, _, dst = direction.partition("_to_")
        return self.sides[src], self.sides[dst]

    def id_block(self) -> int:
        """First id of a fresh range for inserted rows (never collides with other phases)."""
        first = self.next_id_block * 1_000_000_000
        self.next_id_block += 1
        return first

    def load(self) -> str:
        a, b, c = os.getloadavg()
        return f"{a:.2f} {b:.2f} {c:.2f}"

    # -- phases
    def run_direction(self, direction: str) -> None:
        assert self.daemon is not None
        for k in self.args.burst_txn_rows:
            if k > 1 and (self.args.scenario != "update" or self.table_rows % k):
                self.notes.append(f"{direction}: burst in transactions of {k} rows skipped (update scenario "
                                  f"only, and --table-rows must be a multiple of {k})")
                continue
            self.burst(direction, k, "burst" if k == 1 else f"burst-{k}", decode=k == 1)
            if _interrupted:
                return
        if self.args.big_rows > 0:
            self.big_transaction(direction)
        if _interrupted:
            return
        if self.args.seconds > 0 and self.args.rate > 0:
            self.steady(direction)

    def burst(self, direction: str, k: int = 1, phase: str = "burst", decode: bool = True) -> None:
        """A backlog of n changes in transactions of k rows (k > 1: update scenario only), written while
        the daemon is stopped, then applied from the start of streaming: the catch-up rate."""
        args, daemon = self.args, self.daemon
        assert daemon is not None
        source, target = self.source_target(direction)
        scenario = args.scenario
        n = args.rows // k * k
        daemon.stop()  # the backlog builds up while nothing reads it
        decode_start = None if args.no_decode or not decode else self.decode_mark(source)
        first_seq = self.seq + 1
        first_id = self.id_block() if scenario == "insert" else 1
        say(f"{direction}: generating {n} {scenario}s in transactions of {k} row(s) on {source.name} "
            f"({source.kind}), daemon stopped; load {self.load()}")
        t0 = time.monotonic()
        source.burst(scenario, n, self.table_rows, first_id, first_seq, k)
        gen_s = time.monotonic() - t0
        self.seq = first_seq + n - 1
        say(f"{direction}: generated in {gen_s:.1f} s ({n / gen_s:,.0f} rows/s); starting the daemon")
        if scenario == "update":
            last_id, last_seq = ((n // k - 1) * k) % self.table_rows + k, self.seq
            probe_sql = f"SELECT seq FROM {TABLE} WHERE id = %s"

            def done(cur: Any) -> bool:
                cur.execute(probe_sql, (last_id,))
                row = cur.fetchone()
                return bool(row and row[0] >= last_seq)
        else:
            last_id = first_id + n - 1

            def done(cur: Any) -> bool:
                cur.execute(f"SELECT 1 FROM {TABLE} WHERE id = %s", (last_id,))
                return cur.fetchone() is not None

        daemon.start()
        streaming_at = daemon.wait_streaming(direction)
        cpu0 = self.cpu_now(source, target)
        sampler = Sampler(daemon, direction).start()
        profiler = None
        if args.profile and daemon.pid:
            args.profile.mkdir(parents=True, exist_ok=True)
            profiler = Profiler(daemon.pid, args.profile / f"{direction}-{scenario}-{phase}.txt", args.profile_rate,
                                args.profile_wall)
        timeout = max(300.0, n / 200)
        try:
            conn = target.connect()
            try:
                with conn.cursor() as cur:
                    deadline = time.monotonic() + timeout
                    while not done(cur):
                        daemon.check_alive()
                        if time.monotonic() > deadline:
                            raise BenchError(f"{direction}: the target did not receive all {n} changes within "
                                             f"{timeout:.0f} s\n{daemon.log_tail()}")
                        time.sleep(0.02)  # autocommit: every probe sees the latest commit
            finally:
                conn.close()
            done_at = time.time()
            cpu1 = self.cpu_now(source, target)
        finally:
            peak = sampler.stop()
            prof = profiler.stop() if profiler else None
        if prof:
            self.profiles[f"{direction} {scenario} {phase}"] = prof
        apply_s = done_at - streaming_at
        cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
        text = daemon.metrics_text() or ""
        txns = daemon.metric("replicator_transactions_applied_total", text, direction=direction)
        brows = daemon.metric("replicator_apply_batch_rows_sum", text, direction=direction) or 0
        bcount = daemon.metric("replicator_apply_batch_rows_count", text, direction=direction) or 0
        extra: dict[str, Any] = {
            "txn_rows": k,
            "generate_s": round(gen_s, 2),
            "generate_rows_per_s": round(n / gen_s),
            "daemon_startup_s": round(streaming_at - daemon.spawned_at, 2),
            "rows_per_s_from_spawn": round(n / (done_at - daemon.spawned_at)),
            "metric_transactions_applied": txns,
            "batches": int(bcount),
            "avg_batch_rows": round(brows / bcount, 1) if bcount else None,
            "load_avg": self.load(),
            # where the machine's CPU went while the backlog was applied: us a row of the daemon, the
            # source server (its WAL sender / binlog dump) and the target server, and how many of the
            # cores were busy with the three together
            "cpu_us_per_row": {k: round(v / n * 1e6, 1) for k, v in cpu.items()},
            "cores_busy": round(sum(cpu.values()) / apply_s, 2),
        }
        say(f"{direction}: CPU us a row: daemon {extra['cpu_us_per_row']['daemon']}, source server "
            f"{extra['cpu_us_per_row']['source_server']}, target server {extra['cpu_us_per_row']['target_server']}; "
            f"{extra['cores_busy']} of {os.cpu_count()} cores busy")
        say(f"{direction}: {n} rows applied in {apply_s:.2f} s = {n / apply_s:,.0f} rows/s "
            f"(startup {extra['daemon_startup_s']} s, {extra['batches']} batches, avg {extra['avg_batch_rows']} "
            f"rows/batch, peak RSS {peak:.0f} MB)")
        if decode_start is not None and not _interrupted:
            extra.update(self.decode_only(direction, source, decode_start, n))
        self.results.append(Result(direction, scenario, phase, n, round(apply_s, 3), round(n / apply_s),
                                   peak_rss_mb=round(peak, 1), extra=extra))

    def cpu_now(self, source: Side, target: Side) -> dict[str, float]:
        """CPU seconds used so far by the daemon and the two servers (their whole process trees)."""
        def tree(pid: Optional[int]) -> float:
            return procstat.tree_cpu_seconds(pid) if pid else 0.0
        return {"daemon": tree(self.daemon.pid if self.daemon else None),
                "source_server": tree(source.server.pid), "target_server": tree(target.server.pid)}

    # -- decode-only context: the same source reader the daemon uses, without any applier
    def decode_mark(self, source: Side) -> Any:
        if source.kind == "postgresql":
            assert self.pg is not None
            self.pg.execute(f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                            f"WHERE slot_name = '{DECODE_SLOT}' AND NOT active", dbname=DB)
            return self.pg.execute(f"SELECT lsn::text FROM pg_create_logical_replication_slot("
                                   f"'{DECODE_SLOT}', 'pgoutput')", dbname=DB)[0][0]
        assert self.maria is not None
        row = self.maria.execute("SHOW MASTER STATUS")[0]
        return (row[0], int(row[1]))

    def decode_only(self, direction: str, source: Side, mark: Any, n: int) -> dict[str, Any]:
        try:
            from replicator.changes import LSN, BinlogPosition, TableRef
            from replicator.config import load
            from replicator.loopguard import LoopGuard, stream_name

            assert self.daemon is not None
            config = load(self.daemon.config)
            src_name, _, dst_name = direction.partition("_to_")
            conn = config.side(src_name)
            guard = LoopGuard(conn.state_schema, stream_name(dst_name, src_name))
            schema = "public" if conn.kind == "postgresql" else conn.database
            tables = [TableRef(schema, TABLE)]
            chunk = config.batching.chunk_rows
            if conn.kind == "postgresql":
                from replicator.sources.wal import WalSource

                reader: Any = WalSource(dataclasses.replace(conn, slot=DECODE_SLOT), "bench_decode", tables,
                                        guard, LSN.parse(mark), chunk)
            else:
                from replicator.sources.binlog import BinlogSource

                reader = BinlogSource(dataclasses.replace(conn, server_id=conn.server_id + 1), "bench_decode",
                                      tables, guard, BinlogPosition(mark[0], mark[1]), chunk,
                                      heartbeat_seconds=1.0)
            seen = 0
            timer = threading.Timer(max(120.0, n / 500), reader.stop)
            timer.start()
            t0 = time.monotonic()
            try:
                gen = reader.transactions()
                for txn in gen:
                    seen += len(txn.changes)
                    if seen >= n:
                        break
                elapsed = time.monotonic() - t0
                reader.stop()
                gen.close()
            finally:
                timer.cancel()
            if seen < n:
                return {"decode_only_error": f"read only {seen} of {n} changes"}
            say(f"{direction}: decode-only (source reader alone, in the bench process): "
                f"{n / elapsed:,.0f} rows/s")
            return {"decode_only_s": round(elapsed, 2), "decode_only_rows_per_s": round(n / elapsed)}
        except Exception as exc:  # context only: never fail the benchmark for it
            return {"decode_only_error": f"{type(exc).__name__}: {exc}"}
        finally:
            if source.kind == "postgresql" and self.pg is not None:
                for _ in range(50):  # the walsender may take a moment to release the slot
                    try:
                        left = self.pg.execute(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                            "WHERE slot_name = %s AND NOT active", (DECODE_SLOT,), dbname=DB)
                        if left or not self.pg.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                                       (DECODE_SLOT,), dbname=DB):
                            break
                    except Exception:
                        pass
                    time.sleep(0.1)

    def big_transaction(self, direction: str) -> None:
        """One source transaction of --big-rows new rows with the daemon running: time from its commit to
        the last row visible at the target, and the daemon's peak RSS meanwhile."""
        args, daemon = self.args, self.daemon
        assert daemon is not None
        source, target = self.source_target(direction)
        n = args.big_rows
        if daemon.pid is None:
            daemon.start()
        daemon.wait_streaming(direction)
        first_id, first_seq = self.id_block(), self.seq + 1
        self.seq += n
        sampler = Sampler(daemon, direction).start()
        say(f"{direction}: one source transaction inserting {n:,} rows; load {self.load()}")
        t0 = time.monotonic()
        source.big_insert(n, first_id, first_seq)
        gen_s = time.monotonic() - t0
        committed_at = time.time()
        last_id = first_id + n - 1
        conn = target.connect()
        try:
            with conn.cursor() as cur:
                deadline = time.monotonic() + max(300.0, n / 500)
                while True:
                    cur.execute(f"SELECT 1 FROM {TABLE} WHERE id = %s", (last_id,))
                    if cur.fetchone() is not None:
                        break
                    daemon.check_alive()
                    if time.monotonic() > deadline:
                        raise BenchError(f"{direction}: the {n}-row transaction did not arrive\n{daemon.log_tail()}")
                    time.sleep(0.05)
                done_at = time.time()
                cur.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE id BETWEEN %s AND %s", (first_id, last_id))
                arrived = cur.fetchone()[0]
        finally:
            conn.close()
            peak = sampler.stop()
        apply_s = done_at - committed_at
        if arrived != n:
            raise BenchError(f"{direction}: {arrived} of the {n} rows of the big transaction arrived")
        say(f"{direction}: {n:,}-row transaction applied {apply_s:.2f} s after its commit "
            f"({n / apply_s:,.0f} rows/s), peak RSS {peak:.0f} MB")
        self.results.append(Result(direction, "insert", "big-txn", n, round(apply_s, 3), round(n / apply_s),
                                   peak_rss_mb=round(peak, 1),
                                   extra={"source_commit_s": round(gen_s, 2), "load_avg": self.load()}))

    def both_at_once(self) -> None:
        """Both directions at the steady rate at the same time (inserts into separate id ranges, so the
        two streams never edit the same rows)."""
        assert self.daemon is not None
        if self.daemon.pid is None:
            self.daemon.start()
        for d in DIRECTIONS:
            self.daemon.wait_streaming(d)
        errors: list[BaseException] = []

        def one(d: str) -> None:
            try:
                self.steady(d, scenario="insert", phase="steady-both")
            except BaseException as exc:
                errors.append(exc)
        threads = [threading.Thread(target=one, args=(d,), name=f"both-{d}") for d in DIRECTIONS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def detection_off(self, direction: str) -> None:
        """The single-row burst again with the mapping one-way in this direction (no conflict detection),
        then the two-way mapping back."""
        assert self.daemon is not None
        self.daemon.stop()
        path = self.workdir / "mappings" / "bench.yaml"
        path.write_text(MAPPING.replace("direction: both", f"direction: {direction}"))
        try:
            self.burst(direction, phase="burst-no-detection", decode=False)
        finally:
            self.daemon.stop()
            path.write_text(MAPPING)

    def upsert_baselines(self) -> None:
        n = min(self.args.rows, 100_000)
        for name, side in self.sides.items():
            say(f"{name} ({side.kind}): the target's own batched upserts, {n} rows of 500 per statement")
            self.upsert_rates[name] = side.upsert_rate(n)
            say(f"{name}: {self.upsert_rates[name]:,.0f} rows/s")

    def steady(self, direction: str, scenario: Optional[str] = None, phase: str = "steady") -> None:
        args, daemon = self.args, self.daemon
        assert daemon is not None
        source, target = self.source_target(direction)
        b = args.txn_rows
        rate_txn = args.rate / b
        total_txn = max(1, int(rate_txn * args.seconds))
        scenario = scenario or args.scenario
        with self.lock:  # both directions at once: each gets its own seq and id range
            first_seq = self.seq + 1
            self.seq += total_txn
            first_id = self.id_block() if scenario == "insert" else 1
        cycle = self.table_rows // b  # update scenario: txn k touches rows a(k) .. a(k)+b-1

        def first_row(k: int) -> int:
            return first_id + k * b if scenario == "insert" else (k % cycle) * b + 1

        commit_at = [0.0] * total_txn
        committed = [0]  # number of transactions committed at the source so far
        seen_at = [0.0] * total_txn
        applied = [0]  # number of transactions known applied at the target
        writer_error: list[BaseException] = []
        stop = threading.Event()

        def writer() -> None:
            conn = source.connect()
            try:
                with conn.cursor() as cur:
                    upd, ins = source.update_sql(), source.insert_sql(b)
                    t_start = time.monotonic()
                    for k in range(total_txn):
                        if stop.is_set() or STOP.is_set():
                            break
                        due = t_start + k / rate_txn
                        delay = due - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        a = first_row(k)
                        if scenario == "update":
                            cur.execute(upd, (first_seq + k, a, a + b - 1))
                        else:
                            params: list[Any] = []
                            for j in range(b):
                                i = a + j
                                params += [i, i % 1000, f"item {i}", (i % 100000) / 100, note_text(i), first_seq + k]
                            cur.execute(ins, params)
                        commit_at[k] = time.time()  # autocommit: the statement is its transaction
                        committed[0] = k + 1
            except BaseException as exc:
                if not STOP.is_set():
                    writer_error.append(exc)
            finally:
                conn.close()

        def probe(cur: Any, k: int) -> bool:
            """Is source transaction k visible at the target? Monotone in k: the target applies whole
            source transactions in commit order, and seq only grows."""
            if scenario == "update":
                cur.execute(f"SELECT seq FROM {TABLE} WHERE id = %s", (first_row(k),))
                row = cur.fetchone()
                return bool(row and row[0] >= first_seq + k)
            cur.execute(f"SELECT 1 FROM {TABLE} WHERE id = %s", (first_row(k),))
            return cur.fetchone() is not None

        poller_error: list[BaseException] = []

        def poller() -> None:
            try:
                poll()
            except BaseException as exc:
                if not STOP.is_set():
                    poller_error.append(exc)

        def poll() -> None:
            conn = target.connect()
            try:
                with conn.cursor() as cur:
                    while True:
                        hi = committed[0]  # transactions 0 .. hi-1 are committed at the source
                        lo = applied[0]
                        if hi > lo:
                            if probe(cur, hi - 1):
                                new = hi
                            else:  # binary search for the first transaction not yet visible
                                left, right = lo, hi - 1
                                while left < right:
                                    mid = (left + right) // 2
                                    if probe(cur, mid):
                                        left = mid + 1
                                    else:
                                        right = mid
                                new = left
                            now = time.time()
                            for k in range(lo, new):
                                seen_at[k] = now
                            applied[0] = new
                        if (stop.is_set() and applied[0] >= committed[0]) or STOP.is_set():
                            return
                        time.sleep(args.poll_ms / 1000)
            finally:
                conn.close()

        say(f"{direction}: steady {scenario} load, {args.rate} rows/s in transactions of {b} rows for "
            f"{args.seconds} s; load {self.load()}")
        daemon.check_alive()
        sampler = Sampler(daemon, direction, lag_interval=0.25).start()
        wt = threading.Thread(target=writer, daemon=True, name="writer")
        pt = threading.Thread(target=poller, daemon=True, name="poller")
        t0 = time.monotonic()
        wt.start()
        pt.start()
        wt.join(args.seconds * 3 + 60)
        write_s = time.monotonic() - t0
        if wt.is_alive():
            stop.set()
            wt.join(10)
        stop.set()  # the poller finishes once everything committed is visible
        drain_deadline = time.monotonic() + max(120.0, args.seconds * 10)
        while pt.is_alive() and time.monotonic() < drain_deadline:
            daemon.check_alive()
            pt.join(0.5)
        drained = not pt.is_alive()
        all_seen_s = time.monotonic() - t0
        peak = sampler.stop()
        if writer_error or poller_error:
            which, err = ("writer", writer_error[0]) if writer_error else ("target poller", poller_error[0])
            raise BenchError(f"{direction}: steady {which} failed: {err!r}")
        n_txn = committed[0]
        lags = [seen_at[k] - commit_at[k] for k in range(n_txn) if seen_at[k]]
        rows = n_txn * b
        extra = {
            "target_rows_per_s": args.rate,
            "txn_rows": b,
            "write_s": round(write_s, 2),
            "until_all_applied_s": round(all_seen_s, 2),
            "drained": drained,
            "transactions": n_txn,
            "unseen_transactions": n_txn - len(lags),
            "lag_resolution_ms": args.poll_ms,
            "metric_lag_p50": _r(percentile(sampler.lag_samples, 50)),
            "metric_lag_p99": _r(percentile(sampler.lag_samples, 99)),
            "metric_lag_max": _r(max(sampler.lag_samples) if sampler.lag_samples else None),
            "metric_lag_samples": len(sampler.lag_samples),
            "load_avg": self.load(),
        }
        res = Result(direction, scenario, phase, rows, round(write_s, 3), round(rows / write_s),
                     _r(percentile(lags, 50)), _r(percentile(lags, 99)), _r(max(lags) if lags else None),
                     round(peak, 1), extra)
        say(f"{direction}: steady {rows} rows in {write_s:.1f} s ({res.rows_per_s:,} rows/s written); "
            f"end-to-end lag p50 {_fmt(res.lag_p50)} p99 {_fmt(res.lag_p99)} max {_fmt(res.lag_max)} s; "
            f"gauge p50 {_fmt(extra['metric_lag_p50'])} max {_fmt(extra['metric_lag_max'])} s; "
            f"peak RSS {peak:.0f} MB" + ("" if drained else "; NOT DRAINED"))
        self.results.append(res)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        for server in (self.maria, self.pg):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # keep stopping the others
                    say(f"stopping {server.kind}: {exc}")


def _r(v: Optional[float], digits: int = 3) -> Optional[float]:
    return None if v is None else round(v, digits)


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------------------------------------ output


def table(results: list[Result]) -> str:
    head = ["direction", "scenario", "phase", "rows", "seconds", "rows/s", "lag p50", "lag p99", "lag max",
            "peak RSS MB"]
    rows = [[r.direction, r.scenario, r.phase, str(r.rows), f"{r.seconds:.2f}", f"{r.rows_per_s:,}",
             _fmt(r.lag_p50), _fmt(r.lag_p99), _fmt(r.lag_max),
             "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
    notes = []
    for r in results:
        e = r.extra
        if r.phase.startswith("burst"):
            dec = (f"{e['decode_only_rows_per_s']:,} rows/s" if "decode_only_rows_per_s" in e
                   else e.get("decode_only_error", "skipped"))
            notes.append(f"{r.direction} {r.phase}: source generated {e['generate_rows_per_s']:,} rows/s; "
                         f"decode-only {dec}; daemon startup {e['daemon_startup_s']} s "
                         f"({e['rows_per_s_from_spawn']:,} rows/s counting it); {e['batches']} batches, "
                         f"avg {e['avg_batch_rows']} rows; load {e['load_avg']}")
        elif r.phase == "big-txn":
            notes.append(f"{r.direction} big-txn: one source transaction of {r.rows:,} rows, committed in "
                         f"{e['source_commit_s']} s; seconds = its commit to its last row at the target")
        else:
            notes.append(f"{r.direction} {r.phase}: target {e['target_rows_per_s']} rows/s in txns of "
                         f"{e['txn_rows']}; replicator_lag_seconds p50/p99/max {_fmt(e['metric_lag_p50'])}/"
                         f"{_fmt(e['metric_lag_p99'])}/{_fmt(e['metric_lag_max'])} s; all applied "
                         f"{e['until_all_applied_s']} s after the writer started"
                         + ("" if e["drained"] else " (NOT DRAINED)") + f"; load {e['load_avg']}")
    out += [""] + notes
    out.append("lag = first poll that saw the transaction at the target minus its source commit "
               "(upper bound, resolution ~poll interval)")
    return "\n".join(out)


TARGET_ROWS_PER_S = 15_000  # issue 14's end-to-end target, each direction
UPSERT_SHARE = 0.8  # ... and this share of the target database's own batched-upsert rate


def figures(bench: "Bench") -> str:
    """One line per figure of issue 14, each with its ratio, from this run's results."""
    by = {(r.direction, r.phase): r for r in bench.results}
    out = ["figures (issue 14; ratios from this run):"]
    for d in DIRECTIONS:
        target = d.partition("_to_")[2]
        upsert = bench.upsert_rates.get(target)
        for r in [r for r in bench.results if r.direction == d and r.phase in ("burst", *(
                f"burst-{k}" for k in bench.args.burst_txn_rows))]:
            k = r.extra.get("txn_rows", 1)
            vs = (f"{r.rows_per_s / upsert:.2f}x {target}'s own batched upsert ({upsert:,.0f} rows/s; goal "
                  f"{UPSERT_SHARE}x)" if upsert else "target upsert rate not measured")
            out.append(f"  {d} end to end, {k}-row transactions: {r.rows_per_s:,} rows/s = "
                       f"{r.rows_per_s / TARGET_ROWS_PER_S:.2f}x the 15k goal; {vs}")
            cpu = r.extra.get("cpu_us_per_row")
            if cpu:
                out.append(f"    CPU us a row: daemon {cpu['daemon']}, source server {cpu['source_server']}, "
                           f"target server {cpu['target_server']}; {r.extra['cores_busy']} cores busy")
        r = by.get((d, "burst"))
        if r:
            out.append(f"  {d} catch-up (daemon stopped while {r.rows:,} single-row transactions accumulated): "
                       f"{r.rows_per_s:,} rows/s until the last one was in")
        big = by.get((d, "big-txn"))
        if big:
            out.append(f"  {d} one {big.rows:,}-row source transaction: applied {big.seconds:.1f} s after its commit "
                       f"({big.rows_per_s:,} rows/s), peak RSS {big.peak_rss_mb:.0f} MB = "
                       f"{(big.peak_rss_mb or 0) / 150:.2f}x the 150 MB goal (scale {big.rows / 1e6:g} of 1M)")
        off = by.get((d, "burst-no-detection"))
        if r and off:
            out.append(f"  {d} conflict detection on vs off (single-row burst): {r.rows_per_s:,} vs "
                       f"{off.rows_per_s:,} rows/s = {r.rows_per_s / off.rows_per_s:.2f}x (goal >= 0.8x)")
    for d in DIRECTIONS:
        r = by.get((d, "steady-both"))
        if r:
            out.append(f"  both at once, {d}: {r.rows_per_s:,} rows/s written, lag p99 {_fmt(r.lag_p99)} s "
                       f"(goal < 1 s), peak RSS {r.peak_rss_mb:.0f} MB (goal < 150 MB)")
    out.append("  MariaDB -> PostgreSQL vs pg_chameleon: skipped (bench/run.py does not drive pg_chameleon; "
               "bench/peers.py measures both on the peers' workload, with the ratio)")
    out += ["  " + n for n in bench.notes]
    return "\n".join(out)


def profile_text(profiles: dict[str, Any], top: int = 8) -> str:
    out = []
    for phase, p in profiles.items():
        if "error" in p:
            out.append(f"profile {phase}: {p['error']}")
            continue
        if "gil_busy" in p:
            out.append(f"profile {phase}: {p['samples']} samples holding the GIL in {p.get('seconds', '?')} s "
                       f"(interpreter busy {p.get('gil_busy', 0):.0%}); raw stacks {p['file']}")
        else:
            out.append(f"profile {phase}: {p['samples']} samples of every thread, waiting or not, in "
                       f"{p.get('seconds', '?')} s; raw stacks {p['file']}")
        for name, t in p["threads"].items():
            if t["share"] < 0.02:
                continue
            out.append(f"  thread {name}: {t['share']:.0%} of the GIL samples")
            out.append("    self: " + "; ".join(f"{f} {s:.0%}" for f, s in t["top_self"][:top]))
            out.append("    incl: " + "; ".join(f"{f} {s:.0%}" for f, s in t["top_inclusive"][:top]))
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000, help="burst: single-row transactions generated")
    p.add_argument("--rate", type=int, default=5000, help="steady: rows per second written (0: skip steady)")
    p.add_argument("--seconds", type=float, default=30, help="steady: seconds of writing (0: skip steady)")
    p.add_argument("--txn-rows", type=int, default=10, help="steady: rows per transaction")
    p.add_argument("--direction", choices=(*DIRECTIONS, "both"), default="both")
    p.add_argument("--scenario", choices=("update", "insert"), default="update",
                   help="update: UPDATEs of pre-loaded rows; insert: new rows")
    p.add_argument("--table-rows", type=int, default=10_000, help="rows pre-loaded on both sides")
    p.add_argument("--poll-ms", type=float, default=20, help="steady: target polling interval for lag")
    p.add_argument("--no-decode", action="store_true", help="skip the decode-only context measurement")
    p.add_argument("--pg-synchronous-commit", choices=("on", "off"), default="on",
                   help="PostgreSQL synchronous_commit. devservers' fast default is off, but then a logical "
                        "walsender sends a commit only after the WAL writer flushes it (wal_writer_delay, 200 ms), "
                        "which adds ~160 ms to crm_to_erp lag; with fsync off, on costs nothing")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="record the daemon with py-spy during each burst; raw stacks and a summary go to DIR")
    p.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    p.add_argument("--profile-wall", action="store_true",
                   help="--profile samples every thread, waiting too (py-spy --idle), not only the GIL holder: "
                        "shows what each thread waits for")
    p.add_argument("--batch", action="append", default=[], metavar="KEY=N", type=_batch_setting,
                   help="daemon `batch:` setting, repeatable: max_rows, max_ms, chunk_rows, queue_rows")
    p.add_argument("--mapping-direction", choices=("both", "one-way"), default="both",
                   help="both: a two-way mapping (updates diffed and checked for conflicts); one-way: the "
                        "measured --direction only (no detection), for the cost of detection")
    p.add_argument("--burst-txn-rows", type=lambda t: [int(x) for x in t.split(",")], default=[1, 100],
                   metavar="K,K", help="burst: rows per source transaction, one burst each (K > 1: update scenario)")
    p.add_argument("--big-rows", type=int, default=1_000_000,
                   help="rows of the one large source transaction per direction (0 skips it)")
    p.add_argument("--no-both", action="store_true", help="skip the steady phase with both directions at once")
    p.add_argument("--no-detection-off", action="store_true",
                   help="skip the single-row burst repeated with conflict detection off (one-way mapping)")
    p.add_argument("--no-upsert-baseline", action="store_true",
                   help="skip measuring the targets' own batched-upsert rates")
    p.add_argument("--code", type=Path, metavar="DIR",
                   help="run the daemon from this checkout instead (e.g. `git archive BASE replicator | tar -x -C DIR`)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (the table goes to stderr)")
    p.add_argument("--keep", action="store_true",
                   help="at the end, leave the servers running until Ctrl-C and keep the data directory")
    args = p.parse_args(argv)
    if args.mapping_direction == "one-way" and args.direction == "both":
        p.error("--mapping-direction one-way measures one direction: give --direction crm_to_erp or erp_to_crm")
    if args.rows <= 0 or args.txn_rows <= 0 or args.table_rows <= 0:
        p.error("--rows, --txn-rows and --table-rows must be positive")
    return args


def _batch_setting(text: str) -> tuple[str, int]:
    key, _, value = text.partition("=")
    if key not in ("max_rows", "max_ms", "chunk_rows", "queue_rows") or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected max_rows|max_ms|chunk_rows|queue_rows=N, got {text!r}")
    return key, int(value)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    global CODE
    if args.code:
        CODE = args.code.resolve()
    missing = missing_binaries()
    if missing:
        print(f"bench: missing server binaries: {', '.join(missing)} (scripts/test installs them)", file=sys.stderr)
        return 2

    def on_term(signum: int, _frame: Any) -> None:
        global _interrupted
        _interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    # also when started from a script with `&`, which leaves SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="replicator-bench-"))
    bench = Bench(args, workdir)
    rc = 0
    try:
        bench.start_servers()
        if not args.no_upsert_baseline:
            bench.upsert_baselines()
        bench.setup()
        directions = DIRECTIONS if args.direction == "both" else (args.direction,)
        for d in directions:
            bench.run_direction(d)
        if args.direction == "both" and not args.no_both and args.seconds > 0 and args.rate > 0 and not _interrupted:
            bench.both_at_once()
        if args.mapping_direction == "both" and not args.no_detection_off:
            for d in directions:
                if not _interrupted:
                    bench.detection_off(d)
        if bench.daemon:
            bench.daemon.stop()
    except KeyboardInterrupt:
        STOP.set()
        say("interrupted: cleaning up")
        rc = 130
    except BenchError as exc:
        say(f"error: {exc}")
        rc = 1
    finally:
        try:
            report(bench, args)
            if args.keep and rc != 130 and bench.pg and bench.maria:
                if bench.daemon:
                    bench.daemon.stop()
                say(f"--keep: servers stay up until Ctrl-C; data in {workdir}\n"
                    f"  PostgreSQL: {bench.pg.url(DB)}\n  MariaDB:    {bench.maria.url(DB)}\n"
                    f"  config: {workdir / 'replicator.yaml'}; daemon log: {workdir / 'daemon.log'}\n"
                    f"  later: python -m replicator.testing.devservers --dir {workdir} restarts them on the same data")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
        except KeyboardInterrupt:
            rc = 130
        finally:
            STOP.set()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not skip the cleanup
                signal.signal(sig, signal.SIG_IGN)
            bench.stop()
            if args.keep:
                say(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    return rc


def git_state() -> dict[str, Any]:
    """The commit benchmarked, and whether the work tree differed from it (figures follow the code)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "replicator_modified": bool(git("status", "--porcelain", "--", "replicator"))}


def report(bench: Bench, args: argparse.Namespace) -> None:
    if not bench.results:
        return
    code = git_state()
    text = (f"replicator {code['commit'] or '?'}{' (+ uncommitted changes)' if code['replicator_modified'] else ''}"
            f"{f' (daemon from {CODE})' if CODE != ROOT else ''}; "
            f"{os.cpu_count()} CPUs, load {bench.load()}; PostgreSQL synchronous_commit="
            f"{args.pg_synchronous_commit}\n\n" + table(bench.results) + "\n\n" + figures(bench))
    prof = profile_text(bench.profiles) if bench.profiles else ""
    doc = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_end": bench.load()},
        "code": git_state(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": [dataclasses.asdict(r) for r in bench.results],
        "profiles": bench.profiles,
        "upsert_rates": bench.upsert_rates,
    }
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        (args.profile / "summary.json").write_text(json.dumps(bench.profiles, indent=2))
    if args.json:
        print(text + ("\n\n" + prof if prof else ""), file=sys.stderr)
        print(json.dumps(doc, indent=2))
    else:
        print("\n" + text + ("\n\n" + prof if prof else ""))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
