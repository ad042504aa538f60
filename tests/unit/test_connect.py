"""connect.py: PyMySQL's TLS context shared between connections of equal settings -- the very context PyMySQL
builds, so verification is what it was, and a rotated CA file is loaded anew."""
from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import pymysql.connections
import pytest

from replicator import connect

_BUILD = pymysql.connections.Connection._create_ssl_ctx


def _build(sslp: Any) -> ssl.SSLContext:
    return _BUILD(None, sslp)  # PyMySQL's own builder (it does not use self)


def _same_settings(a: ssl.SSLContext, b: ssl.SSLContext) -> None:
    assert (a.verify_mode, a.check_hostname, a.verify_flags, a.options, a.minimum_version, a.maximum_version) == \
        (b.verify_mode, b.check_hostname, b.verify_flags, b.options, b.minimum_version, b.maximum_version)
    assert a.cert_store_stats() == b.cert_store_stats()


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connect, "_SSL_CONTEXTS", {})


def _ca(tmp_path: Path) -> Path:
    default = ssl.get_default_verify_paths().cafile
    if not default or not os.path.exists(default):
        pytest.skip("no system CA file to use as a CA")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(default).read_bytes())
    return ca


def test_preferred_mode_context_is_built_once_and_equals_pymysqls() -> None:
    calls = []

    def build(sslp: Any) -> ssl.SSLContext:
        calls.append(sslp)
        return _build(sslp)
    first = connect.shared_ssl_context({}, build)
    assert connect.shared_ssl_context({}, build) is first
    assert len(calls) == 1
    _same_settings(first, _build({}))
    assert first.verify_mode is ssl.CERT_NONE  # PREFERRED mode: as PyMySQL has it


def test_a_configured_ca_shares_by_settings_and_reloads_when_the_file_changes(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    strict = {"ca": str(ca), "check_hostname": True}
    loose = {"ca": str(ca), "check_hostname": False}
    a = connect.shared_ssl_context(dict(strict), _build)
    assert connect.shared_ssl_context(dict(strict), _build) is a
    b = connect.shared_ssl_context(dict(loose), _build)
    assert b is not a and (a.check_hostname, b.check_hostname) == (True, False)
    _same_settings(a, _build(dict(strict)))
    _same_settings(b, _build(dict(loose)))
    st = ca.stat()
    os.utime(ca, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # the CA rotated
    assert connect.shared_ssl_context(dict(strict), _build) is not a


def test_an_unreadable_file_is_left_to_pymysql_and_a_context_passes_through(tmp_path: Path) -> None:
    calls = []

    def build(sslp: Any) -> ssl.SSLContext:
        calls.append(sslp)
        raise FileNotFoundError(sslp["ca"])
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            connect.shared_ssl_context({"ca": str(tmp_path / "missing.pem")}, build)
    assert len(calls) == 2
    ctx = ssl.create_default_context()
    assert connect.shared_ssl_context(ctx, build) is ctx


def test_my_connect_uses_the_shared_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """The subclass my_connect makes overrides PyMySQL's builder (a rename upstream would leave it unused)."""
    assert connect.MyConnection._create_ssl_ctx is not _BUILD
    one = connect.MyConnection(host="127.0.0.1", port=1, defer_connect=True)
    two = connect.MyConnection(host="127.0.0.1", port=1, defer_connect=True)
    assert one.ctx is two.ctx and one.ssl and not one._ssl_required
