"""Forwarding purges to the CDNs in front of the shield (Cloudflare, Fastly, Bunny,
CloudFront). `CdnPurger` fans one purge out to all of them; docs/purge.md has the
configuration and what each vendor is sent."""

from proxy.cdn_purge.base import CdnAdapter, CdnPurgeResult, PurgeCounts, Skipped
from proxy.cdn_purge.purger import CdnPurger, build_adapter

__all__ = [
    "CdnAdapter",
    "CdnPurgeResult",
    "CdnPurger",
    "PurgeCounts",
    "Skipped",
    "build_adapter",
]
