"""strip_metadata: privacy by default. ``none`` keeps nothing (no EXIF, no GPS, no XMP,
no ICC: the pixels are sRGB already); ``icc`` keeps the colour profile; ``copyright``
keeps the profile and the EXIF copyright; ``keep`` keeps everything libvips can write
(orientation is always reset: the pixels are upright)."""

from __future__ import annotations

import pyvips

from transforms.image.work import Work

Keep = pyvips.enums.ForeignKeep
COPYRIGHT_FIELDS = ("exif-ifd0-Copyright",)
# GIF/WebP animation timing is not metadata: the savers read it whatever `keep` says.
_ANIMATION_FIELDS = ("delay", "loop", "gif-delay", "gif-loop", "page-height", "n-pages")


def strip_metadata(work: Work) -> None:
    mode = work.options.metadata
    image = work.img.copy()
    if image.get_typeof("orientation"):
        image.remove("orientation")
    if mode == "keep":
        work.keep = Keep.ALL
    elif mode == "copyright":
        _only_copyright(image)
        work.keep = Keep.ICC | Keep.EXIF
    elif mode == "icc":
        work.keep = Keep.ICC
    else:
        work.keep = Keep.NONE
        for name in image.get_fields():
            if name not in _ANIMATION_FIELDS and (
                name.startswith(("exif-", "xmp-", "iptc-", "icc-")) or name.endswith("-data")
            ):
                image.remove(name)
    work.image = image


def _only_copyright(image: pyvips.Image) -> None:
    """Leave the EXIF block with nothing but the copyright tag (libvips rebuilds the
    block from the exif-* fields when it saves)."""
    kept = {name: image.get(name) for name in COPYRIGHT_FIELDS if image.get_typeof(name)}
    for name in image.get_fields():
        if name.startswith(("exif-", "xmp-", "iptc-")) and name != "exif-data":
            image.remove(name)
    if image.get_typeof("exif-data"):
        image.remove("exif-data")
    for name in ("xmp-data", "iptc-data"):
        if image.get_typeof(name):
            image.remove(name)
    for name, value in kept.items():
        image.set_type(pyvips.GValue.gstr_type, name, str(value))
