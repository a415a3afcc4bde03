"""The pure parts of the pipeline's image step (proxy/variants.py)."""

from __future__ import annotations

import pytest

from proxy.variants import routing_path, strip_image_params


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("w=100", ""),
        ("w=100&v=3", "v=3"),
        ("v=3&width=100&auto=format&sig=a%2Fb", "v=3&sig=a%2Fb"),
        ("bri=5&x=1", "x=1"),  # refused names are image parameters too
        ("fp-x=0.3&fp-y=0.2&crop=focalpoint&fit=crop&h=50", ""),
        ("a&&b=", "a&b="),
    ],
)
def test_strip_image_params(query: str, kept: str) -> None:
    assert strip_image_params(query) == kept


@pytest.mark.parametrize(
    ("path", "routed"),
    [
        ("/img/a.jpg", "/img/a.jpg"),
        ("/cdn-cgi/image/width=100/img/a.jpg", "/img/a.jpg"),
        ("/cdn-cgi/image/width=100", "/cdn-cgi/image/width=100"),
        ("/cdn-cgi/imagex/w=1/a.jpg", "/cdn-cgi/imagex/w=1/a.jpg"),
    ],
)
def test_routing_path(path: str, routed: str) -> None:
    assert routing_path(path) == routed
