"""The state one transform carries from step to step (imgproxy's processing context)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyvips

from config.images import ImageSettings
from transforms.image.geometry import Plan
from transforms.image.negotiate import ANIMATED_OUTPUTS, SourceInfo
from transforms.image.options import ImageOptions, OutputFormat


@dataclass(frozen=True, slots=True)
class TransformResult:
    body: bytes
    content_type: str
    width: int
    height: int
    format: OutputFormat
    # "background" AVIF mode: this is the WebP stand-in; schedule encode_avif_later.
    avif_later: bool = False
    frames: int = 1


@dataclass(slots=True)
class Work:
    source: bytes
    options: ImageOptions
    settings: ImageSettings
    accept: str | None
    info: SourceInfo | None = None
    # Size of the source after orientation, rect and right-angle rotation.
    plan: Plan | None = None
    format: OutputFormat = "jpeg"
    avif_later: bool = False
    image: pyvips.Image | None = None
    # Loaded pixels per source pixel (shrink-on-load), to map source coordinates.
    load_scale: float = 1.0
    frames: int = 1
    # pyvips ForeignKeep flags for the saver, set by strip_metadata.
    keep: int = 0
    # Estimated peak memory of the decode/process/encode steps (transforms/image/cost.py),
    # reserved from the pool's memory budget before any pixel is decoded.
    peak_bytes: int = 0
    body: bytes = b""

    @property
    def img(self) -> pyvips.Image:
        if self.image is None:
            raise RuntimeError("no image loaded")
        return self.image

    @property
    def animated(self) -> bool:
        """The output keeps every frame: an animated source, anim on, and an output
        format that can hold frames (set by negotiate; animation_budget may still turn
        the source into a still)."""
        info = self.info
        return (
            info is not None
            and info.frames > 1
            and self.options.anim
            and self.format in ANIMATED_OUTPUTS
        )

    @property
    def frame_height(self) -> int:
        return self.img.height // self.frames

    def per_frame(self, fn: Callable[[pyvips.Image], pyvips.Image]) -> None:
        """Apply ``fn`` to each frame of an animation (a tall strip in libvips) and join
        the results; a still image is just ``fn(image)``. Each frame is rendered to
        memory before the next one starts: 190 lazy per-frame pipelines held ~1.5 MB of
        buffers each (555 MB for a 500x500 GIF to 200 px), the rendered frames hold only
        their pixels (46 MB), which transforms/image/cost.py can predict."""
        image = self.img
        if self.frames == 1:
            self.image = fn(image)
            return
        height = self.frame_height
        done = [
            fn(image.crop(0, i * height, image.width, height)).copy_memory()
            for i in range(self.frames)
        ]
        joined = pyvips.Image.arrayjoin(done, across=1).copy()
        joined.set_type(pyvips.GValue.gint_type, "page-height", done[0].height)
        self.image = joined

    def result(self) -> TransformResult:
        from transforms.image.options import CONTENT_TYPES

        image, info = self.image, self.info
        if image is not None:
            width, height = image.width, image.height // self.frames
        else:
            width, height = (info.width, info.height) if info is not None else (0, 0)
        return TransformResult(
            body=self.body,
            content_type=CONTENT_TYPES[self.format],
            width=width,
            height=height,
            format=self.format,
            avif_later=self.avif_later,
            frames=self.frames,
        )
