import pytest

from proxy.http.headers import HOP_BY_HOP, join_fields, strip_hop_by_hop


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
def test_strip_hop_by_hop(headers: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    assert strip_hop_by_hop(headers) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], {}),
        ([("a", "1")], {"a": "1"}),
        ([("a", "1"), ("a", "2"), ("b", "3"), ("a", "4")], {"a": "1, 2, 4", "b": "3"}),
        (
            [("Cache-Control", "max-age=5"), ("cache-control", "public")],
            {"cache-control": "max-age=5, public"},
        ),
        (
            [("set-cookie", "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT"), ("set-cookie", "b=2")],
            {"set-cookie": "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT\nb=2"},
        ),
        ([("x", ""), ("x", "1")], {"x": ", 1"}),
    ],
)
def test_join_fields(headers: list[tuple[str, str]], expected: dict[str, str]) -> None:
    assert join_fields(headers) == expected
