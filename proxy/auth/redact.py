"""Token values out of everything edgeshield writes down: the access log, the admin page's
top objects and purges, auth log lines.

``Redactor.target`` is the one place that decides: given a request target (or a cache
key, ``host/path?query``), it replaces each token value with ``REDACTED`` and leaves
everything else byte for byte. A log reader sees that a token was there, and which
parameter, but has nothing to replay: a prefix token is valid for a whole directory.

What counts as a token, whatever route the request reached (or none: a 404 or a 400
still logs its target):

* query parameters: every scheme's names with their default configuration, plus the
  configured ones (native ``param`` per route, Akamai ``token_name``, nginx
  ``$arg_NAME``). Defaults stay redacted even when a scheme is not configured, since a
  signed URL may pass through to an origin that checks it. Names are compared decoded
  and case-insensitively, and ``;`` separates like ``&``, so a variant spelling an
  origin might accept is redacted too;
* the path segment after a native path marker (``/_t/<token>/``), anywhere in the path
  and however encoded (the path is normalised before it is split);
* a bunny.net directory token segment (``/bcdn_token=...``), whole.

Cookies and Authorization are never written out at all."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from config.auth import AuthSettings
from proxy.auth.bunny import OWN_PARAMS as BUNNY_PARAMS
from proxy.auth.bunny import PATH_MARKER as BUNNY_MARKER
from proxy.auth.cloudfront import URL_PARAMS as CLOUDFRONT_PARAMS
from proxy.auth.native import DEFAULT_MARKER, DEFAULT_PARAM
from proxy.auth.nginx import args_in, parse_expression

__all__ = ["DEFAULT_PARAMS", "REDACTED", "Redactor"]

REDACTED = "REDACTED"
DEFAULT_PARAMS = frozenset(
    name.casefold()
    for name in (
        DEFAULT_PARAM,  # native
        "__token__",  # Akamai's default token_name
        "hdnts",  # Akamai's other common one
        *CLOUDFRONT_PARAMS,
        *BUNNY_PARAMS,
        "md5",  # nginx secure_link's documented $arg_md5,$arg_expires
        "expires",
    )
)
_BUNNY_SEGMENT = BUNNY_MARKER[1:].casefold()  # "bcdn_token="
_QUERY_SEPARATORS = re.compile(r"([&;])")


@dataclass(frozen=True, slots=True)
class Redactor:
    params: frozenset[str] = DEFAULT_PARAMS  # casefolded parameter names
    markers: frozenset[str] = frozenset({DEFAULT_MARKER.casefold()})  # native path markers

    @classmethod
    def from_settings(cls, auth: AuthSettings, route_params: Iterable[str | None] = ()) -> Redactor:
        """The defaults plus every name ``[auth]`` configures; ``route_params``: the
        routes' own native ``param`` overrides."""
        names = {auth.native.param, *(p for p in route_params if p)}
        if auth.akamai is not None:
            names.add(auth.akamai.token_name)
        if auth.nginx is not None:
            names.update(args_in(parse_expression(auth.nginx.secure_link)))
        return cls(
            DEFAULT_PARAMS | {n.casefold() for n in names},
            frozenset({DEFAULT_MARKER.casefold(), auth.native.path_marker.casefold()}),
        )

    def target(self, target: str) -> str:
        """``target`` with every token value replaced by ``REDACTED``; unchanged (the same
        object) when it carries none."""
        path, question, query = target.partition("?")
        shown_path = self.path(path)
        shown_query = self.query(query) if question else query
        if shown_path is path and shown_query is query:
            return target
        return shown_path + question + shown_query

    def path(self, path: str) -> str:
        if "/" not in path:
            return path
        segments = path.split("/")
        changed = False
        for i, segment in enumerate(segments):
            plain = _decoded(segment).casefold()
            if plain.startswith(_BUNNY_SEGMENT):
                segments[i] = BUNNY_MARKER[1:] + REDACTED
                changed = True
            elif plain in self.markers and segments[i + 1 :] not in ([], [""]):
                if _may_shift(segments[i + 1 :]):
                    # Normalising may pull any later segment into the token's place.
                    return "/".join([*segments[: i + 1], REDACTED])
                segments[i + 1] = REDACTED
                changed = True
        return "/".join(segments) if changed else path

    def query(self, query: str) -> str:
        if "=" not in query:
            return query  # no values, nothing secret
        parts = _QUERY_SEPARATORS.split(query)
        changed = False
        for i in range(0, len(parts), 2):  # odd indexes are the separators
            name, equals, value = parts[i].partition("=")
            if value and _decoded(name, plus=True).casefold() in self.params:
                parts[i] = name + equals + REDACTED
                changed = True
        return "".join(parts) if changed else query


def _decoded(text: str, *, plus: bool = False) -> str:
    if "%" in text or (plus and "+" in text):
        return unquote_plus(text) if plus else unquote(text)
    return text


def _may_shift(segments: list[str]) -> bool:
    """Whether normalising the path could move a later segment: a dot segment, or an
    empty one (duplicate slashes are merged) anywhere but at the end."""
    last = len(segments) - 1
    return any((not s and i < last) or _decoded(s) in (".", "..") for i, s in enumerate(segments))
