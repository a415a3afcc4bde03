"""The Dockerfile's shape, checked without a Docker engine (none runs in CI): stages,
user, health check, pinned bases, and that its install step is the tested script."""

from __future__ import annotations

import fnmatch
import json
import re

from tests.support.dockerfile import (
    DOCKERFILE,
    DOCKERIGNORE,
    INSTALL_SCRIPT,
    REPO_ROOT,
    Instruction,
    Stage,
    load,
    parse,
)


def _final() -> Stage:
    return load()[-1]


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for word in instruction.words():
            name, _, value = word.partition("=")
            env[name] = value
    return env


def test_multi_stage_with_the_venv_copied_from_the_builder() -> None:
    stages = load()
    assert len(stages) >= 2
    builder = stages[0]
    assert builder.name == "builder"
    copies = [i for i in _final().all("COPY") if i.flags().get("from") == "builder"]
    assert [c.words() for c in copies] == [["/opt/edgeshield", "/opt/edgeshield"]]
    # Same base in both stages: the venv's python symlink resolves in the runtime stage.
    assert stages[0].base == stages[-1].base


def test_base_images_are_pinned_slim_python() -> None:
    # An explicit tag (never latest, never none), optionally a digest.
    for stage in load():
        image = stage.base
        assert ":" in image.split("/")[-1] or "@sha256:" in image, image
        assert not image.endswith(":latest"), image
        assert re.fullmatch(r"python:3\.11[\w.-]*-slim-bookworm(@sha256:[0-9a-f]{64})?", image)


def test_final_user_is_numeric_and_not_root() -> None:
    users = _final().all("USER")
    assert users, "the runtime stage sets no USER (it would run as root)"
    user, _, group = users[-1].args.partition(":")
    # Numeric, so Kubernetes can enforce runAsNonRoot (it cannot resolve names).
    assert user.isdigit() and int(user) != 0
    assert group == "" or (group.isdigit() and int(group) != 0)
    # Nothing after the last USER switches back.
    last = _final().instructions.index(users[-1])
    assert all(i.keyword != "USER" for i in _final().instructions[last + 1 :])


def test_healthcheck_asks_healthz_with_python() -> None:
    checks = _final().all("HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0]
    assert {"interval", "timeout", "retries"} <= set(check.flags())
    rest = re.sub(r"^(?:--\S+\s+)+", "", check.args)
    form, _, command = rest.partition(" ")
    assert form == "CMD"
    argv = json.loads(command)  # exec form: no shell needed in the image
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2] and "127.0.0.1" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")


def test_runtime_settings() -> None:
    final = _final()
    env = _env(final)
    assert env["EDGESHIELD_CONFIG"] == "/etc/edgeshield/edgeshield.toml"
    assert env["EDGESHIELD_SERVER__HOST"] == "0.0.0.0"
    assert env["PATH"].startswith("/opt/edgeshield/bin:")
    assert [i.args for i in final.all("EXPOSE")] == ["8080"]
    assert [i.args for i in final.all("STOPSIGNAL")] == ["SIGTERM"]
    assert final.all("ENTRYPOINT")[-1].words() == ["edgeshield"]
    assert final.all("CMD")[-1].words() == ["serve"]
    # The default config is the demo, served from the media generated at build time.
    config = [c.words() for c in final.all("COPY") if "from" not in c.flags()]
    assert ["config/examples/demo.toml", "/etc/edgeshield/edgeshield.toml"] in config


def test_nothing_is_downloaded_by_add() -> None:
    instructions = parse(DOCKERFILE.read_text())
    # COPY only: ADD also fetches URLs and unpacks archives, unpinned and unchecked.
    assert [i for i in instructions if i.keyword == "ADD"] == []
    for instruction in instructions:
        if instruction.keyword == "COPY":
            assert not re.search(r"(?:https?|ftp)://|git@", instruction.args), instruction


def test_the_install_step_is_the_tested_script() -> None:
    builder = load()[0]
    script = INSTALL_SCRIPT.relative_to(REPO_ROOT).as_posix()
    copied = {
        c.words()[-1]: c.words()[0]
        for c in builder.all("COPY")
        if len(c.words()) == 2 and c.words()[0] == script
    }
    assert len(copied) == 1, f"the builder stage does not COPY {script}"
    (inside,) = copied
    runs = [r for r in builder.all("RUN") if inside in r.words()]
    assert len(runs) == 1
    words = runs[0].words()
    assert words[: words.index(inside) + 1] == ["sh", inside]
    assert words[words.index(inside) + 1 :] == ["/src", "/opt/edgeshield"]
    assert INSTALL_SCRIPT.read_text().startswith("#!/bin/sh\n")


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: the last matching one wins,
    `!` re-includes, a folder pattern covers what is below it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if (
            fnmatch.fnmatch(path, body)
            or path.startswith(body + "/")
            or (body.startswith("**/") and fnmatch.fnmatch(path.split("/")[-1], body[3:]))
        ):
            ignored = not negate
    return ignored


def test_dockerignore_lets_in_exactly_what_is_copied() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source.rstrip("/")
        for stage in load()
        for instruction in stage.all("COPY")
        if "from" not in instruction.flags()
        for source in instruction.words()[:-1]
    ]
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is copied but .dockerignore drops it"
    for local in (".venv", ".git", "var", "tests", "proxy/__pycache__", "proxy/serve/app.pyc"):
        assert _ignored(local, patterns), f"{local} would be sent to the build"


def test_instruction_parser_joins_continuations_and_skips_comments() -> None:
    text = "# syntax=docker/dockerfile:1\nFROM a:1 AS b\nRUN x \\\n  # note\n  && y\n"
    assert parse(text) == [Instruction("FROM", "a:1 AS b", 2), Instruction("RUN", "x && y", 3)]
