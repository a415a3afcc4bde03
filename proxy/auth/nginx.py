"""nginx ``secure_link`` (ngx_http_secure_link_module, the secure_link / secure_link_md5
mode), with the same two expressions:

    secure_link      $arg_md5,$arg_expires
    secure_link_md5  "$secure_link_expires$uri$remote_addr secret"

The first gives "<hash>[,<expires>]": the hash is the base64url MD5 of the second
expression evaluated for the request; ``$secure_link_expires`` is the part after the
comma. A link with an expiry is valid through that second (nginx: expired when
expires < now). Variables: ``$uri`` (the decoded, normalised path), ``$remote_addr``,
``$arg_<name>`` (raw query value, found as nginx's ngx_http_arg does: see ``nginx_arg``),
``$cookie_<name>``, ``$http_<name>`` (header, "_" for
"-"), ``$host``, ``$scheme``, ``$secure_link_expires``, and ``$secret`` (the configured
key, so the secret need not sit in the expression). ``${name}`` works too.
"""

from __future__ import annotations

import hashlib
import re
import string
from typing import Any
from urllib.parse import unquote_to_bytes

from proxy.auth.common import (
    BAD_SIGNATURE,
    MISSING,
    AuthInput,
    AuthResult,
    accept,
    b64url_decode,
    b64url_encode,
    canonical_path,
    constant_time_equal,
    deny,
    parse_epoch,
    window_reason,
)

SCHEME = "nginx"
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
_FIXED = frozenset({"uri", "remote_addr", "host", "scheme", "secure_link_expires", "secret"})
_PREFIXES = ("arg_", "cookie_", "http_")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

Part = bytes | str  # a literal, or a variable name


class ExpressionError(ValueError):
    pass


def parse_expression(text: str) -> tuple[Part, ...]:
    """nginx complex value -> literal byte strings and variable names."""
    parts: list[Part] = []
    position = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()].encode("utf-8"))
        name = match.group(1) or match.group(2)
        if name not in _FIXED and not (name.startswith(_PREFIXES) and len(name) > 4):
            raise ExpressionError(f"unknown variable ${name}")
        parts.append(name)
        position = match.end()
    if position < len(text):
        literal = text[position:]
        if "$" in literal:
            raise ExpressionError("a '$' that starts no variable")
        parts.append(literal.encode("utf-8"))
    return tuple(parts)


def args_in(parts: tuple[Part, ...]) -> tuple[str, ...]:
    """Query parameter names an expression reads ($arg_md5 -> "md5")."""
    return tuple(p[4:] for p in parts if isinstance(p, str) and p.startswith("arg_"))


def nginx_arg(query: str, name: str) -> str | None:
    """``$arg_<name>`` as nginx's ngx_http_arg finds it: the raw value of the first
    ``name=`` that starts the query or follows an "&", the name compared as sent (not
    decoded) and case-insensitively in ASCII letters only, so ``$arg_md5`` reads
    ``?MD5=...``; nothing for a bare ``name`` without "="."""
    if not query:
        return None
    wanted = name.translate(_ASCII_LOWER) + "="
    size = len(wanted)
    for part in query.split("&"):
        if part[:size].translate(_ASCII_LOWER) == wanted:
            return part[size:]
    return None


def evaluate(parts: tuple[Part, ...], inp: AuthInput, expires: str, secret: bytes | None) -> bytes:
    out: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            out.append(part)
        else:
            out.append(_variable(part, inp, expires, secret))
    return b"".join(out)


def _variable(name: str, inp: AuthInput, expires: str, secret: bytes | None) -> bytes:
    if name == "uri":
        return unquote_to_bytes(canonical_path(inp.path) or inp.path)
    if name == "remote_addr":
        return inp.client_ip.encode()
    if name == "secure_link_expires":
        return expires.encode()
    if name == "secret":
        return secret or b""
    if name == "host":
        return inp.host.encode("latin-1", "replace")
    if name == "scheme":
        return inp.scheme.encode()
    value: str | None
    if name.startswith("arg_"):
        value = nginx_arg(inp.query, name[4:])
    elif name.startswith("cookie_"):
        value = inp.cookie(name[7:])
    else:
        value = inp.headers.get(name[5:].replace("_", "-").lower())
    return (value or "").encode("latin-1", "replace")


class NginxVerifier:
    scheme = SCHEME

    def __init__(
        self,
        secure_link: str = "$arg_md5,$arg_expires",
        secure_link_md5: str = "$secure_link_expires$uri$remote_addr $secret",
        *,
        secret: bytes | None = None,
        skew: float = 0.0,
    ) -> None:
        self._link = parse_expression(secure_link)
        self._md5 = parse_expression(secure_link_md5)
        if "secret" in self._md5 and secret is None:
            raise ExpressionError("secure_link_md5 uses $secret but no key is configured")
        self._secret = secret
        self.skew = skew
        # Lower case: tokens are stripped whatever the case of their names, as nginx
        # reads them (policy.strip_token).
        self.query_params = frozenset(a.translate(_ASCII_LOWER) for a in args_in(self._link))
        self.cookies = frozenset(
            p[7:] for p in self._link if isinstance(p, str) and p.startswith("cookie_")
        )

    def __repr__(self) -> str:
        return "NginxVerifier(secure_link_md5=<masked>)"

    def verify(self, inp: AuthInput) -> AuthResult | None:
        value = evaluate(self._link, inp, "", None).decode("latin-1")
        if not value.strip(","):
            return None
        hash_text, comma, expires_text = value.partition(",")
        expires: int | None = None
        if comma:
            expires = parse_epoch(expires_text)
            if not expires:  # nginx: an expiry that is not a positive number fails
                return deny(SCHEME, BAD_SIGNATURE)
        if not hash_text:
            return deny(SCHEME, MISSING)
        given = b64url_decode(hash_text.rstrip("=")) if len(hash_text) <= 24 else None
        if given is not None and len(given) != 16:
            given = None
        message = evaluate(self._md5, inp, expires_text if comma else "", self._secret)
        if not constant_time_equal(hashlib.md5(message).digest(), given):
            return deny(SCHEME, BAD_SIGNATURE)
        claims: dict[str, Any] = {"exp": expires} if expires else {}
        reason = window_reason(
            inp.now, expires=expires, not_before=None, skew=self.skew, inclusive_expiry=True
        )
        return deny(SCHEME, reason, claims) if reason else accept(SCHEME, claims)


def sign(
    secure_link_md5: str,
    *,
    uri: str,
    expires: int | None = None,
    remote_addr: str = "",
    secret: bytes | None = None,
    args: dict[str, str] | None = None,
) -> str:
    """The base64url MD5 a link needs (what `openssl md5 -binary | openssl base64 |
    tr +/ -_ | tr -d =` prints for the evaluated expression)."""
    inp = AuthInput(
        path=uri,
        query="&".join(f"{k}={v}" for k, v in (args or {}).items()),
        client_ip=remote_addr,
        now=0.0,
    )
    parts = parse_expression(secure_link_md5)
    message = evaluate(parts, inp, "" if expires is None else str(expires), secret)
    return b64url_encode(hashlib.md5(message).digest())
