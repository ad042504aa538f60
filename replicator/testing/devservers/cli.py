"""``python -m replicator.testing.devservers``: both servers until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from replicator.testing.devservers.mariadb import MariaDBServer
from replicator.testing.devservers.postgres import PostgresServer
from replicator.testing.devservers.processes import ServerError


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
