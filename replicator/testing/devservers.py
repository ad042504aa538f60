"""Throwaway PostgreSQL and MariaDB servers for tests and the demo.

Each server owns a directory, listens on 127.0.0.1 on a free port and is configured for change data capture
(PostgreSQL ``wal_level=logical``; MariaDB ROW binlog with full row image and metadata). Settings can be
overridden, or removed with ``None``, to start deliberately misconfigured servers::

    with MariaDBServer(tmp, settings={"binlog_row_metadata": "MINIMAL"}) as maria:
        conn = maria.connect()

``python -m replicator.testing.devservers --dir D`` starts both servers, prints their connection details as one JSON
line and runs until SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, TypeVar, Union

SettingValue = Union[str, int, float, bool, None]
Settings = Mapping[str, SettingValue]

HOST = "127.0.0.1"
PG_USER = "postgres"  # superuser name, and the OS user PostgreSQL runs as when we are root
MARIA_USER = "root"


class ServerError(RuntimeError):
    """A dev server failed to initialise, start or stop."""


# --- binaries ---------------------------------------------------------------------------------------------


def postgres_bindir() -> Optional[Path]:
    """Directory holding initdb and postgres: $REPLICATOR_PG_BINDIR, PostgreSQL 15 from Debian, or PATH."""
    candidates = [os.environ.get("REPLICATOR_PG_BINDIR"), "/usr/lib/postgresql/15/bin"]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "postgres").is_file():
            return Path(c)
    return None


def _which(name: str) -> Optional[str]:
    # mariadbd lives in /usr/sbin, which is not on a normal user's PATH
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def missing_binaries(server: Optional[str] = None) -> list[str]:
    """Server programs this machine lacks, for ``server`` "postgres", "mariadb" or both (None)."""
    missing = []
    if server in (None, "postgres") and not postgres_bindir():
        missing.append("PostgreSQL (initdb, postgres)")
    if server in (None, "mariadb"):
        missing += [n for n in ("mariadbd", "mariadb-install-db") if not _which(n)]
    return missing


# --- small process helpers ----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _pdeathsig_prefix() -> list[str]:
    # If the Python process dies without stopping its servers (pytest killed by a CI timeout), the kernel
    # kills them too instead of leaving them holding ports and CPU. The signal follows the *thread* that
    # started the server, so start servers from a long-lived thread (the main one).
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def _group_alive(pgid: int) -> bool:
    """True while some non-zombie process is in process group ``pgid`` (zombies hold no resources, and PID 1
    in a container may never reap them)."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_file.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(cannot read {path}: {e})"


def _run(cmd: Sequence[str], log: Path, what: str, **kwargs: Any) -> None:
    with open(log, "ab") as out:
        rc = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            **kwargs).returncode
    if rc != 0:
        raise ServerError(f"{what} failed (exit {rc}); last lines of {log}:\n{_tail(log)}")


def _short_socket_path(directory: Path, name: str) -> Path:
    # sun_path holds 107 bytes; deep pytest temp dirs can exceed it
    path = directory / name
    return path if len(str(path)) < 100 else Path(tempfile.mkdtemp(prefix="rdev-")) / name


# --- connection handle --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """Connection parameters for one database on a dev server, plus ``connect()`` and ``url()``."""

    server: "_Server" = field(repr=False, compare=False)
    dbname: str
    host: str
    port: int
    user: str
    password: str

    def connect(self, **kwargs: Any) -> Any:
        """An autocommit psycopg2 or pymysql connection to this database (kwargs go to the driver)."""
        return self.server.connect(self.dbname, user=self.user, password=self.password, **kwargs)

    def url(self) -> str:
        """SQLAlchemy URL (postgresql+psycopg2:// or mysql+pymysql://)."""
        return self.server.url(self.dbname, user=self.user, password=self.password)


# --- servers ------------------------------------------------------------------------------------------------


_S = TypeVar("_S", bound="_Server")


class _Server:
    kind = ""
    default_user = ""
    log_name = ""
    datadir: Path  # set by subclasses

    def __init__(self, base_dir: Union[str, Path], settings: Optional[Settings] = None, *,
                 password: str, fast: bool = True, port: Optional[int] = None,
                 start_timeout: float = 60.0) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port or free_port()  # kept across restarts so clients can reconnect
        self.user = self.default_user
        self.password = password
        self.fast = fast
        self.start_timeout = start_timeout
        self.overrides: dict[str, SettingValue] = dict(settings or {})
        self.log_path = self.base_dir / self.log_name
        self._proc: Optional[subprocess.Popen[bytes]] = None

    # subclass hooks
    def _initialised(self) -> bool:
        raise NotImplementedError

    def _init(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _wait_ready(self) -> None:
        raise NotImplementedError

    def _stop_signal(self) -> int:
        raise NotImplementedError

    def connect(self, dbname: Optional[str] = None, *, user: Optional[str] = None,
                password: Optional[str] = None, autocommit: bool = True, **kwargs: Any) -> Any:
        raise NotImplementedError

    def url(self, dbname: Optional[str] = None, *, user: Optional[str] = None,
            password: Optional[str] = None) -> str:
        raise NotImplementedError

    def execute(self, sql: Any, params: Any = None, dbname: Optional[str] = None) -> list[tuple[Any, ...]]:
        """Run one statement as the admin user in its own autocommit session; returns the rows."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def default_settings(self) -> dict[str, SettingValue]:
        raise NotImplementedError

    @property
    def settings(self) -> dict[str, SettingValue]:
        """Effective settings: defaults updated with the overrides, ``None`` values removed. Change
        ``overrides`` and ``restart()`` to apply new ones."""
        merged = self.default_settings()
        merged.update(self.overrides)
        return {k: v for k, v in merged.items() if v is not None}

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self.running and self._proc else None

    def params(self) -> dict[str, Any]:
        """Connection details as a JSON-friendly dict."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password,
                "url": self.url(), "datadir": str(self.datadir), "log": str(self.log_path)}

    def start(self: _S) -> _S:
        """Initialise the data directory if needed, start the server and wait until it accepts logins."""
        if self.running:
            return self
        if not self._initialised():
            self._init()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                _pdeathsig_prefix() + self._command(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, **self._popen_kwargs())
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _ready_deadline(self, attempt_error: Optional[BaseException], deadline: float) -> None:
        """Raise if the server died or the deadline passed; otherwise sleep a little before the next try."""
        if self._proc is not None and self._proc.poll() is not None:
            raise ServerError(f"{self.kind} exited with code {self._proc.returncode} during startup; last "
                              f"lines of {self.log_path}:\n{_tail(self.log_path)}")
        if time.monotonic() > deadline:
            raise ServerError(f"{self.kind} on port {self.port} not ready after {self.start_timeout:.0f} s "
                              f"({attempt_error}); last lines of {self.log_path}:\n{_tail(self.log_path)}")
        time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> None:
        """Clean shutdown (PostgreSQL 'fast' mode); falls back to kill() after ``timeout`` seconds."""
        if self._proc is None:
            return
        if self.running:
            self._proc.send_signal(self._stop_signal())
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # reaps the process and anything left in its process group

    def kill(self) -> None:
        """SIGKILL the server and all its processes; the next start() runs crash recovery.

        With ``fast=True`` PostgreSQL runs ``synchronous_commit=off``, so transactions committed in the last
        few hundred milliseconds may be lost; pass ``settings={"synchronous_commit": "on"}`` when a test needs
        every acknowledged commit to survive. (MariaDB's fast settings survive a server crash, not an OS one.)
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        deadline = time.monotonic() + 10
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self: _S) -> _S:
        self.stop()
        return self.start()

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def database(self, dbname: str, *, user: Optional[str] = None, password: Optional[str] = None) -> Database:
        """A handle for an existing database (nothing is created)."""
        return Database(self, dbname, self.host, self.port, user or self.user,
                        self.password if password is None else password)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {self.datadir} {state}>"


def _pg_conf_value(value: SettingValue) -> str:
    if isinstance(value, bool):
        value = "on" if value else "off"
    return "'" + str(value).replace("'", "''") + "'"


class PostgresServer(_Server):
    """PostgreSQL 15 for tests: superuser ``postgres`` with a password (SCRAM over TCP), logical decoding on,
    replication connections allowed from 127.0.0.1."""

    kind = "PostgreSQL"
    default_user = PG_USER
    log_name = "postgres.log"

    def __init__(self, base_dir: Union[str, Path], settings: Optional[Settings] = None, *,
                 password: str = "postgres", fast: bool = True, port: Optional[int] = None,
                 start_timeout: float = 60.0) -> None:
        super().__init__(base_dir, settings, password=password, fast=fast, port=port,
                         start_timeout=start_timeout)
        bindir = postgres_bindir()
        if bindir is None:
            raise ServerError("PostgreSQL binaries not found (set REPLICATOR_PG_BINDIR)")
        self.bindir = bindir
        self.datadir = self.base_dir / "pgdata"
        # PostgreSQL refuses to run as root: run it as the postgres system user instead
        self._os_user: Optional[pwd.struct_passwd] = _postgres_os_user() if os.geteuid() == 0 else None

    def default_settings(self) -> dict[str, SettingValue]:
        s: dict[str, SettingValue] = {
            "listen_addresses": HOST,
            "port": self.port,
            "unix_socket_directories": "",  # TCP only: no socket path length or permission trouble
            "wal_level": "logical",
            "max_replication_slots": 10,
            "max_wal_senders": 10,
            "timezone": "UTC",
            "log_timezone": "UTC",
            "password_encryption": "scram-sha-256",
        }
        if self.fast:
            s.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        return s

    def _popen_kwargs(self) -> dict[str, Any]:
        if self._os_user is None:
            return {}
        u = self._os_user
        env = dict(os.environ, HOME=u.pw_dir, USER=u.pw_name, LOGNAME=u.pw_name)
        return {"user": u.pw_uid, "group": u.pw_gid, "extra_groups": [], "env": env, "cwd": str(self.datadir)}

    def _initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").is_file()

    def _init(self) -> None:
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        fd, pwfile = tempfile.mkstemp(dir=self.base_dir, prefix=".pw-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.password + "\n")
            if self._os_user is not None:
                _grant_traverse(self.base_dir, self._os_user)
                for p in (self.datadir, Path(pwfile)):
                    os.chown(p, self._os_user.pw_uid, self._os_user.pw_gid)
            _run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", PG_USER, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale",
                  "--no-sync"],
                 self.log_path, "initdb", **self._popen_kwargs())
        finally:
            os.unlink(pwfile)
        (self.datadir / "pg_hba.conf").write_text(
            "# written by replicator.testing.devservers\n"
            "local all         all                trust\n"
            "host  all         all  127.0.0.1/32  scram-sha-256\n"
            "host  replication all  127.0.0.1/32  scram-sha-256\n")
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\ninclude 'devservers.conf'\n")
        if self._os_user is not None:
            os.chown(self.datadir / "pg_hba.conf", self._os_user.pw_uid, self._os_user.pw_gid)

    def _command(self) -> list[str]:
        # Settings are rewritten on every start so that changed overrides apply after restart(). A file (not
        # -c flags) keeps ALTER SYSTEM working for tests that want it.
        conf = self.datadir / "devservers.conf"
        conf.write_text("".join(f"{k} = {_pg_conf_value(v)}\n" for k, v in self.settings.items()))
        if self._os_user is not None:
            os.chown(conf, self._os_user.pw_uid, self._os_user.pw_gid)
        return [str(self.bindir / "postgres"), "-D", str(self.datadir)]

    def _stop_signal(self) -> int:
        return signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit

    def _wait_ready(self) -> None:
        import psycopg2

        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                self.connect(connect_timeout=2).close()
                return
            except psycopg2.OperationalError as e:
                self._ready_deadline(e, deadline)

    def connect(self, dbname: Optional[str] = None, *, user: Optional[str] = None,
                password: Optional[str] = None, autocommit: bool = True, **kwargs: Any) -> Any:
        """psycopg2 connection (autocommit by default); pass connection_factory for replication."""
        import psycopg2
        import psycopg2.extras

        conn = psycopg2.connect(host=self.host, port=self.port, dbname=dbname or "postgres",
                                user=user or self.user, password=self.password if password is None else password,
                                **kwargs)
        replication = (psycopg2.extras.LogicalReplicationConnection, psycopg2.extras.PhysicalReplicationConnection)
        # replication connections are always autocommit and reject the attribute
        if autocommit and not isinstance(conn, replication):
            conn.autocommit = True
        return conn

    def url(self, dbname: Optional[str] = None, *, user: Optional[str] = None,
            password: Optional[str] = None) -> str:
        from urllib.parse import quote

        pw = self.password if password is None else password
        return (f"postgresql+psycopg2://{quote(user or self.user, safe='')}:{quote(pw, safe='')}"
                f"@{self.host}:{self.port}/{dbname or 'postgres'}")

    def create_database(self, dbname: str, owner: Optional[str] = None) -> Database:
        from psycopg2 import sql

        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
        if owner:
            stmt += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        self.execute(stmt)
        return self.database(dbname)

    def drop_database(self, dbname: str) -> None:
        """Drop a database even if sessions or logical replication slots still use it."""
        from psycopg2 import sql

        slots = "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s"
        for _ in range(50):  # a terminated walsender can take a moment to release its slot
            rows = self.execute(slots, (dbname,))
            if not rows:
                break
            for name, pid in rows:
                if pid:
                    self.execute("SELECT pg_terminate_backend(%s)", (pid,))
                else:
                    self.execute("SELECT pg_drop_replication_slot(%s)", (name,))
            time.sleep(0.05)
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))

    def create_user(self, name: str, password: str, *, superuser: bool = False, replication: bool = False,
                    createdb: bool = False) -> None:
        from psycopg2 import sql

        attrs = ["LOGIN"] + [a for a, on in (("SUPERUSER", superuser), ("REPLICATION", replication),
                                             ("CREATEDB", createdb)) if on]
        self.execute(sql.SQL("CREATE ROLE {} " + " ".join(attrs) + " PASSWORD %s").format(sql.Identifier(name)),
                     (password,))


def _postgres_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/postgresql",
                        "--shell", "/bin/bash", PG_USER], check=True)
        return pwd.getpwnam(PG_USER)


def _grant_traverse(path: Path, user: pwd.struct_passwd) -> None:
    """Let ``user`` reach ``path`` by adding o+x (search, not read) to ancestors it cannot search, e.g.
    pytest's 0700 /tmp/pytest-of-root."""
    for d in [path, *path.parents]:
        st = d.stat()
        if st.st_uid == user.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == user.pw_gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _maria_option(key: str, value: SettingValue) -> str:
    if isinstance(value, bool):
        value = "ON" if value else "OFF"
    return f"--{key}={value}"


class MariaDBServer(_Server):
    """MariaDB 10.11 for tests: ``root`` with a password over TCP, ROW binlog with FULL image and metadata."""

    kind = "MariaDB"
    default_user = MARIA_USER
    log_name = "mariadb.err"

    def __init__(self, base_dir: Union[str, Path], settings: Optional[Settings] = None, *,
                 password: str = "root", fast: bool = True, port: Optional[int] = None,
                 start_timeout: float = 60.0) -> None:
        super().__init__(base_dir, settings, password=password, fast=fast, port=port,
                         start_timeout=start_timeout)
        mariadbd, install_db = _which("mariadbd"), _which("mariadb-install-db")
        if not mariadbd or not install_db:
            raise ServerError("MariaDB binaries not found (mariadbd, mariadb-install-db)")
        self.mariadbd, self.install_db = mariadbd, install_db
        self.datadir = self.base_dir / "mariadb-data"
        self.socket = _short_socket_path(self.base_dir, "mariadb.sock")
        self._root_password_set = self._initialised()

    def default_settings(self) -> dict[str, SettingValue]:
        s: dict[str, SettingValue] = {
            "datadir": str(self.datadir),
            "socket": str(self.socket),
            "pid_file": str(self.base_dir / "mariadb.pid"),
            "log_error": str(self.log_path),
            "port": self.port,
            "bind_address": HOST,
            "skip_name_resolve": True,
            "server_id": 101,
            "log_bin": str(self.datadir / "mariadb-bin"),
            "binlog_format": "ROW",
            "binlog_row_image": "FULL",
            "binlog_row_metadata": "FULL",
            "gtid_domain_id": 1,
            "character_set_server": "utf8mb4",
            "collation_server": "utf8mb4_unicode_ci",
            "default_time_zone": "+00:00",
            # internal temporary tables in a private directory: something may clean /tmp under a long run
            "tmpdir": str(self._tmpdir()),
        }
        if os.geteuid() == 0:
            s["user"] = "root"
        if self.fast:
            s.update(innodb_flush_log_at_trx_commit=2, sync_binlog=0)
        return s

    def _tmpdir(self) -> Path:
        tmp = self.base_dir / "tmp"
        tmp.mkdir(mode=0o700, exist_ok=True)
        return tmp

    def _initialised(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    def _init(self) -> None:
        cmd = [self.install_db, "--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db",
               "--skip-name-resolve", f"--datadir={self.datadir}"]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        _run(cmd, self.base_dir / "mariadb-install-db.log", "mariadb-install-db")
        self._root_password_set = False

    def _command(self) -> list[str]:
        # --no-defaults must come first; it keeps /etc/mysql/*.cnf of the host out of the test server
        return [self.mariadbd, "--no-defaults"] + [_maria_option(k, v) for k, v in self.settings.items()]

    def _stop_signal(self) -> int:
        return signal.SIGTERM  # clean shutdown

    def _wait_ready(self) -> None:
        import pymysql

        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if self._root_password_set:
                    self.connect(connect_timeout=2).close()
                    return
                # fresh data directory: root has no password yet and only the socket is trusted
                conn = pymysql.connect(unix_socket=str(self.socket), user="root", password="", autocommit=True,
                                       connect_timeout=2)
                break
            except pymysql.err.OperationalError as e:
                self._ready_deadline(e, deadline)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT host FROM mysql.user WHERE user = 'root'")
                for (host,) in cur.fetchall():
                    if host in ("localhost", "127.0.0.1", "::1"):
                        cur.execute("ALTER USER 'root'@%s IDENTIFIED BY %s", (host, self.password))
                    else:  # root@<hostname>: unusable with skip-name-resolve, and warns at every start
                        cur.execute("DROP USER 'root'@%s", (host,))
        finally:
            conn.close()
        self._root_password_set = True
        self.connect().close()

    def connect(self, dbname: Optional[str] = None, *, user: Optional[str] = None,
                password: Optional[str] = None, autocommit: bool = True, **kwargs: Any) -> Any:
        """pymysql connection over TCP (autocommit by default, utf8mb4)."""
        import pymysql

        kwargs.setdefault("charset", "utf8mb4")
        return pymysql.connect(host=self.host, port=self.port, user=user or self.user,
                               password=self.password if password is None else password, database=dbname,
                               autocommit=autocommit, **kwargs)

    def url(self, dbname: Optional[str] = None, *, user: Optional[str] = None,
            password: Optional[str] = None) -> str:
        from urllib.parse import quote

        pw = self.password if password is None else password
        return (f"mysql+pymysql://{quote(user or self.user, safe='')}:{quote(pw, safe='')}"
                f"@{self.host}:{self.port}/{dbname or ''}?charset=utf8mb4")

    def create_database(self, dbname: str) -> Database:
        self.execute(f"CREATE DATABASE {_maria_ident(dbname)}")
        return self.database(dbname)

    def drop_database(self, dbname: str) -> None:
        """Drop a database, first killing sessions that use it (their locks would block the drop)."""
        import pymysql

        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                            (dbname,))
                for (session_id,) in cur.fetchall():
                    try:
                        cur.execute("KILL %s", (session_id,))
                    except pymysql.MySQLError:  # already gone
                        pass
                cur.execute(f"DROP DATABASE IF EXISTS {_maria_ident(dbname)}")
        finally:
            conn.close()

    def create_user(self, name: str, password: str, grants: Sequence[str] = ()) -> None:
        """Create ``name``@'%' and grant e.g. ``"REPLICATION SLAVE, BINLOG MONITOR ON *.*"`` or
        ``"ALL PRIVILEGES ON `db`.*"``."""
        self.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))
        for grant in grants:
            self.execute(f"GRANT {grant} TO %s@'%%'", (name,))


def _maria_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# --- command line -------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m replicator.testing.devservers",
        description="Start throwaway PostgreSQL and MariaDB servers configured for CDC, print their "
                    "connection details as JSON on one line, and run until SIGINT/SIGTERM.")
    parser.add_argument("--dir", type=Path, help="base directory (reused if it holds data; default: a new "
                                                  "temporary directory)")
    parser.add_argument("--pg-port", type=int, default=0, help="PostgreSQL port (default: a free one)")
    parser.add_argument("--maria-port", type=int, default=0, help="MariaDB port (default: a free one)")
    parser.add_argument("--pg-password", default="postgres")
    parser.add_argument("--maria-password", default="root")
    parser.add_argument("--durable", action="store_true", help="keep fsync and durable commits on")
    args = parser.parse_args(argv)

    base = args.dir or Path(tempfile.mkdtemp(prefix="replicator-dev-"))
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    pg = PostgresServer(base / "postgres", password=args.pg_password, port=args.pg_port or None,
                        fast=not args.durable)
    maria = MariaDBServer(base / "mariadb", password=args.maria_password, port=args.maria_port or None,
                          fast=not args.durable)
    try:
        pg.start()
        maria.start()
        print(json.dumps({"postgres": pg.params(), "mariadb": maria.params()}), flush=True)
        while not stopping:
            for server in (pg, maria):
                if not server.running:
                    print(f"{server.kind} exited unexpectedly; see {server.log_path}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    except ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for server in (maria, pg):
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
