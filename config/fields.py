"""Field types shared by several settings models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, HttpUrl, SecretStr


def _secret_text(value: Any) -> Any:
    """Runs before pydantic sees a secret, so no error message can ever echo it back."""
    if value is None or isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError(
            "must be a string (got a non-string value, not shown; from the environment, "
            "quote values that parse as JSON)"
        )
    if not value.strip():
        raise ValueError("must not be empty (got an empty string)")
    if value != value.strip():
        raise ValueError("has leading or trailing whitespace (got a value, not shown)")
    return value


def _plain_url(value: HttpUrl) -> HttpUrl:
    if value.query or value.fragment or value.username:
        raise ValueError("must be a plain http(s)://host[:port][/path] URL")
    return value


# A secret (API token, access key): masked in repr/str, checked without being echoed.
SecretText = Annotated[SecretStr, BeforeValidator(_secret_text)]
# An API or endpoint base URL: no query, fragment or credentials.
PlainUrl = Annotated[HttpUrl, AfterValidator(_plain_url)]
