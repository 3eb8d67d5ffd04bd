"""`gslb serve` as a child process of a benchmark: started on loopback port 0, its bound
ports read from what it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(
    config: Path, log: Path, *args: str, root: Path = ROOT
) -> tuple[subprocess.Popen[str], int, int]:
    """(process, DNS port, API port) of `gslb serve --config config` run from `root`."""
    command = [sys.executable, "-m", "gslb", "serve", "--config", str(config)]
    command += ["--dns", "127.0.0.1:0", "--api", "127.0.0.1:0", *args]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=root
        )
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
    if dns_port is None or api_port is None:
        process.kill()
        raise SystemExit(f"gslb serve did not start: {log.read_text()[-2000:]}")
    return process, dns_port, api_port


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sample_zones(
    directory: Path, *, root: Path = ROOT, changes: dict[str, str] | None = None
) -> Path:
    """The shipped zones/ copied under `directory`, its relative paths made absolute, and
    each text of `changes` in gslb.yaml (which must be there) replaced."""
    zones = directory / "zones"
    for path in (root / "zones").rglob("*.yaml"):
        target = zones / path.relative_to(root / "zones")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    settings = zones / "gslb.yaml"
    text = settings.read_text().replace("../geodata/", f"{root}/geodata/")
    text = text.replace("../state.json", str(directory / "state.json"))
    for old, new in (changes or {}).items():
        if old not in text:
            raise SystemExit(f"{settings}: expected {old!r}")
        text = text.replace(old, new)
    settings.write_text(text)
    return zones
