"""Write the JSON Schema files of the config files from `gslb.config.jsonschema`.

From the repository root:

    .venv/bin/python schemas/generate.py           # rewrite schemas/*.schema.json
    .venv/bin/python schemas/generate.py --check   # exit 1 if a file is out of date

The schemas are made from the same tables the loader (`gslb check`) walks, so an
editor and `gslb check` agree on keys, types, ranges and defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script from a checkout, gslb not installed

from gslb.config.jsonschema import SchemaKind, json_schema  # noqa: E402

FILES: dict[str, SchemaKind] = {
    "zone.schema.json": "zone",
    "region.schema.json": "region",
    "gslb.schema.json": "settings",
}


def rendered(kind: SchemaKind) -> str:
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    args = parser.parse_args(argv)
    stale = []
    for name, kind in FILES.items():
        path = HERE / name
        text = rendered(kind)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote schemas/{name}")
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run: python schemas/generate.py)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
