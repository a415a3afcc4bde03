"""Native tokens from signers that know only docs/auth.md: an independent stdlib-only
Python signer (tests/support/native_signer.py) and the JavaScript example in the doc,
run by node. Each token must verify for the request a client would send, and nothing
the format leaves to the signer (claim encoding, order) may matter."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from proxy.auth.common import AuthInput, AuthResult, b64url_encode
from proxy.auth.keys import Key, KeyRing
from proxy.auth.native import NativeVerifier, mint_token, split_path_token, verify_token
from proxy.http.paths import BadPath, normalize_path
from tests.support import native_signer
from tests.support.doc_examples import run_doc_js_signer

SECRET = "doc-signer secret ü"
RING = KeyRing({"k7": SECRET.encode()})
NOW = 1_700_000_000
EXP = NOW + 600
CLIENT = "203.0.113.7"


def request(
    raw_path: str,
    token: str,
    bind: dict[str, list[str]] | None = None,
    *,
    style: str = "query",
    client: str = CLIENT,
) -> AuthResult | None:
    """Verify as the proxy would: the raw path normalised, the query form-encoded as a
    standard client writes it ("+" for a space), the token in the query or the path."""
    pairs = [(n, v) for n, values in (bind or {}).items() for v in values]
    query = "&".join(f"{quote_plus(n)}={quote_plus(v)}" for n, v in pairs)
    if style == "query":
        query = f"{query}&token={token}" if query else f"token={token}"
        path = normalize_path(raw_path)
        path_token = None
    else:
        # The client resolves dot segments before the token segment is put in front.
        path_token, path = split_path_token(f"/_t/{token}{normalize_path(raw_path)}")
    inp = AuthInput(path=path, query=query, client_ip=client, now=NOW, path_token=path_token)
    return NativeVerifier(RING).verify(inp)


def test_independent_signer_exact_path_prefix_ip_and_bound_parameters() -> None:
    bind = {"quality": ["hd"], "lang": ["de", "en gb"]}
    token = native_signer.sign(
        SECRET.encode(), "k7", EXP, prefix="/videos/abc/", ip="203.0.113.0/24", bind=bind
    )
    for style in ("query", "path"):
        result = request("/videos/abc/720p/1.ts", token, bind, style=style)
        assert result is not None and result.ok, (style, result)
    other = dict(bind, lang=["de", "fr"])
    assert request("/videos/abc/1.ts", token, other).reason == "bad-signature"
    assert request("/videos/abc/1.ts", token, bind, client="198.51.100.1").reason == "ip-mismatch"
    assert request("/videos/abd/1.ts", token, bind).reason == "acl-mismatch"


def test_path_with_escapes_is_double_encoded_in_the_claim() -> None:
    token = native_signer.sign(SECRET.encode(), "k7", EXP, path="/a b/ü.mp4")
    claims = base64.urlsafe_b64decode(token.partition(".")[0] + "==").decode()
    assert "p=%2Fa%2520b%2F%25C3%25BC.mp4" in claims
    assert request("/a%20b/%C3%BC.mp4", token).ok
    assert request("/a b/ü.mp4".replace(" ", "%20").replace("ü", "%c3%bc"), token).ok


def test_the_project_signer_and_the_independent_one_agree_on_meaning() -> None:
    ours = mint_token(Key("k7", SECRET.encode()), expires=EXP, path="/v/a b.mp4")
    theirs = native_signer.sign(SECRET.encode(), "k7", EXP, path="/v/a b.mp4")
    assert ours != theirs  # claim values encoded differently...
    assert request("/v/a%20b.mp4", ours).ok and request("/v/a%20b.mp4", theirs).ok  # ...same


SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="/\\%?#"),
    max_size=6,
)
RAW_PATH = st.lists(
    st.one_of(SEGMENT, st.sampled_from([".", "..", "", "%2e", "%41b", "%7e", "a%20b"])),
    min_size=1,
    max_size=5,
).map(lambda segments: "/" + "/".join(segments))
NAME = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=5
)
VALUE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw_path=RAW_PATH,
    as_prefix=st.booleans(),
    bind=st.dictionaries(
        NAME.filter(lambda n: n != "token" and n.strip() == n),
        st.lists(VALUE, min_size=1, max_size=3),
        max_size=3,
    ),
    not_before=st.none() | st.integers(NOW - 100, NOW),
    style=st.sampled_from(["query", "path"]),
)
def test_any_token_of_the_independent_signer_verifies(
    raw_path: str,
    as_prefix: bool,
    bind: dict[str, list[str]],
    not_before: int | None,
    style: str,
) -> None:
    try:
        normalize_path(raw_path)
    except BadPath:
        assume(False)
    scope: dict[str, Any] = {"prefix": raw_path} if as_prefix else {"path": raw_path}
    token = native_signer.sign(
        SECRET.encode(), "k7", EXP, not_before=not_before, bind=bind, **scope
    )
    result = request(raw_path, token, bind, style=style)
    assert result is not None and result.ok, (raw_path, bind, result)


JS_CASES: list[dict[str, Any]] = [
    {"kid": "k7", "secret": SECRET, "expires": EXP, "path": "/videos/abc/master.m3u8"},
    {"kid": "k7", "secret": SECRET, "expires": EXP, "prefix": "/videos/abc/"},
    {
        "kid": "k7",
        "secret": SECRET,
        "expires": EXP,
        "notBefore": NOW - 5,
        "ip": "203.0.113.0/24",
        "prefix": "/v/",
        "bind": {"quality": ["hd"], "lang": ["de", "en gb"], "x y": ["ä&=+"]},
    },
    {"kid": "k7", "secret": SECRET, "expires": EXP, "path": "/a%20b/%C3%BC.mp4"},
]
JS_REQUESTS = [
    ("/videos/abc/master.m3u8", None),
    ("/videos/abc/720p/seg-1.ts", None),
    ("/v/a.mp4", {"quality": ["hd"], "lang": ["de", "en gb"], "x y": ["ä&=+"]}),
    ("/a%20b/%C3%BC.mp4", None),
]


def test_the_javascript_signer_in_the_doc_runs_and_its_tokens_verify(tmp_path: Path) -> None:
    tokens = run_doc_js_signer(tmp_path, JS_CASES)
    for token, (path, bind) in zip(tokens, JS_REQUESTS, strict=True):
        for style in ("query", "path"):
            result = request(path, token, bind, style=style)
            assert result is not None and result.ok, (path, style, result)
    # And a token of the doc's signer is as strict as any: another value, refused.
    bound = JS_REQUESTS[2][1]
    assert bound is not None
    changed = dict(bound, quality=["sd"])
    assert request("/v/a.mp4", tokens[2], changed).reason == "bad-signature"


@pytest.mark.parametrize("name", ["%C3%A9", "%25C3%25A9", "%F0%9F%8E%A5", "%FF"])
def test_a_forged_token_binding_any_name_is_refused_cleanly(name: str) -> None:
    """Hostile claims (no valid MAC) naming non-ASCII bound parameters: a clean refusal,
    never an exception."""
    claims = f"k=k7&e={EXP}&p=/a&b={name}"
    token = f"{b64url_encode(claims.encode())}.{b64url_encode(bytes(32))}"
    result = verify_token(token, RING, path="/a", pairs=[("é", "1")], client_ip=CLIENT, now=NOW)
    assert result.reason == "bad-signature"
