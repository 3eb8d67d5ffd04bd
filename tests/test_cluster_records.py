"""The cluster's pure core: health consensus, key layout and record codecs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gslb.cluster.etcd import prefix_end
from gslb.cluster.records import (
    Keys,
    NodeRecord,
    config_digest,
    consensus_down,
    decode_admin_record,
    decode_node,
    decode_verdicts,
    disagreements,
    encode_admin_record,
    encode_node,
    encode_verdicts,
    needed,
)
from gslb.config import load_config
from gslb.errors import ConfigError
from gslb.model import ClusterSettings, ServerSettings
from gslb.state import AdminState
from tests.conftest import copy_sample

E1, E2 = "eu-west/192.0.2.1", "eu-west/192.0.2.2"
NONE: frozenset[str] = frozenset()


@pytest.mark.parametrize(
    ("quorum", "voters", "want"),
    [
        ("any", 3, 1),
        ("majority", 1, 1),
        ("majority", 2, 2),
        ("majority", 3, 2),
        ("majority", 4, 3),
        ("majority", 5, 3),
        ("all", 3, 3),
    ],
)
def test_needed(quorum: str, voters: int, want: int) -> None:
    assert needed(quorum, voters) == want


@pytest.mark.parametrize(
    ("local", "peers", "quorum", "want"),
    [
        # Alone, a node goes by its own verdicts whatever the quorum.
        ({E1}, {}, "all", {E1}),
        # One of three sees it down: only `any` takes it out.
        ({E1}, {"b": NONE, "c": NONE}, "majority", set()),
        ({E1}, {"b": NONE, "c": NONE}, "any", {E1}),
        (set(), {"b": {E1}, "c": NONE}, "any", {E1}),
        # Two of three: a majority, not all.
        ({E1}, {"b": {E1}, "c": NONE}, "majority", {E1}),
        ({E1}, {"b": {E1}, "c": NONE}, "all", set()),
        # Peers outvote this node: down here is not enough, up here does not save it.
        (set(), {"b": {E1, E2}, "c": {E1}}, "majority", {E1}),
        ({E1, E2}, {"b": {E1, E2}, "c": {E1, E2}}, "all", {E1, E2}),
        # Two nodes, majority: both must agree.
        ({E1}, {"b": NONE}, "majority", set()),
    ],
)
def test_consensus(
    local: set[str], peers: dict[str, set[str]], quorum: str, want: set[str]
) -> None:
    frozen = {name: frozenset(down) for name, down in peers.items()}
    assert consensus_down(frozenset(local), frozen, quorum) == want


def test_disagreements_say_where_this_node_stands() -> None:
    peers = {"b": NONE, "c": frozenset({E2})}
    local = frozenset({E1})
    effective = consensus_down(local, peers, "majority")
    texts = [d.text() for d in disagreements(local, peers, effective)]
    assert texts == ["down here, up on 2 of 3 nodes"]
    peers = {"b": frozenset({E2}), "c": frozenset({E2})}
    split = disagreements(NONE, peers, consensus_down(NONE, peers, "majority"))
    assert [(d.endpoint, d.taken_as, d.text()) for d in split] == [
        (E2, "down", "up here, down on 2 of 3 nodes")
    ]


def test_keys_and_prefix_range() -> None:
    keys = Keys("/gslb/")
    assert keys.split(keys.admin) == ("admin", "")
    assert keys.split(keys.node("ns1")) == ("nodes/", "ns1")
    assert keys.split(keys.health("ns2")) == ("health/", "ns2")
    assert keys.split(keys.audit(12, "ns1")) == ("audit/", "00000000000000000012-ns1")
    assert prefix_end(b"/gslb/") == b"/gslb0"
    assert prefix_end(b"a\xff") == b"b"


def test_records_round_trip_and_bad_values_are_refused() -> None:
    admin = AdminState().with_region("eu-west", "disabled").with_endpoint(E1, enabled=False)
    record = decode_admin_record(encode_admin_record(admin, 12.5, "ns1"))
    assert (record.admin, record.changed_at, record.node) == (admin, 12.5, "ns1")
    node = NodeRecord("ns1", 3, "abcd", 1.0)
    assert decode_node(encode_node(node)) == node
    assert decode_verdicts(encode_verdicts(frozenset({E1}))) == {E1}
    for bad in (b"[]", b'{"version": 1, "regions": {"x": "gone"}}', b"not json"):
        with pytest.raises(ValueError):
            decode_admin_record(bad)
    with pytest.raises(ValueError):
        decode_verdicts(b'{"down": [1]}')


def test_config_digest_follows_content_not_order() -> None:
    one = config_digest([("a.yaml", b"x"), ("b.yaml", b"y")])
    assert one == config_digest([("b.yaml", b"y"), ("a.yaml", b"x")])
    assert one != config_digest([("a.yaml", b"x"), ("b.yaml", b"z")])


def _settings(tmp_path: Path, text: str) -> ServerSettings | list[str]:
    copy_sample(tmp_path)
    (tmp_path / "gslb.yaml").write_text(text)
    try:
        return load_config(str(tmp_path)).settings
    except ConfigError as exc:
        return [f"{Path(p.file).name}:{p.line}: {p.message}" for p in exc.problems]


def test_cluster_settings_and_their_defaults(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "cluster: {node: ns1}\n")
    assert isinstance(settings, ServerSettings) and settings.cluster is not None
    assert settings.cluster == ClusterSettings(node="ns1")
    full = _settings(
        tmp_path,
        "cluster:\n  etcd: {endpoints: ['http://127.0.0.1:2381', 'http://127.0.0.2:2381'], "
        "prefix: /dns/}\n  health_quorum: all\n  lease_ttl: 3s\n",
    )
    assert isinstance(full, ServerSettings) and full.cluster is not None
    assert full.cluster.etcd_endpoints == ("http://127.0.0.1:2381", "http://127.0.0.2:2381")
    assert (full.cluster.prefix, full.cluster.health_quorum) == ("/dns/", "all")
    assert full.cluster.lease_ttl == 3.0 and full.cluster.node  # the host name by default
    assert _settings(tmp_path, "dns: {}\n").cluster is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("cluster:\n  health_quorum: most\n", "gslb.yaml:2: "),
        ("cluster:\n  etcd: {endpoints: ['https://x:1']}\n", "gslb.yaml:2: bad URL"),
        ("cluster:\n  etcd: {prefix: gslb}\n", "gslb.yaml:2: "),
        ("cluster:\n  node: 'a b'\n", "gslb.yaml:2: "),
        ("cluster:\n  lease_ttl: 0.1s\n", "gslb.yaml:2: "),
        ("cluster:\n  etcd_endpoints: []\n", "gslb.yaml:2: unknown key 'etcd_endpoints'"),
    ],
)
def test_bad_cluster_settings_are_reported_at_their_line(
    tmp_path: Path, text: str, want: str
) -> None:
    problems = _settings(tmp_path, text)
    assert isinstance(problems, list) and any(p.startswith(want) for p in problems), problems
