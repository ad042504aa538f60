"""The test proxy itself (tests/integration/tcpproxy.py), against a local echo server: no database."""
from __future__ import annotations

import socket
import threading
from typing import Iterator

import pytest

from tests.integration.harness import wait_until
from tests.integration.tcpproxy import TcpProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve(conn: socket.socket) -> None:
        try:
            while data := conn.recv(100):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def client(proxy: TcpProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.settimeout(1.0)
    return sock


def test_pass_blackhole_and_back(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        a = client(proxy)
        a.sendall(b"one")
        assert a.recv(10) == b"one"
        proxy.set_mode("blackhole")
        a.sendall(b"held")
        b = client(proxy)  # accepted, held
        b.sendall(b"new")
        for sock in (a, b):
            with pytest.raises(socket.timeout):
                sock.recv(10)
        proxy.set_mode("pass")  # what was held flows, as after retransmission
        assert a.recv(10) == b"held" and b.recv(10) == b"new"
        a.close()
        b.close()
        wait_until(lambda: not proxy.links(), 5, "closed connections forgotten")


def test_refuse_resets_existing_and_new_connections(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        a = client(proxy)
        a.sendall(b"x")
        assert a.recv(10) == b"x"
        proxy.set_mode("refuse")
        with pytest.raises(ConnectionResetError):
            a.recv(10)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            b = client(proxy)
            b.sendall(b"y")
            b.recv(10)
        proxy.set_mode("pass")
        c = client(proxy)
        c.sendall(b"z")
        assert c.recv(10) == b"z"
        c.close()


def test_only_loopback_and_bounded(echo_port: int) -> None:
    with pytest.raises(ValueError):
        TcpProxy(echo_port, upstream_host="192.0.2.1")
    with TcpProxy(echo_port, max_connections=1) as proxy:
        a = client(proxy)
        a.sendall(b"1")
        assert a.recv(10) == b"1"
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            b = client(proxy)  # over the bound: reset
            b.sendall(b"2")
            b.recv(10)
        a.close()
