"""The runtime state the selection reads: measured health under admin overrides.

One immutable `State` value per change. A single writer (the runtime) builds a
new value and swaps one reference; every query reads one snapshot. An admin
override beats measured health, and the measured health is kept under it so
`enable` returns to what the monitors see now (gdnsd's forced-state lesson).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from gslb.model import frozen_map

if TYPE_CHECKING:
    from gslb.plan import Plan  # gslb.plan imports this module

RegionAdmin = Literal["enabled", "disabled", "draining"]
REGION_ADMIN_STATES: tuple[RegionAdmin, ...] = ("enabled", "disabled", "draining")


def endpoint_key(region: str, address: str) -> str:
    """The one spelling of an endpoint's identity, shared by health, admin state and the API."""
    return f"{region}/{address}"


@dataclass(frozen=True, slots=True)
class AdminState:
    """Operator overrides; what is persisted and survives a restart."""

    regions: Mapping[str, RegionAdmin] = field(default_factory=frozen_map)
    disabled_endpoints: frozenset[str] = frozenset()  # endpoint keys
    draining_endpoints: frozenset[str] = frozenset()  # out of new answers, said to be draining

    def region(self, name: str) -> RegionAdmin:
        return self.regions.get(name, "enabled")

    @property
    def off_endpoints(self) -> frozenset[str]:
        """Endpoints an operator took out of the answers: disabled or draining."""
        if not self.draining_endpoints:
            return self.disabled_endpoints
        return self.disabled_endpoints | self.draining_endpoints

    def endpoint(self, key: str) -> RegionAdmin:
        if key in self.disabled_endpoints:
            return "disabled"
        return "draining" if key in self.draining_endpoints else "enabled"

    def with_region(self, name: str, admin: RegionAdmin) -> AdminState:
        regions = dict(self.regions)
        if admin == "enabled":
            regions.pop(name, None)
        else:
            regions[name] = admin
        return replace(self, regions=frozen_map(regions))

    def with_endpoint(self, key: str, enabled: bool | RegionAdmin) -> AdminState:
        """`enabled`: True/False (enable/disable), or "enabled"/"disabled"/"draining"."""
        admin = ("enabled" if enabled else "disabled") if isinstance(enabled, bool) else enabled
        disabled = set(self.disabled_endpoints) - {key}
        draining = set(self.draining_endpoints) - {key}
        if admin == "disabled":
            disabled.add(key)
        elif admin == "draining":
            draining.add(key)
        return replace(
            self, disabled_endpoints=frozenset(disabled), draining_endpoints=frozenset(draining)
        )


@dataclass(frozen=True, slots=True)
class State:
    """Health and admin state as one value; `version` grows with every change."""

    version: int = 0
    down: frozenset[str] = frozenset()  # endpoint keys measured down
    admin: AdminState = field(default_factory=AdminState)

    def region_usable(self, region: str) -> bool:
        return self.admin.region(region) == "enabled"

    def endpoint_usable(self, key: str) -> bool:
        return key not in self.down and key not in self.admin.off_endpoints

    def with_health(self, key: str, up: bool) -> State:
        down = self.down - {key} if up else self.down | {key}
        if down == self.down:
            return self
        return replace(self, version=self.version + 1, down=down)

    def with_down(self, down: frozenset[str]) -> State:
        if down == self.down:
            return self
        return replace(self, version=self.version + 1, down=down)

    def with_admin(self, admin: AdminState) -> State:
        return replace(self, version=self.version + 1, admin=admin)


@dataclass(frozen=True, slots=True)
class View:
    """The plan and state one query reads: taken once, never torn (the runtime swaps one
    reference per change, so comparing snapshots by identity tells whether either changed)."""

    plan: Plan
    state: State


REGION_STATES = ("up", "down", "disabled", "draining")


def region_state(admin: str, endpoints: Sequence[Mapping[str, Any]]) -> str:
    """What the status page and `gslb_region_state` say of a region: `up`, `down`,
    `disabled` or `draining` (each endpoint: its "admin" state and whether "usable").

    An operator's word comes first: a region disabled or draining is that, and so is a
    region whose every endpoint an operator disabled (it is drained, nothing failed). An
    endpoint an operator disabled never makes a region `down`: `down` is an enabled region
    whose enabled endpoints are all unhealthy, `up` one where some serve.
    """
    if admin != "enabled":
        return admin
    enabled = [e for e in endpoints if e["admin"] == "enabled"]
    if endpoints and not enabled:
        return "draining" if any(e["admin"] == "draining" for e in endpoints) else "disabled"
    return "up" if any(e["usable"] for e in enabled) else "down"
