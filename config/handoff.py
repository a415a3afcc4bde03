"""Passing the validated Settings from `edgeshield serve` to uvicorn worker processes,
which import the app by name and so cannot receive a Python object."""

from __future__ import annotations

from collections.abc import Mapping

from config.schema import Settings

# Not under the EDGESHIELD_ prefix, so the override loader never reads it as a setting.
HANDOFF_VAR = "_EDGESHIELD_SETTINGS_JSON"


def handoff_value(settings: Settings) -> str:
    return settings.model_dump_json()


def settings_from_handoff(env: Mapping[str, str]) -> Settings:
    return Settings.model_validate_json(env[HANDOFF_VAR])
