"""Run the real daemon (`python -m replicator`) against two test databases.

`Pair` writes a configuration and mappings for one PostgreSQL database ("crm") and one MariaDB
database ("erp"), runs `replicator setup`, and starts/stops/kills the daemon as a subprocess,
so kill -9 and restarts are the real thing.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from replicator.testing.devservers import Database, free_port

ROOT = Path(__file__).resolve().parents[2]


def checkout_env() -> dict[str, str]:
    """The daemon and commands run from this checkout, whatever `pip install -e` points at."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {last!r})")


class Pair:
    def __init__(self, tmp: Path, pg: Database, maria: Database, mappings: str,
                 extra_config: str = "", crm_user: tuple[str, str] | None = None,
                 names: tuple[str, str] = ("crm", "erp"), maria_first: bool = False):
        """`names` are the connection names of the PostgreSQL and the MariaDB database, in that order;
        `maria_first` writes the MariaDB connection first in replicator.yaml (the first connection wins
        ties). The defaults are the pair every other test builds: PostgreSQL `crm` first, MariaDB `erp`."""
        self.tmp = tmp
        self.pg_name, self.maria_name = names
        self.pg = pg
        self.maria = maria
        self.metrics_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = tmp / "daemon.log"
        (tmp / "mappings").mkdir(exist_ok=True)
        (tmp / "mappings" / "test.yaml").write_text(textwrap.dedent(mappings))
        (tmp / "pg.pw").write_text(pg.password)
        (tmp / "my.pw").write_text(maria.password)
        self.state_schema = f"rs_{maria.dbname}"[:64]
        self.config_path = tmp / "replicator.yaml"
        pg_conn = textwrap.indent(textwrap.dedent(f"""\
              {self.pg_name}:
                kind: postgresql
                host: {pg.host}
                port: {pg.port}
                database: {pg.dbname}
                user: {pg.user}
                password_file: pg.pw
                slot: {pg.dbname}
                publication: replicator
            """), "  ")
        maria_conn = textwrap.indent(textwrap.dedent(f"""\
              {self.maria_name}:
                kind: mariadb
                host: {maria.host}
                port: {maria.port}
                database: {maria.dbname}
                user: {maria.user}
                password_file: my.pw
                state_schema: {self.state_schema}
                server_id: {1000 + free_port() % 50000}
            """), "  ")
        first, second = (maria_conn, pg_conn) if maria_first else (pg_conn, maria_conn)
        self.config_path.write_text("connections:\n" + first + second + textwrap.dedent(f"""\
            mappings: mappings
            metrics: {{port: {self.metrics_port}}}
            reconnect: {{initial_seconds: 0.2, max_seconds: 2}}
            """) + textwrap.dedent(extra_config))

    # ---------------------------------------------------------------- commands
    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "replicator", *args, "--config", str(self.config_path)],
                                capture_output=True, text=True, timeout=timeout, cwd=self.tmp, env=checkout_env())
        if check and result.returncode != 0:
            raise AssertionError(f"replicator {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def setup(self) -> None:
        self.cli("setup")

    def start(self, *extra: str) -> None:
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "replicator", "run", "--config", str(self.config_path), *extra],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp, env=checkout_env())
        log.close()
        wait_until(lambda: self.metrics_text() is not None or self.proc.poll() is not None, 30, "metrics endpoint")
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode} at start:\n{self.log()}")

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"daemon did not stop within {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    # ---------------------------------------------------------------- metrics
    def metrics_text(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels` (0 when absent)."""
        text = self.metrics_text() or ""
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

    # ---------------------------------------------------------------- data
    def pg_query(self, sql: str, params: Any = None) -> list[tuple]:
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def my_query(self, sql: str, params: Any = None) -> list[tuple]:
        conn = self.maria.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.my_query(f"DROP DATABASE IF EXISTS `{self.state_schema}`")


# ---------------------------------------------------------------- mapping reloads


def master_position(db: Database) -> tuple[str, int]:
    """MariaDB's binlog position now (file, offset): where a test's own binlog reader starts or stops."""
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            file, pos = cur.fetchone()[:2]
            return file, int(pos)
    finally:
        conn.close()


def write_mappings(pair: Pair, mappings: str) -> None:
    """Replace the pair's mapping file atomically (what an operator edits before `systemctl reload`)."""
    path = pair.tmp / "mappings" / "test.yaml"
    staged = path.with_name(path.name + ".new")  # not *.yaml: never read half-written
    staged.write_text(textwrap.dedent(mappings))
    os.replace(staged, path)


def reload(pair: Pair) -> None:
    """SIGHUP the running daemon: it validates the mapping files again and swaps them in or keeps the old ones."""
    assert pair.proc is not None and pair.proc.poll() is None, "daemon is not running"
    pair.proc.send_signal(signal.SIGHUP)


# ---------------------------------------------------------------- the walkthrough pages' tests
def page_statements(sql: str) -> list[str]:
    """A page's SQL block as statements (split at ';', comment-only pieces left out)."""
    return [s for s in sql.split(";") if s.strip() and not all(
        not line.strip() or line.strip().startswith("--") for line in s.splitlines())]


def page_cli(pair: Pair, *args: str) -> tuple[int, str]:
    """A command as the page runs it: its exit code and output, never a traceback."""
    result = pair.cli(*args, check=False, timeout=300)
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    return result.returncode, out
