"""replicator.testing.devservers: MariaDB's data directory bootstrap gets one more try on a new, empty data
directory, and a second failure names the server's error lines of both attempts. The binaries are stood in
for by a script (no server runs here)."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from replicator.testing.devservers import mariadb as devmaria
from replicator.testing.devservers.processes import ServerError


def _server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: int) -> devmaria.MariaDBServer:
    """A MariaDBServer whose mariadb-install-db fails `fails` times (leaving a file in the data directory,
    as a half-done bootstrap does), then creates mysql/."""
    count = tmp_path / "count"
    script = tmp_path / "install-db"
    script.write_text(f"""#!/bin/sh
n=$(cat {count} 2>/dev/null || echo 0); echo $((n + 1)) > {count}
for a in "$@"; do case "$a" in --datadir=*) d="${{a#--datadir=}}";; esac; done
mkdir -p "$d"
if [ -e "$d/half" ]; then echo "leftover from the last attempt"; exit 2; fi
if [ "$n" -lt {fails} ]; then touch "$d/half"; echo "2026-12-07 [ERROR] attempt $n went wrong"; \
echo "Installation of system tables failed!"; exit 1; fi
mkdir "$d/mysql"
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(devmaria, "_which", lambda name: str(script))
    return devmaria.MariaDBServer(tmp_path / "srv")


def test_a_failed_bootstrap_is_tried_once_more_on_an_empty_data_directory(tmp_path, monkeypatch) -> None:
    server = _server(tmp_path, monkeypatch, fails=1)
    server.base_dir.mkdir(parents=True, exist_ok=True)
    server._init()
    assert server._initialised()
    assert (tmp_path / "count").read_text().strip() == "2"


def test_a_second_failure_names_the_error_lines_of_both_attempts(tmp_path, monkeypatch) -> None:
    server = _server(tmp_path, monkeypatch, fails=2)
    server.base_dir.mkdir(parents=True, exist_ok=True)
    with pytest.raises(ServerError) as e:
        server._init()
    assert "second attempt" in str(e.value)
    assert "[ERROR] attempt 0 went wrong" in str(e.value) and "[ERROR] attempt 1 went wrong" in str(e.value)
