"""The per-worker connection cap, the open-file limit and granian's HTTP mode
(proxy/serve/engines.py)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.schema import ServerSettings
from config.tls import TlsSettings
from proxy.serve.engines import RESERVED_FDS, _granian_http_mode, connection_cap, fitting_cap
from tests.support.proxy_server import REPO_ROOT


def test_a_roomy_limit_keeps_the_requested_cap() -> None:
    assert fitting_cap(10_000, 1_048_576) == 10_000
    assert fitting_cap(10_000, 10_000 + RESERVED_FDS) == 10_000


def test_a_tight_limit_lowers_the_cap_below_it() -> None:
    assert fitting_cap(10_000, 4096) == 4096 - RESERVED_FDS
    assert fitting_cap(10_000, 1024) == 1024 - 256  # a quarter of a small limit is kept


def test_no_limit() -> None:
    assert fitting_cap(10_000, resource.RLIM_INFINITY) == 10_000


@given(st.integers(1, 1_000_000), st.integers(1, 10_000_000))
def test_the_cap_never_reaches_the_limit(requested: int, limit: int) -> None:
    cap = fitting_cap(requested, limit)
    assert 1 <= cap <= requested
    if limit > 4:
        assert cap < limit  # the worker's own files always have room


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = connection_cap(10)
    assert cap == 10
    if hard != resource.RLIM_INFINITY:
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_serve_command_does_not_load_libvips() -> None:
    """granian forks its workers only while the parent has no libvips threads running
    (proxy/serve/engines.py): the config checks must not load it."""
    code = "import sys, proxy.serve.cli; sys.exit('pyvips' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, timeout=60).returncode == 0


@pytest.mark.parametrize(
    ("tls_http2", "cleartext", "mode"),
    [
        (None, False, "1"),  # plain: HTTP/1.1, whose header timer closes a silent client
        (None, True, "auto"),
        (True, False, "auto"),  # TLS: h2 by ALPN needs granian's sniffing mode
        (False, False, "1"),
        (False, True, "1"),  # http2_cleartext is about plain listeners only
    ],
)
def test_granian_sniffs_only_where_http2_is_on(
    tls_http2: bool | None, cleartext: bool, mode: str
) -> None:
    tls = None if tls_http2 is None else TlsSettings(cert=Path("c"), key=Path("k"), http2=tls_http2)
    server = ServerSettings(tls=tls, http2_cleartext=cleartext)
    assert _granian_http_mode(server).value == mode
