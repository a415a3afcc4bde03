"""The pure parts of loadtests/bench/nginx_bench.py: h2load's output, the engine list,
the target verdicts and the nginx HTTP/2 server block."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.bench.nginx_bench import (
    NGINX_H2_SERVER,
    NGINX_LOCATIONS,
    _engines,
    es_name,
    parse_h2load,
    target_lines,
)

H2LOAD_OUT = """\
starting benchmark...
spawning thread #0: 8 total client(s). Timing-based test with 0s of warm-up time and 1s of \
main duration for measurements.
Application protocol: h2c

finished in 1.00s, 15924.00 req/s, 156.30MB/s
requests: 15924 total, 15956 started, 15924 done, 15920 succeeded, 4 failed, 1 errored, 2 timeout
status codes: 15920 2xx, 0 3xx, 3 4xx, 1 5xx
traffic: 156.30MB (163892256) total, 497.63KB (509568) headers (space savings 31.03%), \
155.51MB (163061760) data
                     min         max         mean         sd        +/- sd
time for request:      210us     14.23ms      1.92ms      1.07ms    72.85%
"""


def _log(tmp_path: Path, durations_us: list[int]) -> Path:
    log = tmp_path / "h2.log"
    log.write_text("".join(f"1765000000{i:06d}\t200\t{d}\n" for i, d in enumerate(durations_us)))
    return log


def test_h2load_summary_and_log_make_one_measurement(tmp_path: Path) -> None:
    log = _log(tmp_path, list(range(1, 101)))  # 1..100 us
    m = parse_h2load(H2LOAD_OUT, 0, "http://127.0.0.1:1/x", 8, 1, log)
    r = m.result
    assert r.rps == 15924.0 and r.requests == 15924 and r.duration == 1.0
    assert r.errors == 4 + 1 + 2  # failed, errored, timed out
    assert r.non_2xx == 3 + 1  # 4xx and 5xx; a 3xx would be an answer, not an error
    assert m.bytes_per_s == 163892256  # the exact byte count, not the rounded MB
    assert r.p50_ms == pytest.approx(0.051) and r.p99_ms == pytest.approx(0.1)
    assert not log.exists()  # read once, then removed


def test_h2load_times_in_microseconds_and_milliseconds(tmp_path: Path) -> None:
    for text, seconds in (("398us", 398e-6), ("153.36ms", 0.15336), ("2.50s", 2.5)):
        out = H2LOAD_OUT.replace("finished in 1.00s", f"finished in {text}")
        m = parse_h2load(out, 0, "u", 1, 1, _log(tmp_path, [5]))
        assert m.result.duration == pytest.approx(seconds)


def test_h2load_without_a_summary_or_failing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="h2load failed"):
        parse_h2load("starting benchmark...\n", 0, "u", 1, 1, _log(tmp_path, []))
    with pytest.raises(RuntimeError, match="h2load failed \\(1\\)"):
        parse_h2load(H2LOAD_OUT, 1, "u", 1, 1, _log(tmp_path, []))


def test_an_empty_log_gives_no_percentiles(tmp_path: Path) -> None:
    m = parse_h2load(H2LOAD_OUT, 0, "u", 1, 1, _log(tmp_path, []))
    assert math.isnan(m.result.p99_ms) and m.result.rps == 15924.0


@settings(max_examples=200, deadline=None)
@given(
    out=st.text(max_size=600)
    | st.sampled_from([H2LOAD_OUT[:n] for n in range(0, len(H2LOAD_OUT) + 1, 37)] + [H2LOAD_OUT]),
    log=st.lists(
        st.lists(st.text(max_size=8) | st.integers(0, 10**9).map(str), max_size=4).map("\t".join),
        max_size=20,
    ).map("\n".join),
)
def test_any_output_is_a_measurement_or_a_runtime_error(
    tmp_path_factory: pytest.TempPathFactory, out: str, log: str
) -> None:
    path = tmp_path_factory.mktemp("h2") / "h2.log"
    path.write_text(log, errors="surrogatepass")
    try:
        m = parse_h2load(out, 0, "u", 1, 1, path)
    except RuntimeError:
        return
    assert m.result.requests >= 0 and m.bytes_per_s >= 0


def test_engines_are_a_known_comma_list() -> None:
    assert _engines("granian") == ["granian"]
    assert _engines(" uvicorn , granian,uvicorn") == ["uvicorn", "granian"]
    for bad in ("", "hypercorn", "granian,,nginx"):
        with pytest.raises(argparse.ArgumentTypeError):
            _engines(bad)
    # The default engine's row keeps the plain name the smoke test reads.
    assert es_name("granian") == "edgeshield" and es_name("uvicorn") == "edgeshield/uvicorn"


def test_targets_are_judged_per_case_and_protocol() -> None:
    lines = target_lines(
        {
            ("hit:10240", "edgeshield"): 0.61,
            ("h2:hit:10240", "edgeshield"): 0.59,
            ("hit:1048576", "edgeshield/uvicorn"): 1.0,
            ("stream", "edgeshield"): math.nan,  # not measured: no verdict
            ("hit:4096", "edgeshield"): 0.1,  # no target for that size
        }
    )
    assert lines == [
        "",
        "TARGET MET: edgeshield / nginx hit:10240 HTTP/1.1 = 0.61 (target >= 0.60)",
        "TARGET MISSED: edgeshield / nginx hit:10240 HTTP/2 = 0.59 (target >= 0.60)",
        "TARGET MET: edgeshield/uvicorn / nginx hit:1048576 HTTP/1.1 = 1.00 (target >= 1.00)",
    ]
    assert target_lines({}) == []


@pytest.mark.parametrize(
    ("listen_h2", "h2_on", "want"),
    [(" http2", "", "listen 127.0.0.1:9 http2;"), ("", "        http2 on;\n", "http2 on;")],
)
def test_the_nginx_h2_server_has_the_proxy_locations(listen_h2: str, h2_on: str, want: str) -> None:
    locations = NGINX_LOCATIONS.format(extra="")
    block = NGINX_H2_SERVER.format(
        host="127.0.0.1", port=9, listen_h2=listen_h2, h2_on=h2_on, locations=locations
    )
    assert want in block
    assert "proxy_cache bench;" in block and 'return 200 "ok\\n";' in block
    assert block.count("{") == block.count("}")
