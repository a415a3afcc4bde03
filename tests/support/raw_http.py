"""Raw-socket HTTP/1.1 exchanges for attack tests: send exactly the bytes given, read
exactly one whole response (Content-Length, chunked, or until close), and say whether the
server answered at all. A test asserts "no dropped connection" with `RawResponse.status`."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int  # 0: the connection closed (or timed out) before a status line
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def exchange(port: int, data: bytes, *, timeout: float = 15.0) -> RawResponse:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def read_response(sock: socket.socket) -> RawResponse:
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return RawResponse(0, [], buf)
            buf += chunk
    except TimeoutError:
        return RawResponse(0, [], buf)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    found = dict(headers)
    try:
        if "content-length" in found:
            want = int(found["content-length"])
            while len(rest) < want:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            body = rest[:want]
        elif found.get("transfer-encoding") == "chunked":
            body = _dechunk(sock, rest)
        else:
            while chunk := sock.recv(65536):
                rest += chunk
            body = rest
    except TimeoutError:
        body = rest
    return RawResponse(status, headers, body)


def _dechunk(sock: socket.socket, rest: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(rest) < size + 2:
            more = sock.recv(65536)
            if not more:
                return body + rest
            rest += more
        if size == 0:
            return body
        body += rest[:size]
        rest = rest[size + 2 :]
