#!/usr/bin/env python3
"""The daemon under two-way load from real clients, catching up from a backlog, and at a steady rate for a long run.

Uses bench/run.py's servers, benchmark table (`bench_item`, mapped `direction: both`), configuration and daemon
wrapper, and adds two heartbeat tables, one per direction (`bench_hb_crm` crm_to_erp, `bench_hb_erp`
erp_to_crm): once a second a heartbeat row is updated on the source and the target is polled every 20 ms for
it; lag = first poll that sees it - its source commit. Heartbeats are ordinary changes in the source's log, so
a heartbeat's lag is the lag of everything committed before it. Modes:

- load (default): sysbench `oltp_write_only` on MariaDB (`sbtest1`, mapped erp_to_crm) and pgbench with a
  script of the same shape (UPDATE k, UPDATE c, DELETE + INSERT of one row: 4 row changes per transaction) on
  PostgreSQL (`pgb_item`, mapped crm_to_erp), both at once at fixed rates, while the daemon runs. Prints lag
  p50/p99/max per direction, rows/s applied per direction (replicator_rows_applied_total), the daemon's CPU
  seconds per row (/proc/PID/stat) and its peak RSS.
- catchup: the daemon stopped while --changes changes accumulate (half per direction, server-side loops in
  transactions of --txn-rows rows, heartbeats keep ticking), then started: rows/s from its start of streaming
  until the heartbeat lag is under 1 s in both directions.
- flat: both directions at once at --rate rows/s each until --changes changes in all (bench/run.py's steady
  writer and lag poller), the daemon's RSS sampled every second: first/last/peak and the slope.

    python bench/twoway.py --install                  # apt-get install sysbench if it is missing
    python bench/twoway.py --seconds 120              # load: about 1,000 rows/s on each side for 2 minutes
    python bench/twoway.py --mode catchup --changes 2000000
    python bench/twoway.py --mode flat --rate 5000 --changes 10000000
    python bench/twoway.py --mode load --seconds 20 --json > twoway.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lifecycle  # noqa: E402
import procstat  # noqa: E402
import run as benchrun  # noqa: E402  (bench/run.py: servers, table, mapping, daemon wrapper, steady writer)
from run import DB, BenchError, percentile, say  # noqa: E402

from replicator.testing.devservers import missing_binaries  # noqa: E402

HB = {"crm_to_erp": "bench_hb_crm", "erp_to_crm": "bench_hb_erp"}  # heartbeat table per direction
SB_TABLE, PGB_TABLE = "sbtest1", "pgb_item"
ROWS_PER_TXN_LOAD = 4  # oltp_write_only and our pgbench script: 2 UPDATEs, 1 DELETE, 1 INSERT
CAUGHT_UP_LAG_S = 1.0

PGBENCH_SCRIPT = f"""\
\\set id1 random(1, :size)
\\set id2 random(1, :size)
\\set id3 random(1, :size)
\\set k random(1, :size)
BEGIN;
UPDATE {PGB_TABLE} SET k = k + 1 WHERE id = :id1;
UPDATE {PGB_TABLE} SET c = md5(random()::text) || md5(random()::text) WHERE id = :id2;
DELETE FROM {PGB_TABLE} WHERE id = :id3;
INSERT INTO {PGB_TABLE} (id, k, c, pad) VALUES (:id3, :k, md5(random()::text), md5(random()::text));
END;
"""

def extra_mappings(load: bool) -> str:
    """The heartbeat tables (and with `load` the client tables), each mapped one way, same names on both sides."""
    tables = [(table, direction, ("id", "seq")) for direction, table in HB.items()]
    if load:
        tables += [(SB_TABLE, "erp_to_crm", ("id", "k", "c", "pad")), (PGB_TABLE, "crm_to_erp", ("id", "k", "c", "pad"))]
    text = "mappings:\n"
    for table, direction, cols in tables:
        text += (f"  {table}:\n    direction: {direction}\n    crm: {{table: {table}, key: [id]}}\n"
                 f"    erp: {{table: {table}, key: [id]}}\n    fields: {{{', '.join(c + ': ~' for c in cols)}}}\n")
    return text


class Heartbeat:
    """Once every `interval` s, UPDATE the heartbeat row on the source (autocommit); a poller reads it on the target
    every `poll` s. Updates are applied in commit order, so seeing seq s means every seq <= s has arrived."""

    def __init__(self, direction: str, source: benchrun.Side, target: benchrun.Side, interval: float = 1.0,
                 poll: float = 0.02):
        self.direction = direction
        self.table = HB[direction]
        self.source, self.target = source, target
        self.interval, self.poll = interval, poll
        self.commits: dict[int, float] = {}  # seq -> wall time its source commit returned
        self.arrivals: list[tuple[float, float]] = []  # (commit time, lag) per heartbeat seen
        self.seq = 0
        self.seen = 0
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._guard, args=(f,), daemon=True, name=f"hb-{direction}")
                         for f in (self._write, self._read)]

    def start(self) -> "Heartbeat":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except BaseException as exc:  # reported by check()
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise BenchError(f"{self.direction} heartbeat failed: {self.error!r}")

    def _write(self) -> None:
        conn = self.source.connect()
        try:
            while not self._stop.is_set():
                with conn.cursor() as cur:
                    cur.execute(f"UPDATE {self.table} SET seq = %s WHERE id = 1", (self.seq + 1,))
                self.commits[self.seq + 1] = time.time()  # autocommit: committed when execute returns
                self.seq += 1
                self._stop.wait(self.interval)
        finally:
            conn.close()

    def _read(self) -> None:
        conn = self.target.connect()
        try:
            while not self._stop.is_set():
                with conn.cursor() as cur:
                    cur.execute(f"SELECT seq FROM {self.table} WHERE id = 1")
                    row = cur.fetchone()
                now = time.time()
                got = int(row[0]) if row else 0
                for s in range(self.seen + 1, got + 1):
                    if s in self.commits:
                        self.arrivals.append((self.commits[s], now - self.commits[s]))
                self.seen = max(self.seen, got)
                self._stop.wait(self.poll)
        finally:
            conn.close()

    def lags(self, since: float = 0.0) -> list[float]:
        return [lag for at, lag in self.arrivals if at >= since]

    def caught_up(self, since: float, limit: float) -> bool:
        """A heartbeat committed after `since` has arrived with a lag under `limit`."""
        return any(at >= since and lag < limit for at, lag in self.arrivals)


class TwoWayBench(benchrun.Bench):
    """bench/run.py's Bench (self.args: its options) with this script's options in self.opts."""

    def __init__(self, opts: argparse.Namespace, workdir: Path):
        super().__init__(run_args(opts), workdir)
        self.opts = opts
        self.heartbeats: dict[str, Heartbeat] = {}
        self.report: dict[str, Any] = {"mode": opts.mode}
        self.lines: list[str] = []
        self.clients: list[subprocess.Popen[str]] = []

    # -- setup: the extra tables exist on both sides, identical, before `replicator setup`
    def setup(self) -> None:
        assert self.pg and self.maria
        load = self.opts.mode == "load"
        for direction, table in HB.items():
            for side in self.sides.values():
                side.exec_all([f"CREATE TABLE {table} (id int PRIMARY KEY, seq bigint NOT NULL)",
                               f"INSERT INTO {table} VALUES (1, 0)"])
        if load:
            self.prepare_load_tables()
        (self.workdir / "mappings").mkdir(exist_ok=True)
        (self.workdir / "mappings" / "twoway.yaml").write_text(extra_mappings(load))
        super().setup()  # its configuration has sync.on_first_run off: every table starts identical on both sides

    def sysbench_args(self) -> list[str]:
        assert self.maria is not None
        return ["sysbench", "oltp_write_only", "--db-driver=mysql", f"--mysql-host={self.maria.host}",
                f"--mysql-port={self.maria.port}", f"--mysql-user={self.maria.user}",
                f"--mysql-password={self.maria.password}", f"--mysql-db={DB}", "--tables=1",
                f"--table-size={self.opts.load_rows}"]

    def prepare_load_tables(self) -> None:
        """sysbench prepare fills sbtest1 on MariaDB; the same rows go to PostgreSQL. pgb_item: identical rows on
        both sides. (The daemon's first-run copy would also do it, but then its time would fall into the load.)"""
        assert self.pg and self.maria
        r = subprocess.run(self.sysbench_args() + ["prepare"], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise BenchError(f"sysbench prepare exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        crm, erp = self.sides["crm"], self.sides["erp"]
        crm.exec_all([f"CREATE TABLE {SB_TABLE} (id integer PRIMARY KEY, k integer NOT NULL DEFAULT 0, "
                      "c char(120) NOT NULL DEFAULT '', pad char(60) NOT NULL DEFAULT '')",
                      f"CREATE TABLE {PGB_TABLE} (id integer PRIMARY KEY, k integer NOT NULL, "
                      "c varchar(120) NOT NULL, pad varchar(60) NOT NULL)"])
        erp.exec_all([f"CREATE TABLE {PGB_TABLE} (id int PRIMARY KEY, k int NOT NULL, c varchar(120) NOT NULL, "
                      "pad varchar(60) NOT NULL) ENGINE=InnoDB"])
        import psycopg2.extras

        my = erp.connect()
        pg = crm.connect()
        try:
            with my.cursor() as mc:
                mc.execute(f"SELECT id, k, c, pad FROM {SB_TABLE} ORDER BY id")
                sb_rows = mc.fetchall()
            rows = [(i, i % 1000, f"c {i}".ljust(64, "x"), f"pad {i}") for i in range(1, self.opts.load_rows + 1)]
            with my.cursor() as mc:
                for s in range(0, len(rows), 1000):
                    mc.executemany(f"INSERT INTO {PGB_TABLE} (id, k, c, pad) VALUES (%s, %s, %s, %s)",
                                   rows[s:s + 1000])
            with pg.cursor() as pc:
                psycopg2.extras.execute_values(pc, f"INSERT INTO {SB_TABLE} (id, k, c, pad) VALUES %s", sb_rows,
                                               page_size=1000)
                psycopg2.extras.execute_values(pc, f"INSERT INTO {PGB_TABLE} (id, k, c, pad) VALUES %s", rows,
                                               page_size=1000)
        finally:
            my.close()
            pg.close()
        say(f"{SB_TABLE} (sysbench, erp_to_crm) and {PGB_TABLE} (pgbench, crm_to_erp): "
            f"{self.opts.load_rows} identical rows on both sides")

    # -- shared pieces
    def start_heartbeats(self, interval: float = 1.0) -> None:
        for d in benchrun.DIRECTIONS:
            src, dst = self.source_target(d)
            self.heartbeats[d] = Heartbeat(d, src, dst, interval).start()

    def wait_heartbeats(self, since: float, limit: float, timeout: float) -> float:
        """Wall time at which both directions had a heartbeat committed after `since` arrive within `limit` s."""
        assert self.daemon is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.daemon.check_alive()
            for hb in self.heartbeats.values():
                hb.check()
            if all(hb.caught_up(since, limit) for hb in self.heartbeats.values()):
                return time.time()
            time.sleep(0.05)
        raise BenchError(f"the heartbeats did not arrive within {limit} s of their commit in {timeout:.0f} s\n"
                         f"{self.daemon.log_tail()}")

    def applied(self) -> dict[str, float]:
        assert self.daemon is not None
        text = self.daemon.metrics_text() or ""
        return {d: self.daemon.metric("replicator_rows_applied_total", text, direction=d) or 0.0
                for d in benchrun.DIRECTIONS}

    def lag_line(self, direction: str, lags: list[float]) -> dict[str, Any]:
        p50, p99 = percentile(lags, 50), percentile(lags, 99)
        mx = max(lags) if lags else None
        return {"direction": direction, "heartbeats": len(lags), "lag_p50_s": benchrun._r(p50),
                "lag_p99_s": benchrun._r(p99), "lag_max_s": benchrun._r(mx)}

    def start_daemon(self) -> float:
        assert self.daemon is not None
        self.daemon.start()
        return max(self.daemon.wait_streaming(d) for d in benchrun.DIRECTIONS)

    # -- mode: two-way load from real clients
    def run_load(self) -> None:
        args = self.opts
        assert self.pg and self.daemon
        self.start_heartbeats()
        self.start_daemon()
        self.wait_heartbeats(time.time(), 5.0, 120)  # streaming both ways (and the first-run copy done)
        pid = self.daemon.pid
        assert pid is not None
        script = self.workdir / "pgbench.sql"
        script.write_text(PGBENCH_SCRIPT)
        env = dict(os.environ, PGPASSWORD=self.pg.password)
        sb = subprocess.Popen(lifecycle.die_with_us() + self.sysbench_args() + [f"--rate={args.my_tps}", f"--time={int(args.seconds)}",
                                                      "--threads=1", "--report-interval=0", "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        pgb = subprocess.Popen(lifecycle.die_with_us() + ["pgbench", "-n", "-f", str(script), "-c", "1", "-j", "1", "-R", str(args.pg_tps),
                                "-T", str(int(args.seconds)), "-D", f"size={args.load_rows}", "-h", self.pg.host,
                                "-p", str(self.pg.port), "-U", self.pg.user, DB],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.clients = [sb, pgb]
        say(f"load: sysbench oltp_write_only {args.my_tps} tps on MariaDB and pgbench {args.pg_tps} tps on "
            f"PostgreSQL ({ROWS_PER_TXN_LOAD} rows per transaction) for {args.seconds:.0f} s; load {self.load()}")
        t0 = time.time()
        cpu0, applied0 = procstat.cpu_seconds(pid), self.applied()
        procstat.reset_peak(pid)
        rss = procstat.RssSeries(lambda: [pid], 1.0).start()
        sb_out, _ = sb.communicate(timeout=args.seconds + 120)
        pgb_out, _ = pgb.communicate(timeout=120)
        t_end = time.time()
        # everything the clients committed has arrived once a later heartbeat has
        self.wait_heartbeats(t_end, float("inf"), max(120.0, args.seconds * 10))
        t1 = time.time()
        cpu1, applied1 = procstat.cpu_seconds(pid), self.applied()
        rss.stop()
        peak = max(procstat.status_kb(pid, "VmHWM") / 1024, rss.peak or 0)
        for name, proc, out in (("sysbench", sb, sb_out), ("pgbench", pgb, pgb_out)):
            (self.workdir / f"{name}.log").write_text(out)
            if proc.returncode != 0:
                raise BenchError(f"{name} exited {proc.returncode}:\n{out[-2000:]}")
        sb_txn = re.search(r"transactions:\s+(\d+)", sb_out)
        pgb_txn = re.search(r"number of transactions actually processed: (\d+)", pgb_out)
        offered = {"erp_to_crm": int(sb_txn.group(1)) * ROWS_PER_TXN_LOAD / args.seconds if sb_txn else None,
                   "crm_to_erp": int(pgb_txn.group(1)) * ROWS_PER_TXN_LOAD / args.seconds if pgb_txn else None}
        rows = {d: applied1[d] - applied0[d] for d in benchrun.DIRECTIONS}
        total = sum(rows.values())
        out: dict[str, Any] = {"seconds": round(args.seconds, 1), "until_all_applied_s": round(t1 - t0, 2),
                               "directions": [], "cpu_s": round(cpu1 - cpu0, 2),
                               "cpu_ms_per_row": round((cpu1 - cpu0) / total * 1000, 4) if total else None,
                               "cpu_share_of_one_core": round((cpu1 - cpu0) / (t1 - t0), 3),
                               "peak_rss_mb": round(peak, 1), "rss": rss.summary(), "load_avg": self.load()}
        for d in benchrun.DIRECTIONS:
            item = self.lag_line(d, self.heartbeats[d].lags(since=t0))
            item.update(offered_rows_per_s=benchrun._r(offered[d], 0), applied_rows=int(rows[d]),
                        applied_rows_per_s=round(rows[d] / (t1 - t0)))
            out["directions"].append(item)
            self.lines.append(f"load {d}: lag p50 {benchrun._fmt(item['lag_p50_s'])} p99 "
                              f"{benchrun._fmt(item['lag_p99_s'])} max {benchrun._fmt(item['lag_max_s'])} s "
                              f"({item['heartbeats']} heartbeats, target p99 < 1 s); offered "
                              f"{item['offered_rows_per_s'] or 0:,.0f} rows/s, applied {item['applied_rows_per_s']:,} "
                              f"rows/s ({item['applied_rows']} rows)")
        self.lines.append(f"load daemon: {out['cpu_s']} CPU s for {int(total)} rows = {out['cpu_ms_per_row']} ms "
                          f"per row ({out['cpu_share_of_one_core'] * 100:.0f}% of one core); peak RSS "
                          f"{out['peak_rss_mb']:.0f} MB; load {out['load_avg']}")
        self.report.update(out)

    # -- mode: catch-up from a backlog
    def run_catchup(self) -> None:
        args = self.opts
        assert self.daemon is not None
        k = args.txn_rows
        per_direction = args.changes // 2 // k * k
        self.start_heartbeats(interval=0.2)  # the catch-up time is known to within one heartbeat interval
        self.daemon.stop()
        say(f"catchup: daemon stopped; generating {per_direction} updates per direction in transactions of {k} "
            f"row(s), both sources at once; heartbeats keep ticking; load {self.load()}")
        t0 = time.monotonic()
        errors: list[BaseException] = []

        half = self.table_rows // 2  # each direction updates its own half: no concurrent edits of one row

        def gen(i: int, direction: str, first_seq: int) -> None:
            try:
                src, _ = self.source_target(direction)
                src.burst("update", per_direction, half, 1, first_seq, k, base=i * half)
            except BaseException as exc:
                errors.append(exc)
        threads = [threading.Thread(target=gen, args=(i, d, self.seq + 1 + i * per_direction))
                   for i, d in enumerate(benchrun.DIRECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise BenchError(f"generating the backlog failed: {errors[0]!r}")
        self.seq += 2 * per_direction
        gen_s = time.monotonic() - t0
        say(f"catchup: {2 * per_direction} changes generated in {gen_s:.1f} s; starting the daemon")
        spawned = time.time()
        streaming = self.start_daemon()
        pid = self.daemon.pid
        assert pid is not None
        rss = procstat.RssSeries(lambda: [pid], 1.0).start()
        cpu0 = procstat.cpu_seconds(pid)
        done = self.wait_heartbeats(streaming, CAUGHT_UP_LAG_S, max(600.0, args.changes / 500))
        rss.stop()
        cpu = procstat.cpu_seconds(pid) - cpu0
        n = 2 * per_direction
        for i, d in enumerate(benchrun.DIRECTIONS):  # the heartbeat says so; the rows must agree
            src, dst = self.source_target(d)
            sums = [self.seq_sum(side, i * half, half) for side in (src, dst)]
            if sums[0] != sums[1]:
                raise BenchError(f"catchup {d}: ids {i * half + 1}..{(i + 1) * half} differ after catching up: "
                                 f"sum(seq) {sums[0]} on {src.name}, {sums[1]} on {dst.name}")
        secs = done - streaming
        out = {"changes": n, "txn_rows": k, "generate_s": round(gen_s, 2), "seconds": round(secs, 2),
               "rows_per_s": round(n / secs), "rows_per_s_from_spawn": round(n / (done - spawned)),
               "startup_s": round(streaming - spawned, 2), "cpu_s": round(cpu, 2),
               "cpu_ms_per_row": round(cpu / n * 1000, 4), "peak_rss_mb": benchrun._r(rss.peak, 1),
               "applied": self.applied(), "load_avg": self.load()}
        self.lines.append(f"catchup: {n} changes (transactions of {k} rows, both directions) caught up in "
                          f"{secs:.2f} s from the start of streaming = {out['rows_per_s']:,} rows/s "
                          f"({out['rows_per_s_from_spawn']:,} rows/s counting {out['startup_s']} s of start-up); "
                          f"caught up = a heartbeat arrived under {CAUGHT_UP_LAG_S:.0f} s each way; "
                          f"{out['cpu_ms_per_row']} CPU ms per row; peak RSS {out['peak_rss_mb']} MB")
        self.report.update(out)

    @staticmethod
    def seq_sum(side: benchrun.Side, base: int, nrows: int) -> int:
        conn = side.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT sum(seq) FROM {benchrun.TABLE} WHERE id BETWEEN %s AND %s", (base + 1, base + nrows))
                return int(cur.fetchone()[0] or 0)
        finally:
            conn.close()

    # -- mode: both directions at a steady rate, RSS every second
    def run_flat(self) -> None:
        assert self.daemon is not None
        self.start_daemon()
        pid = self.daemon.pid
        assert pid is not None
        cpu0 = procstat.cpu_seconds(pid)
        rss = procstat.RssSeries(lambda: [pid], 1.0).start()
        t0 = time.monotonic()
        self.both_at_once()  # bench/run.py: the steady writer and poller in each direction at once
        secs = time.monotonic() - t0
        rss.stop()
        cpu = procstat.cpu_seconds(pid) - cpu0
        s = rss.summary()
        steady = [r for r in self.results if r.phase == "steady-both"]
        n = sum(r.rows for r in steady)
        slope = s["slope_second_half_mb_per_min"]
        out = {"changes": n, "rate_each_way": self.opts.rate, "seconds": round(secs, 1), "rss": s,
               "rss_mb_per_million_changes": (round(slope / 60 * secs / n * 1e6, 3)
                                              if slope is not None and n else None),
               "cpu_ms_per_row": round(cpu / n * 1000, 4) if n else None, "load_avg": self.load(),
               "directions": [dict(direction=r.direction, rows=r.rows, rows_per_s=r.rows_per_s, lag_p50_s=r.lag_p50,
                                   lag_p99_s=r.lag_p99, lag_max_s=r.lag_max) for r in steady]}
        for r in steady:
            self.lines.append(f"flat {r.direction}: {r.rows} rows at {r.rows_per_s:,} rows/s written; lag p50 "
                              f"{benchrun._fmt(r.lag_p50)} p99 {benchrun._fmt(r.lag_p99)} max "
                              f"{benchrun._fmt(r.lag_max)} s (target p99 < 1 s)")
        self.lines.append(f"flat RSS: first {s['first_mb']} MB, last {s['last_mb']} MB, peak {s['peak_mb']} MB "
                          f"(target < 150 MB and flat); slope over the second half {slope} MB/min = "
                          f"{out['rss_mb_per_million_changes']} MB per million changes (whole run "
                          f"{s['slope_mb_per_min']} MB/min; {s['samples']} samples, {n} changes in {secs:.0f} s)")
        self.report.update(out)

    def stop(self) -> None:
        for hb in self.heartbeats.values():
            hb.stop()
        for proc in self.clients:  # ours: sysbench / pgbench started above
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        super().stop()


def install() -> None:
    if shutil.which("sysbench"):
        say(f"sysbench present: {subprocess.run(['sysbench', '--version'], capture_output=True, text=True).stdout.strip()}")
        return
    say("installing sysbench (apt-get install -y sysbench)")
    r = subprocess.run(["apt-get", "install", "-y", "sysbench"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"apt-get install sysbench failed:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mode", choices=("load", "catchup", "flat"), default="load")
    p.add_argument("--install", action="store_true", help="apt-get install sysbench first if it is missing")
    p.add_argument("--seconds", type=float, default=120, help="load: seconds the clients run")
    p.add_argument("--my-tps", type=int, default=250,
                   help="load: sysbench transactions/s on MariaDB (4 row changes each: 1,000 rows/s)")
    p.add_argument("--pg-tps", type=int, default=280,
                   help="load: pgbench transactions/s on PostgreSQL (4 row changes each: 1,120 rows/s)")
    p.add_argument("--load-rows", type=int, default=10_000, help="load: rows in sbtest1 and pgb_item")
    p.add_argument("--changes", type=int, default=2_000_000,
                   help="catchup: changes accumulated (half each way); flat: changes written in all")
    p.add_argument("--txn-rows", type=int, default=100,
                   help="catchup: rows per backlog transaction; flat: rows per steady transaction")
    p.add_argument("--rate", type=int, default=5000, help="flat: rows/s written each way")
    p.add_argument("--table-rows", type=int, default=10_000, help="rows of bench_item on both sides")
    p.add_argument("--json", action="store_true", help="JSON on stdout; progress and the lines on stderr")
    args = p.parse_args(argv)
    if args.mode == "load" and shutil.which("pgbench") is None:
        p.error("load needs pgbench (PostgreSQL's client package) on PATH")
    if args.mode == "load" and shutil.which("sysbench") is None and not args.install:
        p.error("load needs sysbench: run with --install (apt-get install -y sysbench)")
    if args.table_rows % (2 * args.txn_rows):
        p.error("--table-rows must be a multiple of 2 x --txn-rows (catchup: each direction updates its half)")
    return args


def run_args(args: argparse.Namespace) -> argparse.Namespace:
    """bench/run.py's options for the pieces reused from it."""
    seconds = args.changes / 2 / args.rate if args.mode == "flat" else 0
    return benchrun.parse_args(["--rows", "1", "--table-rows", str(args.table_rows), "--txn-rows",
                                str(args.txn_rows), "--rate", str(args.rate), "--seconds", str(seconds),
                                "--no-decode", "--no-upsert-baseline"])


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    missing = missing_binaries()
    if missing:
        print(f"bench: missing server binaries: {', '.join(missing)} (scripts/test installs them)", file=sys.stderr)
        return 2
    if args.install:
        try:
            install()
        except (BenchError, OSError) as exc:
            say(f"--install: {exc}")
            return 1

    bench: list[TwoWayBench] = []  # made inside the guarded run, once its directory exists

    def body(workdir: Path) -> None:
        bench.append(TwoWayBench(args, workdir))
        bench[0].start_servers()
        bench[0].setup()
        {"load": bench[0].run_load, "catchup": bench[0].run_catchup, "flat": bench[0].run_flat}[args.mode]()

    def report() -> None:
        if not bench:
            return
        print("\n".join(bench[0].lines), file=sys.stderr if args.json else sys.stdout)
        if args.json:
            json.dump({"code": benchrun.git_state(), "machine": {"cpus": os.cpu_count(),
                                                                  "platform": platform.platform()},
                       "params": vars(args), **bench[0].report}, sys.stdout, indent=2, default=str)
            print()

    def stop() -> None:
        if bench:
            bench[0].stop()
    return lifecycle.run_guarded("replicator-twoway-", body, report, stop)


if __name__ == "__main__":
    sys.exit(main())
