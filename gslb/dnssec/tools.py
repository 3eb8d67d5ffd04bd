"""`gslb dnssec keygen | rollover | ds | keys ZONE`: the operator's key tools.

They read the config (without touching keys) to find the zone's key directory and
algorithm, change only files in that directory, and tell the operator to reload
(`gslb ctl reload` or SIGHUP) every node the directory was copied to.
"""

from __future__ import annotations

import argparse
import base64
import sys
from typing import TextIO

from gslb.config import load_config
from gslb.dnssec.keys import ZoneKey, generate_key, load_keys, set_state
from gslb.dnssec.wire import ALGORITHM_NAMES, ALGORITHMS, ds_rdata
from gslb.errors import GslbError
from gslb.model import DnssecSpec

RELOAD = "copy the key directory to every node, then reload them (gslb ctl reload, or SIGHUP)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dnssec = sub.add_parser("dnssec", help="DNSSEC keys: keygen, rollover, ds, keys")
    verbs = dnssec.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("keygen", "make the zone's first key (or, with --publish, a pre-published one)"),
        ("rollover", "CSK rollover by double signature: start, then finish"),
        ("ds", "print the DS (SHA-256) and DNSKEY records for the parent zone"),
        ("keys", "list the zone's keys and their states"),
    ):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("zone")
        parser.add_argument("--config", default="zones", help="config directory")
        if verb == "keygen":
            parser.add_argument(
                "--publish",
                action="store_true",
                help="publish the new key in DNSKEY without signing with it",
            )
        if verb == "rollover":
            parser.add_argument("step", choices=("start", "finish"))


def _zone_spec(config_dir: str, zone: str) -> tuple[str, DnssecSpec]:
    name = zone.lower().rstrip(".") + "."
    config = load_config(config_dir, keys="skip")
    found = next((z for z in config.zones if z.name == name), None)
    if found is None:
        raise GslbError(f"no zone {name} in {config_dir}")
    if found.dnssec is None:
        raise GslbError(f"zone {name} has no dnssec: block ({found.file})")
    return name, found.dnssec


def _describe(key: ZoneKey) -> str:
    return f"key {key.tag} ({ALGORITHM_NAMES[key.algorithm]}, {key.state}) {key.path}"


def records_for_parent(zone: str, keys: tuple[ZoneKey, ...]) -> list[str]:
    """DS and DNSKEY lines, in zone-file form, for every active key."""
    lines = []
    for key in keys:
        if not key.signs:
            continue
        ds = ds_rdata(zone, key.dnskey)
        lines.append(f"{zone} IN DS {key.tag} {key.algorithm} 2 {ds[4:].hex().upper()}")
    for key in keys:
        if key.signs:
            flags = int.from_bytes(key.dnskey[:2], "big")
            public = base64.b64encode(key.dnskey[4:]).decode()
            lines.append(f"{zone} IN DNSKEY {flags} 3 {key.algorithm} {public}")
    return lines


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`out`: where to print (default: sys.stdout as it is at the call, not at import)."""
    out = sys.stdout if out is None else out
    zone, spec = _zone_spec(args.config, args.zone)
    keys = load_keys(spec.directory, zone)
    algorithm = ALGORITHMS[spec.algorithm]
    live = [k for k in keys if k.state != "retired"]
    if args.verb == "keys":
        for key in keys:
            print(_describe(key), file=out)
        return 0
    if args.verb == "ds":
        if not any(k.signs for k in keys):
            raise GslbError(f"no active key for {zone} in {spec.directory}")
        for line in records_for_parent(zone, keys):
            print(line, file=out)
        return 0
    if args.verb == "keygen":
        if live and not args.publish:
            raise GslbError(
                f"{zone} has keys already ({_describe(live[0])}); for a new one use"
                " `gslb dnssec rollover start`, or --publish to pre-publish it"
            )
        key = generate_key(spec.directory, zone, algorithm, "published" if live else "active")
        print(f"created {_describe(key)}", file=out)
        print(RELOAD, file=out)
        return 0
    if args.step == "start":
        if not any(k.signs for k in live):
            raise GslbError(f"no active key for {zone}: run `gslb dnssec keygen {zone}` first")
        if sum(1 for k in live if k.signs) > 1:
            raise GslbError(f"a rollover of {zone} is under way: finish it first")
        waiting = [k for k in live if k.state == "published"]
        if waiting:  # a pre-published key (keygen --publish) becomes the new one
            key = set_state(waiting[-1], "active")
        else:
            key = generate_key(spec.directory, zone, algorithm, "active")
        print(f"new {_describe(key)}", file=out)
        print(
            "both keys sign now, and CDS/CDNSKEY name the new one; once the parent's DS"
            " is the new key's (gslb dnssec ds) and the old DS's TTL has passed, run"
            f" `gslb dnssec rollover finish {zone}`",
            file=out,
        )
        print(RELOAD, file=out)
        return 0
    active = [k for k in live if k.signs]
    if len(active) < 2:
        raise GslbError(f"no rollover of {zone} is under way (one active key)")
    for key in active[:-1]:
        set_state(key, "retired")
        print(f"retired key {key.tag} {key.path}", file=out)
    print(RELOAD, file=out)
    return 0
