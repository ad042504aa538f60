"""The daemon's configuration file: two connections, the mapping directory, batching, metrics.

Validated once at start; every error names file, line and key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from replicator.errors import ConfigError
from replicator.yamlfile import Section, load_file

KINDS = ("postgresql", "mariadb")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


@dataclass(frozen=True)
class Secret:
    """A password kept out of repr, logs and tracebacks."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"


@dataclass(frozen=True)
class Account:
    user: str
    password: Secret


@dataclass(frozen=True)
class Timeouts:
    """How long one statement, one row lock and one silent socket may hold a session (`timeouts:`).

    A lock or statement timeout is retried with back-off; a network timeout drops the connection,
    which is reconnected. The network timeout is longer than the statement timeout so that a slow
    statement is cancelled by the server (and named) before the client gives up on the socket."""

    lock_seconds: float = 10.0  # PostgreSQL lock_timeout, MariaDB innodb_lock_wait_timeout (apply sessions)
    statement_seconds: float = 60.0  # PostgreSQL statement_timeout, MariaDB max_statement_time (apply sessions)
    network_seconds: float = 75.0  # socket read/write (PyMySQL), tcp_user_timeout (libpq), silent WAL stream
    connect_seconds: float = 10.0  # establishing a connection


@dataclass(frozen=True)
class Connection:
    name: str  # the side's name as used in mappings, e.g. "crm"
    kind: str  # postgresql | mariadb
    host: str
    port: int
    database: str
    apply: Account  # writes mapped rows and the replicator's own tables
    capture: Account  # reads the WAL / binlog
    state_schema: str = "replicator"
    # PostgreSQL
    slot: str = "replicator"
    publication: str = "replicator"
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    # MariaDB
    server_id: int = 4242  # the binlog reader's id; must differ from every real server's
    ssl_ca: str | None = None
    ssl_verify_identity: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)  # the top-level `timeouts:` section

    def describe(self) -> str:
        """Connection text for logs: never the password."""
        return f"{self.kind}://{self.apply.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Batching:
    max_rows: int = 5000  # rows per target transaction
    max_ms: int = 200  # how long a batch may wait to fill
    chunk_rows: int = 2000  # a large source transaction is handed over in chunks of this many rows
    queue_rows: int = 5000  # decoded rows buffered between reader and applier (memory bound)


@dataclass(frozen=True)
class Sync:
    """Initial and on-demand copies of existing rows (replicator.sync.driver)."""

    on_first_run: bool = True  # `run` copies each mapping that was never synced
    chunk_rows: int = 5000  # rows read per primary-key chunk
    first_side: str | None = None  # a two-way mapping is copied from this side first (its values win)


@dataclass(frozen=True)
class Verify:
    """Comparisons of both sides through the mappings (replicator.verify.command)."""

    every_seconds: float = 0.0  # the daemon verifies every mapping this often; 0: never
    chunk_rows: int = 5000  # rows compared per key range
    recheck_seconds: float = 5.0  # how long a differing row may take to converge before it is reported


@dataclass(frozen=True)
class Ha:
    """Active/standby (stream/lease.py, docs/operations.md): a standby takes a direction over when the
    active one's lease is older than this. Longer than the longest batch: an active instance renews its
    lease at every commit and, when idle, every third of it."""

    takeover_seconds: float = 15.0


ON_ERROR = ("stop", "quarantine")  # `on_error:` in the configuration and in a mapping


@dataclass(frozen=True)
class Conflicts:
    """Conflict records and their housekeeping (replicator.conflicts, docs/conflicts.md)."""

    retention_days: float = 30.0  # decided conflict records older than this are deleted; pending ones stay
    housekeeping_seconds: float = 300.0  # the daemon trims and refreshes the pending gauges this often; 0: never


@dataclass(frozen=True)
class Config:
    file: Path
    connections: tuple[Connection, Connection]
    mappings_dir: Path
    batching: Batching
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9187
    heartbeat_seconds: float = 30.0
    reconnect_initial_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0
    sync: Sync = field(default_factory=Sync)
    verify: Verify = field(default_factory=Verify)
    conflicts: Conflicts = field(default_factory=Conflicts)
    # what a row the target rejects does: `stop` the direction, or `quarantine` it in
    # <state_schema>.dead_letter and go on (a mapping's own `on_error` overrides this; docs/operations.md)
    on_error: str = "stop"
    ha: Ha = field(default_factory=Ha)

    def side(self, name: str) -> Connection:
        for conn in self.connections:
            if conn.name == name:
                return conn
        raise KeyError(name)


def load(path: str | Path) -> Config:
    path = Path(path)
    root = Section(load_file(path), "", str(path))
    conns = root.section("connections", required=True)
    connections = tuple(_connection(name, conns, path) for name, _ in list(conns.items()))
    if len(connections) != 2:
        raise ConfigError(
            f"exactly two connections are needed, found {len(connections)}", conns.where()
        )
    mappings = Path(root.get("mappings", str, "mappings"))
    if not mappings.is_absolute():
        mappings = (path.parent / mappings).resolve()
    b = root.section("batch")
    batching = Batching(
        max_rows=_positive(b, "max_rows", Batching.max_rows),
        max_ms=_positive(b, "max_ms", Batching.max_ms),
        chunk_rows=_positive(b, "chunk_rows", Batching.chunk_rows),
        queue_rows=_positive(b, "queue_rows", Batching.queue_rows),
    )
    b.done()
    m = root.section("metrics")
    address = m.get("address", str, "127.0.0.1")
    port = m.get("port", int, 9187)
    if not 0 <= port < 65536:
        raise ConfigError("port must be between 0 and 65535", m.where("port"))
    m.done()
    r = root.section("reconnect")
    initial = r.get("initial_seconds", float, 0.5)
    maximum = r.get("max_seconds", float, 30.0)
    if initial <= 0:
        raise ConfigError("must be more than 0", r.where("initial_seconds"))
    if maximum < initial:
        raise ConfigError("must be at least reconnect.initial_seconds", r.where("max_seconds"))
    r.done()
    heartbeat = root.get("heartbeat_seconds", float, 30.0)
    if heartbeat <= 0:
        raise ConfigError("must be more than 0", root.where("heartbeat_seconds"))
    a, b2 = connections
    if a.name == b2.name:
        raise ConfigError("the two connections need different names", conns.where())
    _one_server(a, b2, conns)
    sy = root.section("sync")
    sync = Sync(
        on_first_run=sy.get("on_first_run", bool, True),
        chunk_rows=_positive(sy, "chunk_rows", Sync.chunk_rows),
        first_side=sy.get("first_side", str, None, choices=(a.name, b2.name)),
    )
    sy.done()
    v = root.section("verify")
    every = v.get("every_seconds", float, 0.0)
    recheck = v.get("recheck_seconds", float, 5.0)
    if every < 0:
        raise ConfigError("must be 0 (never) or more", v.where("every_seconds"))
    if recheck < 0:
        raise ConfigError("must be 0 or more", v.where("recheck_seconds"))
    verify = Verify(every_seconds=float(every), chunk_rows=_positive(v, "chunk_rows", Verify.chunk_rows),
                    recheck_seconds=float(recheck))
    v.done()
    timeouts = _timeouts(root.section("timeouts"))
    a, b2 = replace(a, timeouts=timeouts), replace(b2, timeouts=timeouts)
    c = root.section("conflicts")
    retention = c.get("retention_days", float, Conflicts.retention_days)
    housekeeping = c.get("housekeeping_seconds", float, Conflicts.housekeeping_seconds)
    if retention <= 0:
        raise ConfigError("must be more than 0 (days)", c.where("retention_days"))
    if housekeeping < 0:
        raise ConfigError("must be 0 (never) or more", c.where("housekeeping_seconds"))
    conflicts = Conflicts(retention_days=float(retention), housekeeping_seconds=float(housekeeping))
    c.done()
    on_error = root.get("on_error", str, "stop", choices=ON_ERROR)
    h = root.section("ha")
    takeover = h.get("takeover_seconds", float, Ha.takeover_seconds)
    if takeover < 1:
        raise ConfigError("must be at least 1 (seconds)", h.where("takeover_seconds"))
    h.done()
    root.done()
    return Config(
        file=path,
        connections=(a, b2),
        mappings_dir=mappings,
        batching=batching,
        metrics_address=address,
        metrics_port=port,
        heartbeat_seconds=heartbeat,
        reconnect_initial_seconds=initial,
        reconnect_max_seconds=maximum,
        sync=sync,
        verify=verify,
        conflicts=conflicts,
        on_error=on_error,
        ha=Ha(float(takeover)),
    )


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")


def _same_server(a: Connection, b: Connection) -> bool:
    def host(c: Connection) -> str:
        return "localhost" if c.host.lower() in _LOCAL_HOSTS else c.host.lower()
    return a.kind == b.kind and a.port == b.port and host(a) == host(b)


def _one_server(a: Connection, b: Connection, conns: Section) -> None:
    """Both databases on one server (a CRM and an ERP in two databases of one PostgreSQL or one MariaDB, a test
    copy next to production) share what is server-wide: a PostgreSQL slot belongs to one database, a MariaDB
    server drops a binlog reader when another connects with its server_id, and a MariaDB `state_schema` is a
    database of the server, which both sides' checkpoints, crosswalks, conflicts and queues would share. With
    the defaults, `setup` reported the other database's slot as this one's and both binlog readers took turns
    disconnecting each other: refused here, naming the setting to give one of them."""
    if not _same_server(a, b):
        return
    where = conns.where(b.name)
    server = f"connections {a.name} and {b.name} are two databases of one {a.kind} server ({b.host}:{b.port})"
    if a.kind == "postgresql" and a.slot == b.slot:
        raise ConfigError(f"{server} and both use replication slot {a.slot!r}: a slot belongs to one database",
                          where, hint=f"give {b.name} its own `slot:` (e.g. slot: {b.slot}_{b.name})")
    if a.kind == "mariadb" and a.server_id == b.server_id:
        raise ConfigError(f"{server} and both read its binlog as server_id {a.server_id}: the server disconnects "
                          f"a reader when another connects with the same id", where,
                          hint=f"give {b.name} its own `server_id:` (e.g. server_id: {a.server_id + 1})")
    if a.kind == "mariadb" and a.state_schema == b.state_schema:
        raise ConfigError(f"{server} and both keep replicator's tables in database {a.state_schema!r}: each side "
                          f"needs its own", where,
                          hint=f"give {b.name} its own `state_schema:` (e.g. state_schema: {a.state_schema}_{b.name})")


def _timeouts(s: Section) -> Timeouts:
    def seconds(key: str, default: float) -> float:
        value = s.get(key, float, default)
        if value <= 0:
            raise ConfigError("must be more than 0 seconds", s.where(key))
        return float(value)
    t = Timeouts(lock_seconds=seconds("lock_seconds", Timeouts.lock_seconds),
                 statement_seconds=seconds("statement_seconds", Timeouts.statement_seconds),
                 network_seconds=seconds("network_seconds", Timeouts.network_seconds),
                 connect_seconds=seconds("connect_seconds", Timeouts.connect_seconds))
    if t.lock_seconds > t.statement_seconds:
        raise ConfigError("must not be more than timeouts.statement_seconds", s.where("lock_seconds"))
    if t.network_seconds <= t.statement_seconds:
        raise ConfigError("must be more than timeouts.statement_seconds (the server cancels a slow statement "
                          "first, and says which)", s.where("network_seconds"))
    s.done()
    return t


def _positive(s: Section, key: str, default: int) -> int:
    value: int = s.get(key, int, default)
    if value <= 0:
        raise ConfigError("must be a positive integer", s.where(key))
    return value


def _connection(name: str, parent: Section, path: Path) -> Connection:
    if not _NAME.match(name):
        raise ConfigError(
            "connection names are lower-case letters, digits and _ (they name the sides in mappings)",
            parent.where(name),
        )
    s = parent.section(name)
    kind = s.get("kind", str, choices=KINDS)
    default_port = 5432 if kind == "postgresql" else 3306
    apply = _account(s, "", path)
    capture = _account(s, "capture_", path) if s.has("capture_user") else apply
    extra: dict[str, Any] = {}
    if kind == "postgresql":
        extra["slot"] = s.get("slot", str, "replicator")
        extra["publication"] = s.get("publication", str, "replicator")
        extra["sslmode"] = s.get(
            "sslmode", str, "prefer",
            choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
        )
        extra["sslrootcert"] = s.get("sslrootcert", str, None)
    else:
        extra["server_id"] = s.get("server_id", int, 4242)
        if not 1 <= extra["server_id"] < 2**32:
            raise ConfigError("server_id must be between 1 and 4294967295", s.where("server_id"))
        extra["ssl_ca"] = s.get("ssl_ca", str, None)
        extra["ssl_verify_identity"] = s.get("ssl_verify_identity", bool, False)
    conn = Connection(
        name=name,
        kind=kind,
        host=s.get("host", str, "127.0.0.1"),
        port=s.get("port", int, default_port),
        database=s.get("database", str),
        apply=apply,
        capture=capture,
        state_schema=s.get("state_schema", str, "replicator"),
        **extra,
    )
    if not 1 <= conn.port <= 65535:
        raise ConfigError("port must be between 1 and 65535", s.where("port"))
    s.done()
    return conn


def _account(s: Section, prefix: str, path: Path) -> Account:
    user = s.get(f"{prefix}user", str)
    sources = [k for k in ("password_file", "password_env", "password_credential") if s.has(prefix + k)]
    if s.has(prefix + "password"):
        raise ConfigError(
            "passwords are not written in the configuration file",
            s.where(prefix + "password"),
            hint=f"use {prefix}password_file, {prefix}password_env or {prefix}password_credential",
        )
    if len(sources) > 1:
        raise ConfigError("give only one password source", s.where(prefix + sources[1]))
    if not sources:
        return Account(user, Secret(""))
    key = prefix + sources[0]
    ref = s.get(key, str)
    if sources[0] == "password_env":
        if ref not in os.environ:
            raise ConfigError(f"environment variable {ref} is not set", s.where(key))
        return Account(user, Secret(os.environ[ref]))
    if sources[0] == "password_credential":
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not creds:
            raise ConfigError(
                "CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)", s.where(key)
            )
        file = Path(creds) / ref
    else:
        file = Path(ref)
        if not file.is_absolute():
            file = path.parent / file
    try:
        return Account(user, Secret(file.read_text(encoding="utf-8").rstrip("\r\n")))
    except OSError as exc:
        raise ConfigError(f"cannot read password file {file}: {exc.strerror}", s.where(key)) from None
