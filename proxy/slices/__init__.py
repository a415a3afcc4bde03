"""Slices: large objects served from fixed-size pieces (see step.py)."""

from proxy.slices.step import serve_sliced

__all__ = ["serve_sliced"]
