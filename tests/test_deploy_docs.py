"""Operator docs: the config reference is generated and current, every key of the
loader's tables is in it, every relative link in docs/ points at a file, and the
`gslb explain` outputs pasted in docs/policies.md are what the command prints today."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gslb import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# A fenced block whose first line is `$ gslb explain ...`: the rest is its output.
EXPLAIN = re.compile(r"^```\n\$ (gslb explain [^\n]*)\n(.*?)^```$", re.M | re.S)


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


def explain_examples(page: Path) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for m in EXPLAIN.finditer(page.read_text())]


def test_policies_md_shows_what_gslb_explain_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = explain_examples(DOCS / "policies.md")
    assert len(examples) >= 10
    monkeypatch.chdir(ROOT)  # the commands name their config relative to the repository
    for command, shown in examples:
        argv = shlex.split(command)[1:]
        assert "--config" in argv, f"{command}: name the config it runs on"
        assert (ROOT / argv[argv.index("--config") + 1]).is_dir(), command
        assert cli.main(argv) == 0, command
        printed = capsys.readouterr().out
        assert printed == shown, f"docs/policies.md is out of date for: {command}"
    outputs = "".join(shown for _, shown in examples)
    for seen in (
        "policy geo: ",
        "policy weighted: ",
        "policy failover: ",
        *(f"select {s}, answers" for s in ("all", "weighted", "hashed", "first")),
        "(serves country ",
        "(serves continent ",
        "default order (client location unknown)",
        "fail-open  ",
        "ECS scope /0",
        "ECS scope /56",
        "no ECS in the query",
    ):
        assert seen in outputs, seen


def test_policies_md_quotes_the_example_services_as_they_are() -> None:
    text = (DOCS / "policies.md").read_text()
    quoted = re.search(r"^```yaml\n(services:\n.*?)^```$", text, re.M | re.S)
    assert quoted is not None
    zone = yaml.safe_load((DOCS / "examples" / "policies" / "lb.example.net.yaml").read_text())
    assert yaml.safe_load(quoted[1])["services"] == zone["services"]
