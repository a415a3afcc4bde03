"""Purging: the `/_purge` API and `PURGE` requests (request.py), carrying a purge out in
slices that yield to requests (engine.py), the purge bus (bus.py), the JSON report
(report.py) and `edgeshield purge` (cli.py).

The cache side lives in proxy/cache: surrogate-key index (tags.py) and bans (bans.py)."""
