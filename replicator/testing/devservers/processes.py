"""The host side of the dev servers: the server programs, free ports, process groups and logs."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence


HOST = "127.0.0.1"


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


# Debian's libfaketime (package faketime); other distributions put it under /usr/lib or /usr/local/lib
_FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1", "/usr/local/lib/faketime/libfaketime.so.1")


def faketime_library() -> Optional[Path]:
    """libfaketime's preload library: $REPLICATOR_FAKETIME_LIB or a known install path; None if missing."""
    for c in (os.environ.get("REPLICATOR_FAKETIME_LIB"),) + _FAKETIME_LIBS:
        if c and Path(c).is_file():
            return Path(c)
    return None


def faketime_env(offset: str) -> dict[str, str]:
    """Environment for a server whose clock runs ``offset`` ("+30s", "-2m": libfaketime's relative syntax)
    away from the host's, for the ``env`` option of a dev server. Raises ServerError without libfaketime."""
    lib = faketime_library()
    if lib is None:
        raise ServerError("libfaketime not found (Debian package faketime; or set REPLICATOR_FAKETIME_LIB)")
    return {"LD_PRELOAD": str(lib), "FAKETIME": offset}


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
