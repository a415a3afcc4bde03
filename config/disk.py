"""Settings of the L3 disk tier (``proxy/cache/disk.py``): ``[cache.disk]`` in the file.

The lead wires this in as a field of the settings (e.g. ``CacheSettings.disk``). Frozen and
closed to unknown keys like the rest of the schema.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

MiB = 1024 * 1024
GiB = 1024 * MiB


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DiskSettings(_Frozen):
    # A directory owned by this tier alone (one instance: an exclusive lock on it, held by
    # the one worker, or for peer workers sharing it by the serving process). None: off.
    path: Path | None = None
    # Bytes of entry files (header + body) kept; beyond it the least recently used go.
    max_bytes: int = Field(default=10 * GiB, ge=1)
    # Larger bodies are never written to disk. A fetch keeps a body in memory until it is
    # stored, so this also bounds that buffer; bigger objects belong on a sliced route
    # ([routes.cache] slice_bytes), whose slices are stored one by one.
    max_object_bytes: int = Field(default=64 * MiB, ge=1)
    # Smaller bodies stay in the upper tiers only (placement; the tier itself does not
    # enforce it): a file per small object costs more in syscalls and inodes than it saves.
    min_object_bytes: int = Field(default=1 * MiB, ge=0)
    # fsync each file (and its directory) before it becomes visible. Off: a power loss may
    # lose recent entries, but never serves a damaged one, since every read checks the
    # length and CRC-32. On: durable, at the cost of one or two disk flushes per write.
    fsync: bool = False
    # Threads doing this tier's disk I/O, so a slow disk cannot starve the event loop's
    # default executor (DNS lookups and the like).
    io_threads: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _sizes_agree(self) -> DiskSettings:
        if self.min_object_bytes > self.max_object_bytes:
            raise ValueError("min_object_bytes is larger than max_object_bytes: nothing would fit")
        return self
