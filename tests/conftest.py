"""Shared fixtures: config directories written from text, and real `gslb serve` processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ZONES = ROOT / "zones"
DEMO_DB = ROOT / "geodata" / "demo-city.mmdb"


def write_config(directory: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> YAML text, dedented) under `directory`."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return directory


@dataclass
class Served:
    process: subprocess.Popen[str]
    dns_port: int
    api_port: int | None
    config_dir: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_serve(
    config_dir: Path, *args: str, env: dict[str, str] | None = None, log: Path | None = None
) -> Served:
    """Run `gslb serve` on loopback with port 0 and read the bound ports from its output.

    `log`: a file that receives the server's stderr (its log), else the test's stderr.
    """
    command = [
        sys.executable,
        "-m",
        "gslb",
        "serve",
        "--config",
        str(config_dir),
        "--dns",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        *args,
    ]
    return launch_serve(command, config_dir, env=env, log=log)


def launch_serve(
    command: Sequence[str],
    config_dir: Path,
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    cwd: Path = ROOT,
) -> Served:
    """Run `command`, a `gslb serve` however spelt, and read the bound ports from its output."""
    log_file = None if log is None else log.open("w")
    try:
        process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    finally:
        if log_file is not None:
            log_file.close()  # the child has its own copy
    assert process.stdout is not None
    dns_port = api_port = None
    for line in process.stdout:
        words = line.split()
        if words[:1] == ["dns"] and dns_port is None:
            dns_port = int(words[2])
        elif words[:1] == ["api"]:
            api_port = int(words[2])
        elif line.startswith("gslb serving"):
            break
    if dns_port is None:
        process.kill()
        raise RuntimeError(f"gslb serve did not start (exit {process.wait()})")
    return Served(process, dns_port, api_port, config_dir)


def copy_sample(directory: Path) -> Path:
    """The shipped zones/ in a scratch directory, its paths made absolute there."""
    shutil.copytree(SAMPLE_ZONES, directory, dirs_exist_ok=True)
    settings = directory / "gslb.yaml"
    text = settings.read_text()
    text = text.replace("../geodata/demo-city.mmdb", str(DEMO_DB))
    text = text.replace("../state.json", str(directory / "state.json"))
    settings.write_text(text)
    return directory


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start_serve(copy_sample(tmp_path_factory.mktemp("zones")))
    yield served
    served.stop()


def gslb_ctl(
    api_ports: Sequence[int | None], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`gslb ctl --api ... ARGS` against nodes on loopback, with a clean environment."""
    apis = [f"--api=http://127.0.0.1:{port}" for port in api_ports]
    return subprocess.run(
        [sys.executable, "-m", "gslb", "ctl", *apis, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )
