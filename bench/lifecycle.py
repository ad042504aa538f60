"""The life of one benchmark script run: a temporary directory, signals turned into a clean stop, and the report
and cleanup that always happen (bench/peers.py, bench/twoway.py).

Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread (also when the script was started with
`&`, which leaves SIGINT ignored) and set run.STOP for background threads; exit code 130. A BenchError ends the
run with exit code 1. Either way `report` runs, then `stop` (servers, daemon, tools) with the signals ignored, so
that a second Ctrl-C cannot skip the cleanup, and the directory is removed."""
from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable

import run as benchrun
from run import BenchError, say


def _on_term(_signum: int, _frame: Any) -> None:
    benchrun.STOP.set()
    raise KeyboardInterrupt


def run_guarded(prefix: str, body: Callable[[Path], None], report: Callable[[], None],
                stop: Callable[[], None]) -> int:
    """body(workdir) in a fresh temporary directory; returns the exit code (0, 1 or 130)."""
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    rc = 0
    try:
        body(workdir)
    except KeyboardInterrupt:
        benchrun.STOP.set()
        say("interrupted: cleaning up")
        rc = 130
    except BenchError as exc:
        say(f"error: {exc}")
        rc = 1
    finally:
        benchrun.STOP.set()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            report()
        finally:
            stop()
            shutil.rmtree(workdir, ignore_errors=True)
    return rc


def die_with_us() -> list[str]:
    """Command prefix that kills a child when this process dies, even by SIGKILL (util-linux setpriv)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
