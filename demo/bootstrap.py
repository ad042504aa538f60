"""Helper for scripts/demo: password files, databases and schemas, and the demo configuration.

    python demo/bootstrap.py passwords DATA_DIR
        create DATA_DIR/crm.password and DATA_DIR/erp.password (random, 0600) unless present
    python demo/bootstrap.py configure DATA_DIR SERVERS_JSON
        create the crm and erp databases and load demo/schema/*.sql (idempotent), then write
        DATA_DIR/replicator.yaml from demo/replicator.yaml with the servers' real ports and a
        free metrics port; prints the metrics port

Every step may be repeated: the schema files only create what is missing.
"""
from __future__ import annotations

import json
import re
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "schema"
TEMPLATE = HERE / "replicator.yaml"


def passwords(data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    for side in ("crm", "erp"):
        path = data / f"{side}.password"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(18) + "\n")


def mariadb_statements(text: str) -> list[str]:
    """Statements of a MariaDB script: every statement ends with ';' at the end of a line."""
    out, current = [], []
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if any(line.strip() for line in current):
        out.append("\n".join(current))
    return out


def load_crm(info: dict, password: str) -> None:
    import psycopg2

    params = dict(host=info["host"], port=info["port"], user=info["user"], password=password)
    admin = psycopg2.connect(dbname="postgres", **params)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'crm'")
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE crm")
    finally:
        admin.close()
    db = psycopg2.connect(dbname="crm", **params)
    try:
        with db.cursor() as cur:
            cur.execute((SCHEMA / "crm.sql").read_text())  # one transaction: all or nothing
        db.commit()
    finally:
        db.close()


def load_erp(info: dict, password: str) -> None:
    import pymysql

    db = pymysql.connect(host=info["host"], port=info["port"], user=info["user"], password=password,
                         autocommit=True, charset="utf8mb4")
    try:
        with db.cursor() as cur:
            for stmt in mariadb_statements((SCHEMA / "erp.sql").read_text()):
                cur.execute(stmt)
    finally:
        db.close()


def write_config(data: Path, pg_port: int, maria_port: int, metrics_port: int) -> Path:
    ports = {"PostgreSQL devserver": pg_port, "MariaDB devserver": maria_port, "metrics endpoint": metrics_port}
    lines = []
    for line in TEMPLATE.read_text().splitlines(keepends=True):
        for marker, port in ports.items():
            if f"# demo: port of the {marker}" in line:
                line, n = re.subn(r"^(\s*port:\s*)\d+", rf"\g<1>{port}", line)
                if n != 1:
                    raise SystemExit(f"{TEMPLATE}: cannot substitute the port on line {line!r}")
        lines.append(line)
    header = "# Written by scripts/demo from demo/replicator.yaml with the ports of this run; do not edit.\n"
    target = data / "replicator.yaml"
    target.write_text(header + "".join(lines))
    # fail here, not in the daemon, if the result is not a valid configuration
    from replicator.config import load
    from replicator.mapping import load_mappings

    load_mappings(load(target))
    return target


def configure(data: Path, servers_json: Path) -> None:
    from replicator.devservers import free_port

    info = json.loads(servers_json.read_text())
    crm_pw = (data / "crm.password").read_text().rstrip("\r\n")
    erp_pw = (data / "erp.password").read_text().rstrip("\r\n")
    load_crm(info["postgres"], crm_pw)
    load_erp(info["mariadb"], erp_pw)
    metrics_port = free_port()
    write_config(data, info["postgres"]["port"], info["mariadb"]["port"], metrics_port)
    print(metrics_port)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "passwords":
        passwords(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "configure":
        configure(Path(argv[1]), Path(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
