"""The certificate an SNI name picks (gslb.proxy.sni): a pure table, table-driven tests."""

from __future__ import annotations

import pytest

from gslb.proxy.sni import SniTable

CERTS = [
    ("default.example.test", "www.example.test"),  # 0, the default
    ("*.api.example.test",),  # 1
    ("exact.api.example.test", "www.example.test"),  # 2: www is 0's (first listed wins)
    ("*.example.test", "w*.partial.test"),  # 3
    ("*.api.example.test", "other.test"),  # 4: the wildcard is 1's
]

CASES = [
    (None, 0, "no SNI: the default"),
    ("", 0, "empty SNI: the default"),
    ("unknown.test", 0, "nobody's name: the default"),
    ("www.example.test", 0, "first listed wins a name"),
    ("WWW.Example.TEST", 0, "case is ignored"),
    ("www.example.test.", 0, "a trailing dot is ignored"),
    ("v1.api.example.test", 1, "wildcard covers one label"),
    ("exact.api.example.test", 2, "exact beats a wildcard listed before it"),
    ("a.b.api.example.test", 0, "a wildcard covers one label only"),
    ("api.example.test", 3, "the wildcard's parent itself is one label under *.example.test"),
    ("example.test", 0, "*.example.test does not cover example.test"),
    ("other.test", 4, "a later certificate's own name"),
    ("wx.partial.test", 0, "partial wildcards match nothing"),
    ("test", 0, "a single label"),
]


@pytest.mark.parametrize(("name", "index", "why"), CASES, ids=[c[2] for c in CASES])
def test_choose(name: str | None, index: int, why: str) -> None:
    assert SniTable.build(CERTS).choose(name) == index, why


def test_one_certificate_answers_everything() -> None:
    table = SniTable.build([("only.test",)])
    assert {table.choose(n) for n in (None, "only.test", "x.test")} == {0}
