"""proxy/observe.py and proxy/serve/request_ids.py: what a request's access-log line takes
from what went out (bytes sent, the origin time), and which request id it carries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from config.auth import TrustedProxies
from proxy.auth.access import TrustedNetworks
from proxy.observe import Tracked, origin_time
from proxy.serve.request_ids import RequestIds
from tests.support.asgi import Sink


def _trusting(cidr: str) -> TrustedNetworks:
    return TrustedNetworks.from_settings(TrustedProxies(cidrs=(cidr,)))


def test_new_ids_are_unique_per_process_and_across_processes() -> None:
    one, two = RequestIds(), RequestIds()
    ids = [one.new() for _ in range(1000)] + [two.new() for _ in range(1000)]
    assert len(set(ids)) == 2000
    assert one.prefix != two.prefix and ids[0].startswith(one.prefix + "-")


def test_an_id_is_kept_only_from_a_trusted_peer_and_only_when_valid() -> None:
    ids = RequestIds()
    trusted = _trusting("10.0.0.0/8")
    assert ids.pick("abc-123", "10.1.2.3", trusted) == "abc-123"
    assert ids.pick("abc-123", "192.0.2.1", trusted) != "abc-123"  # a client, not a proxy
    assert ids.pick("abc-123", "10.1.2.3", TrustedNetworks()) != "abc-123"  # none trusted
    assert ids.pick("a b\r\n", "10.1.2.3", trusted).startswith(ids.prefix)  # invalid
    assert ids.pick(None, "10.1.2.3", trusted).startswith(ids.prefix)


async def test_tracked_counts_what_went_out_and_marks_error_answers() -> None:
    sink = Sink()
    out = Tracked(sink, timing=True)
    out.request_id = "rid-1"
    head = [(b"content-type", b"text/plain"), (b"server-timing", b"origin;dur=12.5")]
    await out({"type": "http.response.start", "status": 502, "headers": head})
    await out({"type": "http.response.body", "body": b"abc", "more_body": True})
    await out({"type": "http.response.body", "body": memoryview(b"defg")})
    assert (out.status, out.sent, out.origin_ms) == (502, 7, 12.5)
    assert (b"x-request-id", b"rid-1") in sink.messages[0]["headers"]
    assert len(head) == 2  # a shared head is never changed in place


async def test_success_answers_and_ones_with_an_id_get_none_added() -> None:
    for status, head in ((200, []), (404, [(b"x-request-id", b"origin's")])):
        sink = Sink()
        out = Tracked(sink)
        out.request_id = "rid-1"
        await out({"type": "http.response.start", "status": status, "headers": head})
        names = [n for n, _ in sink.messages[0]["headers"]]
        assert names.count(b"x-request-id") == len(head)
        assert out.origin_ms is None  # not asked for


def test_origin_time_from_server_timing() -> None:
    assert origin_time([(b"server-timing", b"origin;dur=3.0, transform;dur=9")]) == 3.0
    assert origin_time([(b"server-timing", b"transform;dur=9")]) is None
    assert origin_time([(b"server-timing", b"origin;dur=x")]) is None
    assert origin_time([]) is None


@given(st.binary(max_size=200))
def test_origin_time_never_fails_on_any_field(value: bytes) -> None:
    result = origin_time([(b"server-timing", value)])
    assert result is None or isinstance(result, float)
