"""Which image format a body is, from its first bytes (never from a name or a header
the origin chose). Only what is recognised here reaches a libvips loader, and then only
the loader for that format."""

from __future__ import annotations

_HEIF_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)


def sniff(data: bytes) -> str | None:
    """ "jpeg", "png", "gif", "webp", "tiff", "avif", "heif", "svg" or None."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head[4:8] == b"ftyp":
        return _isobmff(data)
    if _looks_like_svg(data[:4096]):
        return "svg"
    return None


def _isobmff(data: bytes) -> str | None:
    size = int.from_bytes(data[:4], "big")
    if size < 16 or size > min(len(data), 4096):
        size = min(len(data), 64)
    major = data[8:12]
    brands = {major} | {data[i : i + 4] for i in range(16, size - 3, 4)}
    if brands & _HEIF_AVIF_BRANDS:
        return "avif"
    if brands & _HEIF_BRANDS:
        return "heif"
    return None


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg"):
        return True
    return text.startswith((b"<?xml", b"<!doctype svg", b"<!--")) and b"<svg" in text


def is_animated_png(data: bytes) -> bool:
    """APNG: an ``acTL`` chunk before the first ``IDAT`` (libvips reads one frame)."""
    first_idat = data.find(b"IDAT")
    end = first_idat if first_idat >= 0 else len(data)
    return data.find(b"acTL", 8, end) >= 0
