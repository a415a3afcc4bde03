"""Who owns a key: weighted rendezvous (highest random weight) hashing.

Each peer scores each key with a hash of (peer, key); the highest score owns it. With
weights, the score is -w / ln(u) for the hash as u in (0, 1) (Schindelhauer and Schomaker's
weighted form), so a peer owns its weight's share of the keys. Adding or removing a peer
moves only the keys it gains or held; every other key keeps its owner. blake2b, not
Python's salted hash(), so every process and instance agrees."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b

_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Member:
    name: str  # the peer's identity as every member spells it (its URL or socket)
    weight: float = 1.0


def score(member: Member, key: str) -> float:
    digest = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, key=_salt(member))
    u = (int.from_bytes(digest.digest(), "big") + 0.5) / _SCALE  # in (0, 1), never 0 or 1
    return -member.weight / math.log(u)


def _salt(member: Member) -> bytes:
    # blake2b's key is at most 64 bytes: longer names are hashed down first.
    name = member.name.encode("utf-8", "surrogatepass")
    return name if len(name) <= 64 else blake2b(name, digest_size=32).digest()


@dataclass(frozen=True, slots=True)
class Ring:
    """An immutable membership: members with distinct names, in a fixed order."""

    members: tuple[Member, ...]

    @classmethod
    def of(cls, members: Iterable[Member]) -> Ring:
        """Duplicates (by name) keep their first weight; order does not matter."""
        seen: dict[str, Member] = {}
        for m in members:
            seen.setdefault(m.name, m)
        return cls(tuple(sorted(seen.values(), key=lambda m: m.name)))

    def owner(self, key: str) -> Member | None:
        """The member with the highest score for `key` (ties: the first name); None when
        the ring is empty."""
        best: Member | None = None
        best_score = -1.0
        for m in self.members:
            s = score(m, key)
            if s > best_score:
                best, best_score = m, s
        return best

    def shares(self) -> dict[str, float]:
        """Each member's expected share of the keys (its weight over the total)."""
        total = sum(m.weight for m in self.members)
        return {m.name: m.weight / total for m in self.members} if total else {}
