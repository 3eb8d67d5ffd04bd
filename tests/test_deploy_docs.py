"""Operator docs: the config reference is generated and current, every key of the
loader's tables is in it, and every relative link in docs/ points at a file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_config_reference_is_current() -> None:
    run = subprocess.run(
        [sys.executable, str(DOCS / "gen_config_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_config_reference_covers_every_key_and_its_notes_are_real() -> None:
    sys.path.insert(0, str(DOCS))
    try:
        import gen_config_reference as gen
    finally:
        sys.path.remove(str(DOCS))
    text = (DOCS / "config-reference.md").read_text()
    every = [p for _, table in gen.SECTIONS for p in gen.paths(table)]
    assert len(every) > 80
    for path in every:
        assert f"| `{path}` |" in text, path
    assert set(gen.NOTES) <= set(every), set(gen.NOTES) - set(every)


def test_relative_links_resolve() -> None:
    checked = 0
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            assert (page.parent / path).exists(), (page.name, target)
            checked += 1
    assert checked > 20


def test_docs_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"({page.name})" in index, page.name
