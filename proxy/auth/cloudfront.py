"""Amazon CloudFront signed URLs and signed cookies (canned and custom policies).

Following the CloudFront Developer Guide ("Create a signed URL using a canned policy",
"... using a custom policy", "Set signed cookies using a canned/custom policy"):

* canned: the policy is not sent; it is rebuilt from the URL as
  ``{"Statement":[{"Resource":"<base URL>","Condition":{"DateLessThan":``
  ``{"AWS:EpochTime":<Expires>}}}]}`` (one line, no whitespace), where the base URL is
  the requested URL without the Expires, Signature, Key-Pair-Id and Hash-Algorithm
  parameters;
* custom: ``Policy`` carries the JSON policy (whitespace removed) in CloudFront's base64;
  Resource may hold ``*`` (any run) and ``?`` (one character) wildcards; conditions are
  DateLessThan (required), DateGreaterThan and IpAddress (one IPv4 CIDR block);
* ``Signature`` is RSA (PKCS #1 v1.5) over the policy bytes with SHA-1, or SHA-256 when
  ``Hash-Algorithm=SHA256``, in CloudFront's base64 (``+`` -> ``-``, ``=`` -> ``_``,
  ``/`` -> ``~``); ``Key-Pair-Id`` names the public key.

Signed cookies carry the same values as ``CloudFront-Expires`` / ``CloudFront-Policy``,
``CloudFront-Signature``, ``CloudFront-Key-Pair-Id`` and ``CloudFront-Hash-Algorithm``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from proxy.auth.common import (
    ACL_MISMATCH,
    BAD_SIGNATURE,
    IP_MISMATCH,
    UNKNOWN_KID,
    AuthInput,
    AuthResult,
    accept,
    cloudfront_b64_decode,
    cloudfront_b64_encode,
    deny,
    ip_in,
    parse_epoch,
    parse_network,
    window_reason,
)

SCHEME = "cloudfront"
URL_PARAMS = ("Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm")
COOKIES = tuple(f"CloudFront-{name}" for name in URL_PARAMS)
_MAX_POLICY = 4096
HashAlgorithm = Literal["SHA1", "SHA256"]


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo, as CloudFront takes it)."""
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("CloudFront public keys are RSA keys")
    return key


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (unencrypted), for minting CloudFront policies."""
    key = serialization.load_pem_private_key(
        pem.encode() if isinstance(pem, str) else pem, password=None
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("CloudFront keys are RSA keys")
    return key


def canned_policy(resource: str, expires: int) -> str:
    """The canned policy statement with whitespace removed, exactly as signed."""
    return (
        '{"Statement":[{"Resource":"' + resource + '","Condition":'
        '{"DateLessThan":{"AWS:EpochTime":' + str(int(expires)) + "}}}]}"
    )


def custom_policy(
    resource: str | None,
    *,
    expires: int,
    not_before: int | None = None,
    ip: str | None = None,
) -> str:
    condition: dict[str, Any] = {"DateLessThan": {"AWS:EpochTime": int(expires)}}
    if not_before is not None:
        condition["DateGreaterThan"] = {"AWS:EpochTime": int(not_before)}
    if ip is not None:
        condition["IpAddress"] = {"AWS:SourceIp": ip}
    statement: dict[str, Any] = {"Condition": condition}
    if resource is not None:
        statement = {"Resource": resource, **statement}
    return json.dumps({"Statement": [statement]}, separators=(",", ":"))


def _hash(algorithm: str) -> hashes.HashAlgorithm:
    return hashes.SHA256() if algorithm == "SHA256" else hashes.SHA1()


def sign_policy(
    private_key: rsa.RSAPrivateKey, policy: str, algorithm: HashAlgorithm = "SHA1"
) -> str:
    signature = private_key.sign(policy.encode("utf-8"), padding.PKCS1v15(), _hash(algorithm))
    return cloudfront_b64_encode(signature)


def signed_url_params(
    private_key: rsa.RSAPrivateKey,
    key_pair_id: str,
    *,
    resource: str,
    expires: int,
    policy: str | None = None,
    algorithm: HashAlgorithm = "SHA1",
) -> dict[str, str]:
    """The parameters to append to ``resource`` (canned unless ``policy`` is given);
    the same names prefixed with "CloudFront-" are the signed-cookie names."""
    params: dict[str, str] = {}
    if policy is None:
        params["Expires"] = str(int(expires))
        params["Signature"] = sign_policy(private_key, canned_policy(resource, expires), algorithm)
    else:
        params["Policy"] = cloudfront_b64_encode(policy.encode("utf-8"))
        params["Signature"] = sign_policy(private_key, policy, algorithm)
    params["Key-Pair-Id"] = key_pair_id
    if algorithm != "SHA1":
        params["Hash-Algorithm"] = algorithm
    return params


@lru_cache(maxsize=512)
def _resource_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def resource_matches(pattern: str, url: str) -> bool:
    return _resource_regex(pattern).fullmatch(url) is not None


class CloudFrontVerifier:
    scheme = SCHEME

    def __init__(
        self,
        public_keys: Mapping[str, rsa.RSAPublicKey],
        *,
        resource_base: str | None = None,
        sources: Iterable[Literal["query", "cookie"]] = ("query", "cookie"),
        skew: float = 0.0,
    ) -> None:
        self.public_keys = dict(public_keys)
        self.resource_base = resource_base
        self.sources = tuple(sources)
        self.skew = skew
        self.query_params = frozenset(URL_PARAMS) if "query" in self.sources else frozenset()
        self.cookies = frozenset(COOKIES) if "cookie" in self.sources else frozenset()

    def __repr__(self) -> str:
        return f"CloudFrontVerifier(key_pair_ids={sorted(self.public_keys)!r})"

    def find(self, inp: AuthInput) -> dict[str, str] | None:
        if "query" in self.sources and inp.arg("Signature") is not None:
            found = {}
            for name in URL_PARAMS:
                value = inp.arg(name)
                if value is not None:
                    found[name] = unquote(value) if "%" in value else value
            return found
        if "cookie" in self.sources and inp.cookie("CloudFront-Signature") is not None:
            found = {}
            for name, cookie in zip(URL_PARAMS, COOKIES, strict=True):
                value = inp.cookie(cookie)
                if value is not None:
                    found[name] = value
            return found
        return None

    def resource_url(self, inp: AuthInput) -> str:
        """The URL the signer signed: base, path, and the query without CloudFront's
        own parameters."""
        base = self.resource_base or f"{inp.scheme}://{inp.host}"
        own = [
            part
            for part in inp.query.split("&")
            if part and unquote(part.partition("=")[0]) not in URL_PARAMS
        ]
        return f"{base}{inp.path}?{'&'.join(own)}" if own else f"{base}{inp.path}"

    def verify(self, inp: AuthInput) -> AuthResult | None:
        found = self.find(inp)
        if found is None:
            return None
        kid = found.get("Key-Pair-Id", "")
        signature = cloudfront_b64_decode(found["Signature"])
        algorithm = found.get("Hash-Algorithm", "SHA1")
        canned = "Expires" in found
        if (
            signature is None
            or canned == ("Policy" in found)
            or algorithm not in ("SHA1", "SHA256")
        ):
            return deny(SCHEME, BAD_SIGNATURE)
        key = self.public_keys.get(kid)
        if key is None:
            return deny(SCHEME, UNKNOWN_KID, {"key_pair_id": kid})
        resource = self.resource_url(inp)
        if canned:
            expires = parse_epoch(found["Expires"])
            if expires is None:
                return deny(SCHEME, BAD_SIGNATURE)
            policy = canned_policy(resource, expires).encode("utf-8")
        else:
            decoded = cloudfront_b64_decode(found["Policy"])
            if decoded is None or len(decoded) > _MAX_POLICY:
                return deny(SCHEME, BAD_SIGNATURE)
            policy = decoded
        try:
            key.verify(signature, policy, padding.PKCS1v15(), _hash(algorithm))
        except InvalidSignature:
            return deny(SCHEME, BAD_SIGNATURE, {"key_pair_id": kid})
        if canned:
            claims: dict[str, Any] = {"key_pair_id": kid, "policy": "canned", "exp": expires}
            reason = window_reason(inp.now, expires=expires, not_before=None, skew=self.skew)
            return deny(SCHEME, reason, claims) if reason else accept(SCHEME, claims)
        return self._check_custom(policy, kid, resource, inp)

    def _check_custom(self, policy: bytes, kid: str, resource: str, inp: AuthInput) -> AuthResult:
        statement = _parse_custom(policy)
        if statement is None:
            return deny(SCHEME, BAD_SIGNATURE, {"key_pair_id": kid})
        pattern, expires, start, source_ip = statement
        claims: dict[str, Any] = {"key_pair_id": kid, "policy": "custom", "exp": expires}
        if start is not None:
            claims["nbf"] = start
        if pattern is not None:
            claims["resource"] = pattern
        if source_ip is not None:
            claims["ip"] = source_ip
        reason = window_reason(
            inp.now, expires=expires, not_before=start, skew=self.skew, inclusive_start=False
        )
        if reason:
            return deny(SCHEME, reason, claims)
        if source_ip is not None and not ip_in(inp.client_ip, source_ip):
            return deny(SCHEME, IP_MISMATCH, claims)
        if pattern is not None and not resource_matches(pattern, resource):
            return deny(SCHEME, ACL_MISMATCH, claims)
        return accept(SCHEME, claims)


def _epoch(condition: Mapping[str, Any], name: str) -> int | Literal[False] | None:
    """The AWS:EpochTime of a condition; None if absent; False if malformed."""
    if name not in condition:
        return None
    value = condition[name]
    if not isinstance(value, dict) or set(value) != {"AWS:EpochTime"}:
        return False
    epoch = value["AWS:EpochTime"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return False
    return epoch


def _parse_custom(policy: bytes) -> tuple[str | None, int, int | None, str | None] | None:
    """(Resource, DateLessThan, DateGreaterThan, AWS:SourceIp) of a custom policy, or
    None when it is not one statement of that shape."""
    try:
        document = json.loads(policy)
    except ValueError:
        return None
    if not isinstance(document, dict) or set(document) != {"Statement"}:
        return None
    statements = document["Statement"]
    if not isinstance(statements, list) or len(statements) != 1:
        return None
    statement = statements[0]
    if not isinstance(statement, dict) or not set(statement) <= {"Resource", "Condition"}:
        return None
    resource = statement.get("Resource")
    condition = statement.get("Condition")
    if (resource is not None and not isinstance(resource, str)) or not isinstance(condition, dict):
        return None
    if not set(condition) <= {"DateLessThan", "DateGreaterThan", "IpAddress"}:
        return None
    expires = _epoch(condition, "DateLessThan")
    start = _epoch(condition, "DateGreaterThan")
    if expires is None or expires is False or start is False:
        return None
    source_ip: str | None = None
    if "IpAddress" in condition:
        ip = condition["IpAddress"]
        if not isinstance(ip, dict) or set(ip) != {"AWS:SourceIp"}:
            return None
        source_ip = ip["AWS:SourceIp"]
        if not isinstance(source_ip, str) or parse_network(source_ip) is None:
            return None
    return resource, expires, start, source_ip
