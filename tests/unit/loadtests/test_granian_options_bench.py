"""The pure parts of loadtests/bench/granian_options_bench.py and granian_variant.py:
how a variant's options replace what proxy/serve/engines.py passes to granian, and the
command line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from granian.constants import Interfaces, Loops, RuntimeModes, TaskImpl
from granian.http import HTTP1Settings
from hypothesis import given
from hypothesis import strategies as st

from loadtests.bench.granian_options_bench import APPS, PRESETS, parse_args
from loadtests.bench.granian_variant import granian_kwargs

BASE: dict[str, Any] = {
    "target": "proxy.serve.app:app_from_environment",
    "factory": True,
    "interface": Interfaces.ASGI,
    "loop": Loops.uvloop,
    "backpressure": 4096,
    "http1_settings": HTTP1Settings(header_read_timeout=10_000, max_buffer_size=40960),
}


def test_no_override_keeps_every_option() -> None:
    assert granian_kwargs({}, BASE) == BASE


def test_enums_and_http1_fields_are_replaced_one_by_one() -> None:
    merged = granian_kwargs(
        {"runtime_mode": "st", "task_impl": "rust", "loop": "rloop", "pipeline_flush": True},
        BASE,
    )
    assert merged["runtime_mode"] is RuntimeModes.st
    assert merged["task_impl"] is TaskImpl.rust
    assert merged["loop"] is Loops.rloop
    h1 = merged["http1_settings"]
    assert h1.pipeline_flush and h1.header_read_timeout == 10_000 and h1.max_buffer_size == 40960
    assert not BASE["http1_settings"].pipeline_flush  # the original is left alone


def test_a_bare_app_keeps_edgeshields_options() -> None:
    merged = granian_kwargs(APPS["rsgi"], BASE)
    assert merged["interface"] is Interfaces.RSGI and merged["factory"] is False
    assert merged["backpressure"] == 4096 and merged["loop"] is Loops.uvloop


@given(st.sampled_from(sorted(PRESETS)))
def test_every_preset_converts(name: str) -> None:
    merged = granian_kwargs(PRESETS[name], BASE)
    assert set(BASE) <= set(merged)


@given(st.text(max_size=40))
def test_a_bad_variant_is_a_usage_error_not_a_traceback(text: str) -> None:
    try:
        is_object = isinstance(json.loads(text), dict)
    except ValueError:
        is_object = False
    if is_object:
        assert parse_args(["--variant", f"x={text}"]).variants["x"] == json.loads(text)
    else:
        with pytest.raises(SystemExit):
            parse_args(["--variant", f"x={text}"])


def test_presets_and_custom_variants_in_order() -> None:
    args = parse_args(["--variants", "default,rust", "--variant", 'bp={"backpressure": 64}'])
    assert list(args.variants) == ["default", "rust", "bp"]
    assert args.variants["bp"] == {"backpressure": 64}
    with pytest.raises(SystemExit):
        parse_args(["--variants", "nope"])
    with pytest.raises(SystemExit):
        parse_args(["--apps", "edgeshield,nope"])
