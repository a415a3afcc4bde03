"""Reading the repository's Dockerfile without a Docker engine: its instructions, grouped
into build stages, so tests can check the image's shape and re-run its install step."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.proxy_server import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
# The install script the builder stage runs; tests/e2e/test_container_install.py
# runs the same file, and tests/unit/deploy/test_dockerfile.py checks that it is this one.
INSTALL_SCRIPT = REPO_ROOT / ".ci" / "container-install.sh"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the (joined) line, flags included
    line: int  # 1-based line where the instruction starts

    def flags(self) -> dict[str, str]:
        """Leading `--name=value` options (`--from=builder`, `--mount=...`)."""
        out: dict[str, str] = {}
        for token in self.args.split():
            if not token.startswith("--"):
                break
            name, _, value = token[2:].partition("=")
            out[name] = value
        return out

    def words(self) -> list[str]:
        """The arguments after the flags: a JSON array as is, else shell-like words."""
        rest = re.sub(r"^(?:--\S+\s+)+", "", self.args).strip()
        if rest.startswith("["):
            value = json.loads(rest)
            assert isinstance(value, list)
            return [str(item) for item in value]
        return shlex.split(rest)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Instruction]:
    """Instructions with backslash continuations joined; comment lines (and the parser
    directives, which look like comments) dropped, also inside a continued instruction."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARGs declared before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            args[name.strip()] = default.strip().strip('"')
    return args


def stages(instructions: list[Instruction]) -> list[Stage]:
    args = global_args(instructions)
    out: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.words()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            out.append(Stage(base=base, name=name))
        elif out:
            out[-1].instructions.append(instruction)
    return out


def load() -> list[Stage]:
    return stages(parse(DOCKERFILE.read_text()))


def copy_build_context(stage: Stage, dest: Path) -> None:
    """Lay out `dest` as the stage's WORKDIR would be after its relative COPY lines from
    the build context (what the wheel build sees). Absolute destinations (the install
    script) are skipped: the test runs that file from the repository."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.pyd")
    for instruction in stage.all("COPY"):
        if "from" in instruction.flags():
            continue
        *sources, target = instruction.words()
        if target.startswith("/"):
            continue
        for source in sources:
            origin = REPO_ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, dest / target, ignore=ignore, dirs_exist_ok=True)
            else:
                into = dest / target
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into / origin.name)
