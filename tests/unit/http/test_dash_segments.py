"""proxy/http/dash_segments.py: the segments of a static MPD per Representation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.dash_segments import dash_segments, parse_duration

URL = "http://media.test/v/manifest.mpd"
HEAD = (
    '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT6.5S">'
)


def mpd(body: str, head: str = HEAD) -> str:
    return f'<?xml version="1.0"?>\n{head}<Period>{body}</Period></MPD>'


def test_ffmpeg_timeline_template() -> None:
    text = mpd(
        '<AdaptationSet><Representation id="0" bandwidth="69574">'
        '<SegmentTemplate timescale="10240" initialization="init-$RepresentationID$.m4s" '
        'media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1">'
        '<SegmentTimeline><S t="0" d="20480" r="2" /></SegmentTimeline>'
        "</SegmentTemplate></Representation></AdaptationSet>"
    )
    assert dash_segments(text, URL, 100) == [
        [f"http://media.test/v/chunk-stream0-0000{n}.m4s" for n in (1, 2, 3)]
    ]


def test_duration_template_shared_by_representations_with_time_and_bandwidth() -> None:
    text = mpd(
        "<AdaptationSet><BaseURL>video/</BaseURL>"
        '<SegmentTemplate timescale="1000" duration="2000" startNumber="5" '
        'media="$RepresentationID$/$Bandwidth$/$Number$-$Time$.m4s"/>'
        '<Representation id="hi" bandwidth="900"/><Representation id="lo" bandwidth="300"/>'
        "</AdaptationSet>"
    )
    found = dash_segments(text, URL, 100)
    assert found == [
        [f"http://media.test/v/video/{r}/{b}/{5 + i}-{i * 2000}.m4s" for i in range(4)]
        for r, b in (("hi", 900), ("lo", 300))
    ]  # 6.5 s of 2 s segments: 4


def test_segment_list_in_order() -> None:
    text = mpd(
        '<AdaptationSet><Representation id="a"><SegmentList duration="2">'
        '<SegmentURL media="s1.m4s"/><SegmentURL media="/x/s2.m4s"/>'
        "</SegmentList></Representation></AdaptationSet>"
    )
    assert dash_segments(text, URL, 100) == [
        ["http://media.test/v/s1.m4s", "http://media.test/x/s2.m4s"]
    ]


def test_unread_manifests() -> None:
    timeline = (
        '<SegmentTemplate media="$Number$.m4s">'
        '<SegmentTimeline><S d="1" r="-1"/></SegmentTimeline></SegmentTemplate>'
    )
    many = '<SegmentTemplate media="$Number$.m4s" duration="1"/>'
    dynamic = HEAD.replace('type="static"', 'type="dynamic"')
    rep = '<AdaptationSet><Representation id="a">{}</Representation></AdaptationSet>'
    assert dash_segments(mpd(rep.format(timeline)), URL, 100) is None  # negative r
    assert dash_segments(mpd(rep.format(many)), URL, 5) is None  # 7 > max_segments
    assert dash_segments(mpd(rep.format(many), dynamic), URL, 100) is None
    assert dash_segments("<MPD", URL, 100) is None
    assert dash_segments('<!DOCTYPE MPD [<!ENTITY a "b">]><MPD/>', URL, 100) is None
    assert dash_segments("<html/>", URL, 100) is None
    no_length = HEAD.replace(' mediaPresentationDuration="PT6.5S"', "")
    assert dash_segments(mpd(rep.format(many), no_length), URL, 100) is None


def test_durations() -> None:
    assert parse_duration("PT6.0S") == 6.0
    assert parse_duration("PT1H2M3.5S") == 3723.5
    assert parse_duration("P1DT1S") == 86401.0
    assert parse_duration("PT") is None
    assert parse_duration("6S") is None
    assert parse_duration(None) is None


@settings(max_examples=200)
@given(
    st.text(alphabet='<>/="$%0123456789 SDTdrtMPabcimnoeslu-', max_size=300),
    st.sampled_from(["", "<Representation id='1'>", "<SegmentTemplate media='$Number$'>"]),
)
def test_fuzzed_manifests_never_raise(noise: str, element: str) -> None:
    found = dash_segments(mpd(element + noise), URL, 50)
    assert found is None or sum(map(len, found)) <= 50
