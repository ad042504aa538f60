"""A dev server's lifecycle (init, start, stop, kill, restart) and the handle of one of its databases."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, TypeVar, Union

from replicator.testing.devservers.processes import (HOST, ServerError, _group_alive, _pdeathsig_prefix, _tail,
                                                 free_port)


SettingValue = Union[str, int, float, bool, None]
Settings = Mapping[str, SettingValue]


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
                 start_timeout: float = 60.0, env: Optional[Mapping[str, str]] = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port or free_port()  # kept across restarts so clients can reconnect
        self.user = self.default_user
        self.password = password
        self.fast = fast
        self.start_timeout = start_timeout
        self.overrides: dict[str, SettingValue] = dict(settings or {})
        # extra environment for the server process only (not initdb / install-db), e.g. faketime_env()
        # to run it with a shifted clock; kept across restarts
        self.extra_env: dict[str, str] = dict(env or {})
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
        kwargs = self._popen_kwargs()
        if self.extra_env:
            kwargs["env"] = {**kwargs.get("env", os.environ), **self.extra_env}
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                _pdeathsig_prefix() + self._command(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
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
