"""Slicing without configuration: large objects on routes without `slice_bytes`.

An object is served from slices of `[cache] auto_slice_bytes` once it is known to be
larger than the memory tier's object limit, not kept whole by any tier, and its origin
answers ranges. Nothing is asked of the origin
to learn that: the ordinary miss sends its GET, and its head tells (`Accept-Ranges:
bytes`, a Content-Length, and the cache refusing the size); the response then switches
to slices before a byte of the body is sent, and the whole fetch, read by nobody, stops
after its first chunks. The slice step stores the object record, so from then on the
object's requests go straight to its slices (`sliced_before`), seeks included.
"""

from __future__ import annotations

from proxy.cache.collapse import Fetch, Head
from proxy.cache.keys import record_key
from proxy.exchange import Exchange
from proxy.http.streaming import Kind, kind_of
from proxy.slices.read import lookup


def auto_size(ex: Exchange) -> int | None:
    """The slice size for the exchange's object if it turns out large, or None: the
    route has its own slice_bytes, slicing is off, or the object is a playlist (small
    text whose kind is read from its whole body)."""
    size = ex.state.settings.cache.auto_slice_bytes
    if not size or ex.route.policy.slice_bytes or kind_of(ex.req.path, None) is Kind.PLAYLIST:
        return None
    return size


async def sliced_before(ex: Exchange) -> int | None:
    """The slice size when the object was sliced automatically before (its record, or
    the hit-for-miss mark of a record that could not be kept, is in a tier): its
    requests then go straight to the slices."""
    size = auto_size(ex)
    if size is None:
        return None
    found = await lookup(ex.state, record_key(ex.key), ex.req.headers)
    return size if found.value is not None else None


def slice_instead(ex: Exchange, fetch: Fetch, head: Head) -> int | None:
    """The slice size when a miss's answer shows an object to slice: a 200 of known
    length larger than the memory tier's object limit, that no tier will keep whole (the
    fetch stopped keeping it), from an origin that answers ranges. One that may not be
    stored at all is sliced too: each request then reads only its slices, uncached. Not
    a relay's: the owning worker it asked slices it if that is due."""
    size = auto_size(ex)
    if size is None or fetch.keep_all or fetch.relayed or not head.ranges or head.status != 200:
        return None
    limit = ex.state.settings.cache.memory_max_object_bytes
    if head.content_length is None or head.content_length <= limit:
        return None
    return size
