"""The signed manifest URL: a manifest the origin serves as a plain file (an S3 or
folder origin cannot add `X-Archive-Files`) becomes an archive when the request asks
with `?archive=zip` and a native token binds that parameter (docs/archives.md).

The binding is what vouches: a manifest names locations that are fetched without the
client's credentials, so the signer, not whoever holds a token for the file (or for its
whole folder), decides that this file is read as a manifest. Other token schemes cannot
pin a query parameter, so they never open this form."""

from __future__ import annotations

from proxy.auth.common import AuthResult

PARAM = "archive"
ASK = f"{PARAM}=zip"


def asks(query: str) -> bool:
    """Does this query ask for the archive form (`archive=zip` among its parameters)?"""
    return ASK in query and ASK in query.split("&")


def vouched(result: AuthResult | None) -> bool:
    """Did the token that verified bind the `archive` parameter (its value signed)?"""
    return (
        result is not None
        and result.ok
        and result.scheme == "native"
        and PARAM in result.claims.get("bound", ())
    )
