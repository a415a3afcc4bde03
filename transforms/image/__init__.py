"""The image transform engine: two URL syntaxes, one canonical ``ImageOptions``, format
negotiation, a pyvips pipeline of named steps, safety limits and a bounded worker pool.

Pipeline integration (see docs/images.md):

    options = parse_query(query, settings=s) or parse_cloudflare_path(path, settings=s)
    key     = image_key(source_key, variant_key(options, accept))  # never the raw Accept
    result  = await workers.run(source_bytes, options, accept)     # TransformResult
    # Vary: Accept on the response when options.format == "auto"
    # workers.run waits for its estimated peak memory within images.memory_budget_bytes
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transforms.image.cloudflare import parse_cloudflare_path
from transforms.image.errors import ImageLimitError, ImageOptionError, KeepOriginal, Overloaded
from transforms.image.imgix import parse_query
from transforms.image.negotiate import (
    SourceInfo,
    accept_class,
    accepted,
    avif_deferred,
    negotiate,
    variant_key,
)
from transforms.image.options import Fit, Gravity, ImageOptions
from transforms.image.parsing import check_policy

if TYPE_CHECKING:
    from transforms.image.pipeline import encode_avif_later, transform
    from transforms.image.work import TransformResult
    from transforms.image.workers import ImageWorkers, configure_vips

# What needs libvips loads on first use: `edgeshield serve`'s parent process checks image
# options without loading it, so granian can fork its workers (a fork of a process whose
# libvips threads run deadlocks in the first transform: proxy/serve/engines.py).
_NEEDS_LIBVIPS = {
    "encode_avif_later": "transforms.image.pipeline",
    "transform": "transforms.image.pipeline",
    "TransformResult": "transforms.image.work",
    "ImageWorkers": "transforms.image.workers",
    "configure_vips": "transforms.image.workers",
}


def __getattr__(name: str) -> Any:
    module = _NEEDS_LIBVIPS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Fit",
    "Gravity",
    "ImageLimitError",
    "ImageOptionError",
    "ImageOptions",
    "ImageWorkers",
    "KeepOriginal",
    "Overloaded",
    "SourceInfo",
    "TransformResult",
    "accept_class",
    "accepted",
    "avif_deferred",
    "check_policy",
    "configure_vips",
    "encode_avif_later",
    "negotiate",
    "parse_cloudflare_path",
    "parse_query",
    "transform",
    "variant_key",
]
