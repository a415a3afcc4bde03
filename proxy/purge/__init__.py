"""Purging: the `/_purge` API and `PURGE` requests (request.py), batched execution
(batch.py), the JSON report (report.py) and `edgeshield purge` (cli.py).

The cache side lives in proxy/cache: surrogate-key index (tags.py) and bans (bans.py)."""
