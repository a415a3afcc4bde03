"""Progressive video (MP4 over HTTP ranges) against an edgeshield deployment.

    locust -f loadtests/video.py --host http://127.0.0.1:8090 --headless -u 20 -r 5 \\
        -t 60s --csv var/reports/video --html var/reports/video.html

Each user is a video player: it requests a small first range (`--initial-range`, as a
player does to find the moov atom), then seeks `--seeks` times to random offsets,
reading `--read-bytes` each and pausing `--watch-time` in between; one view in five also
reads the tail with a suffix range, one in twenty asks for a range past the end. Every
answer is checked: 206 (416 past the end), Content-Range matching the request and the
file size from the manifest, the body length, and, when the manifest's folder is on this
machine, the bytes themselves (`--verify-bytes`). The "checks" table counts each check.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from loadtests.lib.browsing import VideoViewing
except ModuleNotFoundError:  # started from outside the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from loadtests.lib.browsing import VideoViewing


class VideoViewer(VideoViewing):
    scenario = "video"
