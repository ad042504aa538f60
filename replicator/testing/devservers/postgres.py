"""PostgreSQL 15 as a throwaway dev server."""
from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from replicator.testing.devservers.processes import HOST, ServerError, _run, postgres_bindir
from replicator.testing.devservers.server import Database, Settings, SettingValue, _Server


PG_USER = "postgres"  # superuser name, and the OS user PostgreSQL runs as when we are root


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
                 start_timeout: float = 60.0, env: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(base_dir, settings, password=password, fast=fast, port=port,
                         start_timeout=start_timeout, env=env)
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
            # again on every start, not only at initdb: a pytest session started meanwhile on this machine
            # resets /tmp/pytest-of-<user> to 0700, and a restart then failed with "Permission denied"
            _grant_traverse(self.base_dir, self._os_user)
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
