"""A signed zone's keys, read from its key directory (or made there on first use)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal

from gslb.config.problems import Report
from gslb.config.zones import ZoneDraft
from gslb.dnssec.keys import KeyError_, generate_key, load_keys
from gslb.dnssec.wire import ALGORITHM_NAMES, ALGORITHMS

log = logging.getLogger(__name__)

KeyMode = Literal["create", "require", "skip"]


def attach_keys(draft: ZoneDraft, report: Report, create: bool) -> ZoneDraft:
    """The draft with its zone's keys loaded; problems go to `report` at `dnssec:`'s line.

    `create`: make a combined signing key when the directory holds none. Not with a
    cluster, where every node must sign with the same keys: there the operator runs
    `gslb dnssec keygen` once and copies the directory to every node.
    """
    spec = draft.zone.dnssec
    if spec is None:
        return draft
    zone = draft.zone.name
    line = draft.dnssec_line
    algorithm = ALGORITHMS[spec.algorithm]
    try:
        keys = load_keys(spec.directory, zone)
        if not keys:
            if not create:
                report.add(
                    line,
                    f"no keys for {zone} in {spec.directory}: run `gslb dnssec keygen {zone}`"
                    " once and copy the directory to every node",
                )
                return draft
            key = generate_key(spec.directory, zone, algorithm)
            log.warning(
                "dnssec: created key %d (%s) for %s in %s; publish its DS at the parent"
                " (`gslb dnssec ds %s`)",
                key.tag,
                spec.algorithm,
                zone,
                key.path,
                zone,
            )
            keys = (key,)
    except (KeyError_, OSError) as exc:
        report.add(line, str(exc))
        return draft
    other = [k for k in keys if k.algorithm != algorithm and k.state != "retired"]
    if other:
        report.add(
            line,
            f"{other[0].path} is {ALGORITHM_NAMES[other[0].algorithm]}, not {spec.algorithm}:"
            " an algorithm rollover is not supported; retire or remove that key",
        )
        return draft
    if not any(k.signs for k in keys):
        report.add(line, f"no active key for {zone} in {spec.directory}")
        return draft
    return replace(draft, zone=replace(draft.zone, dnssec=replace(spec, keys=keys)))
