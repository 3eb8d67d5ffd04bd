"""A config directory → `gslb.model.Config`, or one `ConfigError` listing every problem.

Layout: `gslb.yaml` (server settings, optional), every other top-level `*.yaml` /
`*.yml` is one zone, `regions/*.yaml` one region each. Problems name files as
`<directory as given>/<path inside it>`, e.g. `zones/regions/eu-west.yaml`.
"""

from __future__ import annotations

import os

from gslb.config.dnssec_keys import KeyMode, attach_keys
from gslb.config.kinds import Ctx
from gslb.config.links import link
from gslb.config.problems import Report
from gslb.config.regions import RegionDraft, build_region
from gslb.config.schema import REGION_FILE, SETTINGS, ZONE
from gslb.config.settings import build_settings
from gslb.config.tables import Parsed, Table
from gslb.config.yamlmarks import YMap, parse_yaml, shape_name
from gslb.config.zones import ZoneDraft, build_zone
from gslb.errors import ConfigError, Problem
from gslb.model import Config, ProxySpec

SETTINGS_NAMES = ("gslb.yaml", "gslb.yml")
REGIONS_DIR = "regions"
YAML_SUFFIXES = (".yaml", ".yml")


def load_config(directory: str, keys: KeyMode = "create") -> Config:
    """Read and validate the whole directory. Raises ConfigError with all problems found.

    `keys`: what a signed zone's key directory gets: "create" a key when it holds none
    (without `cluster:`; with it, as "require"), "require" keys, or "skip" reading them
    (the `gslb dnssec` tools, which manage the keys themselves)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ConfigError([Problem(directory, 0, "no such config directory")])
    root = os.path.abspath(directory)
    reports: dict[str, Report] = {}

    def report_for(file: str) -> Report:
        return reports.setdefault(file, Report(file))

    def read(name: str, table: Table, empty_ok: bool = False) -> tuple[str, Parsed | None]:
        file = os.path.join(directory, name)
        path = os.path.join(root, name)
        ctx = Ctx(report_for(file), root, os.path.dirname(path))
        return file, _read(path, table, ctx, empty_ok)

    settings_names = [n for n in SETTINGS_NAMES if os.path.isfile(os.path.join(root, n))]
    if len(settings_names) > 1:
        report_for(os.path.join(directory, settings_names[1])).add(
            0, f"both {settings_names[0]} and {settings_names[1]} exist; keep one"
        )
    settings = build_settings(
        read(settings_names[0], SETTINGS, empty_ok=True)[1] if settings_names else None
    )

    zone_drafts: list[ZoneDraft] = []
    zone_files = _yaml_files(root, exclude=SETTINGS_NAMES)
    for name in zone_files:
        file, parsed = read(name, ZONE)
        zone = None if parsed is None else build_zone(parsed, file, Ctx(report_for(file), root))
        if zone is not None:
            if keys != "skip":
                # A key is made on first use only for a config that is otherwise sound.
                sound = not report_for(file).problems
                create = keys == "create" and settings.cluster is None and sound
                zone = attach_keys(zone, report_for(file), create)
            zone_drafts.append(zone)

    region_drafts: list[RegionDraft] = []
    region_files = [
        os.path.join(REGIONS_DIR, n) for n in _yaml_files(os.path.join(root, REGIONS_DIR))
    ]
    for name in region_files:
        file, parsed = read(name, REGION_FILE)
        ctx = Ctx(report_for(file), root, os.path.join(root, REGIONS_DIR))
        region = None if parsed is None else build_region(parsed, file, ctx)
        if region is not None:
            region_drafts.append(region)

    def clean(names: list[str]) -> bool:
        return not any(reports[os.path.join(directory, n)].problems for n in names)

    zones, regions = link(
        zone_drafts,
        region_drafts,
        report_for,
        regions_clean=clean(region_files),
        zones_named=len(zone_drafts) == len(zone_files),
        regions_named=len(region_drafts) == len(region_files),
    )
    problems = sorted(
        (p for report in reports.values() for p in report.problems),
        key=lambda p: (p.file, p.line),
    )
    if problems:
        raise ConfigError(problems)
    return Config(directory=directory, settings=settings, zones=zones, regions=regions)


def load_region_proxy(directory: str, region: str) -> ProxySpec:
    """The `proxy:` block of one region (the whole directory is validated)."""
    config = load_config(directory)
    found = config.regions.get(region)
    if found is None:
        known = ", ".join(config.regions) or "none"
        raise ConfigError([Problem(directory, 0, f"no region {region!r} (defined: {known})")])
    if found.proxy is None:
        raise ConfigError([Problem(found.file, 0, f"region {region!r} has no proxy: block")])
    return found.proxy


def _yaml_files(directory: str, exclude: tuple[str, ...] = ()) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(
        name
        for name in os.listdir(directory)
        if name.endswith(YAML_SUFFIXES)
        and not name.startswith(".")
        and name not in exclude
        and os.path.isfile(os.path.join(directory, name))
    )


def _read(path: str, table: Table, ctx: Ctx, empty_ok: bool) -> Parsed | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        ctx.report.add(0, "not UTF-8 text")
        return None
    except OSError as exc:
        ctx.report.add(0, f"cannot read: {exc.strerror or exc}")
        return None
    before = len(ctx.report)
    node = parse_yaml(text, ctx.report)
    if node is None:
        if not empty_ok and len(ctx.report) == before:
            ctx.report.add(1, f"empty file: expected a mapping ({table.name})")
        return None
    if not isinstance(node, YMap):
        ctx.report.add(node.line, f"expected a mapping at the top level, got {shape_name(node)}")
        return None
    parsed = table.parse(node, ctx)
    return parsed if isinstance(parsed, Parsed) else None
