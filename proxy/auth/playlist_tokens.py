"""Child tokens for tokenized playlists, as nginx-secure-token-module mints them.

A playlist requested with a query token that verified is sent out with a token in every
same-origin URI inside it (proxy/http/playlist_uris.py finds them). Which token:

* **scope**: a URI in the playlist's directory or below gets a prefix token for that
  directory (native `a=`, Akamai ACL `/dir/*`, CloudFront custom policy on
  `<base>/dir/*`, bunny.net `token_path`), the one every URI of a rendition shares; a
  URI elsewhere on the host gets a token for its own path only (a DASH template, whose
  name is not known, for the directory before its first `$`), so a playlist never
  hands out more than the files it names;
* **scheme and lifetime**: per route (`[routes.auth.playlists]`), default the scheme of
  the token that verified; valid for `ttl` seconds from the request;
* **address**: bound to the client when the token that verified was (bunny.net: when
  the pull zone validates addresses).

`ChildSigner` is built once per route; minted query strings are reused for a tenth of
their lifetime (at most a minute), so a live playlist polled by many viewers costs one
signature (CloudFront's RSA one is about a millisecond) per scope and address and not
one per request. `Tokenizer` is one response's: it resolves each URI and adds the token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote, urljoin, urlsplit

from config.auth import PlaylistTokenSettings
from proxy.auth import akamai, bunny, cloudfront
from proxy.auth.common import b64url_encode, cloudfront_b64_encode, parse_ip
from proxy.auth.native import mint_token
from proxy.auth.policy import AuthContext, strip_token
from proxy.http.authority import Authority, BadAuthority, parse_authority, same_authority
from proxy.http.paths import BadPath, normalize_path
from proxy.http.playlist_uris import rewrite_dash, rewrite_hls

MINTABLE = ("native", "akamai", "cloudfront", "bunny")
MEMO_ENTRIES = 4096
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# A path that is its own normal form: no escapes, dot segments or empty segments.
# A file name that needs neither resolving nor normalising: no "/", ".", "%", ":" start.
_FILE_NAME = re.compile(r"[A-Za-z0-9_~!$'()*+,;=@-][A-Za-z0-9._~!$'()*+,;=@-]*")
_PLAIN = re.compile(r"/[A-Za-z0-9_~!$&'()*+,;=:@-][A-Za-z0-9._~!$&'()*+,;=:@/-]*|/")
_AKAMAI_SAFE = "~!*/:"
_RAW_SAFE = re.compile(r"[A-Za-z0-9._~!*/:=-]*")  # sent as Akamai's signers write it


class Scope(NamedTuple):
    """What one child token covers: everything under `path` (a directory ending in
    "/"), or exactly `path` (with `query`, which CloudFront signs)."""

    prefix: bool
    path: str
    query: str = ""


@dataclass(frozen=True, slots=True)
class Minted:
    params: str  # the query parameters to append
    made: float


class ChildSigner:
    """One route's minting: its scheme, lifetime and key material."""

    def __init__(
        self,
        settings: PlaylistTokenSettings,
        ctx: AuthContext,
        *,
        native_param: str,
        schemes: tuple[str, ...],
    ) -> None:
        self.settings = settings
        self.ttl = settings.ttl
        self.fixed = settings.scheme
        self.schemes = frozenset(s for s in schemes if s in MINTABLE)
        self.ctx = ctx
        self.native_param = native_param
        self.reuse = min(self.ttl / 10, 60.0)
        self._memo: dict[tuple[str, Scope, str | None, str], Minted] = {}
        if "native" in ((self.fixed,) if self.fixed else self.schemes):
            ctx.keys.signing_key()  # LookupError now, not per request: no key to choose

    def __repr__(self) -> str:
        return f"ChildSigner(scheme={self.fixed!r}, ttl={self.ttl})"

    def scheme_for(self, verified: str) -> str | None:
        """The scheme child tokens are minted in, for a request that verified with
        `verified`; None: no rewrite."""
        if self.fixed is not None:
            return self.fixed
        return verified if verified in self.schemes else None

    def param_names(self, scheme: str) -> frozenset[str]:
        """The query parameters a child token of `scheme` travels in (replaced when a
        URI already carries them)."""
        if scheme == "native":
            return frozenset({self.native_param})
        if scheme == "akamai":
            assert self.ctx.settings.akamai is not None
            return frozenset({self.ctx.settings.akamai.token_name})
        if scheme == "cloudfront":
            return frozenset(cloudfront.URL_PARAMS)
        return frozenset(bunny.OWN_PARAMS)

    def params(self, scheme: str, scope: Scope, ip: str | None, base: str, now: float) -> str:
        """The query parameters of a token of `scheme` for `scope` (`base`:
        scheme://host for CloudFront resources), minted or reused."""
        memo_key = (scheme, scope, ip, base)
        found = self._memo.get(memo_key)
        if found is not None and now - found.made < self.reuse:
            return found.params
        expires = int(now + self.ttl)
        params = self._mint(scheme, scope, ip, base, expires)
        if len(self._memo) >= MEMO_ENTRIES:
            self._memo.clear()  # bounded; minting again is cheap enough
        self._memo[memo_key] = Minted(params, now)
        return params

    def _mint(self, scheme: str, scope: Scope, ip: str | None, base: str, expires: int) -> str:
        if scheme == "native":
            return self._native(scope, ip, expires)
        if scheme == "akamai":
            return self._akamai(scope, ip, expires)
        if scheme == "cloudfront":
            return self._cloudfront(scope, ip, base, expires)
        return self._bunny(scope, ip, expires)

    def _native(self, scope: Scope, ip: str | None, expires: int) -> str:
        key = self.ctx.keys.signing_key()
        if scope.prefix:
            token = mint_token(key, expires=expires, ip=ip, prefix=scope.path)
        else:
            token = mint_token(key, expires=expires, ip=ip, path=scope.path)
        return f"{self.native_param}={token}"

    def _akamai(self, scope: Scope, ip: str | None, expires: int) -> str:
        spec, key = self.ctx.settings.akamai, self.ctx.akamai_key
        assert spec is not None and key is not None
        token = akamai.generate_token(
            key.hex(),
            exp=expires,
            acl=scope.path + "*" if scope.prefix else scope.path,
            ip=ip,
            salt=spec.salt.get_secret_value() if spec.salt else None,
            algorithm=spec.algorithm,
            field_delimiter=spec.field_delimiter,
            acl_delimiter=spec.acl_delimiter,
            escape=spec.escape_early,
        )
        if not _RAW_SAFE.fullmatch(token):
            # Percent-encoded whole ("=" too), so the verifier form-decodes it back
            # exactly whatever the path holds.
            token = quote(token, safe=_AKAMAI_SAFE)
        return f"{spec.token_name}={token}"

    def _cloudfront(self, scope: Scope, ip: str | None, base: str, expires: int) -> str:
        signing = self.ctx.cloudfront_signing
        assert signing is not None
        key_pair_id, private_key = signing
        if scope.prefix:
            resource = f"{base}{scope.path}*"
        else:
            resource = f"{base}{scope.path}" + (f"?{scope.query}" if scope.query else "")
        policy = cloudfront.custom_policy(resource, expires=expires, ip=ip)
        signature = cloudfront.sign_policy(private_key, policy)
        encoded = cloudfront_b64_encode(policy.encode("utf-8"))
        return f"Policy={encoded}&Signature={signature}&Key-Pair-Id={key_pair_id}"

    def _bunny(self, scope: Scope, ip: str | None, expires: int) -> str:
        spec, key = self.ctx.settings.bunny, self.ctx.bunny_key
        assert spec is not None and key is not None
        own: list[tuple[str, str]] = [("token_ignore_params", "true")]
        if scope.prefix:
            own.append(("token_path", quote(scope.path, safe="")))
        path = scope.path
        if "hs256" in spec.forms:
            data = bunny.parameter_data(own, keep_empty=True, own_only=True).encode()
            message = f"{path}{expires}".encode()
            flag = ""
            if spec.ip_validation and ip is not None:
                packed = bunny.packed_address(ip)
                if packed is not None:
                    message += packed
                    flag = bunny.IP_LOCKED
            digest = hmac.new(key, message + data, hashlib.sha256).digest()
            token = f"HS256-{flag}{b64url_encode(digest)}"
        else:
            data_text = bunny.parameter_data(own, keep_empty=False, own_only=True)
            text_ip = ip if spec.ip_validation and ip is not None else ""
            digest = hashlib.sha256(key + f"{path}{expires}{text_ip}{data_text}".encode()).digest()
            token = b64url_encode(digest)
        tail = "&".join(f"{name}={value}" for name, value in own)
        return f"token={token}&expires={expires}&{tail}"


def child_ip(signer_scheme: str, claims: Mapping[str, Any], client: str) -> str | None:
    """The address child tokens are bound to: none unless the token that verified was
    bound. Native and CloudFront tokens take a CIDR block, so they keep the parent's;
    Akamai and bunny.net bind one address, the client's."""
    parent = claims.get("ip")
    if not parent:
        return None
    if signer_scheme in ("native", "cloudfront") and isinstance(parent, str):
        return parent
    return client if parse_ip(client) is not None else None


class Tokenizer:
    """One playlist response's rewrite: resolves each URI against the playlist's URL,
    keeps other hosts' URIs as they are, and appends the child token of its scope."""

    def __init__(
        self,
        signer: ChildSigner,
        scheme: str,
        *,
        host: str,
        url_scheme: str,
        path: str,
        ip: str | None,
        now: float | None = None,
    ) -> None:
        self.signer = signer
        self.scheme = scheme
        self.authority: Authority | None
        try:
            self.authority = parse_authority(host)
        except BadAuthority:
            self.authority = None
        self.base = f"{url_scheme}://{host}"
        resource = (
            signer.ctx.settings.cloudfront.resource_base
            if scheme == "cloudfront" and signer.ctx.settings.cloudfront
            else None
        )
        self.resource_base = resource or self.base
        self.url = self.base + path
        self.path = path
        self.dir = path[: path.rfind("/") + 1] or "/"
        self.ip = ip
        self.now = time.time() if now is None else now
        self.names = signer.param_names(scheme)
        self._minted: dict[Scope, str] = {}
        self._here: str | None = None  # the token of the playlist's own directory
        self._fast = not (scheme == "akamai" and self._akamai_unsafe(self.dir))

    def rewrite(self, kind: str, text: str, max_uris: int | None = None) -> str | None:
        """The playlist with child tokens, or None when it cannot be read."""
        if self.authority is None:
            return None
        if kind == "hls":
            return rewrite_hls(text, self.replace, max_uris=max_uris)
        return rewrite_dash(text, self.url, self.replace, max_uris=max_uris)

    def replace(self, uri: str, base: str | None, template: bool) -> str | None:
        """`uri` with its child token, or None (another host or scheme, unreadable)."""
        if base is None and self._fast and _FILE_NAME.fullmatch(uri):
            # The common line: a file beside the playlist (a segment), in its own scope.
            here = self._here
            if here is None:
                here = self._here = self._params(Scope(True, self.dir))
            return f"{uri}?{here}"
        target = self.resolve(uri, base, template)
        if target is None:
            return None
        path, query = target
        scope = self.scope(path, query, template)
        if scope is None:
            return None
        return add_params(uri, self._params(scope), self.names)

    def _params(self, scope: Scope) -> str:
        params = self._minted.get(scope)
        if params is None:
            params = self.signer.params(self.scheme, scope, self.ip, self.resource_base, self.now)
            self._minted[scope] = params
        return params

    def resolve(self, uri: str, base: str | None, template: bool = False) -> tuple[str, str] | None:
        """(normalised path, query) of a same-origin URI, else None. Of a DASH template
        only the folder is normalised: its `$Number%05d$` is no escape."""
        if (
            base is None
            and uri
            and uri[0] not in "/?#"
            and not _SCHEME.match(uri)
            and "\\" not in uri
        ):
            ref, _, query = uri.partition("#")[0].partition("?")
            path = self.dir + ref
        else:
            try:
                parts = urlsplit(urljoin(base or self.url, uri))
                if parts.scheme not in ("http", "https"):
                    return None
                if parts.netloc and not same_authority(
                    parse_authority(parts.netloc),
                    self.authority,  # type: ignore[arg-type]
                ):
                    return None
            except (BadAuthority, ValueError):
                return None
            path, query = parts.path or "/", parts.query
        name = ""
        if template and "$" in path:
            cut = path.rfind("/", 0, path.find("$")) + 1
            path, name = path[:cut] or "/", path[cut:]
        if not _PLAIN.fullmatch(path) or "/." in path or "//" in path:
            try:
                path = normalize_path(path)
            except BadPath:
                return None
        if name:
            path = path.rstrip("/") + "/" + name
        return path, query

    def scope(self, path: str, query: str, template: bool) -> Scope | None:
        here = self.dir
        if template:
            cut = path.find("$")
            directory = path[: path.rfind("/", 0, cut) + 1] if cut >= 0 else path
            directory = directory[: directory.rfind("/") + 1]
            scope = Scope(True, here if directory.startswith(here) else directory)
        elif path.startswith(here):
            scope = Scope(True, here)
        else:
            scope = Scope(False, path, strip_token(query, self.names) if query else "")
        if self.scheme == "akamai" and self._akamai_unsafe(scope.path):
            return None
        return scope

    def _akamai_unsafe(self, path: str) -> bool:
        """A path the ACL field cannot spell (its delimiters, a wildcard of its own)."""
        spec = self.signer.ctx.settings.akamai
        if spec is None:
            return True
        return any(c in path for c in (spec.acl_delimiter, spec.field_delimiter, "*", "?"))


def add_params(uri: str, params: str, names: frozenset[str]) -> str:
    """`uri` with `params` appended to its query (token parameters it already carried,
    `names`, replaced), before any fragment."""
    head, hash_mark, fragment = uri.partition("#")
    if "?" in head:
        path, _, query = head.partition("?")
        kept = strip_token(query, names)
        head = f"{path}?{kept}&{params}" if kept else f"{path}?{params}"
    else:
        head = f"{head}?{params}"
    return head + hash_mark + fragment
