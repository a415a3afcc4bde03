"""`bus.decode` (the Redis purge bus's and the workers' purge sockets' frames) takes what
`encode` made and refuses any other JSON with ValueError or KeyError, whatever its shape."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.purge.bus import decode, encode
from proxy.purge.request import PrefixPurge, PurgeRequest

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries({k: JSON for k in ("k", "p", "g", "s", "e", "t", "src")})


@given(FIELDS | JSON)
def test_any_json_is_a_purge_or_refused(value: object) -> None:
    try:
        req, when, source = decode(orjson.dumps(value))
    except (ValueError, KeyError):
        return
    assert all(isinstance(k, str) for k in (*req.keys, *req.tags))
    assert all(p.host is None or isinstance(p.host, str) for p in req.prefixes)
    assert isinstance(when, float) and isinstance(source, str)


@pytest.mark.parametrize(
    "fields",
    [
        {"k": "abc"},
        {"k": [1]},
        {"p": ["ab"]},
        {"p": [[1, "/"]]},
        {"g": [{}]},
        {"s": 1},
        {"t": "now"},
        {"t": True},
        {"src": None},
    ],
)
def test_odd_shapes_are_refused(fields: dict[str, object]) -> None:
    good = orjson.loads(encode(PurgeRequest(keys=("h/a",)), 1.0, "me"))
    with pytest.raises(ValueError):
        decode(orjson.dumps({**good, **fields}))


def test_a_prefix_of_every_host_round_trips() -> None:
    req = PurgeRequest(prefixes=(PrefixPurge(None, "/"), PrefixPurge("h", "/v/")))
    assert decode(encode(req, 2.0, "me"))[0].prefixes == req.prefixes
