"""The request authority (Host, RFC 9110 7.2; RFC 3986 3.2.2), validated before routing.

The host becomes the first part of every cache key, so a Host a client controls must
never be able to carry a path, a query or anything the key builder would read as one.
Accepted: a reg-name of unreserved characters (letters, digits, "-", "." , "_", "~"),
which covers every DNS name and IPv4 address (one trailing dot dropped, no empty label);
or a bracketed IPv6 literal; then an
optional port of at most five digits (0-65535; an empty port is allowed by RFC 3986 and
ignored). Refused: "/", "\\", "@", "?", "#", "%" (no percent-encoded names), whitespace,
control bytes, sub-delimiters, IPvFuture and IPv6 zone identifiers. Hosts are compared
and keyed lower-case without the port, as nginx's `$host` is.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# RFC 3986 unreserved characters; sub-delims ("!$&'()*+,;=") are valid in a reg-name but
# no real host uses them and several (",", ";") would read as list separators downstream.
_REG_NAME = re.compile(r"[A-Za-z0-9._~-]+")
_PORT = re.compile(r"[0-9]{0,5}")
MAX_HOST_LENGTH = 255


class BadAuthority(ValueError):
    """The authority is not a valid host[:port]; `reason` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Authority:
    host: str  # lower-case; an IPv6 literal keeps its brackets
    port: int | None


def parse_authority(value: str) -> Authority:
    """Parse a Host field value (or the authority of an absolute-form target)."""
    if not value:
        raise BadAuthority("empty host")
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise BadAuthority("unterminated IPv6 literal")
        literal, rest = value[1:end], value[end + 1 :]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise BadAuthority("bad IPv6 literal") from None
        if "%" in literal:  # zone identifiers are local to the client
            raise BadAuthority("bad IPv6 literal")
        host = f"[{literal.lower()}]"
    else:
        name, colon, port_text = value.partition(":")
        # One trailing dot is the same name, fully qualified (nginx drops it too); an
        # empty label anywhere else is no name at all.
        if name.endswith(".") and len(name) > 1:
            name = name[:-1]
        if not _REG_NAME.fullmatch(name) or "" in name.split("."):
            raise BadAuthority("bad host")
        rest = colon + port_text
        host = name.lower()
    if len(host) > MAX_HOST_LENGTH:
        raise BadAuthority("host too long")
    return Authority(host, _port(rest))


def _port(rest: str) -> int | None:
    if not rest:
        return None
    if not rest.startswith(":") or not _PORT.fullmatch(rest[1:]):
        raise BadAuthority("bad port")
    if len(rest) == 1:
        return None
    port = int(rest[1:])
    if port > 65535:
        raise BadAuthority("bad port")
    return port


def same_authority(a: Authority, b: Authority) -> bool:
    """Equal as hosts are keyed; a missing port matches any (the scheme's default)."""
    return a.host == b.host and (a.port is None or b.port is None or a.port == b.port)
