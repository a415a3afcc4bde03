"""`kind = "s3"` origins: fields, validation, and secrets that never show."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.loader import ConfigError, check_config, load_settings
from config.schema import S3Origin, Settings

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN//////////wEaDM"
REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, origin: str) -> Path:
    path = tmp_path / "edgeshield.toml"
    text = textwrap.dedent(origin).strip() + '\n\n[[routes]]\norigin = "media"\n'
    path.write_text("[origins.media]\n" + text, encoding="utf-8")
    return path


def load(tmp_path: Path, origin: str, env: dict[str, str] | None = None) -> S3Origin:
    settings = load_settings(write(tmp_path, origin), env or {})
    media = settings.origins["media"]
    assert isinstance(media, S3Origin)
    return media


def errors(tmp_path: Path, origin: str, env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, origin), env or {})
    text = info.value.format()
    for secret in (SECRET, KEY_ID, TOKEN, SECRET.strip()):
        assert secret not in text
    return dict(info.value.errors)


SIGNED = f"""
kind = "s3"
bucket = "media"
access_key_id = "{KEY_ID}"
secret_access_key = "{SECRET}"
"""


def test_defaults(tmp_path: Path) -> None:
    media = load(tmp_path, SIGNED)
    assert (media.region, media.endpoint_url, media.addressing) == ("us-east-1", None, "virtual")
    assert (media.key_prefix, media.anonymous, media.session_token) == ("", False, None)
    assert media.access_key_id is not None and media.secret_access_key is not None
    assert media.access_key_id.get_secret_value() == KEY_ID
    assert media.secret_access_key.get_secret_value() == SECRET
    assert (media.connect_timeout, media.first_byte_timeout, media.read_timeout) == (3, 15, 10)


def test_all_fields(tmp_path: Path) -> None:
    media = load(
        tmp_path,
        SIGNED
        + f"""
        region = "auto"
        endpoint_url = "https://acc.r2.cloudflarestorage.com"
        addressing = "path"
        key_prefix = "site/v1/"
        session_token = "{TOKEN}"
        read_timeout = 2.5
        max_connections = 10
        """,
    )
    assert str(media.endpoint_url) == "https://acc.r2.cloudflarestorage.com/"
    assert (media.region, media.addressing, media.key_prefix) == ("auto", "path", "site/v1/")
    assert media.session_token is not None and media.session_token.get_secret_value() == TOKEN
    assert (media.read_timeout, media.max_connections) == (2.5, 10)


def test_anonymous(tmp_path: Path) -> None:
    media = load(tmp_path, 'kind = "s3"\nbucket = "public-media"\nanonymous = true')
    assert media.anonymous and media.access_key_id is None


def test_secrets_from_the_environment(tmp_path: Path) -> None:
    env = {
        "EDGESHIELD_ORIGINS__MEDIA__ACCESS_KEY_ID": KEY_ID,
        "EDGESHIELD_ORIGINS__MEDIA__SECRET_ACCESS_KEY": SECRET,
        "EDGESHIELD_ORIGINS__MEDIA__SESSION_TOKEN": TOKEN,
    }
    media = load(tmp_path, 'kind = "s3"\nbucket = "media"', env)
    assert media.secret_access_key is not None
    assert media.secret_access_key.get_secret_value() == SECRET
    assert media.session_token is not None and media.session_token.get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("extra", "path", "reason"),
    [
        ("", "origins.media", "set access_key_id and secret_access_key, or anonymous = true"),
        (
            f'anonymous = true\nsecret_access_key = "{SECRET}"\naccess_key_id = "{KEY_ID}"',
            "origins.media.anonymous",
            "anonymous = true cannot be combined with access_key_id, secret_access_key",
        ),
        (
            f'access_key_id = "{KEY_ID}"',
            "origins.media.secret_access_key",
            "required when access_key_id is set",
        ),
        (
            f'secret_access_key = "{SECRET}"',
            "origins.media.access_key_id",
            "required when secret_access_key is set",
        ),
        (
            f'session_token = "{TOKEN}"',
            "origins.media",
            "set access_key_id and secret_access_key, or anonymous = true",
        ),
        (
            f'anonymous = true\nsession_token = "{TOKEN}"',
            "origins.media.anonymous",
            "anonymous = true cannot be combined with session_token",
        ),
    ],
)
def test_credentials_rules(tmp_path: Path, extra: str, path: str, reason: str) -> None:
    problems = errors(tmp_path, f'kind = "s3"\nbucket = "media"\n{extra}')
    assert problems == {path: reason}


@pytest.mark.parametrize(
    "bucket",
    [
        "ab",
        "x" * 64,
        "Media",
        "media_files",
        "-media",
        "media-",
        ".media",
        "me..dia",
        "192.168.1.10",
        "m\u00e9dia",
        "",
    ],
)
def test_bad_bucket_names(tmp_path: Path, bucket: str) -> None:
    problems = errors(tmp_path, SIGNED.replace('bucket = "media"', f'bucket = "{bucket}"'))
    assert list(problems) == ["origins.media.bucket"]
    assert problems["origins.media.bucket"].startswith("invalid bucket name")


@pytest.mark.parametrize("bucket", ["abc", "my.media-2024", "x" * 63, "0media9"])
def test_good_bucket_names(tmp_path: Path, bucket: str) -> None:
    assert load(tmp_path, SIGNED.replace('"media"', f'"{bucket}"', 1)).bucket == bucket


@pytest.mark.parametrize(
    ("extra", "path", "reason"),
    [
        ('region = "US_EAST"', "origins.media.region", "invalid region"),
        ('region = "auto"', "origins.media.endpoint_url", "required when region is 'auto'"),
        ('addressing = "dns"', "origins.media.addressing", "must be 'path' or 'virtual'"),
        (
            'endpoint_url = "http://127.0.0.1:9000"',
            "origins.media.addressing",
            "virtual-host addressing needs a DNS name",
        ),
        (
            'endpoint_url = "http://[::1]:9000"',
            "origins.media.addressing",
            "virtual-host addressing needs a DNS name",
        ),
        ('endpoint_url = "ftp://x"', "origins.media.endpoint_url", "URL scheme"),
        ('endpoint_url = "https://h/?x=1"', "origins.media.endpoint_url", "plain http(s)"),
        ('key_prefix = "/media"', "origins.media.key_prefix", "must not start with '/'"),
        ('key_prefix = "a/../b/"', "origins.media.key_prefix", "'.' or '..' segments"),
        ("read_timeout = -1", "origins.media.read_timeout", "must be >= 0"),
    ],
)
def test_other_rules(tmp_path: Path, extra: str, path: str, reason: str) -> None:
    problems = errors(tmp_path, SIGNED + extra)
    assert list(problems) == [path]
    assert reason in problems[path]


def test_ip_endpoint_with_path_addressing_is_fine(tmp_path: Path) -> None:
    media = load(tmp_path, SIGNED + 'endpoint_url = "http://127.0.0.1:9000"\naddressing = "path"')
    assert media.addressing == "path"


# -- secrets never show ------------------------------------------------------------------


def test_repr_and_str_mask_secrets(tmp_path: Path) -> None:
    media = load(tmp_path, SIGNED + f'session_token = "{TOKEN}"')
    for text in (repr(media), str(media), media.model_dump_json()):
        assert SECRET not in text and KEY_ID not in text and TOKEN not in text


def test_check_config_never_prints_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, SIGNED)
    code, text = check_config(path, {})
    assert code == 0 and SECRET not in text and KEY_ID not in text
    broken = write(tmp_path, SIGNED + 'bucket_typo = 1\nregion = "Bad Region"')
    code, text = check_config(broken, {})
    assert code == 1 and "origins.media.bucket_typo" in text and "origins.media.region" in text
    assert SECRET not in text and KEY_ID not in text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1234567890", "must be a string"),  # JSON from the environment: a number
        ("true", "must be a string"),
        ('["x"]', "must be a string"),
        (f"  {SECRET}  ", "leading or trailing whitespace"),
        ("   ", "must not be empty"),
    ],
)
def test_bad_secret_values_are_not_echoed(tmp_path: Path, value: str, reason: str) -> None:
    env = {"EDGESHIELD_ORIGINS__MEDIA__SECRET_ACCESS_KEY": value}
    path = write(tmp_path, f'kind = "s3"\nbucket = "media"\naccess_key_id = "{KEY_ID}"')
    code, text = check_config(path, env)
    assert code == 1 and reason in text
    assert "origins.media.secret_access_key" in text
    assert "set by EDGESHIELD_ORIGINS__MEDIA__SECRET_ACCESS_KEY" in text
    if value.strip():
        assert value.strip() not in text


def test_validation_error_text_hides_inputs() -> None:
    data: dict[str, Any] = {
        "origins": {
            "media": {
                "kind": "s3",
                "bucket": "Bad_Bucket",
                "access_key_id": KEY_ID,
                "secret_access_key": SECRET,
                "anonymous": True,
            }
        },
        "routes": [{"origin": "media"}],
    }
    with pytest.raises(ValidationError) as info:
        Settings.model_validate(data)
    assert SECRET not in str(info.value) and KEY_ID not in str(info.value)
    del data["origins"]["media"]["bucket"]
    data["origins"]["media"]["bucket"] = "media"
    with pytest.raises(ValidationError) as info:
        S3Origin.model_validate(data["origins"]["media"])
    assert "cannot be combined" in str(info.value)
    assert SECRET not in str(info.value) and KEY_ID not in str(info.value)


# -- the examples in docs/origins.md are valid -------------------------------------------


def _s3_examples() -> list[str]:
    text = (REPO / "docs" / "origins.md").read_text(encoding="utf-8")
    section = text.split("\n## s3", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```toml\n(.*?)```", section, flags=re.S)


def test_docs_examples_validate() -> None:
    examples = _s3_examples()
    assert len(examples) >= 5
    for example in examples:
        data = tomllib.loads(example)
        for origin in data["origins"].values():
            if not origin.get("anonymous"):  # the docs pass keys by environment
                origin.setdefault("access_key_id", KEY_ID)
                origin.setdefault("secret_access_key", SECRET)
        data.setdefault("routes", [{"origin": next(iter(data["origins"]))}])
        settings = Settings.model_validate(data)
        assert all(isinstance(o, S3Origin) for o in settings.origins.values())
