"""Output format negotiation (``format=auto`` / ``auto=format``) and the variant key.

Only formats the client *names* in Accept count (``image/avif``, ``image/webp``) and
``q=0`` excludes them; ``*/*`` and ``image/*`` promise nothing, so curl gets JPEG or PNG.
Among the accepted, the engine's preference decides, not the client's q-values: AVIF,
then WebP, then JPEG (PNG when the output keeps transparency).

The variant cache key never contains the raw Accept header: for ``auto`` it contains
the *accept class* (which of AVIF/WebP the client takes, at most four values), which
together with the source determines the negotiated format. So one image has at most a
handful of cached variants per option set, and the key is known before the source is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from config.images import ImageSettings
from transforms.image.errors import ImageLimitError
from transforms.image.geometry import plan
from transforms.image.options import ImageOptions, OutputFormat

MODERN = ("avif", "webp")
# Formats that can hold more than one frame, in libvips' savers.
ANIMATED_OUTPUTS = frozenset({"webp", "gif"})
# Sources kept in their own format when no format is asked for; others become JPEG/PNG.
_KEEPABLE: dict[str, OutputFormat] = {
    "jpeg": "jpeg",
    "png": "png",
    "webp": "webp",
    "avif": "avif",
    "gif": "gif",
}


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the header of the source says (no pixels decoded)."""

    format: str  # sniffed: jpeg, png, webp, avif, heif, gif, tiff, svg
    width: int  # as stored (before EXIF orientation)
    height: int
    has_alpha: bool
    frames: int = 1
    orientation: int = 1
    size: int = 0  # bytes
    pixel_bytes: int = 4  # decoded bytes per pixel: bands x bytes per band

    @property
    def oriented(self) -> tuple[int, int]:
        """Width and height as displayed, after the EXIF orientation."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def accepted(accept: str | None) -> frozenset[str]:
    """Which of AVIF/WebP the Accept header names with a non-zero q."""
    if not accept:
        return frozenset()
    found: set[str] = set()
    for item in accept.lower().split(","):
        media, _, params = item.partition(";")
        media = media.strip()
        if media not in ("image/avif", "image/webp"):
            continue
        if _q(params) > 0:
            found.add(media[6:])
        else:
            found.discard(media[6:])
    return frozenset(found)


def accept_class(accept: str | None) -> str:
    """The part of Accept the output depends on: "avif+webp", "avif", "webp" or ""."""
    return "+".join(fmt for fmt in MODERN if fmt in accepted(accept))


def variant_key(options: ImageOptions, accept: str | None) -> str:
    """The cache-key component of a variant: ``options.cache_key()`` plus, for
    ``format=auto`` only, the accept class. Same key <=> same output bytes for the same
    source (in "background" AVIF mode the entry is first WebP, then upgraded in place)."""
    if options.format == "auto":
        return f"{options.cache_key()};accept={accept_class(accept)}"
    return options.cache_key()


def negotiate(
    options: ImageOptions,
    accept: str | None,
    source: SourceInfo,
    settings: ImageSettings | None = None,
) -> OutputFormat:
    """The output format for these options, this client and this source."""
    return _choose(options, accepted(accept), source, settings or _default_settings())[0]


def avif_deferred(
    options: ImageOptions,
    accept: str | None,
    source: SourceInfo,
    settings: ImageSettings | None = None,
) -> bool:
    """True when AVIF would have been chosen but the "background" AVIF mode answers
    WebP now: the pipeline should schedule ``encode_avif_later`` for this variant."""
    return _choose(options, accepted(accept), source, settings or _default_settings())[1]


def _choose(
    options: ImageOptions, clients: frozenset[str], source: SourceInfo, settings: ImageSettings
) -> tuple[OutputFormat, bool]:
    requested = options.format
    animated = source.frames > 1 and options.anim
    alpha = source.has_alpha and not (options.background and options.background[3] == 255)
    if requested == "json":
        return "json", False
    if requested == "auto":
        if animated:
            return ("webp" if "webp" in clients else "gif"), False
        if "avif" in clients and _avif_ok(options, source, settings):
            if settings.avif.mode == "background" and "webp" in clients:
                return "webp", True
            return "avif", False
        if "webp" in clients:
            return "webp", False
        return ("png" if alpha else "jpeg"), False
    if requested == "avif":
        if animated or not _avif_ok(options, source, settings):
            return "webp", False
        return "avif", False
    if requested is not None:
        return requested, False
    # No format asked for: keep the source's, when it is a web format.
    kept = _KEEPABLE.get(source.format)
    if kept is not None:
        if kept == "avif" and not _avif_ok(options, source, settings):
            return ("png" if alpha else "jpeg"), False
        return kept, False
    return ("png" if alpha else "jpeg"), False


@cache
def _default_settings() -> ImageSettings:
    return ImageSettings()


def _avif_ok(options: ImageOptions, source: SourceInfo, settings: ImageSettings) -> bool:
    if not settings.avif.enabled:
        return False
    return output_pixels(options, source, settings) <= settings.avif.max_pixels


def output_pixels(options: ImageOptions, source: SourceInfo, settings: ImageSettings) -> int:
    """Pixels of the output (one frame), from the header and the options alone."""
    w, h = source.oriented
    if options.rect is not None:
        x, y, rw, rh = options.rect
        w, h = max(1, min(rw, w - x)), max(1, min(rh, h - y))
    if options.rotate in (90, 270):
        w, h = h, w
    if options.lqip:
        return settings.lqip.width * settings.lqip.width
    limits = settings.limits
    try:
        return plan(w, h, options, limits.max_output_width, limits.max_output_height).pixels
    except ImageLimitError:
        return w * h


def _q(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 1.0
    return 1.0
