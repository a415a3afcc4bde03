"""Akamai EdgeAuth (Auth Token 2.0) tokens, as Akamai's EdgeAuth-Token-Python describes.

A token is ``~``-separated ``name=value`` fields in this order: ``ip``, ``st`` (start),
``exp`` (end), ``acl`` (ACL tokens: ``!``-separated patterns with the wildcards ``*`` and
``?``), ``id`` (session id), ``data`` (payload), and last ``hmac``. The HMAC (sha256,
sha1 or md5, as lower-case hex) is keyed with the hex-decoded EdgeAuth key and covers
every field before ``hmac`` joined with ``~``, followed for URL tokens (no ``acl``) by
``~url=<path>`` and, when the signer used one, ``~salt=<salt>``. With the signer's
``escape_early`` option the ip/id/data values and the URL were percent-encoded
(``quote_plus``, lower-case escapes) before hashing. The token travels as ``__token__``
(or a configured name such as ``hdnts``) in the query, a cookie or a header. In the query
it may be form-encoded by the client as a whole (``+`` a space, as ``urlencode`` and
``URLSearchParams`` write it) or sent raw, spaces as ``%20`` (``_from_query``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote_plus, unquote, unquote_plus

from proxy.auth.common import (
    ACL_MISMATCH,
    BAD_SIGNATURE,
    IP_MISMATCH,
    AuthInput,
    AuthResult,
    accept,
    canonical_path,
    constant_time_equal,
    deny,
    parse_epoch,
    parse_ip,
    window_reason,
)

SCHEME = "akamai"
Algorithm = Literal["sha256", "sha1", "md5"]
_HASHES: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
}
_FIELDS = ("ip", "st", "exp", "acl", "id", "data")
_LOWER_HEX = re.compile(r"[0-9a-f]+")
_ESCAPE = re.compile(r"%[0-9A-F]{2}")
_MAX_TOKEN = 8192


def escape_early(text: str) -> str:
    """The signer's escape_early: quote_plus, with the escapes in lower case."""
    return _ESCAPE.sub(lambda m: m.group(0).lower(), quote_plus(text))


_WILDCARDS = {"*": ".*", "?": "."}
_ACL_PARTS = re.compile(r"([*?])")


@lru_cache(maxsize=512)
def _acl_regex(pattern: str) -> re.Pattern[str]:
    parts = _ACL_PARTS.split(pattern)  # odd indexes are the wildcards
    return re.compile(
        "".join(_WILDCARDS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)),
        re.DOTALL,
    )


def acl_allows(acl: str, path: str, delimiter: str = "!") -> bool:
    """Does any ``delimiter``-separated pattern of ``acl`` match the whole canonical
    path? EdgeAuth's wildcards: ``*`` matches any run of characters, "/" included, and
    ``?`` exactly one character."""
    return any(
        pattern and _acl_regex(pattern).fullmatch(path) is not None
        for pattern in acl.split(delimiter)
    )


def generate_token(
    key_hex: str,
    *,
    exp: int,
    acl: str | Iterable[str] | None = None,
    url: str | None = None,
    st: int | None = None,
    ip: str | None = None,
    session_id: str | None = None,
    data: str | None = None,
    salt: str | None = None,
    algorithm: Algorithm = "sha256",
    field_delimiter: str = "~",
    acl_delimiter: str = "!",
    escape: bool = False,
) -> str:
    """Mint an EdgeAuth token (for tests and migration tooling; Akamai's own signers
    produce the same string)."""
    if (acl is None) == (url is None):
        raise ValueError("give exactly one of acl or url")
    esc = escape_early if escape else (lambda text: text)
    fields: list[str] = []
    if ip:
        fields.append(f"ip={esc(ip)}")
    if st:
        fields.append(f"st={st}")
    fields.append(f"exp={exp}")
    if acl is not None:
        fields.append("acl=" + (acl if isinstance(acl, str) else acl_delimiter.join(acl)))
    if session_id:
        fields.append(f"id={esc(session_id)}")
    if data:
        fields.append(f"data={esc(data)}")
    source = list(fields)
    if url is not None:
        source.append(f"url={esc(url)}")
    if salt:
        source.append(f"salt={salt}")
    digest = hmac.new(
        bytes.fromhex(key_hex), field_delimiter.join(source).encode(), _HASHES[algorithm]
    ).hexdigest()
    return field_delimiter.join([*fields, f"hmac={digest}"])


class AkamaiVerifier:
    scheme = SCHEME

    def __init__(
        self,
        key: bytes,
        *,
        algorithm: Algorithm = "sha256",
        token_name: str = "__token__",
        sources: Iterable[Literal["query", "cookie", "header"]] = ("query", "cookie"),
        field_delimiter: str = "~",
        acl_delimiter: str = "!",
        escape_early: bool = False,
        salt: str | None = None,
        skew: float = 0.0,
    ) -> None:
        """``key`` is the binary key: the hex string Akamai shows, decoded."""
        self._key = key
        self._hash = _HASHES[algorithm]
        self._digest_size = self._hash().digest_size
        self.algorithm = algorithm
        self.token_name = token_name
        self.sources = tuple(sources)
        self.fd = field_delimiter
        self.ad = acl_delimiter
        self.escape_early = escape_early
        self._salt = salt
        self.skew = skew
        self.query_params = frozenset({token_name}) if "query" in self.sources else frozenset()
        self.cookies = frozenset({token_name}) if "cookie" in self.sources else frozenset()

    def __repr__(self) -> str:
        return f"AkamaiVerifier(algorithm={self.algorithm!r}, token_name={self.token_name!r})"

    def find(self, inp: AuthInput) -> str | None:
        for source in self.sources:
            if source == "query":
                value = inp.arg(self.token_name)
                if value is not None:
                    return self._from_query(value)
            elif source == "cookie":
                value = inp.cookie(self.token_name)
                if value is not None:
                    return value
            else:
                value = inp.headers.get(self.token_name.lower())
                if value is not None:
                    return value.strip()
        return None

    def _from_query(self, value: str) -> str:
        """The token as signed, from a query value. Form-encoded as a whole by the
        client (no literal "exp="): "+" a space. Sent raw: with escape_early its "%XX"
        and "+" are the signer's own; without, any escape (a space as "%20") is the
        client's."""
        if "exp=" not in value:
            return unquote_plus(value)
        return value if self.escape_early or "%" not in value else unquote(value)

    def verify(self, inp: AuthInput) -> AuthResult | None:
        token = self.find(inp)
        if token is None:
            return None
        return self.verify_token(token, path=inp.path, client_ip=inp.client_ip, now=inp.now)

    def verify_token(self, token: str, *, path: str, client_ip: str, now: float) -> AuthResult:
        fd = self.fd
        marker = f"{fd}hmac="
        cut = token.rfind(marker)
        fields = _parse_fields(token[:cut], fd) if cut > 0 and len(token) <= _MAX_TOKEN else None
        given_hex = token[cut + len(marker) :] if fields is not None else ""
        given = _hex_bytes(given_hex)
        if fields is None or "exp" not in fields:
            constant_time_equal(bytes(self._digest_size), None)
            return deny(SCHEME, BAD_SIGNATURE)
        source = token[:cut]
        if "acl" not in fields:
            url_path = canonical_path(path) or path
            url = escape_early(url_path) if self.escape_early else url_path
            source += f"{fd}url={url}"
        if self._salt:
            source += f"{fd}salt={self._salt}"
        expected = hmac.new(self._key, source.encode("utf-8"), self._hash).digest()
        if not constant_time_equal(expected, given):
            return deny(SCHEME, BAD_SIGNATURE)
        claims = self._claims(fields)
        expires = parse_epoch(fields["exp"])
        start = parse_epoch(fields["st"]) if "st" in fields else None
        if expires is None or ("st" in fields and start is None):
            return deny(SCHEME, BAD_SIGNATURE, claims)
        reason = window_reason(now, expires=expires, not_before=start, skew=self.skew)
        if reason:
            return deny(SCHEME, reason, claims)
        if "ip" in fields:
            wanted = parse_ip(self._unescape(fields["ip"]))
            if wanted is None or wanted != parse_ip(client_ip):
                return deny(SCHEME, IP_MISMATCH, claims)
        canonical = canonical_path(path)
        if canonical is None:
            return deny(SCHEME, ACL_MISMATCH, claims)
        if "acl" in fields and not acl_allows(fields["acl"], canonical, self.ad):
            return deny(SCHEME, ACL_MISMATCH, claims)
        return accept(SCHEME, claims)

    def _unescape(self, value: str) -> str:
        return unquote_plus(value) if self.escape_early else value

    def _claims(self, fields: dict[str, str]) -> dict[str, Any]:
        claims: dict[str, Any] = {"exp": fields["exp"]}
        if "st" in fields:
            claims["st"] = fields["st"]
        if "ip" in fields:
            claims["ip"] = self._unescape(fields["ip"])
        if "acl" in fields:
            claims["acl"] = tuple(fields["acl"].split(self.ad))
        if "id" in fields:
            claims["id"] = self._unescape(fields["id"])
        if "data" in fields:
            claims["data"] = self._unescape(fields["data"])
        return claims


def _hex_bytes(text: str) -> bytes | None:
    """Lower-case hex of even length (EdgeAuth's hexdigest), else None."""
    if len(text) % 2 or not _LOWER_HEX.fullmatch(text):
        return None
    return bytes.fromhex(text)


def _parse_fields(body: str, delimiter: str) -> dict[str, str] | None:
    """The fields before hmac=, in EdgeAuth's order, each at most once."""
    fields: dict[str, str] = {}
    last = -1
    for part in body.split(delimiter):
        name, sep, value = part.partition("=")
        if not sep or name not in _FIELDS:
            return None
        position = _FIELDS.index(name)
        if position <= last:
            return None
        last = position
        fields[name] = value
    return fields
