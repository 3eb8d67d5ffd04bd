"""schemas/*.schema.json: generated from gslb.config, up to date, and they accept the
config files the project ships (the sample, the demo's generated files, docker-compose's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gslb.config import load_config
from gslb.config.jsonschema import SchemaKind, json_schema
from gslb.demo_layout import DemoPorts, plan_demo
from tests.test_config_schema import errors

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
FILES: dict[SchemaKind, str] = {
    "zone": "zone.schema.json",
    "region": "region.schema.json",
    "settings": "gslb.schema.json",
}
CONFIG_DIRS = [
    ROOT / "zones",
    ROOT / "deploy" / "compose" / "zones",
    ROOT / "docs" / "examples" / "policies",
]


def shipped(kind: SchemaKind) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((SCHEMAS / FILES[kind]).read_text())
    return loaded


@pytest.mark.parametrize("kind", list(FILES))
def test_shipped_schema_is_the_generated_one(kind: SchemaKind) -> None:
    assert shipped(kind) == json_schema(kind), "run: .venv/bin/python schemas/generate.py"


def test_generator_check_mode_agrees() -> None:
    run = subprocess.run(
        [sys.executable, str(SCHEMAS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _kind(path: Path, directory: Path) -> SchemaKind:
    if path.name == "gslb.yaml":
        return "settings"
    return "region" if path.parent.name == "regions" else "zone"


@pytest.mark.parametrize("directory", CONFIG_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_dirs_validate(directory: Path) -> None:
    files = sorted(directory.rglob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        document = yaml.safe_load(path.read_text())
        assert errors(shipped(_kind(path, directory)), document) == [], path


def test_demo_generated_files_validate(tmp_path: Path) -> None:
    config = load_config(str(ROOT / "zones"))
    layout = plan_demo(config, DemoPorts(), geoip=None, state_path=str(tmp_path / "s.json"))
    for name, text in layout.files.items():
        kind: SchemaKind = "settings" if name == "gslb.yaml" else "region"
        assert errors(shipped(kind), yaml.safe_load(text)) == [], name


def test_a_misspelt_key_is_refused_by_schema_and_by_gslb_check(tmp_path: Path) -> None:
    (tmp_path / "regions").mkdir()
    for path in (ROOT / "zones").glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text().replace("../", str(ROOT) + "/"))
    region = (ROOT / "zones" / "regions" / "eu-west.yaml").read_text()
    bad = region.replace("location:", "loaction:")
    (tmp_path / "regions" / "eu-west.yaml").write_text(bad)
    assert any("unknown key loaction" in e for e in errors(shipped("region"), yaml.safe_load(bad)))
    run = subprocess.run(
        [sys.executable, "-m", "gslb", "check", "--config", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 1
    assert "eu-west.yaml:2:" in run.stderr and "loaction" in run.stderr, run.stderr
