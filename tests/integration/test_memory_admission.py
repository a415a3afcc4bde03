"""The memory tier's admission (W-TinyLFU, proxy/cache/admission.py) in a real edgeshield:
a full memory tier keeps its popular objects when a cold one comes along; the cold one is
served whole, not kept, never claimed `stored`, and counted; asked for often enough, it
takes a place like any other."""

from __future__ import annotations

import base64
import time

import httpx
import pyvips
from prometheus_client.parser import text_string_to_metric_families

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import proxy_config, running_proxy

SIZE = 8192
HOT = [f"/adm/hot{i}" for i in range(8)]
# Eight 8 KiB entries (~8.9 KB each with headers) fill it; its window (1 %) is smaller.
MEMORY_BYTES = 75_000


def _rejections(client: httpx.Client) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "edgeshield_cache_admission_rejections":
            for sample in family.samples:
                if sample.labels == {"tier": "memory"}:
                    return sample.value
    raise AssertionError("no admission rejection series for the memory tier")


def _status(resp: httpx.Response) -> str:
    assert resp.status_code == 200 and resp.content == gen_bytes(0, SIZE)
    return resp.headers["cache-status"]


def test_a_cold_object_is_served_but_does_not_push_out_popular_ones(
    origin: OriginServer,
) -> None:
    headers = {"cache-control": "max-age=300"}
    origin.scripts([{"path": p, "size": SIZE, "headers": headers} for p in [*HOT, "/adm/cold"]])
    config = proxy_config(origin.url, cache_settings={"memory_bytes": MEMORY_BYTES})
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=10) as client:
        for _ in range(3):  # each popular object: a miss (stored), then two hits
            for path in HOT:
                _status(client.get(path))
        assert all(origin.requests(p) == 1 for p in HOT)
        assert "; hit" in _status(client.get(HOT[0]))
        before = _rejections(client)

        # Asked for once: less than every entry it would push out. Served, not kept.
        first = _status(client.get("/adm/cold"))
        assert first.startswith("edgeshield; fwd=miss") and "stored" not in first
        assert _rejections(client) > before
        second = _status(client.get("/adm/cold"))
        assert second.startswith("edgeshield; fwd=miss") and "stored" not in second
        assert origin.requests("/adm/cold") == 2
        for path in HOT:  # the popular ones are all still there
            assert "; hit" in _status(client.get(path)), path

        # Asked for again and again, it wins a place (the least asked-for entries go).
        answers = [_status(client.get("/adm/cold")) for _ in range(12)]
        stored = [i for i, a in enumerate(answers) if "stored" in a]
        assert stored, answers
        assert all("stored" not in a and "fwd=miss" in a for a in answers[: stored[0]])
        deadline = time.monotonic() + 30  # a hang guard: the store follows the answer
        while "; hit" not in _status(client.get("/adm/cold")):
            assert time.monotonic() < deadline, "the admitted object never became a hit"
            time.sleep(0.05)
        misses = origin.requests("/adm/cold")
        assert misses == 2 + stored[0] + 1  # every answer before the hits was a miss


def test_an_image_source_is_kept_for_its_variants_in_a_full_hot_tier(
    origin: OriginServer,
) -> None:
    """A variant needs its source whole: a source that admission alone would refuse is
    still fetched whole and kept, so the variant is made (not a 413) and stored."""
    jpeg = bytes(
        pyvips.Image.gaussnoise(160, 120, sigma=40, seed=3)
        .cast("uchar")
        .copy(interpretation="b-w")
        .jpegsave_buffer(Q=90)
    )
    assert SIZE < len(jpeg) < 2 * SIZE
    headers = {"cache-control": "max-age=300", "content-type": "image/jpeg"}
    origin.scripts(
        [{"path": p, "size": SIZE, "headers": {"cache-control": "max-age=300"}} for p in HOT]
        + [
            {
                "path": "/adm/photo.jpg",
                "body_base64": base64.b64encode(jpeg).decode(),
                "headers": headers,
            }
        ]
    )
    config = proxy_config(
        origin.url,
        cache_settings={"memory_bytes": MEMORY_BYTES},
        route={"images": True},
    )
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=20) as client:
        for _ in range(3):
            for path in HOT:
                _status(client.get(path))
        variant = client.get("/adm/photo.jpg?w=40&fm=png")
        assert variant.status_code == 200, variant.text
        assert variant.headers["content-type"] == "image/png"
        assert origin.requests("/adm/photo.jpg") == 1
        again = client.get("/adm/photo.jpg?w=40&fm=png")
        assert again.status_code == 200 and again.content == variant.content
        assert origin.requests("/adm/photo.jpg") == 1  # the source was kept
