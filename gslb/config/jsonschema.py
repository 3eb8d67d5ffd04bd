"""JSON Schema for the config files, generated from the loader's own tables.

Editors can validate and complete the YAML with it. It describes shape, types,
ranges and defaults; rules that span keys or files (a CNAME alone at its owner,
regions that exist, a geoip file that exists) stay with the loader.
"""

from __future__ import annotations

from typing import Any, Literal

from gslb.config.schema import REGION_FILE, SETTINGS, ZONE
from gslb.config.tables import Table

SchemaKind = Literal["zone", "region", "settings"]

_TABLES: dict[SchemaKind, tuple[Table, str]] = {
    "zone": (ZONE, "a zone file: <config>/<zone>.yaml"),
    "region": (REGION_FILE, "a region file: <config>/regions/<region>.yaml"),
    "settings": (SETTINGS, "server settings: <config>/gslb.yaml"),
}


def json_schema(kind: SchemaKind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one kind of config file."""
    table, what = _TABLES[kind]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:gslb:config:{kind}",
        **table.schema(),
        "title": f"gslb {kind} file",
        "description": what,
    }
