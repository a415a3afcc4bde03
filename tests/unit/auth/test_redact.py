"""The redactor (proxy/auth/redact.py): for any token of any scheme, wherever it travels
in a target, the secret never comes out, and everything that is not a token stays."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from config.auth import AuthSettings
from proxy.auth.common import query_pairs
from proxy.auth.native import split_path_token
from proxy.auth.redact import DEFAULT_PARAMS, REDACTED, Redactor
from proxy.http.paths import BadPath, normalize_path
from proxy.ops.top_objects import TopObjects

DEFAULT = Redactor()
CONFIGURED = Redactor.from_settings(
    AuthSettings.model_validate(
        {
            "keys": {"k1": {"secret": "s"}, "aka": {"secret": "0a0b"}},
            "native": {"param": "sig", "path_marker": "_s"},
            "akamai": {"key": "aka", "token_name": "edge_tok"},
            "nginx": {"secure_link": "$arg_h,$arg_e"},
        }
    ),
    ["rtok", None],
)
SCHEME_PARAMS = sorted(CONFIGURED.params)
# Secrets share no character with the non-secret parts or the marker, so "the secret is
# not in the output" cannot pass or fail by coincidence.
SECRETS = st.text(alphabet="0123456789XYZQ-_~", min_size=6, max_size=40)
PLAIN = st.text(alphabet="abfghijklmnopuvw", min_size=1, max_size=8)
SEGMENT = PLAIN.filter(lambda s: s not in ("_t", "_s"))
OTHER_NAME = PLAIN.filter(lambda s: s.casefold() not in CONFIGURED.params)


def spelled(name: str, data: st.DataObject) -> str:
    """A parameter name as a client might spell it: any case, any characters escaped."""
    out = []
    for ch in name:
        ch = data.draw(st.sampled_from([ch, ch.upper(), ch.lower()]))
        out.append(f"%{ord(ch):02X}" if data.draw(st.booleans()) else ch)
    return "".join(out)


@given(
    st.data(),
    st.lists(st.tuples(OTHER_NAME, PLAIN), max_size=4),
    st.lists(SEGMENT, min_size=1, max_size=4),
    SECRETS,
)
@settings(max_examples=400, deadline=None)
def test_query_tokens_never_come_out(
    data: st.DataObject, others: list[tuple[str, str]], path: list[str], secret: str
) -> None:
    name = data.draw(st.sampled_from(SCHEME_PARAMS))
    token = f"{spelled(name, data)}={secret}"
    params = [f"{k}={v}" for k, v in others]
    params.insert(data.draw(st.integers(0, len(params))), token)
    separator = data.draw(st.sampled_from(["&", ";"]))
    target = "/" + "/".join(path) + "?" + separator.join(params)
    shown = CONFIGURED.target(target)
    assert secret not in shown
    assert shown.startswith("/" + "/".join(path) + "?")  # the path is untouched
    for pair in params:
        if pair != token:
            assert pair in shown.partition("?")[2].split(separator)  # stays, as sent


@given(
    st.lists(SEGMENT, max_size=3),
    st.lists(SEGMENT, max_size=3),
    SECRETS,
    st.sampled_from(["_t", "%5Ft", "_%74", "_s", "_S"]),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_path_tokens_never_come_out(
    before: list[str], after: list[str], secret: str, marker: str, trailing: bool
) -> None:
    path = "/".join(["", *before, marker, secret, *after]) + ("/" if trailing else "")
    shown = CONFIGURED.target(path + "?v=1")
    assert secret not in shown
    assert (
        shown
        == "/".join(["", *before, marker, REDACTED, *after]) + ("/" if trailing else "") + "?v=1"
    )


@given(SECRETS, st.integers(0, 2**31), st.lists(SEGMENT, min_size=1, max_size=3))
@settings(max_examples=200, deadline=None)
def test_bunny_directory_tokens_never_come_out(secret: str, expires: int, rest: list[str]) -> None:
    tail = "/" + "/".join(rest)
    path = f"/bcdn_token={secret}&expires={expires}&token_path=%2F{rest[0]}%2F{tail}"
    shown = DEFAULT.target(path)
    assert secret not in shown
    assert shown == f"/bcdn_token={REDACTED}{tail}"


# What the proxy itself would read as a token from a redacted target is REDACTED or
# nothing: checked on arbitrary paths, through the same normalisation the proxy uses, so
# dot segments and duplicate slashes cannot move a secret into the token's place.
RAW_SEGMENTS = st.sampled_from(["_t", "%5ft", ".", "..", "%2e", "%2E%2e", "", "a", "TOK", "b"])


@given(st.lists(RAW_SEGMENTS, max_size=8))
@settings(max_examples=1000, deadline=None)
def test_no_path_token_survives_normalisation(segments: list[str]) -> None:
    raw = "/" + "/".join(segments)
    try:
        normal = normalize_path(DEFAULT.path(raw))
    except BadPath:
        return
    token, _ = split_path_token(normal)
    assert token in (None, "", REDACTED)


@given(st.text(alphabet="&;=%+_tokenTOKEsigmd5xpr2Ef", max_size=40))
@settings(max_examples=1000, deadline=None)
def test_no_query_token_survives(query: str) -> None:
    shown = DEFAULT.query(query)
    for part in shown.replace(";", "&").split("&"):
        for name, value in query_pairs(part):
            if name.casefold() in DEFAULT_PARAMS:
                assert value in ("", REDACTED)


@given(st.text(max_size=60))
@settings(max_examples=500, deadline=None)
def test_any_text_is_handled(text: str) -> None:
    shown = DEFAULT.target(text)
    assert isinstance(shown, str)
    assert DEFAULT.target(shown) == shown  # redacting twice changes nothing more


@given(st.lists(SEGMENT, max_size=4), st.lists(st.tuples(OTHER_NAME, PLAIN), max_size=4))
@settings(max_examples=200, deadline=None)
def test_targets_without_tokens_come_back_as_they_are(
    path: list[str], others: list[tuple[str, str]]
) -> None:
    target = "/" + "/".join(path)
    if others:
        target += "?" + "&".join(f"{k}={v}" for k, v in others)
    assume(all(k.casefold() not in DEFAULT.params for k, _ in others))
    assert DEFAULT.target(target) is target


def test_every_scheme_is_covered_by_default() -> None:
    shown = DEFAULT.target(
        "/_t/n4tive/v/a.ts?token=q1&__token__=ak1&hdnts=ak2&Signature=cf1&Policy=cf2"
        "&Key-Pair-Id=K2J&Expires=9&md5=ng1&expires=9&token_path=%2Fv%2F&keep=1"
    )
    assert shown == (
        "/_t/REDACTED/v/a.ts?token=REDACTED&__token__=REDACTED&hdnts=REDACTED"
        "&Signature=REDACTED&Policy=REDACTED&Key-Pair-Id=REDACTED&Expires=REDACTED"
        "&md5=REDACTED&expires=REDACTED&token_path=REDACTED&keep=1"
    )


def test_configured_names_and_cache_keys() -> None:
    for name in ("sig", "rtok", "edge_tok", "h", "e", "token"):
        assert CONFIGURED.query(f"{name}=x&k=1") == f"{name}={REDACTED}&k=1"
    assert DEFAULT.query("sig=x") == "sig=x"  # not a token unless configured
    # a cache key (host + path + query) is a target too
    assert (
        CONFIGURED.target("cdn.example/_s/abc/v.mp4?h=1")
        == "cdn.example/_s/REDACTED/v.mp4?h=REDACTED"
    )
    # a dot segment after the marker could pull any later segment into place: all goes
    assert DEFAULT.target("/_t/a/../secret/x.ts?v=1") == "/_t/REDACTED?v=1"
    assert DEFAULT.target("/_t//secret/x.ts") == "/_t/REDACTED"


def test_top_objects_are_shown_redacted_and_merged() -> None:
    table = TopObjects(8)
    table.add("h/keep/a.mp4?token=first", 2)
    table.add("h/plain.mp4")
    fast = [("h/keep/a.mp4?token=second", 3)]
    assert table.top(5, iter(fast), DEFAULT.target) == [
        ("h/keep/a.mp4?token=REDACTED", 5),
        ("h/plain.mp4", 1),
    ]
