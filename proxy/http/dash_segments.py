"""The media segments of a static DASH manifest, per Representation, in play order: what
segment prefetch needs of an MPD (proxy/streams.py), and nothing else.

Read (ISO/IEC 23009-1 5.3.9): `SegmentList` (its `SegmentURL@media`, in order) and
`SegmentTemplate` with `$Number$` or `$Time$`, counted by its `SegmentTimeline` (each `S`
is 1 + `@r` segments) or by `@duration` / `@timescale` over the Period's length (its
`@duration`, else the MPD's `mediaPresentationDuration` for a single Period). A
template's identifiers (`$RepresentationID$`, `$Bandwidth$`, `$Number%05d$`, `$$`) are
filled in, and `@startNumber` honoured. A `SegmentTemplate` or `SegmentList` on the
AdaptationSet applies to its Representations (the Representation's own attributes win),
and each level's first `BaseURL` is joined to the one above, from the manifest's URL.

Not read, so `None` (no prefetch): a `type="dynamic"` manifest (its segments depend on
the wall clock), a negative `@r`, a template without a count, XML that does not parse,
any DOCTYPE (no entity is ever expanded), or more than `max_segments` in all."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from urllib.parse import urljoin

NS = "{urn:mpeg:dash:schema:mpd:2011}"
_DURATION = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?\Z"
)
_IDENTIFIER = re.compile(r"\$(RepresentationID|Number|Bandwidth|Time|)(%0(\d{1,2})d)?\$")
# A Period this long (seconds) or a count this large is not believed.
MAX_SECONDS = 7 * 86400.0


class _Unreadable(Exception):
    pass


def parse_duration(text: str | None) -> float | None:
    """An xs:duration of days, hours, minutes and seconds in seconds (None: unreadable)."""
    found = _DURATION.match(text.strip()) if text else None
    if found is None or text is None or text.strip() in ("P", "PT"):
        return None
    d, h, m, s = (float(found.group(g) or 0) for g in "dhms")
    return d * 86400 + h * 3600 + m * 60 + s


def dash_segments(text: str, document_url: str, max_segments: int) -> list[list[str]] | None:
    """Each Representation's segment URLs (absolute, against `document_url`), in order;
    None when the manifest is dynamic or not read with certainty (module docstring)."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None
    try:
        root = ET.fromstring(text)
        if root.tag != f"{NS}MPD" or root.get("type", "static") != "static":
            return None
        return _manifest(root, document_url, max_segments)
    except (ET.ParseError, _Unreadable, ValueError, OverflowError):
        return None


def _manifest(root: ET.Element, url: str, max_segments: int) -> list[list[str]]:
    base = _base(root, url)
    periods = root.findall(f"{NS}Period")
    whole = parse_duration(root.get("mediaPresentationDuration"))
    out: list[list[str]] = []
    total = 0
    for period in periods:
        seconds = parse_duration(period.get("duration"))
        if seconds is None and len(periods) == 1:
            seconds = whole
        period_base = _base(period, base)
        for adaptation in period.findall(f"{NS}AdaptationSet"):
            set_base = _base(adaptation, period_base)
            for rep in adaptation.findall(f"{NS}Representation"):
                urls = _representation(
                    rep, adaptation, _base(rep, set_base), seconds, max_segments - total
                )
                total += len(urls)
                if total > max_segments:
                    raise _Unreadable
                if urls:
                    out.append(urls)
    return out


def _base(element: ET.Element, inherited: str) -> str:
    first = element.find(f"{NS}BaseURL")
    text = (first.text or "").strip() if first is not None else ""
    return urljoin(inherited, text) if text else inherited


def _representation(
    rep: ET.Element, adaptation: ET.Element, base: str, seconds: float | None, limit: int
) -> list[str]:
    """At most `limit` segment URLs, else _Unreadable."""
    listed = rep.find(f"{NS}SegmentList")
    if listed is None:
        listed = adaptation.find(f"{NS}SegmentList")
    if listed is not None:
        return [
            urljoin(base, media)
            for item in listed.findall(f"{NS}SegmentURL")
            if (media := item.get("media"))
        ]
    own, shared = rep.find(f"{NS}SegmentTemplate"), adaptation.find(f"{NS}SegmentTemplate")
    if own is None and shared is None:
        return []
    attrs = {
        **(shared.attrib if shared is not None else {}),
        **(own.attrib if own is not None else {}),
    }
    media = attrs.get("media")
    if not media:
        return []
    timeline = None
    for template in (own, shared):
        if template is not None and timeline is None:
            timeline = template.find(f"{NS}SegmentTimeline")
    start = int(attrs.get("startNumber", "1"))
    times = _timeline(timeline, limit) if timeline is not None else None
    if times is None:
        times = _by_duration(attrs, seconds, limit)
    rep_id, bandwidth = rep.get("id", ""), rep.get("bandwidth", "")
    return [
        urljoin(base, _fill(media, rep_id, bandwidth, start + i, t)) for i, t in enumerate(times)
    ]


def _timeline(timeline: ET.Element, limit: int) -> list[int]:
    """The start time of every segment a SegmentTimeline lists."""
    times: list[int] = []
    now = 0
    for s in timeline.findall(f"{NS}S"):
        now = int(s.get("t", now))
        duration, repeat = int(s.get("d", "")), int(s.get("r", "0"))
        if duration <= 0 or repeat < 0 or len(times) + repeat >= limit:
            raise _Unreadable  # (a negative r runs to the next S or the Period's end)
        for _ in range(repeat + 1):
            times.append(now)
            now += duration
    return times


def _by_duration(attrs: dict[str, str], seconds: float | None, limit: int) -> list[int]:
    duration = int(attrs.get("duration", "0"))
    timescale = int(attrs.get("timescale", "1"))
    if duration <= 0 or timescale <= 0 or seconds is None or not 0 < seconds <= MAX_SECONDS:
        raise _Unreadable
    count = math.ceil(seconds * timescale / duration - 1e-9)
    if count > limit:
        raise _Unreadable
    return [i * duration for i in range(count)]


def _fill(template: str, rep_id: str, bandwidth: str, number: int, time: int) -> str:
    def one(found: re.Match[str]) -> str:
        name, width = found.group(1), found.group(3)
        if name == "":
            return "$"
        if name == "RepresentationID":
            return rep_id  # (never formatted, 5.3.9.4.4)
        value = {"Number": number, "Time": time}.get(name)
        if value is None:
            value = int(bandwidth) if bandwidth.isdigit() else 0
        return f"{value:0{int(width)}d}" if width else str(value)

    return _IDENTIFIER.sub(one, template)
