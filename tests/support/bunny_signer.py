"""A bunny.net HS256 signer written from bunny.net's documentation of its current
signers ("Advanced token authentication"; the token format of BunnyWay's
BunnyCDN.TokenAuthentication 2.1), standard library only, without importing the project.
bunny's own signers are not published to a package registry, so the suite cannot run
them; this is the same algorithm, written independently.

HS256-[1-]<base64url(HMAC-SHA256(key, signature_path + expires [+ address bytes] +
signing_data))>: signature_path is token_path when set, else the URL path;
signing_data the parameters sorted by name, "name=value" with plain values, joined by
"&"; the address (IP-locked tokens, flag "1-") is 4 bytes for IPv4 and, for IPv6, the
first 8 bytes followed by 8 zero bytes. With ignore_params only token_ignore_params=true
(and token_path) are signed, and no other parameter is put in the URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from urllib.parse import quote


def address_bytes(ip: str) -> bytes:
    packed = ipaddress.ip_address(ip).packed
    return packed if len(packed) == 4 else packed[:8] + bytes(8)


def signed_url(
    path: str,
    key: str,
    expires: int,
    *,
    params: dict[str, str] | None = None,
    ip: str = "",
    token_path: str = "",
    countries: str = "",
    ignore_params: bool = False,
    directory: bool = False,
) -> str:
    """A signed relative URL for ``path`` with the query ``params`` (plain values)."""
    signed = {"token_ignore_params": "true"} if ignore_params else dict(params or {})
    if countries and not ignore_params:
        signed["token_countries"] = countries
    if token_path:
        signed["token_path"] = token_path
    ordered = sorted(signed.items())
    signing_data = "&".join(f"{k}={v}" for k, v in ordered)
    url_data = "&".join(f"{k}={quote(v, safe='')}" for k, v in ordered)
    message = (
        (token_path or path).encode()
        + str(expires).encode()
        + (address_bytes(ip) if ip else b"")
        + signing_data.encode()
    )
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    token = "HS256-" + ("1-" if ip else "") + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    tail = f"&{url_data}" if url_data else ""
    if directory:
        return f"/bcdn_token={token}{tail}&expires={expires}{path}"
    return f"{path}?token={token}{tail}&expires={expires}"
