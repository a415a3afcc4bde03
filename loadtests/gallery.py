"""Gallery browsing against an edgeshield deployment (Locust scenario).

    locust -f loadtests/gallery.py --host http://127.0.0.1:8090 [--objects MANIFEST]
    locust -f loadtests/gallery.py --host http://127.0.0.1:8090 --headless -u 5 -r 5 \\
        -t 60s --csv var/reports/gallery --html var/reports/gallery.html

Each user is one visitor with one browser (Chrome, Safari 13-17, Firefox, curl, by rough
market share; each sends its real image Accept header) on one device (phone, tablet,
desktop, with its device pixel ratio). It views gallery pages (12 square thumbnails,
fetched 6 at a time), opens photos in a lightbox and downloads originals, thinking
`--think-time` seconds in between. Images are picked Zipf-popular from the manifest; URLs
use the imgix (`?w=320&h=320&fit=crop&dpr=2&auto=format`) or Cloudflare
(`/cdn-cgi/image/width=320,height=320,fit=cover,dpr=2,format=auto/...`) syntax
(`--url-style`). A response fails when it is not a 200, or its format is one the browser
did not ask for (AVIF to Safari 13), or an original's Content-Type is not the file's.

The edgeshield tables (Cache-Status per phase, origin offload, checks) are printed at
the end and written next to Locust's CSVs; see loadtests/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from loadtests.lib.browsing import ImageBrowsing
except ModuleNotFoundError:  # started from outside the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from loadtests.lib.browsing import ImageBrowsing


class GalleryVisitor(ImageBrowsing):
    scenario = "gallery"
