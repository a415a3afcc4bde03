"""A bare HTTP/2 client on one connection (the `h2` library over a blocking socket), for
tests that must see exactly what the server sends on which stream: many concurrent
streams read by one loop, or bytes no well-behaved client would send.

    with H2Connection.open(port, context) as conn:   # context None: cleartext (h2c)
        ids = [conn.request("/a") for _ in range(20)]
        conn.read_until(lambda: all(conn.streams[i].body for i in ids))
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events

HOST = "127.0.0.1"


@dataclass
class Stream:
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False
    reset: bool = False


class H2Connection:
    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock = sock
        self.port = port
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.streams: dict[int, Stream] = {}
        self.closed = False  # the server closed the connection or sent GOAWAY
        self.settings = False  # the server's SETTINGS arrived
        self.conn.initiate_connection()
        self.flush()

    @classmethod
    def open(cls, port: int, context: ssl.SSLContext | None, timeout: float = 60) -> H2Connection:
        sock = socket.create_connection((HOST, port), timeout=timeout)
        if context is not None:
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname=HOST)
        return cls(sock, port)

    def __enter__(self) -> H2Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, headers: dict[str, str] | None = None) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        fields = [
            (":method", "GET"),
            (":path", path),
            (":scheme", "https" if isinstance(self.sock, ssl.SSLSocket) else "http"),
            (":authority", f"{HOST}:{self.port}"),
            *(headers or {}).items(),
        ]
        self.conn.send_headers(stream_id, fields, end_stream=True)
        self.streams[stream_id] = Stream()
        self.flush()
        return stream_id

    def read_until(self, done: Callable[[], bool], timeout: float = 60) -> None:
        """Read and dispatch frames until done() or the server closes; a hang guard
        (AssertionError) after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not done() and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("HTTP/2: the awaited frames never came")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return
            for event in self.conn.receive_data(data):
                self._dispatch(event)
            self.flush()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.streams[event.stream_id].headers = {
                _text(name): _text(value) for name, value in event.headers
            }
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id].body += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.streams[event.stream_id].reset = True
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
