"""Request ids (X-Request-Id): the one a trusted proxy in front sent, when it is a safe
token (proxy/http/forwarding.py `valid_request_id`), else a new one.

A new id is this process's random prefix and a counter: unique across workers and
restarts (48 random bits per process), and a string format per request instead of a
uuid4 (urandom and a UUID object)."""

from __future__ import annotations

import secrets

from proxy.auth.access import TrustedNetworks
from proxy.auth.common import parse_ip
from proxy.http.forwarding import valid_request_id


class RequestIds:
    """One per process (AppState): the prefix is drawn when the state is built."""

    __slots__ = ("count", "prefix")

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.count = 0

    def new(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count:x}"

    def pick(self, sent: str | None, peer: str, trusted: TrustedNetworks) -> str:
        """`sent` (the request's X-Request-Id) when the socket peer is a trusted proxy
        and the value is valid; otherwise a new id, whoever sent what."""
        if (
            sent is not None
            and trusted.networks
            and valid_request_id(sent)
            and trusted.trusts(parse_ip(peer))
        ):
            return sent
        return self.new()
