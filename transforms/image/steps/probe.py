"""probe: check the bytes, sniff the format, read the header (no pixels) and enforce
the input limits before anything is decoded. This is where bombs stop."""

from __future__ import annotations

import pyvips

from transforms.image.errors import ImageLimitError
from transforms.image.negotiate import SourceInfo
from transforms.image.sniff import sniff
from transforms.image.work import Work

LOADERS = {
    "jpeg": "jpegload_buffer",
    "png": "pngload_buffer",
    "gif": "gifload_buffer",
    "webp": "webpload_buffer",
    "tiff": "tiffload_buffer",
    "avif": "heifload_buffer",
    "heif": "heifload_buffer",
    "svg": "svgload_buffer",
}
# Bytes per band of libvips band formats (for the memory estimate of a decoded source).
FORMAT_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4}
# Formats whose extra pages are animation frames (other multi-page files: first page).
ANIMATED_INPUTS = frozenset({"gif", "webp"})


def probe(work: Work) -> None:
    data, settings = work.source, work.settings
    limits = settings.limits
    if len(data) > limits.max_input_bytes:
        raise ImageLimitError(
            413, f"source is {len(data)} bytes; the limit is {limits.max_input_bytes}"
        )
    fmt = sniff(data)
    if fmt is None:
        raise ImageLimitError(422, "source is not a recognised image format")
    allowed = fmt in settings.allowed_input_formats if fmt != "svg" else settings.svg
    if not allowed:
        raise ImageLimitError(422, f"{fmt} sources are not allowed here")
    header = open_image(data, fmt, access="sequential")
    width, height = header.width, header.height
    frames = 1
    if fmt in ANIMATED_INPUTS and header.get_typeof("n-pages"):
        frames = max(1, int(header.get("n-pages")))
    orientation = 1
    if header.get_typeof("orientation"):
        orientation = int(header.get("orientation"))
        orientation = orientation if 1 <= orientation <= 8 else 1
    if width * height > limits.max_input_pixels:
        raise ImageLimitError(
            413,
            f"source is {width}x{height} = {width * height} pixels; "
            f"the limit is {limits.max_input_pixels}",
        )
    # Frames beyond the limits make a still, not an error: see steps/budget.py.
    work.info = SourceInfo(
        format=fmt,
        width=width,
        height=height,
        has_alpha=bool(header.hasalpha()),
        frames=frames,
        orientation=orientation,
        size=len(data),
        pixel_bytes=header.bands * FORMAT_BYTES.get(header.format, 8),
    )


def open_image(data: bytes, fmt: str, **options: object) -> pyvips.Image:
    """Open with the one loader for the sniffed format (lazy: header only until pixels
    are needed). Decoder errors become 422."""
    loader = getattr(pyvips.Image, LOADERS[fmt])
    try:
        image: pyvips.Image = loader(data, **options)
    except pyvips.Error as exc:
        raise ImageLimitError(422, f"cannot decode the {fmt} source: {_first_line(exc)}") from None
    return image


def _first_line(exc: pyvips.Error) -> str:
    text = str(getattr(exc, "detail", "") or exc.message or exc).strip()
    return text.splitlines()[0][:200] if text else "unknown error"
