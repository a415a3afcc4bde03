"""[server.tls]: the certificate and key checks `check-config` and `serve` run, each
problem named by its field; and no bytes make the checker raise."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from config.loader import ConfigError, check_config, load_settings
from config.tls import pair_problems, plain_key, tls_errors
from tests.support.tls_certs import TestPki, key_pem

PASSWORD = "unit-test-password"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


def _config(folder: Path, cert: Path, key: Path, extra: str = "") -> Path:
    path = folder / "edgeshield.toml"
    path.write_text(
        f'[server.tls]\ncert = "{cert}"\nkey = "{key}"\n{extra}'
        '[origins.m]\nkind = "fs"\nroot = "/nonexistent"\n[[routes]]\norigin = "m"\n'
    )
    return path


def _errors(path: Path, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env or {}, checks=(tls_errors,))
    return caught.value.errors


def test_a_matching_pair_passes(pki: TestPki, tmp_path: Path) -> None:
    leaf = pki.leaf("ok")
    settings = load_settings(_config(tmp_path, leaf.cert, leaf.key), {}, checks=(tls_errors,))
    assert settings.server.tls is not None and settings.server.tls.cert == leaf.cert
    code, text = check_config(_config(tmp_path, leaf.cert, leaf.key), {}, checks=(tls_errors,))
    assert code == 0, text


def test_a_key_of_another_certificate(pki: TestPki, tmp_path: Path) -> None:
    a, b = pki.leaf("a"), pki.leaf("b")
    errors = _errors(_config(tmp_path, a.cert, b.key))
    assert errors == [("server.tls.key", "does not match the certificate (the first one in cert)")]


def test_unreadable_and_missing_files(pki: TestPki, tmp_path: Path) -> None:
    leaf = pki.leaf("c")
    errors = _errors(_config(tmp_path, tmp_path, tmp_path / "none.key"))
    assert [field for field, _ in errors] == ["server.tls.cert", "server.tls.key"]
    assert "cannot read" in errors[0][1] and "Is a directory" in errors[0][1]
    assert "No such file or directory" in errors[1][1]
    assert _errors(_config(tmp_path, leaf.cert, tmp_path / "none.key"))[0][0] == "server.tls.key"


def test_files_that_are_not_pem(pki: TestPki, tmp_path: Path) -> None:
    leaf = pki.leaf("d")
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"\x00\x01 not pem at all")
    assert _errors(_config(tmp_path, junk, leaf.key)) == [
        ("server.tls.cert", "not a PEM certificate (expected BEGIN CERTIFICATE blocks)")
    ]
    # A certificate given as the key, and a key given as the certificate.
    assert _errors(_config(tmp_path, leaf.cert, leaf.cert))[0][0] == "server.tls.key"
    assert _errors(_config(tmp_path, leaf.key, leaf.key))[0][0] == "server.tls.cert"
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"A" * (2 * 1024 * 1024))
    assert "not a PEM file" in _errors(_config(tmp_path, huge, leaf.key))[0][1]


def test_encrypted_keys_and_their_password(pki: TestPki, tmp_path: Path) -> None:
    leaf = pki.leaf("e", password=PASSWORD)
    path = _config(tmp_path, leaf.cert, leaf.key)
    assert _errors(path) == [("server.tls.key", "the key is encrypted: set key_password")]
    wrong = {"EDGESHIELD_SERVER__TLS__KEY_PASSWORD": "not-the-password"}
    ((field, reason),) = _errors(path, wrong)
    assert field == "server.tls.key" and "cannot decrypt" in reason
    assert "not-the-password" not in reason
    right = {"EDGESHIELD_SERVER__TLS__KEY_PASSWORD": PASSWORD}
    settings = load_settings(path, right, checks=(tls_errors,))
    assert PASSWORD not in repr(settings)
    plain = plain_key(leaf.key.read_bytes(), PASSWORD)
    assert b"ENCRYPTED" not in plain and pair_problems(leaf.cert.read_bytes(), plain, None) == []


def test_a_key_type_rustls_cannot_sign_with(pki: TestPki) -> None:
    leaf = pki.leaf("f")
    p521 = key_pem(ec.generate_private_key(ec.SECP521R1()))
    assert pair_problems(leaf.cert.read_bytes(), p521, None) == [
        ("key", "unsupported key type: use RSA, ECDSA P-256/P-384 or Ed25519")
    ]


def test_no_tls_section_no_checks(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text('[origins.m]\nkind = "fs"\nroot = "/x"\n[[routes]]\norigin = "m"\n')
    assert load_settings(path, {}, checks=(tls_errors,)).server.tls is None


@given(cert=st.binary(max_size=600), key=st.binary(max_size=600), password=st.none() | st.text())
def test_any_bytes_give_problems_never_an_exception(
    cert: bytes, key: bytes, password: str | None
) -> None:
    problems = pair_problems(cert, key, password)
    assert problems and all(field in ("cert", "key") for field, _ in problems)


@given(noise=st.binary(max_size=200), password=st.none() | st.text(max_size=20))
def test_pem_framed_noise_is_refused_cleanly(noise: bytes, password: str | None) -> None:
    framed = b"-----BEGIN CERTIFICATE-----\n" + noise + b"\n-----END CERTIFICATE-----\n"
    keyish = b"-----BEGIN PRIVATE KEY-----\n" + noise + b"\n-----END PRIVATE KEY-----\n"
    assert pair_problems(framed, keyish, password)
