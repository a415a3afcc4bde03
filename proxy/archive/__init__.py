"""Batch downloads: a ZIP of many objects streamed on the fly, as nginx's mod_zip.

An origin answers a GET with a manifest (`manifest.py`) and `X-Archive-Files: zip`, or
a signed URL asks for a plain manifest file as one (`signed.py`); the client gets a
stored-method ZIP of the objects it lists (`layout.py`), each read through this proxy's
own cache and origin route (`serve.py`)."""

from proxy.archive.serve import from_entry, from_fetch, refuse_unsigned, wanted

__all__ = ["from_entry", "from_fetch", "refuse_unsigned", "wanted"]
