"""The internal hop's signature: HMAC-SHA256 over method, host, target, stage and time.

A non-owner sends `edgeshield-peer-auth: <unix seconds>.<stage>.<hex digest>`; the owner
recomputes it from what it received and accepts it within the replay window, comparing
in constant time. What is signed is what routes the request and names its key, so a
captured signature cannot fetch another object, nor the same one after the window.

The stage says how far the request has come (proxy/cluster/peers.py): 1 over a worker
hop inside the first instance, 2 over the hop between instances, 3 over a worker hop
inside the owning instance. It only grows, which is why a request cannot loop."""

from __future__ import annotations

import hashlib
import hmac
from contextvars import ContextVar

HEADER = "edgeshield-peer-auth"
# The owner's answer carries this field, so a non-owner can tell an owner's answer from
# anything else listening there (garbage is a peer error, not an origin answer).
ANSWERED = "edgeshield-peer"
MAX_FIELD = 200  # longer values are refused unread
STAGES = (1, 2, 3)


# The stage a request arrived at (0: from a client): set per request task by the
# cluster listeners, inherited by the fetches it starts. A context variable, not state.
HOP: ContextVar[int] = ContextVar("edgeshield_cluster_hop", default=0)


def vouched() -> bool:
    """Did this request arrive over a hop whose signature held? Only the cluster
    listeners set `HOP`, after checking it; a client's request is always stage 0, so
    no client can reach what this lets through (the route's auth checks, which the
    asking peer ran on the client's own request)."""
    return HOP.get() > 0


class HopRefused(Exception):
    """Why a hop's signature does not hold: short, safe to log (never the value)."""


def _digest(secret: bytes, method: str, host: str, target: str, stage: int, when: int) -> str:
    fields = (method.upper(), host.lower(), target, str(stage), str(when))
    msg = "\n".join(fields).encode("utf-8", "surrogateescape")
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def sign(secret: bytes, method: str, host: str, target: str, stage: int, now: float) -> str:
    when = int(now)
    return f"{when}.{stage}.{_digest(secret, method, host, target, stage, when)}"


def verify(
    secret: bytes,
    value: str | None,
    method: str,
    host: str,
    target: str,
    now: float,
    window: float,
) -> int:
    """The stage `value` signs for this request within `window` seconds of `now`;
    HopRefused otherwise."""
    if value is None:
        raise HopRefused("no signature")
    parts = value.split(".") if len(value) <= MAX_FIELD else []
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts[:2]):
        raise HopRefused("malformed signature")
    when_text, stage_text, digest = parts
    if len(when_text) > 12 or stage_text not in {str(s) for s in STAGES}:
        raise HopRefused("malformed signature")
    when, stage = int(when_text), int(stage_text)
    if abs(now - when) > window:
        raise HopRefused("signature outside the replay window")
    expected = _digest(secret, method, host, target, stage, when)
    if not hmac.compare_digest(expected.encode(), digest.encode("utf-8", "surrogateescape")):
        raise HopRefused("bad signature")
    return stage
