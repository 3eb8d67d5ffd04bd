"""Admin state that survives a restart: an atomically replaced JSON file.

Written as temporary file → fsync → rename → fsync of the directory, so a crash
leaves either the old or the new file, never half of one. Several DNS nodes can
share it on a shared filesystem; each node re-reads it on reload. With `cluster:`
the admin state lives in etcd (the same JSON, `encode_admin`) and this file keeps
the last state the node saw, so it can start while etcd is unreachable.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from gslb.model import frozen_map
from gslb.state import REGION_ADMIN_STATES, AdminState, RegionAdmin

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Loaded:
    admin: AdminState
    problem: str | None  # why the file could not be used; None when it was fine or absent


def decode_admin(data: Any) -> AdminState:
    """The admin state from its JSON form (a state file, or the cluster's admin key)."""
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a gslb state file of format version {FORMAT_VERSION}")
    regions_in = data.get("regions", {})
    endpoints_in = data.get("disabled_endpoints", [])
    if not isinstance(regions_in, dict) or not isinstance(endpoints_in, list):
        raise ValueError("'regions' must be a mapping and 'disabled_endpoints' a list")
    regions: dict[str, RegionAdmin] = {}
    for name, admin in regions_in.items():
        if admin not in REGION_ADMIN_STATES:
            raise ValueError(f"region {name!r} has unknown state {admin!r}")
        if admin != "enabled":
            regions[str(name)] = admin
    draining_in = data.get("draining_endpoints", [])
    if not all(isinstance(key, str) for key in endpoints_in) or not isinstance(draining_in, list):
        raise ValueError("'disabled_endpoints' and 'draining_endpoints' must list strings")
    if not all(isinstance(key, str) for key in draining_in):
        raise ValueError("'draining_endpoints' must list strings")
    return AdminState(frozen_map(regions), frozenset(endpoints_in), frozenset(draining_in))


def encode_admin(admin: AdminState) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "regions": dict(sorted(admin.regions.items())),
        "disabled_endpoints": sorted(admin.disabled_endpoints),
        "draining_endpoints": sorted(admin.draining_endpoints),
    }


class StateFile:
    """Loads and saves `AdminState`; `path` None keeps the state in memory only."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def signature(self) -> tuple[int, int, int] | None:
        """What changes when anyone (another node too) replaces the file; None when absent."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def load(self) -> Loaded:
        if self.path is None or not os.path.exists(self.path):
            return Loaded(AdminState(), None)
        try:
            with open(self.path, encoding="utf-8") as handle:
                return Loaded(decode_admin(json.load(handle)), None)
        except (OSError, ValueError) as exc:
            problem = (
                f"{self.path}: cannot use the admin state file ({exc}); starting with "
                "every region and endpoint enabled"
            )
            log.error("%s", problem)
            return Loaded(AdminState(), problem)

    def save(self, admin: AdminState) -> None:
        if self.path is None:
            return
        payload = {**encode_admin(admin), "saved_at": time.time()}
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".state-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
