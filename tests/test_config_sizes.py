"""`dns.cache_memory`: sizes written as bytes or with a unit, checked at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from gslb.config import load_config
from gslb.errors import ConfigError
from tests.conftest import write_config


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256MB", 256_000_000),
        ("64MiB", 64 * 2**20),
        ("1.5GB", 1_500_000_000),
        ("2 GiB", 2 * 2**30),
        ("5000000", 5_000_000),
        ("'5000000'", 5_000_000),
    ],
)
def test_a_size_is_read_in_bytes(tmp_path: Path, text: str, size: int) -> None:
    directory = write_config(tmp_path, {"gslb.yaml": f"dns:\n  cache_memory: {text}\n"})
    assert load_config(str(directory)).settings.cache_memory == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("12x", "bad size '12x'"),
        ("256 mb", "bad size '256 mb'"),
        ("true", "bad size"),
        ("10", "size out of range: 10"),
    ],
)
def test_a_bad_size_is_reported_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    directory = write_config(tmp_path, {"gslb.yaml": f"dns:\n  cache_memory: {text}\n"})
    with pytest.raises(ConfigError) as caught:
        load_config(str(directory))
    assert "gslb.yaml:2:" in str(caught.value) and message in str(caught.value)


def test_the_default_is_256mb(tmp_path: Path) -> None:
    directory = write_config(tmp_path, {"gslb.yaml": "dns: {}\n"})
    assert load_config(str(directory)).settings.cache_memory == 256_000_000
