"""Key ring loading (values, files, encodings), masking, and the settings models."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.auth import (
    AuthSettings,
    CountrySettings,
    IpAccessSettings,
    KeySettings,
    NativeSettings,
    RateLimitSettings,
    RouteAccessSettings,
    RouteAuthSettings,
    TrustedProxies,
)
from proxy.auth.keys import KeyError_, KeyRing, load_secret


def test_secrets_from_values_files_and_encodings(tmp_path: Path) -> None:
    (tmp_path / "k.txt").write_text("file secret\n")
    (tmp_path / "rel.txt").write_text("relative")
    auth = AuthSettings.model_validate(
        {
            "keys": {
                "plain": {"secret": "plain secret"},
                "file": {"secret_file": str(tmp_path / "k.txt")},
                "rel": {"secret_file": "rel.txt"},
                "hex": {"secret": "00ff10", "encoding": "hex"},
                "b64": {"secret": "AAEC", "encoding": "base64"},
            }
        }
    )
    ring = KeyRing.from_settings(auth, base_dir=tmp_path)
    assert {k.kid: k.secret for k in ring} == {
        "plain": b"plain secret",
        "file": b"file secret",
        "rel": b"relative",
        "hex": b"\x00\xff\x10",
        "b64": b"\x00\x01\x02",
    }
    assert len(ring) == 5 and "hex" in ring and "nope" not in ring


def test_masking_everywhere(tmp_path: Path) -> None:
    auth = AuthSettings.model_validate({"keys": {"k1": {"secret": "hunter2"}}})
    assert "hunter2" not in repr(auth) and "hunter2" not in str(auth)
    assert "hunter2" not in auth.model_dump_json()
    revealed = auth.model_dump_json(context={"reveal_secrets": True})
    assert "hunter2" in revealed  # only when asked (the worker handoff)
    assert AuthSettings.model_validate_json(revealed) == auth
    ring = KeyRing.from_settings(auth)
    assert "hunter2" not in repr(ring) + repr(ring.get("k1")) + str(ring.get("k1"))
    with pytest.raises(TypeError):
        pickle.dumps(ring.get("k1"))
    with pytest.raises(TypeError):
        pickle.dumps(ring)


def test_signing_key_choice() -> None:
    assert KeyRing({"only": b"x"}).signing_key().kid == "only"
    two = KeyRing({"a": b"x", "b": b"y"})
    with pytest.raises(LookupError, match="several"):
        two.signing_key()
    assert two.signing_key("b").kid == "b"
    with pytest.raises(LookupError, match="unknown"):
        two.signing_key("c")
    with pytest.raises(LookupError, match="no keys"):
        KeyRing().signing_key()
    assert KeyRing({"a": b"x", "b": b"y"}, default_kid="b").signing_key().kid == "b"
    with pytest.raises(KeyError_):
        KeyRing({"a": b"x"}, default_kid="b")
    with pytest.raises(KeyError_):
        KeyRing({"a": b""})


def test_load_secret_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match=r"auth\.keys\.k\.secret: not valid hex"):
        load_secret("k", KeySettings(secret="zz", encoding="hex"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KeyError_, match="empty"):
        load_secret("k", KeySettings(secret_file=tmp_path / "empty"))
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(KeyError_, match="UTF-8"):
        load_secret("k", KeySettings(secret_file=tmp_path / "bin"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keys": {"k": {}}}, "exactly one of secret or secret_file"),
        ({"keys": {"k": {"secret": "a", "secret_file": "/x"}}}, "exactly one"),
        ({"keys": {"bad kid!": {"secret": "a"}}}, "key id"),
        ({"keys": {"k": {"secret": "a"}}, "signing_kid": "j"}, "signing_kid: unknown key"),
        ({"akamai": {"key": "nope"}}, "akamai.key: unknown key"),
        ({"bunny": {"key": "nope"}}, "bunny.key: unknown key"),
        ({"keys": {"k": {"secret": "a", "colour": 1}}}, "Extra inputs"),
        ({"clock_skew": -1}, "greater than or equal"),
        ({"native": {"path_marker": "a/b"}}, "one path segment"),
        ({"native": {"param": "to ken"}}, "parameter/cookie name"),
        ({"cloudfront": {"resource_base": "https://x/path"}}, "without a path"),
        ({"cloudfront": {"public_keys": {"K": {}}}}, "exactly one of public_key"),
        ({"akamai": {"key": "k", "algorithm": "sha512"}, "keys": {"k": {"secret": "a"}}}, "sha256"),
        ({"nginx": {"secure_link": "md5"}}, "variable"),
    ],
)
def test_auth_settings_validation(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AuthSettings.model_validate(data)


def test_models_are_frozen_and_strict() -> None:
    native = NativeSettings()
    with pytest.raises(ValidationError):
        native.param = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RouteAuthSettings(schemes=())
    with pytest.raises(ValidationError):
        RouteAuthSettings(schemes=("vendor",))
    with pytest.raises(ValidationError):
        RateLimitSettings(rate=0, burst=1)
    with pytest.raises(ValidationError, match="CIDR"):
        IpAccessSettings(allow=("10.0.0.0/33",))
    with pytest.raises(ValidationError, match="CIDR"):
        TrustedProxies(cidrs=("proxy.local",))
    with pytest.raises(ValidationError, match="country"):
        CountrySettings(allow=("Germany",))
    assert CountrySettings(allow=("de",)).allow == ("DE",)
    assert TrustedProxies(country_header="CF-IPCountry").country_header == "cf-ipcountry"
    route = RouteAccessSettings.model_validate(
        {"ratelimit": {"rate": 10, "burst": 20}, "cors": {"allow_origins": ["https://a.example"]}}
    )
    assert route.ratelimit is not None and route.ratelimit.shared
