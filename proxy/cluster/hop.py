"""The internal hop's signature: HMAC-SHA256 over method, host, target and time.

A non-owner sends `edgeshield-peer-auth: <unix seconds>.<hex digest>`; the owner
recomputes it from what it received and accepts it within the replay window, comparing
in constant time. What is signed is what routes the request and names its key, so a
captured signature cannot fetch another object, nor the same one after the window."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "edgeshield-peer-auth"
# The owner's answer carries this field, so a non-owner can tell an owner's answer from
# anything else listening there (garbage is a peer error, not an origin answer).
ANSWERED = "edgeshield-peer"
MAX_FIELD = 200  # longer values are refused unread


def _digest(secret: bytes, method: str, host: str, target: str, when: int) -> str:
    msg = "\n".join((method.upper(), host.lower(), target, str(when))).encode(
        "utf-8", "surrogateescape"
    )
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def sign(secret: bytes, method: str, host: str, target: str, now: float) -> str:
    when = int(now)
    return f"{when}.{_digest(secret, method, host, target, when)}"


def verify(
    secret: bytes,
    value: str | None,
    method: str,
    host: str,
    target: str,
    now: float,
    window: float,
) -> str | None:
    """None when `value` signs this request within `window` seconds of `now`; else the
    reason it does not (short, safe to log: never the value)."""
    if value is None:
        return "no signature"
    if len(value) > MAX_FIELD:
        return "malformed signature"
    when_text, dot, digest = value.partition(".")
    if not dot or not when_text.isascii() or not when_text.isdigit() or len(when_text) > 12:
        return "malformed signature"
    when = int(when_text)
    if abs(now - when) > window:
        return "signature outside the replay window"
    expected = _digest(secret, method, host, target, when)
    if not hmac.compare_digest(expected.encode(), digest.encode("utf-8", "surrogateescape")):
        return "bad signature"
    return None
