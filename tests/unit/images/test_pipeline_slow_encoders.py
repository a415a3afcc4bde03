"""Outputs of the slow encoders (GIF, lossless WebP) are bounded in pixels: the memory
budget does not see their CPU cost (a red-team finding: a 12 MP lossless WebP took 10 s
of CPU). Decided in the prepare steps, before any pixel is decoded."""

from __future__ import annotations

import pytest
import pyvips

from config.images import ImageLimits, ImageSettings
from transforms.image import ImageLimitError, ImageOptions
from transforms.image.pipeline import PREPARE
from transforms.image.work import Work

SOURCE = bytes(pyvips.Image.black(3000, 2000).jpegsave_buffer(Q=50))
SETTINGS = ImageSettings(limits=ImageLimits(max_slow_output_pixels=2_000_000))


def prepare(**options: object) -> Work:
    work = Work(SOURCE, ImageOptions(**options), SETTINGS, None)  # type: ignore[arg-type]
    for step in PREPARE:
        step(work)
    return work


@pytest.mark.parametrize(
    "options",
    [
        {"width": 3000, "format": "gif"},
        {"width": 2000, "format": "gif"},  # 2000 x 1333 = 2.67 MP
        {"width": 3000, "format": "webp", "lossless": True},
    ],
)
def test_large_slow_outputs_are_refused_before_decoding(options: dict[str, object]) -> None:
    with pytest.raises(ImageLimitError) as caught:
        prepare(**options)
    assert caught.value.status == 413
    assert "slow encoders" in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {"width": 1600, "format": "gif"},  # 1600 x 1067 = 1.7 MP
        {"width": 1600, "format": "webp", "lossless": True},
        {"width": 3000, "format": "webp"},  # lossy WebP is not a slow encoder
        {"width": 3000, "format": "jpeg"},
    ],
)
def test_other_outputs_pass(options: dict[str, object]) -> None:
    work = prepare(**options)
    assert work.plan is not None and work.plan.canvas_w == options["width"]
