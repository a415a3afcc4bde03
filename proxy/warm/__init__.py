"""Cache warming: `POST /_warm` jobs (`jobs.py`) over URL lists, sitemaps and playlists
(`sources.py`), the `edgeshield warm` command (`cli.py`), and the memory tier filled
from Redis at start with the keys requested most (`top_keys.py`)."""
