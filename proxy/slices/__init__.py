"""Slices: large objects served from fixed-size pieces, each its own cache entry (issue 4).

On a route with `slice_bytes = S`, every GET/HEAD is answered from slices: slice i is
bytes [i*S, (i+1)*S) of the object, fetched from the origin with `Range: bytes=a-b` and
cached under `key + NUL "slice=" + i` (an Entry with status 206 and the slice's bytes; its
origin fields keep the Content-Range, so it knows its offset and the object's length).
Seeking in a 2 GiB video costs the slices it touches, and a cold object's first client
gets its 206 (or a 200 streamed slice after slice) at once; no response holds more than
about one slice, so memory is bounded by S, never by the object (nginx's slice module).

Next to the slices, the object record (`key + NUL "slices"`): an Entry with no body that
holds what a HEAD or a precondition needs (client fields, validators, freshness) and the
complete length with the slice size it was cut with. It is written from the first slice
response, rewritten when a later slice response finds it stale, and answers HEAD, 304/412
and 416 without touching a slice. A storable non-2xx answer (404...) takes its place and is
served as an ordinary entry.

Versions: a response uses one version (ETag, Last-Modified, length) throughout. A cached
slice of another version is never used; a slice answer from the origin with another version
means the object changed: the producer drops every slice of the old version and the record,
and stores the new record. A response that has not sent its head yet starts over with the
new version; one already streaming is cut off (left incomplete, so the client sees a broken
transfer, never two versions stitched together).

Freshness per slice, as for any entry: fresh slices are hits; stale ones within
stale-while-revalidate are served while one background request revalidates them (a
conditional ranged request: If-None-Match/If-Modified-Since plus the Range; a 304 refreshes
the slice); beyond that the revalidation is in the foreground. A stale record is checked
the same way through the first slice the response needs.

Concurrent requests for the same slice collapse: a slice fetch is a `Fetch` in
`state.inflight` under the slice's key (`fetch.join_or_start`), read by every waiter.

An origin that ignores Range (200 for a slice request): the request is served from that
answer, the whole representation from byte 0, with local range semantics (as an
unsliced miss would be); the bytes before and after the wanted range are not wasted: each
whole slice that streams past is stored. An origin that answers 416 to slice 0 has an empty
object: that request is passed through unsliced. Vary other than Accept-Encoding makes
slices unshareable (slice requests ask for the identity coding, so they do not vary by it).

Without configuration (`auto`): on a route without `slice_bytes`, an object larger than
the memory tier's object limit, from an origin that sends `Accept-Ranges: bytes`, is
served the same way with slices of `[cache] auto_slice_bytes`; the miss's head decides,
before any byte went out, and the record makes later requests go straight to the slices.

The package: `model` (versions, the record and slice entries), `produce` (slice fetches,
on `proxy/fetch.py`'s origin exchange and pump), `read` (a response's slices: lookup,
collapsing, prefetch, revalidation), `step` (`serve_sliced`: the response) and `auto`.
"""

from proxy.slices.step import serve_sliced

__all__ = ["serve_sliced"]
