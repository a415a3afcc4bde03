"""Canonical request paths for cache keys and routing (RFC 3986 6.2.2, 5.2.4)."""

from __future__ import annotations

import re

__all__ = ["BadPath", "normalize_path"]


class BadPath(ValueError):
    """The request path cannot be made canonical safely; answer 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 3.3: pchar minus pct-encoded, plus "/". These stay as they are; other printable
# ASCII is percent-encoded, since raw and encoded forms of those are equivalent.
_RAW_OK = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_HEX = frozenset("0123456789abcdefABCDEF")
_FAST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_DOT_SEGMENT = re.compile(r"/\.\.?(?:[/;]|\Z)")


def _escape(ch: str) -> str:
    try:
        data = ch.encode("utf-8", "surrogateescape")  # lone \udcXX: a raw byte from the wire
    except UnicodeEncodeError:
        raise BadPath("bad-char") from None
    return "".join(f"%{b:02X}" for b in data)


def normalize_path(raw: str) -> str:
    """Canonical percent-encoded form of a raw request path (no query); raises BadPath.

    Percent-escapes are upper-cased and those of unreserved characters decoded (RFC 3986
    6.2.2.1-2), so "%2e" takes part in dot-segment removal (RFC 3986 5.2.4); empty segments
    are merged; ".." never climbs above "/". Each escape is decoded once only, so "%252e"
    stays a literal "%252e". Rejected:
      * not starting with "/", malformed escapes, NUL and other control characters, raw or
        encoded;
      * "%2F" and "%5C" and raw "\\": an encoded slash is a path separator to some origins
        and data to others, and a backslash is a separator on Windows origins; neither has a
        canonical form both sides agree on, so like Apache's AllowEncodedSlashes Off they
        are refused rather than guessed at;
      * segments ".;..." and "..;..." (e.g. "/a/..;/b"): not dot segments to RFC 3986, but
        Java servlet origins treat them as such, which would let a request escape a prefix
        that routing matched on.
    """
    if not raw.startswith("/"):
        raise BadPath("not-absolute")
    if _FAST.fullmatch(raw) and "//" not in raw and _DOT_SEGMENT.search(raw) is None:
        return raw  # already canonical: the common case costs one regex scan

    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "%":
            h = raw[i + 1 : i + 3]
            if len(h) != 2 or h[0] not in _HEX or h[1] not in _HEX:
                raise BadPath("bad-escape")
            b = int(h, 16)
            if b < 0x20 or b == 0x7F:
                raise BadPath("control-char")
            if b == 0x2F:
                raise BadPath("encoded-slash")
            if b == 0x5C:
                raise BadPath("encoded-backslash")
            ch = chr(b)
            out.append(ch if ch in _UNRESERVED else "%" + h.upper())
            i += 3
            continue
        if c in _RAW_OK:
            out.append(c)
        elif c < " " or c == "\x7f":
            raise BadPath("control-char")
        elif c == "\\":
            raise BadPath("backslash")
        else:
            out.append(_escape(c))
        i += 1

    segments = "".join(out).split("/")
    stack: list[str] = []
    for seg in segments:
        if not seg or seg == ".":
            continue
        if seg == "..":
            if stack:
                stack.pop()
            continue
        if seg.startswith((".;", "..;")):
            raise BadPath("dot-segment-params")
        stack.append(seg)
    # RFC 3986 5.2.4 keeps the trailing slash left by a final "", "." or "..".
    if not stack:
        return "/"
    path = "/" + "/".join(stack)
    return path + "/" if segments[-1] in ("", ".", "..") else path
