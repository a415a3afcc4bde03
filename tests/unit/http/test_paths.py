import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.paths import BadPath, normalize_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/video/seg-00001.m4s", "/video/seg-00001.m4s"),
        ("/.well-known/acme", "/.well-known/acme"),
        ("/a/...", "/a/..."),  # not a dot segment
        ("/a/..b/.c", "/a/..b/.c"),
        ("/a;v=1/b@c:d", "/a;v=1/b@c:d"),
        ("/!$&'()*+,=", "/!$&'()*+,="),
        # Duplicate slashes collapse.
        ("//", "/"),
        ("//a", "/a"),
        ("/a//b///c", "/a/b/c"),
        ("/a//", "/a/"),
        # Dot segments (RFC 3986 5.2.4).
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/..", "/"),
        ("/.", "/"),
        ("/./", "/"),
        ("/a/./", "/a/"),
        ("/..", "/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/b/../../..", "/"),
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 5.2.4 example
        ("/a//../b", "/b"),  # slashes merge before ".." is applied
        # Encoded dots are dots.
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E%2E/b", "/b"),
        ("/a/.%2e/b", "/b"),
        ("/a/%2e/b", "/a/b"),
        ("/%2e%2e/%2e%2e/x", "/x"),
        ("/a%2Ejpg", "/a.jpg"),
        ("/seg/%2e%2e%2e", "/seg/..."),
        # Decoded once only: %25 stays, so "%252e" is literal text, not a dot.
        ("/%252e%252e/x", "/%252e%252e/x"),
        ("/a/%25", "/a/%25"),
        # Escapes of unreserved characters decoded, the rest upper-cased (RFC 3986 6.2.2).
        ("/%7Euser", "/~user"),
        ("/%7euser", "/~user"),
        ("/%41%42%5a%30%2D%5F", "/ABZ0-_"),
        ("/%3a%40", "/%3A%40"),
        ("/%e2%82%ac", "/%E2%82%AC"),
        ("/a%20b", "/a%20b"),
        ("/%2B", "/%2B"),  # "+" encoded is not "+" raw: sub-delims stay as sent
        ("/%ff", "/%FF"),
        # Raw characters that need encoding get encoded.
        ("/a b", "/a%20b"),
        ('/a"b<c>', "/a%22b%3Cc%3E"),
        ("/a{b}|c^d`e", "/a%7Bb%7D%7Cc%5Ed%60e"),
        ("/a[b]", "/a%5Bb%5D"),
        ("/a?b", "/a%3Fb"),
        ("/a#b", "/a%23b"),
        ("/\u00e9", "/%C3%A9"),
        ("/\u20ac", "/%E2%82%AC"),
        ("/\udcff", "/%FF"),  # a raw byte carried as a surrogate escape
    ],
)
def test_normalize_path(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected
    assert normalize_path(expected) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "not-absolute"),
        ("a/b", "not-absolute"),
        ("*", "not-absolute"),
        ("http://x/a", "not-absolute"),
        ("%2Fa", "not-absolute"),
        ("/%zz", "bad-escape"),
        ("/%4", "bad-escape"),
        ("/%", "bad-escape"),
        ("/a%", "bad-escape"),
        ("/% 1", "bad-escape"),
        ("/%+1", "bad-escape"),
        ("/%\u0661\u0662", "bad-escape"),
        ("/%00", "control-char"),
        ("/a\x00b", "control-char"),
        ("/%0a", "control-char"),
        ("/%0D%0A", "control-char"),
        ("/a\nb", "control-char"),
        ("/a\tb", "control-char"),
        ("/%7f", "control-char"),
        ("/a\x7f", "control-char"),
        ("/%1F", "control-char"),
        ("/a%2Fb", "encoded-slash"),
        ("/a%2fb", "encoded-slash"),
        ("/a/%2e%2e%2f", "encoded-slash"),
        ("/..%2f..%2fetc", "encoded-slash"),
        ("/a%5cb", "encoded-backslash"),
        ("/a%5C..%5Cb", "encoded-backslash"),
        ("/a\\b", "backslash"),
        ("/..\\..\\x", "backslash"),
        ("/..;/admin", "dot-segment-params"),
        ("/a/.;/b", "dot-segment-params"),
        ("/a/..;jsessionid=1/b", "dot-segment-params"),
        ("/a/%2e%2e;/b", "dot-segment-params"),
        ("/\ud800", "bad-char"),  # lone surrogate that is not a byte escape
    ],
)
def test_normalize_path_rejects(raw: str, reason: str) -> None:
    with pytest.raises(BadPath) as exc:
        normalize_path(raw)
    assert exc.value.reason == reason
    assert isinstance(exc.value, ValueError)


# Pieces that exercise escapes, dot segments and separators far more often than st.text().
_PIECES = st.sampled_from(
    [
        "/",
        ".",
        "..",
        "%",
        "%2e",
        "%2E",
        "%25",
        "%2f",
        "%5c",
        "%41",
        "%3a",
        "%0",
        "a",
        ";",
        "~",
        " ",
        "\\",
        "é",
    ]
)
_PATHISH = st.lists(_PIECES, max_size=20).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _PATHISH, _PATHISH.map(lambda s: "/" + s)))
def test_normalize_path_properties(raw: str) -> None:
    try:
        out = normalize_path(raw)
    except BadPath:
        return
    assert out.startswith("/")
    assert normalize_path(out) == out
    assert "//" not in out
    for seg in out.split("/"):
        assert seg not in (".", "..")
    assert "/../" not in out and "/./" not in out
    assert out.isascii()
