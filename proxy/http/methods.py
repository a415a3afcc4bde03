"""Request methods: which are cached, passed through, or refused (RFC 9110 9, RFC 9111 4.4)."""

from __future__ import annotations

import re

# Answered through the cache; every other method is passed through uncached.
CACHEABLE = frozenset({"GET", "HEAD"})
# RFC 9110 9.2.1. Any other method, known or not, may change the target (RFC 9111 4.4).
SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Never passed on. CONNECT asks for a tunnel to host:port: relayed, it would make this
# proxy an open relay. TRACE echoes the request back, cookies and credentials included
# (cross-site tracing); a shield answers for the origin and has no reason to.
REFUSED = frozenset({"CONNECT", "TRACE"})

# RFC 9110 9.1: method = token (5.6.2); methods are extensible (M-SEARCH, PROPFIND, ...).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def passable(method: str) -> bool:
    """May a request with this method go to the origin uncached, whatever its name?"""
    return method not in REFUSED and _TOKEN.fullmatch(method) is not None


def invalidates(method: str) -> bool:
    """RFC 9111 4.4: a non-error answer to an unsafe method (or one whose safety is not
    known) invalidates the target URI."""
    return method not in SAFE
