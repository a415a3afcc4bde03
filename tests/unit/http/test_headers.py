import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.http.headers import HOP_BY_HOP, hop_by_hop


def test_hop_by_hop_set() -> None:
    assert (
        frozenset(
            {
                "connection",
                "keep-alive",
                "proxy-connection",
                "te",
                "trailer",
                "transfer-encoding",
                "upgrade",
                "proxy-authenticate",
                "proxy-authorization",
            }
        )
        == HOP_BY_HOP
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], []),
        ([("host", "a"), ("x", "1")], [("host", "a"), ("x", "1")]),
        (
            [("host", "a"), ("connection", "keep-alive"), ("keep-alive", "timeout=5"), ("x", "1")],
            [("host", "a"), ("x", "1")],
        ),
        (
            [
                ("te", "trailers"),
                ("trailer", "x"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "h2c"),
                ("proxy-authorization", "Basic x"),
                ("proxy-authenticate", "Basic"),
                ("proxy-connection", "keep-alive"),
                ("accept", "*/*"),
            ],
            [("accept", "*/*")],
        ),
        # RFC 9110 7.6.1: fields named in Connection are hop-by-hop too.
        (
            [("connection", "close, X-Foo"), ("x-foo", "1"), ("x-bar", "2")],
            [("x-bar", "2")],
        ),
        (
            [
                ("connection", "x-a"),
                ("connection", " x-b ,"),
                ("x-a", "1"),
                ("x-b", "2"),
                ("y", "3"),
            ],
            [("y", "3")],
        ),
        # ...but never fields that frame or route the message.
        (
            [
                (
                    "connection",
                    "host, content-length, content-type, content-encoding, content-range",
                ),
                ("host", "a"),
                ("content-length", "5"),
                ("content-type", "text/plain"),
                ("content-encoding", "gzip"),
                ("content-range", "bytes 0-4/10"),
            ],
            [
                ("host", "a"),
                ("content-length", "5"),
                ("content-type", "text/plain"),
                ("content-encoding", "gzip"),
                ("content-range", "bytes 0-4/10"),
            ],
        ),
        # Order and repeated fields are preserved.
        (
            [
                ("set-cookie", "a=1"),
                ("connection", "close"),
                ("set-cookie", "b=2"),
                ("via", "1.1 x"),
            ],
            [("set-cookie", "a=1"), ("set-cookie", "b=2"), ("via", "1.1 x")],
        ),
    ],
)
def test_hop_by_hop(headers: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    drop = hop_by_hop(headers)
    assert [(n, v) for n, v in headers if n not in drop] == expected


_NAME = st.sampled_from(["connection", "x-a", "content-length", "host", "te", "via"])
_VALUE = st.text(st.sampled_from(list("xX-a ,\t")), max_size=20)


@given(st.lists(st.tuples(_NAME, _VALUE), max_size=6))
def test_hop_by_hop_never_drops_framing_fields(headers: list[tuple[str, str]]) -> None:
    drop = hop_by_hop(headers)
    assert drop >= HOP_BY_HOP
    assert not drop & {"host", "content-length", "content-type", "content-encoding"}
    assert "" not in drop and all(n == n.strip(" \t").lower() for n in drop)
