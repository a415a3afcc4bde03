"""describe: ``fm=json`` / ``format=json`` answers what the header says, as JSON."""

from __future__ import annotations

import json

from transforms.image.work import Work


def describe(work: Work) -> None:
    info = work.info
    assert info is not None
    work.format = "json"
    width, height = info.oriented
    work.body = json.dumps(
        {
            "width": info.width,
            "height": info.height,
            "format": info.format,
            "has_alpha": info.has_alpha,
            "orientation": info.orientation,
            "frames": info.frames,
            "bytes": info.size,
            "oriented": {"width": width, "height": height},
        },
        separators=(",", ":"),
    ).encode()
