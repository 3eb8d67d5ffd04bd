"""The `gslb` command line itself: --version."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

import gslb
from gslb.cli import package_version
from tests.conftest import ROOT


def test_version_prints_the_package_version_and_exits_0() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gslb", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"gslb {metadata.version('gslb')}\n"
    assert run.stderr == ""


def test_version_falls_back_to_the_module_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert package_version() == gslb.__version__
    monkeypatch.delattr(gslb, "__version__")
    assert package_version() == "unknown"
