"""Settings of the image transform engine (``transforms/image``): ``[images]`` in the file.

The lead wires this in as ``Settings.images: ImageSettings``. Every model is frozen and
rejects unknown keys, like the rest of the schema. Presets are plain data here (names,
scalar values); their grammar is the URLs' (transforms/image/imgix.py `preset_errors`),
which `edgeshield serve` and `check-config` run as a settings check (config.loader
`checks`), so a misspelt preset option fails the configuration instead of every request
that names the preset.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MiB = 1024 * 1024
InputFormat = Literal["jpeg", "png", "webp", "avif", "heif", "gif", "tiff"]
PresetValue = str | int | float | bool
_PRESET_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageLimits(_Frozen):
    """What one source image and one output may cost. Violations answer 413/422/400."""

    # Bigger sources are refused (413) before any decoding.
    max_input_bytes: int = Field(default=32 * MiB, ge=1024)
    # Decoded pixels, width x height x frames, read from the header before decoding (413).
    # This is what stops decompression bombs (a tiny PNG declaring 50000x50000).
    max_input_pixels: int = Field(default=50_000_000, ge=1)
    # Largest output, in pixels per side. Requests beyond it are 400; sources that are
    # bigger and ask for no size are scaled down to fit.
    max_output_width: int = Field(default=4096, ge=16, le=16384)
    max_output_height: int = Field(default=4096, ge=16, le=16384)
    # Animations with more frames, more decoded pixels than max_input_pixels, or more
    # work than max_animation_pixels are answered with their first frame (a still), as
    # imgproxy (first frame by default) and MediaWiki do: a picture, not an error.
    max_frames: int = Field(default=200, ge=1, le=10000)
    # The work of one animated transform: frames x (source frame + output frame) pixels.
    # Bounds what the output costs too (a 100x100 GIF asked at w=4096 is 200 x 16.7 MP).
    max_animation_pixels: int = Field(default=100_000_000, ge=1)
    # Still outputs of the slow encoders (GIF, lossless WebP) above this many pixels are
    # refused (413): measured on 2 vCPU, a 12 MP lossless WebP costs 10 s of CPU and a
    # GIF 5 s, where JPEG costs 0.6 s; 2 MP keeps either near a second.
    max_slow_output_pixels: int = Field(default=2_000_000, ge=1)


class QualitySettings(_Frozen):
    """Default encoder quality (1-100) when the URL gives none."""

    jpeg: int = Field(default=80, ge=1, le=100)
    webp: int = Field(default=80, ge=1, le=100)
    # AVIF's scale runs lower for the same look: 60 is about JPEG 80.
    avif: int = Field(default=60, ge=1, le=100)
    # imgix `auto=compress` without `q` uses this one for every lossy format.
    compress: int = Field(default=45, ge=1, le=100)


class AvifSettings(_Frozen):
    """AVIF is the smallest and by far the slowest to encode: keep it on a leash."""

    enabled: bool = True
    # libvips/libaom effort 0 (fastest) .. 9 (smallest). Measured for a 2000x1500 JPEG to
    # 400 px (docs/images.md): 3 is ~50 ms for -18% bytes against WebP; 4 is ~220 ms.
    effort: int = Field(default=3, ge=0, le=9)
    # Outputs with more pixels get WebP instead of AVIF (format=auto and format=avif).
    max_pixels: int = Field(default=2_000_000, ge=1)
    # "inline": encode AVIF in the request. "background": answer WebP now, the pipeline
    # schedules transforms.image.encode_avif_later and upgrades the cached variant.
    mode: Literal["inline", "background"] = "inline"


class LqipSettings(_Frozen):
    """The tiny blurred placeholder (`lqip=1`)."""

    width: int = Field(default=32, ge=4, le=256)
    blur: float = Field(default=1.5, ge=0, le=20)
    quality: int = Field(default=40, ge=1, le=100)


class ImageSettings(_Frozen):
    enabled: bool = True
    limits: ImageLimits = ImageLimits()
    # Input formats decoded at all (detected from magic bytes, never from the name).
    allowed_input_formats: tuple[InputFormat, ...] = (
        "jpeg",
        "png",
        "webp",
        "avif",
        "heif",
        "gif",
        "tiff",
    )
    # SVG is a document format (scripts, external references) and libvips marks its
    # loader untrusted: off unless set here.
    svg: bool = False
    # Named option sets: `[images.presets.thumb] w = 200, h = 200, fit = "crop"` (imgix
    # names). `?preset=thumb` expands it; options in the URL override the preset's.
    presets: dict[str, dict[str, PresetValue]] = Field(default_factory=dict)
    # When not empty, `w` / `width` must be one of these (and `h` / `height` one of
    # allowed_heights, `dpr` one of allowed_dprs), so the variant space of one image is
    # bounded. Empty = any size up to the limits.
    allowed_widths: tuple[Annotated[int, Field(ge=1, le=16384)], ...] = ()
    allowed_heights: tuple[Annotated[int, Field(ge=1, le=16384)], ...] = ()
    allowed_dprs: tuple[Annotated[float, Field(gt=0, le=5)], ...] = (1.0, 1.5, 2.0, 3.0)
    quality: QualitySettings = QualitySettings()
    # JPEG output that did not ask for baseline or progressive explicitly.
    progressive_jpeg: bool = True
    # libwebp's method 0 (fastest) .. 6 (smallest). Measured on the 2000x1500 photo to
    # ~400 px (docs/images.md): 2 encodes in 4 ms against 9 ms at 4, for +4 % bytes; 3
    # costs what 4 does.
    webp_effort: int = Field(default=2, ge=0, le=6)
    png_compression: int = Field(default=6, ge=0, le=9)
    avif: AvifSettings = AvifSettings()
    lqip: LqipSettings = LqipSettings()
    # Worker threads for transforms; None = one per CPU core (libvips releases the GIL).
    threads: int | None = Field(default=None, ge=1, le=256)
    # Transforms waiting for a thread beyond the running ones; past it, 503 + Retry-After.
    queue_depth: int = Field(default=32, ge=0, le=100_000)
    # libvips threads per transform. 1 is best for throughput with one job per core.
    vips_concurrency: int = Field(default=1, ge=1, le=64)
    # Ceiling on the memory of the transforms running at once in this process. Each
    # transform's peak is estimated from the header before decoding (transforms/image/
    # cost.py); jobs wait, in order, until theirs fits. An animation whose own estimate
    # is above it gets its first frame; a still one is refused (413).
    memory_budget_bytes: int = Field(default=1024 * MiB, ge=32 * MiB)

    @field_validator("presets")
    @classmethod
    def _preset_names(
        cls, value: dict[str, dict[str, PresetValue]]
    ) -> dict[str, dict[str, PresetValue]]:
        for name in value:
            if not _PRESET_NAME.fullmatch(name):
                raise ValueError(f"preset name {name!r} must be 1-64 of A-Z a-z 0-9 _ -")
        return value
