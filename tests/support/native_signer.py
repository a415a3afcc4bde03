"""An independent signer for edgeshield's native tokens, written from docs/auth.md
("Native signed URLs") alone, with the standard library only and without importing the
project: if the document leaves something open, tokens from here stop verifying.

It encodes claim values differently from edgeshield's own signer on purpose (every byte
but the unreserved ones, "/" included), which the document allows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
from collections.abc import Mapping, Sequence
from urllib.parse import quote

UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
PATH_KEPT = UNRESERVED | frozenset("!$&'()*+,;=:@/")


def pct(text: str) -> str:
    """UTF-8 percent-encoding of every byte but A-Z a-z 0-9 - . _ ~ (upper-case hex)."""
    return quote(text, safe="")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def normalise(path: str) -> str:
    """The doc's normal form: escapes upper-cased, unreserved ones decoded, other
    characters outside the kept set escaped as UTF-8, then RFC 3986 dot-segment removal
    with empty segments dropped."""
    out: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "%":
            hex_digits = path[i + 1 : i + 3]
            decoded = chr(int(hex_digits, 16))
            out.append(decoded if decoded in UNRESERVED else "%" + hex_digits.upper())
            i += 3
            continue
        out.append(c if c in PATH_KEPT else "".join(f"%{b:02X}" for b in c.encode("utf-8")))
        i += 1
    segments = "".join(out).split("/")
    stack: list[str] = []
    for segment in segments:
        if segment in ("", "."):
            continue
        if segment == "..":
            if stack:
                stack.pop()
            continue
        stack.append(segment)
    if not stack:
        return "/"
    joined = "/" + "/".join(stack)
    return joined + "/" if segments[-1] in ("", ".", "..") else joined


def sign(
    secret: bytes,
    kid: str,
    expires: int,
    *,
    path: str | None = None,
    prefix: str | None = None,
    not_before: int | None = None,
    ip: str | None = None,
    bind: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """A token for ``path`` (or everything under ``prefix``); ``bind`` maps parameter
    names to their decoded values, in the order the query will carry them."""
    claims = [("k", kid), ("e", str(expires))]
    if not_before is not None:
        claims.append(("n", str(not_before)))
    if ip is not None:
        claims.append(("i", ip))
    if prefix is not None:
        claims.append(("a", normalise(prefix)))
    else:
        assert path is not None
        claims.append(("p", normalise(path)))
    names = list(bind or {})
    if names:
        claims.append(("b", ",".join(pct(name) for name in names)))
    text = "&".join(f"{name}={pct(value)}" for name, value in claims)
    bound = "&".join(
        name + "".join("=" + pct(value) for value in (bind or {})[name]) for name in names
    )
    message = f"edgeshield-v1\n{text}\n{bound}".encode()
    mac = hmac.new(secret, message, hashlib.sha256).digest()
    return f"{b64url(text.encode('ascii'))}.{b64url(mac)}"
