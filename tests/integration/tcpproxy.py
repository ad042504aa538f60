"""A loopback TCP proxy in front of one database, for network faults in tests.

Modes, switchable at any time:
- "pass": bytes flow both ways. Connections accepted in another mode are connected upstream now.
- "blackhole": a partition that TCP has not noticed. New connections are accepted and held, bytes
  already in flight are kept, nothing is forwarded. Back to "pass", everything held flows again, as
  after retransmission once the network is back.
- "refuse": connections are reset, existing and new ones (a server that is down).

Threads, bounded (at most `max_connections` at once, two pump threads each), loopback only.
"""
from __future__ import annotations

import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "blackhole", "refuse"]
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: what a client sees when the peer is gone."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RD)  # wakes a pump blocked in recv, which would keep the socket open
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Link:
    """One client connection and, once connected, its upstream connection."""

    def __init__(self, proxy: "TcpProxy", client: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()

    def run(self) -> None:
        p = self.proxy
        try:
            while not p.flowing.wait(0.1):  # held while blackholed
                if self.closed.is_set() or p.mode == "refuse":
                    self.reset()
                    return
            if p.mode == "refuse" or self.closed.is_set():
                self.reset()
                return
            self.upstream = socket.create_connection((p.upstream_host, p.upstream_port), timeout=5)
            self.upstream.settimeout(None)
        except OSError:
            self.reset()
            return
        up = threading.Thread(target=self._pump, args=(self.client, self.upstream), daemon=True,
                              name=f"proxy-{p.port}-up")
        up.start()
        self._pump(self.upstream, self.client)
        up.join()
        self.closed.set()
        for sock in (self.client, self.upstream):
            try:
                sock.close()
            except OSError:
                pass
        p._forget(self)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        p = self.proxy
        try:
            while not self.closed.is_set():
                data = src.recv(65536)
                while not p.flowing.wait(0.1):  # blackholed: keep what was read, send it later
                    if self.closed.is_set():
                        return
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except OSError:
            self.reset()

    def reset(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        _reset(self.client)
        if self.upstream is not None:
            _reset(self.upstream)
        self.proxy._forget(self)


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", max_connections: int = 64):
        if upstream_host not in _LOOPBACK:
            raise ValueError(f"the test proxy only forwards to loopback, not {upstream_host!r}")
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.max_connections = max_connections
        self.mode: Mode = "pass"
        self.flowing = threading.Event()
        self.flowing.set()
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}")
        self._acceptor.start()

    def set_mode(self, mode: Mode) -> None:
        if mode not in ("pass", "blackhole", "refuse"):
            raise ValueError(mode)
        self.mode = mode
        if mode == "pass":
            self.flowing.set()
            return
        self.flowing.clear()
        if mode == "refuse":
            for link in self.links():
                link.reset()

    def links(self) -> list[_Link]:
        with self._lock:
            return list(self._links)

    def close(self) -> None:
        self._stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.flowing.set()  # release held pumps so that they see `closed`
        for link in self.links():
            link.reset()

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            with self._lock:
                full = len(self._links) >= self.max_connections
            if full or self.mode == "refuse":
                _reset(client)
                continue
            link = _Link(self, client)
            with self._lock:
                self._links.add(link)
            threading.Thread(target=link.run, daemon=True, name=f"proxy-{self.port}-link").start()

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
