"""gslb.config.jsonschema: the schema is made from the loader's tables and accepts
what the loader accepts (checked with a small validator for the keywords it uses)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gslb.config.jsonschema import SchemaKind, json_schema
from gslb.config.schema import REGION_FILE, SETTINGS, ZONE
from gslb.config.tables import Table

SAMPLE = Path(__file__).resolve().parent.parent / "zones"


def errors(schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """Violations of the JSON Schema keywords that json_schema() emits."""
    out: list[str] = []
    if "anyOf" in schema and all(errors(option, value, where) for option in schema["anyOf"]):
        out.append(f"{where}: matches no anyOf option")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in enum")
    kind = schema.get("type")
    checks = {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }
    if kind is not None and not checks[kind]:
        return [*out, f"{where}: not {kind}"]
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            out.append(f"{where}: {value} out of range")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{where}: {value} too small")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{where}: too few items")
        for index, item in enumerate(value):
            out += errors(schema.get("items", {}), item, f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        out += [f"{where}: missing {key}" for key in schema.get("required", ()) if key not in value]
        for key, item in value.items():
            if key in properties:
                out += errors(properties[key], item, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: unknown key {key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(schema["additionalProperties"], item, f"{where}.{key}")
    return out


def test_schema_keys_come_from_the_loader_tables() -> None:
    tables: list[tuple[SchemaKind, Table]] = [
        ("zone", ZONE),
        ("region", REGION_FILE),
        ("settings", SETTINGS),
    ]
    for kind, table in tables:
        schema = json_schema(kind)
        assert schema["$schema"].endswith("2020-12/schema")
        assert list(schema["properties"]) == [f.key for f in table.fields]
        assert schema["additionalProperties"] is False
        json.dumps(schema)  # plain JSON, no tuples or model objects left
    zone = json_schema("zone")
    assert zone["required"] == ["zone", "ns"]
    assert zone["properties"]["ttl"]["default"] == 300
    service = zone["properties"]["services"]["additionalProperties"]
    assert service["properties"]["policy"]["enum"] == ["geo", "weighted", "failover"]
    assert json_schema("settings")["properties"]["dns"]["properties"]["listen"]["default"] == [
        "0.0.0.0:53"
    ]


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("settings", SAMPLE / "gslb.yaml"),
        ("zone", SAMPLE / "gslb.example.com.yaml"),
        *(("region", path) for path in sorted((SAMPLE / "regions").glob("*.yaml"))),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_sample_files_validate(kind: SchemaKind, path: Path) -> None:
    assert errors(json_schema(kind), yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize(
    ("kind", "document", "fragment"),
    [
        ("zone", {"zone": "a.example", "ns": ["ns.a.example"], "tll": 3}, "unknown key tll"),
        ("zone", {"zone": "a.example"}, "missing ns"),
        ("zone", {"zone": "a.example", "ns": ["n."], "ttl": 2**31}, "out of range"),
        ("region", {"region": "Bad_Name"}, "does not match"),
        ("region", {"region": "r", "health": {"interval": "10 parsecs"}}, "anyOf"),
        ("region", {"region": "r", "proxy": {"listen": "127.0.0.1:1", "backends": []}}, "few"),
        ("settings", {"dns": {"max_udp_size": 100}}, "out of range"),
    ],
)
def test_schema_rejects_what_the_loader_rejects(
    kind: SchemaKind, document: dict[str, Any], fragment: str
) -> None:
    found = errors(json_schema(kind), document)
    assert any(fragment in error for error in found), found
