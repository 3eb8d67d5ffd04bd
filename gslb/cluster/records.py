"""What the cluster keeps in etcd, and the health consensus: pure functions, no I/O.

Keys under the prefix P:
  P admin                  the admin overrides (the state file's JSON), one key: a
                           mutation is one transaction guarded by its mod revision
  P audit/<ns>-<node>      one audit entry each; trimmed to the newest `audit_keep`
  P nodes/<node>           the node registry (generation, config digest), under its lease
  P health/<node>          the endpoints that node measures down, under its lease, so a
                           dead node's verdicts vanish with it
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gslb.persist import decode_admin, encode_admin
from gslb.state import AdminState

ADMIN = "admin"
AUDIT = "audit/"
NODES = "nodes/"
HEALTH = "health/"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def key(self, name: str) -> bytes:
        return (self.prefix + name).encode()

    @property
    def admin(self) -> bytes:
        return self.key(ADMIN)

    def audit(self, time_ns: int, node: str) -> bytes:
        return self.key(f"{AUDIT}{time_ns:020d}-{node}")

    def node(self, node: str) -> bytes:
        return self.key(NODES + node)

    def health(self, node: str) -> bytes:
        return self.key(HEALTH + node)

    def split(self, key: bytes) -> tuple[str, str]:
        """(kind, rest) of a key under the prefix: ("admin", ""), ("nodes/", "ns1"), ..."""
        name = key.decode(errors="replace")[len(self.prefix) :]
        for kind in (AUDIT, NODES, HEALTH):
            if name.startswith(kind):
                return kind, name[len(kind) :]
        return name, ""


@dataclass(frozen=True, slots=True)
class AdminRecord:
    admin: AdminState
    changed_at: float  # wall clock of the node that committed it: propagation is measured
    node: str


def encode_admin_record(admin: AdminState, changed_at: float, node: str) -> bytes:
    return json.dumps({**encode_admin(admin), "changed_at": changed_at, "node": node}).encode()


def decode_admin_record(value: bytes) -> AdminRecord:
    """Raises ValueError for a value that is not an admin record."""
    data = json.loads(value)
    changed_at = data.get("changed_at", 0.0) if isinstance(data, dict) else 0.0
    node = data.get("node", "") if isinstance(data, dict) else ""
    if not isinstance(changed_at, int | float) or not isinstance(node, str):
        raise ValueError("bad changed_at or node")
    return AdminRecord(decode_admin(data), float(changed_at), node)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    config_generation: int
    config_digest: str
    started: float


def encode_node(record: NodeRecord) -> bytes:
    return json.dumps(
        {
            "name": record.name,
            "config_generation": record.config_generation,
            "config_digest": record.config_digest,
            "started": record.started,
        }
    ).encode()


def decode_node(value: bytes) -> NodeRecord:
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not a node record")
    return NodeRecord(
        str(data["name"])[:64],
        int(data["config_generation"]),
        str(data["config_digest"])[:64],
        float(data["started"]),
    )


def encode_verdicts(down: frozenset[str]) -> bytes:
    return json.dumps({"down": sorted(down)}).encode()


def decode_verdicts(value: bytes) -> frozenset[str]:
    data = json.loads(value)
    down = data.get("down") if isinstance(data, dict) else None
    if not isinstance(down, list) or not all(isinstance(k, str) for k in down):
        raise ValueError("not a health verdict record")
    return frozenset(down)


def decode_audit(value: bytes) -> dict[str, Any]:
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not an audit entry")
    return data


def config_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """A short digest of a config directory's files (relative name, content)."""
    digest = hashlib.blake2b(digest_size=8)
    for name, content in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.blake2b(content).digest())
    return digest.hexdigest()


def needed(quorum: str, voters: int) -> int:
    """How many of `voters` live nodes must see an endpoint down to take it out."""
    if quorum == "any":
        return 1
    if quorum == "all":
        return voters
    return voters // 2 + 1


def consensus_down(
    local: frozenset[str], peers: Mapping[str, frozenset[str]], quorum: str
) -> frozenset[str]:
    """Endpoints the cluster takes as down: seen down by the quorum of the live nodes
    (this one and `peers`). Alone, a node goes by its own verdicts."""
    if not peers:
        return local
    voters = 1 + len(peers)
    threshold = needed(quorum, voters)
    counts: dict[str, int] = dict.fromkeys(local, 1)
    for down in peers.values():
        for key in down:
            counts[key] = counts.get(key, 0) + 1
    return frozenset(key for key, count in counts.items() if count >= threshold)


@dataclass(frozen=True, slots=True)
class Disagreement:
    endpoint: str
    here: str  # "down" or "up": this node's own verdict
    down_on: int  # live nodes that see it down (this one included)
    nodes: int  # live nodes
    taken_as: str  # what the answers use

    def text(self) -> str:
        up_on = self.nodes - self.down_on
        if self.here == "down":
            return f"down here, up on {up_on} of {self.nodes} nodes"
        return f"up here, down on {self.down_on} of {self.nodes} nodes"


def disagreements(
    local: frozenset[str], peers: Mapping[str, frozenset[str]], effective: frozenset[str]
) -> tuple[Disagreement, ...]:
    """Endpoints where this node's own verdict is not what the cluster answers with."""
    nodes = 1 + len(peers)
    out = []
    for key in sorted(local ^ effective):
        down_on = (key in local) + sum(key in down for down in peers.values())
        out.append(
            Disagreement(
                key,
                "down" if key in local else "up",
                down_on,
                nodes,
                "down" if key in effective else "up",
            )
        )
    return tuple(out)
