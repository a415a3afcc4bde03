"""Shared code of the Locust scenarios in `loadtests/` (not a locustfile itself).

- `objects`: the object manifest written by `loadtests/make_objects.py`, Zipf popularity
- `cache_status`: RFC 9211 Cache-Status parsing and classification
- `metrics`: scraping the proxy's /metrics, origin offload
- `report`: per-run statistics kept on the Locust Environment, the summary tables, CSVs
  and the web UI tabs
- `options`: the command-line options every scenario understands
- `browsing`: the gallery and video behaviours (abstract users) the scenarios build on
"""
