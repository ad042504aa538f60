"""MariaDB 10.11 as a throwaway dev server."""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from replicator.identifiers import my_ident
from replicator.testing.devservers.processes import HOST, ServerError, _run, _short_socket_path, _which
from replicator.testing.devservers.server import Database, Settings, SettingValue, _Server


MARIA_USER = "root"


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
                 start_timeout: float = 60.0, env: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(base_dir, settings, password=password, fast=fast, port=port,
                         start_timeout=start_timeout, env=env)
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
        log = self.base_dir / "mariadb-install-db.log"
        try:
            _run(cmd, log, "mariadb-install-db")
        except ServerError as first:
            # Once in a CI run (2,129 tests, two suites on 2 cores) the bootstrap failed with only MariaDB's
            # generic "Installation of system tables failed!" in the log's tail, and passed when run again:
            # a new, empty data directory is given one more try, and a second failure names the server's
            # own error lines of both attempts (the log is appended to, not replaced)
            shutil.rmtree(self.datadir, ignore_errors=True)
            try:
                _run(cmd, log, "mariadb-install-db (second attempt)")
            except ServerError as second:
                raise ServerError(f"{second}\nthe server's error lines of both attempts:\n{_error_lines(log)}") \
                    from first
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
        self.execute(f"CREATE DATABASE {my_ident(dbname)}")
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
                cur.execute(f"DROP DATABASE IF EXISTS {my_ident(dbname)}")
        finally:
            conn.close()

    def create_user(self, name: str, password: str, grants: Sequence[str] = ()) -> None:
        """Create ``name``@'%' and grant e.g. ``"REPLICATION SLAVE, BINLOG MONITOR ON *.*"`` or
        ``"ALL PRIVILEGES ON `db`.*"``."""
        self.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))
        for grant in grants:
            self.execute(f"GRANT {grant} TO %s@'%%'", (name,))


def _error_lines(log: Path, most: int = 20) -> str:
    """The lines of a MariaDB log that carry an error ([ERROR], ERROR nnnn), the first `most` of them."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(cannot read {log}: {e})"
    found = [line for line in lines if "[ERROR]" in line or line.startswith("ERROR")]
    return "\n".join(found[:most]) or "(none: see the log)"
