"""``[server.tls]``: the certificate the main listener serves HTTPS (and HTTP/2) with, and
the checks that refuse a certificate and key that cannot work together.

The files are read and checked by ``tls_errors`` (a settings check run by
``edgeshield serve`` and ``check-config``, like the image presets), not by the schema:
worker processes load the settings again, and a certificate replaced on disk while they
start must not stop them (the parent hands them a checked copy, proxy/serve/tls.py)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from pydantic import BaseModel, ConfigDict, Field

from config.fields import SecretText

if TYPE_CHECKING:
    from config.schema import Settings

# The key types rustls signs with (RSA, ECDSA P-256/P-384, Ed25519).
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1)
# A PEM file larger than this is not a certificate chain anyone serves.
MAX_PEM_BYTES = 1024 * 1024


class TlsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # PEM files: the certificate chain (leaf first) and its private key.
    cert: Path
    key: Path
    # For an encrypted key. Pass it by environment: EDGESHIELD_SERVER__TLS__KEY_PASSWORD.
    key_password: SecretText | None = None
    # A plain-HTTP port answering every request with 308 to the same URL over HTTPS.
    redirect_port: int | None = Field(default=None, ge=1, le=65535)
    # Seconds between checks of the two files for a change (granian reloads the
    # certificate without dropping connections, as on SIGHUP); 0: on SIGHUP only.
    watch_interval: float = Field(default=10.0, ge=0, le=86400)
    # ALPN offers h2 as well as http/1.1 (granian). Off, the listener speaks HTTP/1.1
    # only, where header_read_timeout also closes a connection that completes the
    # handshake and then sends nothing (docs/deployment.md#connections-that-send-nothing).
    http2: bool = True


def read_pem(path: Path) -> bytes:
    """The file's bytes; OSError when unreadable, ValueError when implausibly large."""
    with path.open("rb") as file:
        data = file.read(MAX_PEM_BYTES + 1)
    if len(data) > MAX_PEM_BYTES:
        raise ValueError(f"larger than {MAX_PEM_BYTES // 1024} KiB: not a PEM file")
    return data


def pair_problems(cert: bytes, key: bytes, password: str | None) -> list[tuple[str, str]]:
    """What keeps this certificate chain and key from being served: (field, reason)."""
    try:
        chain = x509.load_pem_x509_certificates(cert)
    except ValueError:
        return [("cert", "not a PEM certificate (expected BEGIN CERTIFICATE blocks)")]
    try:
        private = load_pem_private_key(key, password.encode() if password else None)
    except TypeError:
        wrong = "the key is encrypted: set" if password is None else "not encrypted: remove"
        return [("key", f"{wrong} key_password")]
    except ValueError:
        if password is not None:
            return [("key", "cannot decrypt the key with key_password, or not a PEM key")]
        return [("key", "not a PEM private key (expected a BEGIN ... PRIVATE KEY block)")]
    if not _servable(private):
        return [("key", "unsupported key type: use RSA, ECDSA P-256/P-384 or Ed25519")]
    if _public(chain[0].public_key()) != _public(private.public_key()):
        return [("key", "does not match the certificate (the first one in cert)")]
    return []


def plain_key(key: bytes, password: str) -> bytes:
    """The key decrypted, as unencrypted PKCS#8 PEM (for granian: see proxy/serve/tls.py)."""
    private = load_pem_private_key(key, password.encode())
    return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def checked_pair(tls: TlsSettings) -> tuple[tuple[bytes, bytes] | None, list[tuple[str, str]]]:
    """Read both files once and check them together: ((cert, key) bytes, or None when
    there are problems), and (field, reason) per problem."""
    contents: dict[str, bytes] = {}
    problems: list[tuple[str, str]] = []
    for field, path in (("cert", tls.cert), ("key", tls.key)):
        try:
            contents[field] = read_pem(path)
        except OSError as exc:
            problems.append((field, f"cannot read {str(path)!r}: {exc.strerror or exc}"))
        except ValueError as exc:
            problems.append((field, f"{str(path)!r} is {exc}"))
    if not problems:
        password = tls.key_password.get_secret_value() if tls.key_password else None
        problems = pair_problems(contents["cert"], contents["key"], password)
    if problems:
        return None, problems
    return (contents["cert"], contents["key"]), []


def tls_errors(settings: Settings) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """A settings check (config.loader ``checks``) for ``[server.tls]``."""
    tls = settings.server.tls
    if tls is None:
        return []
    return [(("server", "tls", field), reason) for field, reason in checked_pair(tls)[1]]


def _servable(key: object) -> bool:
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return True
    return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, _EC_CURVES)


def _public(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]
