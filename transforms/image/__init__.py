"""The image transform engine: two URL syntaxes, one canonical ``ImageOptions``, format
negotiation, a pyvips pipeline of named steps, safety limits and a bounded worker pool.

Pipeline integration (see docs/images.md):

    options = parse_query(query, settings=s) or parse_cloudflare_path(path, settings=s)
    key     = image_key(source_key, variant_key(options, accept))  # never the raw Accept
    result  = await workers.run(source_bytes, options, accept)     # TransformResult
    # Vary: Accept on the response when options.format == "auto"
    # workers.run waits for its estimated peak memory within images.memory_budget_bytes
"""

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
from transforms.image.pipeline import encode_avif_later, transform
from transforms.image.work import TransformResult
from transforms.image.workers import ImageWorkers, configure_vips

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
