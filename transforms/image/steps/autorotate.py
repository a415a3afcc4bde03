"""autorotate: apply the EXIF orientation to the pixels (and drop the tag)."""

from __future__ import annotations

from transforms.image.work import Work


def autorotate(work: Work) -> None:
    assert work.info is not None
    if work.info.orientation != 1 and work.frames == 1:
        work.image = work.img.autorot()
