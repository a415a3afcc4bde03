"""encode: the negotiated format with the configured defaults: JPEG progressive (unless
baseline was asked for) with optimised Huffman tables, WebP/AVIF lossy or lossless,
AVIF at the configured effort, animations kept animated in WebP and GIF."""

from __future__ import annotations

from typing import Any

from transforms.image.work import Work


def encode(work: Work) -> None:
    image, options, settings = work.img, work.options, work.settings
    fmt = work.format
    quality = options.quality
    if quality is None and options.compress:
        quality = settings.quality.compress
    common: dict[str, Any] = {"keep": work.keep}
    if work.frames > 1:
        common["page_height"] = work.frame_height
    if fmt == "jpeg":
        progressive = options.progressive
        data = image.jpegsave_buffer(
            Q=quality or settings.quality.jpeg,
            interlace=settings.progressive_jpeg if progressive is None else progressive,
            optimize_coding=True,
            **common,
        )
    elif fmt == "webp":
        data = image.webpsave_buffer(
            Q=quality or settings.quality.webp,
            lossless=options.lossless,
            effort=settings.webp_effort,
            **common,
        )
    elif fmt == "avif":
        data = image.heifsave_buffer(
            Q=quality or settings.quality.avif,
            lossless=options.lossless,
            effort=settings.avif.effort,
            compression="av1",
            bitdepth=8,
            **common,
        )
    elif fmt == "png":
        data = image.pngsave_buffer(compression=settings.png_compression, **common)
    elif fmt == "gif":
        data = image.gifsave_buffer(**common)
    else:
        raise ValueError(f"cannot encode {fmt}")
    work.body = bytes(data)
