"""Operations apart from the proxy: `/healthz`, `/readyz`, `/metrics`, `/_admin/*`,
`/_purge` and `PURGE`, as one Starlette application (`app.py`) that `proxy/serve/app.py`
hands those requests to; who may use them (`access.py`), the probes (`probes.py`), the
purge API (`purge.py`), the admin page (`page.py`), its data (`status.py`) and the
top-objects table the proxy path fills for it (`top_objects.py`)."""
