"""The compose example without Docker: its seed script fills an S3 endpoint (moto's
server here, MinIO there) with the demo media, and two edgeshield processes with the
compose config (docs/deploy/edgeshield.toml) and one real redis-server serve and
transform it from that bucket, the second one from the shared tier."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from proxy.demo.media import generate_demo
from tests.support.ports import free_port, wait_for_port
from tests.support.proxy_server import REPO_ROOT, running_proxy
from tests.support.redis_server import running_redis

DEPLOY = REPO_ROOT / "docs" / "deploy"
KEY_ID, SECRET = "edgeshield", "edgeshield-demo-secret"


def _seed_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_bucket", DEPLOY / "seed_bucket.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A plain moto server: no IAM, so any signed request is accepted, as MinIO accepts
    its root user's."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_seeded_bucket_is_served_through_the_compose_config(
    s3_endpoint: str, tmp_path: Path
) -> None:
    demo = tmp_path / "demo"
    generate_demo(demo)
    seed_env = {
        "S3_ENDPOINT": s3_endpoint,
        "S3_BUCKET": "media",
        "S3_ACCESS_KEY_ID": KEY_ID,
        "S3_SECRET_ACCESS_KEY": SECRET,
    }
    seed = _seed_module()
    keys = seed.seed(demo, seed_env)
    assert "images/landscape-640.jpg" in keys and ".demo-version" not in keys
    # Again, as the compose `seed` service runs it: an existing bucket is fine.
    again = subprocess.run(
        [sys.executable, str(DEPLOY / "seed_bucket.py"), str(demo)],
        env={**os.environ, **seed_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"seeded {len(keys)} object(s) into media"

    # As in compose.yaml, with the service names (minio, redis) moved to loopback.
    config = (DEPLOY / "edgeshield.toml").read_text()
    with running_redis() as redis:
        env = {
            "EDGESHIELD_ORIGINS__MEDIA__ENDPOINT_URL": s3_endpoint,
            "EDGESHIELD_ORIGINS__MEDIA__ACCESS_KEY_ID": KEY_ID,
            "EDGESHIELD_ORIGINS__MEDIA__SECRET_ACCESS_KEY": SECRET,
            "EDGESHIELD_REDIS__URL": redis.url,
            "EDGESHIELD_SERVER__ACCESS_LOG": "off",
        }
        # Each container has its own volume: here, its own directory.
        disk_a = {"EDGESHIELD_CACHE__DISK__PATH": str(tmp_path / "disk-a")}
        disk_b = {"EDGESHIELD_CACHE__DISK__PATH": str(tmp_path / "disk-b")}
        with (
            running_proxy(config, env={**env, **disk_a}) as a,
            running_proxy(config, env={**env, **disk_b}) as b,
            httpx.Client(timeout=30) as client,
        ):
            hello = client.get(a.url + "/hello.txt")
            assert hello.status_code == 200
            assert hello.content == (demo / "hello.txt").read_bytes()
            assert hello.headers["content-type"].startswith("text/plain")
            assert (
                client.get(a.url + "/hello.txt")
                .headers["cache-status"]
                .startswith("edgeshield; hit")
            )
            # Instance b finds what a fetched in Redis (written in the background).
            deadline = time.monotonic() + 30  # a hang guard
            while True:
                shared = client.get(b.url + "/hello.txt")
                status = shared.headers["cache-status"]
                if "detail=redis" in status or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert shared.content == hello.content and "hit" in status, status
            assert "detail=redis" in status, status

            image = client.get(
                b.url + "/images/landscape-640.jpg",
                params={"w": 200, "auto": "format"},
                headers={"accept": "image/webp,*/*"},
            )
            assert image.status_code == 200, image.text
            assert image.headers["content-type"] == "image/webp"
            # read_only = true in the compose config.
            assert client.post(a.url + "/hello.txt", content=b"x").status_code == 405
