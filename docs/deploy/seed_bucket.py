"""Create the compose stack's bucket and upload a folder into it (the demo media).

The `seed` service of compose.yaml runs it once with the edgeshield image, which already
has botocore and the demo media, so the example needs no MinIO client image:

    python /seed/seed_bucket.py /srv/edgeshield/var/demo

S3_ENDPOINT, S3_BUCKET, S3_REGION, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY say where.
Running it again is harmless: an existing bucket is reused, objects are overwritten.
"""

from __future__ import annotations

import mimetypes
import os
import sys
from pathlib import Path

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError


def seed(folder: Path, env: dict[str, str]) -> list[str]:
    """Upload every file below `folder` (dotfiles skipped) as its relative path; return
    the keys written."""
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=env["S3_ENDPOINT"],
        region_name=env.get("S3_REGION", "us-east-1"),
        aws_access_key_id=env["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["S3_SECRET_ACCESS_KEY"],
        # Path style, as edgeshield's origin uses: the endpoint is a bare service name.
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )
    bucket = env["S3_BUCKET"]
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    keys = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        key = relative.as_posix()
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=content_type)
        keys.append(key)
    return keys


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not Path(argv[1]).is_dir():
        print(f"usage: {argv[0]} FOLDER", file=sys.stderr)
        return 64
    keys = seed(Path(argv[1]), dict(os.environ))
    print(f"seeded {len(keys)} object(s) into {os.environ['S3_BUCKET']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
