"""blur_sharpen: Gaussian blur (sigma in output pixels) and unsharp-mask sharpening.
Big blurs run on a downscaled copy so their cost stays flat: a sigma of 100 at full
size would be a 600-tap convolution per pixel."""

from __future__ import annotations

import pyvips

from transforms.image.work import Work

DIRECT_SIGMA = 10.0


def blur_sharpen(work: Work) -> None:
    sigma, amount = work.options.blur, work.options.sharpen
    if sigma > 0:
        work.per_frame(lambda frame: _blur(frame, sigma))
    if amount > 0:
        work.per_frame(lambda frame: _sharpen(frame, amount))


def _blur(frame: pyvips.Image, sigma: float) -> pyvips.Image:
    if sigma <= DIRECT_SIGMA:
        return frame.gaussblur(sigma)
    factor = sigma / DIRECT_SIGMA
    small = frame.resize(1 / factor)
    if small.width < 2 or small.height < 2:
        small = frame.resize(2 / frame.width, vscale=2 / frame.height)
    blurred = small.gaussblur(DIRECT_SIGMA).copy_memory()
    return blurred.resize(frame.width / blurred.width, vscale=frame.height / blurred.height)


def _sharpen(frame: pyvips.Image, amount: float) -> pyvips.Image:
    # libvips' default is m2=3 (about Cloudflare's 3); m1 keeps flat areas calm.
    sharpened = frame.sharpen(sigma=1.0, x1=2.0, m1=0.0, m2=amount)
    return sharpened.colourspace("srgb") if sharpened.interpretation != "srgb" else sharpened
