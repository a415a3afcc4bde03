from __future__ import annotations

from pathlib import Path

from config.handoff import HANDOFF_VAR, handoff_value, settings_from_handoff

S3_CONFIG = """
[origins.bucket]
kind = "s3"
bucket = "media"
endpoint_url = "http://127.0.0.1:9000"
addressing = "path"
access_key_id = "AKIDEXAMPLE"
[[routes]]
origin = "bucket"
"""


def test_workers_get_the_real_secrets_and_the_cli_overrides(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(S3_CONFIG)
    env = {"EDGESHIELD_ORIGINS__BUCKET__SECRET_ACCESS_KEY": "s3cr3t-value"}
    value = handoff_value(config, {"server": {"port": 9999, "metrics_dir": str(tmp_path)}})
    assert "s3cr3t" not in value  # the secret itself never travels in the handoff
    settings = settings_from_handoff({**env, HANDOFF_VAR: value})
    origin = settings.origins["bucket"]
    assert origin.secret_access_key is not None  # type: ignore[union-attr]
    assert origin.secret_access_key.get_secret_value() == "s3cr3t-value"  # type: ignore[union-attr]
    assert settings.server.port == 9999 and settings.server.metrics_dir == tmp_path


def test_embedded_default_hands_over_too() -> None:
    settings = settings_from_handoff({HANDOFF_VAR: handoff_value(None, {"server": {"workers": 2}})})
    assert settings.server.workers == 2 and "demo" in settings.origins
