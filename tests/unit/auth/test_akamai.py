"""Akamai EdgeAuth tokens, with expected values computed here step by step from the
EdgeAuth-Token-Python description (fields joined with "~", HMAC keyed with the
hex-decoded key, lower-case hex digest appended as hmac=), and tokens from Akamai's own
generator (PyPI akamai-edgeauth)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.auth.akamai import AkamaiVerifier, acl_allows, generate_token
from proxy.auth.common import AuthInput, AuthResult
from tests.support.edgeauth import EdgeAuth

KEY_HEX = "52a152a152a152a152a152a152a152a1"
KEY = bytes.fromhex(KEY_HEX)
NOW = 1_700_000_000
CLIENT = "198.51.100.7"


def edgeauth(body: str, extra: str = "", algorithm: str = "sha256") -> str:
    """The published algorithm: HMAC(hexdecode(key), body [+ ~url=... / ~salt=...])."""
    digest = hmac.new(KEY, (body + extra).encode(), getattr(hashlib, algorithm)).hexdigest()
    return f"{body}~hmac={digest}"


def run(
    verifier: AkamaiVerifier,
    *,
    path: str,
    query: str = "",
    headers: dict[str, str] | None = None,
    now: float = NOW,
    client: str = CLIENT,
) -> AuthResult | None:
    inp = AuthInput(path=path, query=query, headers=headers or {}, client_ip=client, now=now)
    return verifier.verify(inp)


def test_acl_token_vector() -> None:
    token = edgeauth(f"st={NOW - 10}~exp={NOW + 300}~acl=/videos/abc/*")
    assert generate_token(KEY_HEX, st=NOW - 10, exp=NOW + 300, acl="/videos/abc/*") == token
    result = run(AkamaiVerifier(KEY), path="/videos/abc/master.m3u8", query=f"__token__={token}")
    assert result is not None and result.ok, result
    assert result.claims["acl"] == ("/videos/abc/*",)


def test_url_token_vector_hashes_the_path_but_does_not_carry_it() -> None:
    token = edgeauth(f"exp={NOW + 300}", "~url=/videos/a.mp4")
    assert "url=" not in token
    assert generate_token(KEY_HEX, exp=NOW + 300, url="/videos/a.mp4") == token
    verifier = AkamaiVerifier(KEY)
    assert run(verifier, path="/videos/a.mp4", query=f"__token__={token}").ok
    other = run(verifier, path="/videos/b.mp4", query=f"__token__={token}")
    assert other is not None and other.reason == "bad-signature"


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5"])
def test_algorithms(algorithm: str) -> None:
    token = edgeauth(f"exp={NOW + 300}~acl=/*", algorithm=algorithm)
    ok = run(AkamaiVerifier(KEY, algorithm=algorithm), path="/x", query=f"__token__={token}")
    assert ok is not None and ok.ok
    wrong = "md5" if algorithm != "md5" else "sha1"
    bad = run(AkamaiVerifier(KEY, algorithm=wrong), path="/x", query=f"__token__={token}")
    assert bad is not None and bad.reason == "bad-signature"


def test_ip_id_data_fields_in_order() -> None:
    body = f"ip=203.0.113.7~st={NOW}~exp={NOW + 60}~acl=/a/*~id=session-1~data=hello"
    token = edgeauth(body)
    assert (
        generate_token(
            KEY_HEX,
            ip="203.0.113.7",
            st=NOW,
            exp=NOW + 60,
            acl="/a/*",
            session_id="session-1",
            data="hello",
        )
        == token
    )
    verifier = AkamaiVerifier(KEY)
    good = run(verifier, path="/a/b", query=f"__token__={token}", client="203.0.113.7")
    assert good is not None and good.ok
    assert good.claims["id"] == "session-1" and good.claims["data"] == "hello"
    bad = run(verifier, path="/a/b", query=f"__token__={token}", client="203.0.113.8")
    assert bad is not None and bad.reason == "ip-mismatch"


def test_salt_and_escape_early() -> None:
    path = "/videos/a%20b.mp4"
    escaped = "%2fvideos%2fa%2520b.mp4"  # quote_plus, escapes in lower case
    token = edgeauth(f"exp={NOW + 60}~data=a%20b", f"~url={escaped}~salt=pepper")
    verifier = AkamaiVerifier(KEY, escape_early=True, salt="pepper")
    result = run(verifier, path=path, query=f"__token__={token}")
    assert result is not None and result.ok, result
    assert result.claims["data"] == "a b"
    unsalted = run(AkamaiVerifier(KEY, escape_early=True), path=path, query=f"__token__={token}")
    assert unsalted is not None and unsalted.reason == "bad-signature"


def test_token_name_and_sources() -> None:
    token = edgeauth(f"exp={NOW + 60}~acl=/*")
    hdnts = AkamaiVerifier(KEY, token_name="hdnts", sources=("query", "cookie", "header"))
    assert run(hdnts, path="/a", query=f"hdnts={token}").ok
    assert run(hdnts, path="/a", headers={"cookie": f"hdnts={token}"}).ok
    assert run(hdnts, path="/a", headers={"hdnts": token}).ok
    assert run(hdnts, path="/a", query=f"__token__={token}") is None
    # Percent-encoded as a whole in the query.
    encoded = token.replace("=", "%3D").replace("~", "%7E").replace("/", "%2F").replace("*", "%2A")
    assert run(hdnts, path="/a", query=f"hdnts={encoded}").ok
    query_only = AkamaiVerifier(KEY, sources=("query",))
    assert run(query_only, path="/a", headers={"cookie": f"__token__={token}"}) is None


@pytest.mark.parametrize(
    ("now", "reason"),
    [(NOW + 59, ""), (NOW + 60, "expired"), (NOW - 1, "not-yet-valid"), (NOW, "")],
)
def test_window(now: float, reason: str) -> None:
    token = edgeauth(f"st={NOW}~exp={NOW + 60}~acl=/*")
    result = run(AkamaiVerifier(KEY), path="/a", query=f"__token__={token}", now=now)
    assert result is not None and result.reason == reason


@pytest.mark.parametrize(
    ("acl", "path", "allowed"),
    [
        ("/videos/abc/*", "/videos/abc/master.m3u8", True),
        ("/videos/abc/*", "/videos/abc/", True),
        ("/videos/abc/*", "/videos/abcd/x", False),
        ("/videos/abc/*", "/videos/abc/../secret", False),  # normalised to /videos/secret
        ("/videos/abc/*", "/videos/abc/%2e%2e/secret", False),
        ("/videos/abc/*", "/videos//abc/x", True),  # normalised to /videos/abc/x
        ("/videos/abc/*", "/videos/abc/%2Fsecret", False),  # encoded slash refused
        ("/a/*!/b/*", "/b/x", True),  # "!" separates ACLs
        ("/a/*!/b/*", "/c/x", False),
        ("/a/*/master.m3u8", "/a/x/y/master.m3u8", True),  # "*" crosses segments
        ("/a/file.mp4", "/a/file.mp4", True),
        ("/a/file.mp4", "/a/file.mp4x", False),
        ("/*", "/anything/at/all", True),
    ],
)
def test_acl_wildcards_and_normalisation(acl: str, path: str, allowed: bool) -> None:
    token = edgeauth(f"exp={NOW + 60}~acl={acl}")
    result = run(AkamaiVerifier(KEY), path=path, query=f"__token__={token}")
    assert result is not None and result.ok is allowed, result
    if not allowed:
        assert result.reason == "acl-mismatch"


def test_acl_allows_is_literal_except_for_the_wildcards() -> None:
    assert acl_allows("/a.b/*", "/a.b/x")
    assert not acl_allows("/a.b/*", "/axb/x")  # "." is not a regex wildcard
    assert not acl_allows("", "/x")


@pytest.mark.parametrize(
    "token",
    [
        "exp=1~hmac=zz",
        f"exp={NOW + 60}~acl=/*~hmac=" + "A" * 64,  # upper-case hex is not EdgeAuth's
        f"acl=/*~exp={NOW + 60}~hmac=" + "0" * 64,  # fields out of order
        f"exp={NOW + 60}~exp={NOW + 60}~hmac=" + "0" * 64,
        f"exp={NOW + 60}~foo=1~hmac=" + "0" * 64,
        "hmac=" + "0" * 64,
        f"exp={NOW + 60}~acl=/*~hmac=" + "0" * 63,  # odd-length hex
        "garbage",
        "",
    ],
)
def test_malformed(token: str) -> None:
    result = run(AkamaiVerifier(KEY), path="/a", query=f"__token__={token}")
    assert result is not None and result.reason == "bad-signature"


# -- Akamai's own generator: "?" in ACLs, tokens as clients send them ---------------------


@pytest.mark.parametrize(
    ("acl", "path", "allowed"),
    [
        ("/v/seg-?.ts", "/v/seg-1.ts", True),
        ("/v/seg-?.ts", "/v/seg-12.ts", False),  # "?" is exactly one character
        ("/v/seg-?.ts", "/v/seg-.ts", False),
        ("/v/??/*", "/v/hd/a.ts", True),
        ("/v/??/*", "/v/sd1/a.ts", False),
        ("/v/?", "/v/", False),
    ],
)
def test_question_mark_wildcard_with_edgeauth_tokens(acl: str, path: str, allowed: bool) -> None:
    token = EdgeAuth(key=KEY_HEX, end_time=NOW + 60).generate_acl_token(acl)
    result = run(AkamaiVerifier(KEY), path=path, query=urlencode({"__token__": token}))
    assert result is not None and result.ok is allowed, (acl, path, result)


@pytest.mark.parametrize("escape_early", [False, True])
def test_form_encoded_query_token_with_a_space(escape_early: bool) -> None:
    """requests/httpx/urlencode write a space as "+": the token still verifies, and a
    "+" that is the token's own (escape_early's space) survives as "%2B"."""
    signer = EdgeAuth(
        key=KEY_HEX,
        end_time=NOW + 60,
        payload="user 42 / plan: gold",
        session_id="s 1",
        escape_early=escape_early,
    )
    token = signer.generate_acl_token(["/videos/abc/*", "/videos/x?z/*"])
    verifier = AkamaiVerifier(KEY, escape_early=escape_early)
    form = urlencode({"__token__": token})  # quote_plus: " " -> "+", "+" -> "%2B"
    assert ("+" in form) is not escape_early
    result = run(verifier, path="/videos/abc/1.ts", query=form)
    assert result is not None and result.ok, result
    assert result.claims["data"] == "user 42 / plan: gold"
    percent = "__token__=" + quote(token, safe="")  # "%20" for a space
    assert run(verifier, path="/videos/abc/1.ts", query=percent).ok
    # Sent raw, as a URL built by string formatting and requoted by requests.
    raw = token.replace(" ", "%20")
    assert run(verifier, path="/videos/abc/1.ts", query=f"__token__={raw}").ok


def test_url_token_from_edgeauth() -> None:
    token = EdgeAuth(key=KEY_HEX, end_time=NOW + 60).generate_url_token("/videos/a.mp4")
    verifier = AkamaiVerifier(KEY)
    assert run(verifier, path="/videos/a.mp4", query=urlencode({"__token__": token})).ok
    other = run(verifier, path="/videos/b.mp4", query=urlencode({"__token__": token}))
    assert other is not None and other.reason == "bad-signature"


def glob_reference(pattern: str, path: str) -> bool:
    """A plain backtracking glob: "*" any run, "?" one character, the rest literal."""
    if not pattern:
        return not path
    head = pattern[0]
    if head == "*":
        return any(glob_reference(pattern[1:], path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    return (head == "?" or head == path[0]) and glob_reference(pattern[1:], path[1:])


@given(st.text("ab/.*?+[]()\\", max_size=8), st.text("ab/.*?+[]()\\", max_size=10))
def test_acl_patterns_match_like_a_plain_glob(pattern: str, path: str) -> None:
    assert acl_allows(pattern, path) is (bool(pattern) and glob_reference(pattern, path))


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=16)


@given(payload=TEXT, session=TEXT, escape_early=st.booleans(), form=st.booleans())
def test_any_payload_sent_by_a_standard_client_verifies(
    payload: str, session: str, escape_early: bool, form: bool
) -> None:
    fields = {"payload": payload or None, "session_id": session or None}
    if "~" in payload + session:
        return  # the field delimiter (not escaped even by escape_early): no one can split it
    token = EdgeAuth(
        key=KEY_HEX, end_time=NOW + 60, escape_early=escape_early, **fields
    ).generate_acl_token("/v/*")
    query = urlencode({"__token__": token}) if form else "__token__=" + quote(token, safe="")
    result = run(AkamaiVerifier(KEY, escape_early=escape_early), path="/v/a.ts", query=query)
    assert result is not None and result.ok, (token, result)


def test_glob_reference_sanity() -> None:
    assert glob_reference("/a/*", "/a/b/c") and not glob_reference("/a/?", "/a/bc")
