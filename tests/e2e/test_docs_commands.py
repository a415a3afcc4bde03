"""The commands in README.md, loadtests/README.md and docs/ keep the invariants that let a
reader run them as written, one after another, on a fresh clone: the project's venv
(never a bare `python` or an activated venv), paths that exist in the repository, a port
of its own for every server an example starts, no issue numbers or files outside the
repository, and `--help` that describes every option of every subcommand. Running the
commands themselves needs a shell session and a demo folder; these are the cheap checks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    REPO / "README.md",
    REPO / "loadtests" / "README.md",
    *sorted((REPO / "docs").rglob("*.md")),
]
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_WORDS = re.compile(r"[^\s'\"();&|`$<>=]+")
# Tools the venv installs: written as .venv/bin/<tool>, never bare.
VENV_TOOLS = {"edgeshield", "locust", "pytest", "pip", "ruff", "mypy"}
REPO_DIRS = ("config/", "docs/", "loadtests/", "proxy/", "routing/", "tests/", "transforms/")
EMBEDDED_PORT = 8080  # config/defaults.py


def _rel(doc: Path) -> str:
    return str(doc.relative_to(REPO))


def shell_commands(doc: Path) -> list[str]:
    """Each command line of the doc's shell blocks, continuations joined, comments and
    prompts dropped."""
    commands: list[str] = []
    for lang, body in _FENCE.findall(doc.read_text(encoding="utf-8")):
        if lang not in SHELL_BLOCKS:
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = line.strip().removeprefix("$ ")
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


ALL_COMMANDS = [(_rel(doc), cmd) for doc in DOCS for cmd in shell_commands(doc)]


def test_the_docs_have_commands() -> None:
    docs = {doc for doc, _ in ALL_COMMANDS}
    assert {"README.md", "loadtests/README.md", "docs/deploy/README.md"} <= docs


@pytest.mark.parametrize(("doc", "command"), ALL_COMMANDS)
def test_python_and_tools_are_the_venvs(doc: str, command: str) -> None:
    for word in _WORDS.findall(command):
        name = word.rsplit("/", 1)[-1]
        if re.fullmatch(r"python[\d.]*", name):
            # A venv of its own (the thumbor comparison) is made with the system Python.
            own_venv = word == "python3" and " -m venv " in command
            assert word == ".venv/bin/python" or own_venv, f"{doc}: {command}"
        elif word in VENV_TOOLS:
            pytest.fail(f"{doc}: bare {word!r}, write .venv/bin/{word}: {command}")


def test_inline_bench_commands_use_the_venv() -> None:
    for doc in DOCS:
        for span in re.findall(r"`([^`\n]+)`", doc.read_text(encoding="utf-8")):
            assert not re.match(r"python[\d.]* loadtests/", span), f"{_rel(doc)}: `{span}`"


@pytest.mark.parametrize(("doc", "command"), ALL_COMMANDS)
def test_repository_paths_exist(doc: str, command: str) -> None:
    for word in _WORDS.findall(command):
        path = word.removeprefix("./").rstrip(".,:")
        if path.startswith(REPO_DIRS):
            assert (REPO / path).exists(), f"{doc}: {path} does not exist: {command}"


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_links_to_repository_files_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        assert (doc.parent / target).exists(), f"{_rel(doc)}: broken link {target}"


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_no_issue_numbers_or_files_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for pattern in (
        r"(?i)\bissues?\s+#?\d+",
        r"(?i)\bother engineers?\b|\banother engineer\b",
        r"/work/|\bshared/[A-Z]",
    ):
        found = re.search(pattern, text)
        assert found is None, f"{_rel(doc)}: {found.group(0)!r}" if found else ""
    for command in shell_commands(doc):
        assert not re.search(r"(?<![\w.])/tmp/|/path/to/", command), f"{_rel(doc)}: {command}"


def _config_port(command: str) -> int:
    found = re.search(r"--config\s+(\S+)", command)
    if found is None:
        return EMBEDDED_PORT
    with (REPO / found.group(1)).open("rb") as fh:
        port: int = tomllib.load(fh).get("server", {}).get("port", EMBEDDED_PORT)
    return port


def servers(command: str) -> list[tuple[int, str]]:
    """(port, what listens) for each server the command starts."""
    started: list[tuple[int, str]] = []
    if re.search(r"(?:^|\s)make run\b", command):
        started.append((EMBEDDED_PORT, "make run"))
    for serve in re.findall(r"\S*edgeshield serve[^&|;]*", command):
        port = re.search(r"--port\s+(\d+)", serve) or re.search(
            r"EDGESHIELD_SERVER__PORT=(\d+)", command
        )
        started.append((int(port.group(1)) if port else _config_port(serve), serve.strip()))
    for http in re.findall(r"http\.server[^'&>|;]*", command):
        port = re.search(r"(?:^|\s)(\d{2,5})(?:\s|$)", http)
        started.append((int(port.group(1)) if port else 8000, http.strip()))
    if command.startswith("docker run"):
        for host_port in re.findall(r"-p\s+(?:[\d.]+:)?(\d+):\d+", command):
            started.append((int(host_port), command))
    compose = re.search(r"docker compose -f (\S+) up", command)
    if compose:
        text = (REPO / compose.group(1)).read_text(encoding="utf-8")
        for host_port in re.findall(r"\"(?:[\d.]+:)?(\d+):\d+\"", text):
            started.append((int(host_port), f"{compose.group(1)} port {host_port}"))
    return started


def test_servers_in_examples_never_share_a_port() -> None:
    listeners: dict[int, set[str]] = defaultdict(set)
    for _, command in ALL_COMMANDS:
        for port, what in servers(command):
            listeners[port].add(what)
    assert listeners, "no server examples found"
    shared = {port: sorted(what) for port, what in listeners.items() if len(what) > 1}
    assert not shared, shared


def test_server_parsing_reads_ports_and_configs() -> None:
    assert servers("make run") == [(8080, "make run")]
    assert servers(".venv/bin/edgeshield serve --origin var/demo --port 8084 &") == [
        (8084, ".venv/bin/edgeshield serve --origin var/demo --port 8084")
    ]
    config = ".venv/bin/edgeshield serve --config loadtests/edgeshield-loadtest.toml"
    assert servers(config) == [(8090, config)]
    assert (
        servers("x & .venv/bin/python -m http.server -b 127.0.0.1 8091 -d d >/dev/null")[0][0]
        == 8091
    )


SUBCOMMANDS = ("serve", "check-config", "sign", "demo", "purge")


def _undescribed(help_text: str) -> list[str]:
    """Options in argparse --help output that have no description."""
    lines = help_text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        entry = re.match(r"^  (\S.*?)(?:\s{2,}(\S.*))?$", line)
        if entry is None or entry.group(1).startswith(("usage", "edgeshield")):
            continue
        described = entry.group(2) is not None
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if not described and not re.match(r"^\s{4,}\S", following):
            missing.append(entry.group(1))
    return missing


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_help_describes_every_option(subcommand: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy.serve.cli", subcommand, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": str(REPO), "COLUMNS": "100", "PATH": "/usr/bin:/bin"},
    )
    assert "options:" in done.stdout
    assert _undescribed(done.stdout) == [], done.stdout


def test_undescribed_options_are_found() -> None:
    text = "options:\n  -h, --help  show this\n  --host HOST\n  --port PORT  the port\n"
    assert _undescribed(text) == ["--host HOST"]
