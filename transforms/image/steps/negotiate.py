"""negotiate: the output format, from the options, the client's Accept and the source."""

from __future__ import annotations

from transforms.image.negotiate import avif_deferred
from transforms.image.negotiate import negotiate as choose
from transforms.image.work import Work


def negotiate(work: Work) -> None:
    assert work.info is not None
    work.format = choose(work.options, work.accept, work.info, work.settings)
    work.avif_later = avif_deferred(work.options, work.accept, work.info, work.settings)
