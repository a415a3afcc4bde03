"""A real S3-compatible endpoint for tests: moto's server mode, in its own process.

`running_s3()` starts `python -m moto.server -p PORT -H 127.0.0.1`, fills it through boto3
while IAM authentication is still off, then switches authentication on, so every later
request must carry a valid SigV4 signature from a known access key whose policy allows the
action.

moto counts "free" unauthenticated actions with `INITIAL_NO_AUTH_ACTION_COUNT`. Rather than
counting our setup calls exactly (a miscount would silently leave the tests running
without authentication), the server starts with an unlimited count and setup ends with
moto's `POST /moto-api/reset-auth` set to 0 (the call moto's own
`set_initial_no_auth_action_count` makes in server mode). `S3Server.auth_disabled()`
turns authentication off for a while, for anonymous requests: once IAM authentication is
on, moto fails every unsigned request (HTTP 500, "no Authorization header"), even for a
public bucket. With authentication off it still applies bucket policies and object ACLs
to unsigned requests, which is what anonymous mode needs.

Contents after setup (`S3Server.objects`: bucket -> key -> bytes):
- bucket `media` (private): `hello.txt`, `big.bin` (5 MiB of gen_bytes), keys with a space,
  `+`, `%`, `=`, `&`, unicode, and `site/v1/...` keys for key_prefix tests.
- bucket `public-media`: a bucket policy lets anyone s3:GetObject; `open.txt`.
- IAM user `edge` with an access key and a policy allowing s3:*; user `nobody` with an
  access key and no permissions; temporary credentials (with a session token) from
  sts:AssumeRole of role `reader` (s3:*).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.origin_server import gen_bytes
from tests.support.ports import free_port, wait_for_port

REGION = "us-east-1"
BUCKET = "media"
PUBLIC_BUCKET = "public-media"
BIG = 5 * 1024 * 1024

MEDIA_OBJECTS: dict[str, bytes] = {
    "hello.txt": b"hello world\n",
    "big.bin": gen_bytes(0, BIG),
    "with space.txt": b"space",
    "plus+sign.txt": b"plus",
    "100%.txt": b"percent",
    "q?a=b&c.txt": b"query-like",
    "caf\u00e9/\u65e5\u672c \u2615.jpg": b"unicode",
    "dir/a b+c%d=e&f~g.txt": b"mixed",
    "site/v1/inner.txt": b"prefixed",
    "site/v1/deep/er.txt": b"deeper",
}
PUBLIC_OBJECTS: dict[str, bytes] = {"open.txt": b"public bytes\n"}


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


@dataclass
class S3Server:
    """One moto server process; `start()` fills it and switches authentication on."""

    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    region: str = REGION
    bucket: str = BUCKET
    public_bucket: str = PUBLIC_BUCKET
    objects: dict[str, dict[str, bytes]] = field(default_factory=dict)
    keys: dict[str, AccessKey] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> S3Server:
        self.port = free_port()
        env = dict(os.environ)
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "inf"  # setup; reset to 0 below
        env.pop("AWS_PROFILE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-p", str(self.port), "-H", "127.0.0.1"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, timeout)
            self._setup()
            self.set_auth(enforced=True)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- authentication ----------------------------------------------------------------

    def set_auth(self, *, enforced: bool) -> None:
        import httpx

        count = b"0" if enforced else b"inf"
        with httpx.Client(trust_env=False, timeout=10) as client:
            response = client.post(f"{self.endpoint}/moto-api/reset-auth", content=count)
            response.raise_for_status()

    @contextlib.contextmanager
    def auth_disabled(self) -> Iterator[None]:
        self.set_auth(enforced=False)
        try:
            yield
        finally:
            self.set_auth(enforced=True)

    # -- setup (authentication still off) ----------------------------------------------

    def client(self, service: str, key: AccessKey | None = None) -> Any:
        import boto3

        key = key or AccessKey("setup", "setup")
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
            aws_session_token=key.session_token,
        )

    def _setup(self) -> None:
        deadline = time.monotonic() + 10
        while True:  # the port opens a moment before requests are served
            try:
                iam = self.client("iam")
                iam.list_users()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        allow_s3 = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        )
        policy_arn = iam.create_policy(PolicyName="s3-all", PolicyDocument=allow_s3)["Policy"][
            "Arn"
        ]
        for user in ("edge", "nobody"):
            iam.create_user(UserName=user)
            created = iam.create_access_key(UserName=user)["AccessKey"]
            self.keys[user] = AccessKey(created["AccessKeyId"], created["SecretAccessKey"])
        iam.attach_user_policy(UserName="edge", PolicyArn=policy_arn)

        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
                ],
            }
        )
        role_arn = iam.create_role(RoleName="reader", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        iam.attach_role_policy(RoleName="reader", PolicyArn=policy_arn)
        sts = self.client("sts", self.keys["edge"])
        temp = sts.assume_role(RoleArn=role_arn, RoleSessionName="edgeshield")["Credentials"]
        self.keys["temporary"] = AccessKey(
            temp["AccessKeyId"], temp["SecretAccessKey"], temp["SessionToken"]
        )

        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        for key, body in MEDIA_OBJECTS.items():
            s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="text/plain" if key.endswith(".txt") else "application/octet-stream",
                CacheControl="max-age=60",
            )
        s3.create_bucket(Bucket=self.public_bucket)
        public_read = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{self.public_bucket}/*",
                    }
                ],
            }
        )
        s3.put_bucket_policy(Bucket=self.public_bucket, Policy=public_read)
        for key, body in PUBLIC_OBJECTS.items():
            s3.put_object(Bucket=self.public_bucket, Key=key, Body=body)
        self.objects = {self.bucket: dict(MEDIA_OBJECTS), self.public_bucket: dict(PUBLIC_OBJECTS)}

    def __enter__(self) -> S3Server:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_s3() -> Iterator[S3Server]:
    """A started, filled moto S3 server with authentication enforced; stopped on exit."""
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """One moto server per test module (import this fixture into the module)."""
    with running_s3() as server:
        yield server
