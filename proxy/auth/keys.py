"""The key ring: shared secrets by key id (kid), loaded once at start-up.

Secrets never leave this module in printable form: ``Key`` and ``KeyRing`` reprs show
kids only, and errors name the setting, never the value."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from pathlib import Path

from config.auth import AuthSettings, KeySettings

__all__ = ["Key", "KeyError_", "KeyRing"]


class KeyError_(ValueError):
    """A key cannot be loaded; ``where`` is the setting's path (auth.keys.k1.secret)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class Key:
    """One shared secret. ``secret`` is the key bytes; repr and str show the kid only."""

    __slots__ = ("kid", "secret")

    def __init__(self, kid: str, secret: bytes) -> None:
        if not secret:
            raise KeyError_(f"auth.keys.{kid}", "the secret is empty")
        self.kid = kid
        self.secret = secret

    def __repr__(self) -> str:
        return f"Key(kid={self.kid!r}, secret=<{len(self.secret)} bytes>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("keys are not picklable")  # keeps secrets out of pickles/handoffs


class KeyRing:
    """Keys by kid. Several can be active at once: sign with the new kid while tokens
    signed with the old one stay valid until it is removed from the configuration."""

    __slots__ = ("_keys", "default_kid")

    def __init__(self, keys: Mapping[str, bytes] | None = None, default_kid: str | None = None):
        self._keys: dict[str, Key] = {kid: Key(kid, secret) for kid, secret in (keys or {}).items()}
        if default_kid is not None and default_kid not in self._keys:
            raise KeyError_("auth.signing_kid", f"unknown key {default_kid!r}")
        self.default_kid = default_kid

    @classmethod
    def from_settings(cls, auth: AuthSettings, *, base_dir: Path | None = None) -> KeyRing:
        """Load every ``[auth.keys.<kid>]``; files are read now, relative to ``base_dir``
        when given. Raises ``KeyError_`` naming the setting."""
        loaded = {kid: load_secret(kid, spec, base_dir) for kid, spec in auth.keys.items()}
        return cls(loaded, auth.signing_kid)

    def get(self, kid: str) -> Key | None:
        return self._keys.get(kid)

    def signing_key(self, kid: str | None = None) -> Key:
        """The key to mint with: ``kid``, else the configured default, else the only key."""
        chosen = kid or self.default_kid
        if chosen is None:
            if len(self._keys) != 1:
                raise LookupError(
                    "several keys configured: choose one with --kid or auth.signing_kid"
                    if self._keys
                    else "no keys configured under [auth.keys]"
                )
            chosen = next(iter(self._keys))
        key = self._keys.get(chosen)
        if key is None:
            raise LookupError(f"unknown key id {chosen!r} (known: {', '.join(self.kids)})")
        return key

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(kids={list(self.kids)!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("key rings are not picklable")


def load_secret(kid: str, spec: KeySettings, base_dir: Path | None = None) -> bytes:
    """The key bytes of one ``[auth.keys.<kid>]`` entry."""
    where = f"auth.keys.{kid}"
    if spec.secret is not None:
        text = spec.secret.get_secret_value()
        where += ".secret"
    else:
        assert spec.secret_file is not None
        path = spec.secret_file
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        where += ".secret_file"
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise KeyError_(where, f"cannot read: {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError:
            raise KeyError_(where, "not UTF-8 text") from None
        text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise KeyError_(where, "the secret is empty")
    if spec.encoding == "utf8":
        return text.encode("utf-8")
    try:
        if spec.encoding == "hex":
            return bytes.fromhex(text.strip())
        return base64.b64decode(text.strip(), validate=True)
    except (ValueError, binascii.Error):
        raise KeyError_(where, f"not valid {spec.encoding}") from None
