"""The Dockerfile read as data, and the image's files laid out under a directory without
Docker: what COPY puts where, the directories RUN makes writable for the image's user, and
the ENV, USER, ENTRYPOINT, CMD and HEALTHCHECK the image runs with."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
CHOWN = re.compile(r"\bchown\s+(?:-R\s+)?(\S+?):\S+\s+(\S+)")


@dataclass
class Copy:
    sources: list[str]
    dest: str  # absolute, in the image


@dataclass
class Image:
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str = "root"
    expose: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)  # the CMD of HEALTHCHECK
    healthcheck_options: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # instruction keywords, in order

    @property
    def argv(self) -> list[str]:
        return [*self.entrypoint, *self.cmd]

    def writable_by(self, user: str) -> list[str]:
        """Directories that RUN chowns to `user` (the rest of the image is root's)."""
        return [path for run in self.runs for who, path in CHOWN.findall(run) if who == user]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def _exec_form(args: str) -> list[str]:
    if args.startswith("["):
        parsed: list[str] = json.loads(args)
        return parsed
    return ["/bin/sh", "-c", args]


def _in_image(workdir: str, path: str) -> str:
    joined = PurePosixPath(workdir) / path
    return str(joined) + ("/" if path.endswith("/") else "")


def parse(text: str) -> Image:
    image = Image()
    for keyword, args in instructions(text):
        image.order.append(keyword)
        if keyword == "WORKDIR":
            image.workdir = _in_image(image.workdir, args)
        elif keyword == "ENV":
            image.env.update(pair.split("=", 1) for pair in shlex.split(args))
        elif keyword == "COPY":
            *sources, dest = shlex.split(args)
            assert not any(s.startswith("--") for s in sources), "COPY flags are not laid out"
            image.copies.append(Copy(sources, _in_image(image.workdir, dest)))
        elif keyword == "RUN":
            image.runs.append(args)
        elif keyword == "USER":
            image.user = args
        elif keyword == "EXPOSE":
            image.expose += args.split()
        elif keyword == "ENTRYPOINT":
            image.entrypoint = _exec_form(args)
        elif keyword == "CMD":
            image.cmd = _exec_form(args)
        elif keyword == "HEALTHCHECK":
            options, _, command = args.partition("CMD ")
            image.healthcheck = _exec_form(command.strip())
            image.healthcheck_options = dict(
                option.removeprefix("--").split("=", 1) for option in options.split()
            )
    return image


def read_image() -> Image:
    return parse(DOCKERFILE.read_text())


def host_path(root: Path, image_path: str) -> Path:
    """Where an absolute path of the image is in the layout under `root`."""
    assert image_path.startswith("/"), image_path
    return root / image_path.lstrip("/")


def lay_out(image: Image, root: Path) -> None:
    """Every COPY of the Dockerfile, from the repo into `root` (Docker's rules: a directory's
    contents go into the destination; a file goes into a destination ending in / or is
    the destination), then the directories RUN makes writable for USER."""
    host_path(root, image.workdir).mkdir(parents=True, exist_ok=True)
    for copy in image.copies:
        dest = host_path(root, copy.dest)
        for source in copy.sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, dest, dirs_exist_ok=True)
            else:
                target = dest / path.name if copy.dest.endswith("/") else dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    for directory in image.writable_by(image.user):
        host_path(root, directory).mkdir(parents=True, exist_ok=True)
