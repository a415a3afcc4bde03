"""config.cdn: the [[purge.cdn]] tables (discriminated on kind), secrets, validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ConfigDict, TypeAdapter, ValidationError

from config.cdn import BunnyCdn, CdnPurgeSettings, CloudflareCdn, CloudFrontCdn, FastlyCdn

# As Settings validates it: the top-level model hides inputs in printed errors, and every
# CDN model does so too.
ADAPTER: TypeAdapter[Any] = TypeAdapter(
    CdnPurgeSettings, config=ConfigDict(hide_input_in_errors=True)
)
TOKEN = "sekrit-token-value-42"

TABLES: list[dict[str, Any]] = [
    {"kind": "cloudflare", "name": "cf", "zone_id": "023e105f4ecef8ad9ca3", "api_token": TOKEN},
    {"kind": "fastly", "name": "fastly", "service_id": "SU1Z0isxPaozGVKXdv0eY", "api_token": TOKEN},
    {"kind": "bunny", "name": "bunny", "api_key": TOKEN, "pull_zone": 123},
    {
        "kind": "cloudfront",
        "name": "aws",
        "distribution_id": "EDFDVBD6EXAMPLE",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": TOKEN,
    },
]


def test_every_kind_parses_with_defaults() -> None:
    cf, fastly, bunny, aws = ADAPTER.validate_python(TABLES)
    assert isinstance(cf, CloudflareCdn) and cf.batch_size == 100 and cf.soft_via_invalidate
    assert isinstance(fastly, FastlyCdn) and fastly.batch_size == 256
    assert isinstance(bunny, BunnyCdn) and bunny.pull_zone == 123 and not bunny.async_purge
    assert isinstance(aws, CloudFrontCdn) and aws.region == "us-east-1"
    assert [c.api_base for c in (cf, fastly, bunny, aws)] == [
        "https://api.cloudflare.com",
        "https://api.fastly.com",
        "https://api.bunny.net",
        "https://cloudfront.amazonaws.com",
    ]
    assert cf.timeout == 10.0 and cf.deadline == 60.0 and cf.max_attempts == 4
    assert cf.hosts == ()


def test_secrets_are_masked() -> None:
    settings = ADAPTER.validate_python(TABLES)
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert settings[0].api_token.get_secret_value() == TOKEN


@pytest.mark.parametrize(
    "change",
    [
        {"api_token": 42},  # not a string
        {"api_token": f" {TOKEN}"},
        {"zone_id": f"../{TOKEN}"},
        {"base_url": f"https://user:{TOKEN}@api.example"},
        {"kind": "akamai", "secret": TOKEN},
    ],
)
def test_errors_never_echo_a_secret(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        ADAPTER.validate_python([{**TABLES[0], **change}])
    assert TOKEN not in str(info.value)


def test_cloudfront_credentials_come_as_a_pair_or_from_the_chain() -> None:
    chain = ADAPTER.validate_python(
        [{"kind": "cloudfront", "name": "aws", "distribution_id": "E1"}]
    )[0]
    assert chain.access_key_id is None
    with pytest.raises(ValidationError, match="secret_access_key: give access_key_id"):
        ADAPTER.validate_python(
            [{"kind": "cloudfront", "name": "aws", "distribution_id": "E1", "access_key_id": "A"}]
        )
    with pytest.raises(ValidationError, match="session_token: only with"):
        ADAPTER.validate_python(
            [{"kind": "cloudfront", "name": "a", "distribution_id": "E1", "session_token": "t"}]
        )


def test_names_are_unique_and_limits_checked() -> None:
    with pytest.raises(ValidationError, match="duplicate CDN name 'cf'"):
        ADAPTER.validate_python([TABLES[0], {**TABLES[1], "name": "cf"}])
    with pytest.raises(ValidationError, match="batch_size"):
        ADAPTER.validate_python([{**TABLES[1], "batch_size": 257}])
    with pytest.raises(ValidationError, match="backoff_max"):
        ADAPTER.validate_python([{**TABLES[0], "backoff_base": 5, "backoff_max": 1}])
    with pytest.raises(ValidationError, match="plain http"):
        ADAPTER.validate_python([{**TABLES[0], "base_url": "http://127.0.0.1:9/?x=1"}])
    with pytest.raises(ValidationError, match="extra"):
        ADAPTER.validate_python([{**TABLES[0], "zone": "x"}])


def test_base_url_and_hosts_are_normalised() -> None:
    [cf] = ADAPTER.validate_python(
        [{**TABLES[0], "base_url": "http://127.0.0.1:8999/cf/", "hosts": [" WWW.Example.com "]}]
    )
    assert cf.api_base == "http://127.0.0.1:8999/cf"
    assert cf.hosts == ("www.example.com",)
    assert ADAPTER.validate_python([]) == ()
