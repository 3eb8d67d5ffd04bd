"""`gslb ctl`: the admin API of `gslb serve` as a command, for one node or several.

    gslb ctl status
    gslb ctl disable eu-west --reason "maintenance, change 1234"
    gslb ctl disable eu-west 198.51.100.10 --reason "disk"
    gslb ctl --api http://ns1:8053 --api http://ns2:8053 status

With several `--api`, the same call goes to each node (at once) and the results are shown
side by side. The token comes from `$GSLB_API_TOKEN` (or `--token-env NAME`) or
`--token-file`; reading calls need none. Exit status: 0 when every node answered with
success, 1 when any did not, 2 for a usage error.

The HTTP calls and the formatting are apart: `format_*` are pure (JSON in, text out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

DEFAULT_API = "http://127.0.0.1:8053"
TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Result:
    """One node's answer to one call."""

    api: str
    status: int  # HTTP status; 0 when the node could not be reached
    body: Any  # the decoded JSON, or {"error": "..."}

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def add_parser(sub: Any) -> None:
    """`gslb ctl ...` under the `gslb` command's subparsers."""
    ctl = sub.add_parser("ctl", help="the admin API of running nodes as a command")
    ctl.add_argument(
        "--api",
        action="append",
        metavar="URL",
        help=f"a node's admin API; repeat for several (default: $GSLB_API or {DEFAULT_API})",
    )
    ctl.add_argument("--token-env", default="GSLB_API_TOKEN", metavar="NAME")
    ctl.add_argument("--token-file", metavar="PATH")
    ctl.add_argument("--actor", help="who acts, for the audit log (default: $USER)")
    ctl.add_argument("--json", action="store_true", help="print each node's JSON answer")
    commands = ctl.add_subparsers(dest="ctl_command", required=True)
    commands.add_parser("status", help="regions and endpoints, as a table")
    for action, what in (
        ("disable", "take a region (or one endpoint) out of the answers"),
        ("enable", "put a region (or one endpoint) back"),
        ("drain", "take a region out of new answers, reported as draining"),
    ):
        command = commands.add_parser(action, help=what)
        command.add_argument("region")
        command.add_argument("endpoint", nargs="?", help="an endpoint's address")
        _mutation_options(command)
    # `gslb ctl endpoint disable|enable REGION ADDRESS`, the same as `disable REGION ADDRESS`
    endpoint = commands.add_parser("endpoint", help="disable or enable one endpoint")
    endpoint.add_argument("endpoint_action", choices=("disable", "enable", "drain"))
    endpoint.add_argument("region")
    endpoint.add_argument("endpoint", help="the endpoint's address")
    _mutation_options(endpoint)
    explain = commands.add_parser("explain", help="how a query is answered, step by step")
    explain.add_argument("name")
    explain.add_argument("--client", required=True, help="client IP, or IP/PREFIX for ECS")
    explain.add_argument("--type", default="A", dest="qtype")
    reload = commands.add_parser("reload", help="re-read the config directory")
    reload.add_argument("--dry-run", action="store_true", help="only check it")
    commands.add_parser("cluster", help="the etcd connection and every node")


def _mutation_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--reason", default="", help="recorded in the audit log")
    command.add_argument(
        "--dry-run", action="store_true", help="change nothing: show where clients would go"
    )
    command.add_argument(
        "--force", action="store_true", help="past the safety rules (audited as forced)"
    )


def token(args: argparse.Namespace, environ: dict[str, str]) -> str | None:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as handle:
            return handle.read().strip() or None
    return environ.get(args.token_env, "").strip() or None


def call(api: str, method: str, path: str, headers: dict[str, str], body: Any = None) -> Result:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api.rstrip("/") + path, data=data, method=method)
    for name, value in headers.items():
        request.add_header(name, value)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return Result(api, response.status, _json(response.read()))
    except urllib.error.HTTPError as exc:
        return Result(api, exc.code, _json(exc.read()))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Result(api, 0, {"error": f"cannot reach {api}: {reason}"})


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {"error": raw[:200].decode("utf-8", "replace")}


def request_for(args: argparse.Namespace) -> tuple[str, str, Any]:
    """(method, path, body) of the API call a ctl command makes."""
    command = args.ctl_command
    if command == "status":
        return "GET", "/v1/status", None
    if command == "cluster":
        return "GET", "/v1/cluster", None
    if command == "reload":
        return "POST", "/v1/reload" + ("?dry_run=true" if args.dry_run else ""), None
    if command == "explain":
        query = urllib.parse.urlencode(
            {"name": args.name, "client": args.client, "type": args.qtype}
        )
        return "GET", f"/v1/explain?{query}", None
    if command == "endpoint":
        command = args.endpoint_action
    region = urllib.parse.quote(args.region, safe="")
    path = f"/v1/regions/{region}"
    endpoint = getattr(args, "endpoint", None)
    if endpoint:
        path += f"/endpoints/{urllib.parse.quote(endpoint, safe='')}"
    body: dict[str, Any] = {"reason": args.reason}
    if args.force:
        body["force"] = True
    return "POST", f"{path}/{command}" + ("?dry_run=true" if args.dry_run else ""), body


def run(args: argparse.Namespace, environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    apis = args.api or [env.get("GSLB_API", DEFAULT_API)]
    method, path, body = request_for(args)
    headers = {"X-Gslb-Actor": args.actor or env.get("USER", "gslb-ctl")}
    try:
        secret = token(args, env)
    except OSError as exc:
        print(f"gslb ctl: --token-file: {exc}", file=sys.stderr)
        return 2
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    elif method == "POST":
        print(
            f"gslb ctl: no token (${args.token_env} or --token-file): the call will be refused",
            file=sys.stderr,
        )
    with ThreadPoolExecutor(max_workers=min(16, len(apis))) as pool:
        results = list(pool.map(lambda api: call(api, method, path, headers, body), apis))
    print(render(args, results))
    return 0 if all(r.ok for r in results) else 1


def render(args: argparse.Namespace, results: Sequence[Result]) -> str:
    if args.json:
        return json.dumps({r.api: r.body for r in results}, indent=2)
    failed = [r for r in results if not r.ok]
    good = [r for r in results if r.ok]
    formatter: Callable[[Sequence[Result]], str] = FORMATS.get(args.ctl_command, format_action)
    parts = [formatter(good)] if good else []
    parts += [f"{r.api}: {r.status or 'unreachable'} {error_of(r.body)}" for r in failed]
    return "\n".join(parts)


def error_of(body: Any) -> str:
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


# --- formatting (pure) ----------------------------------------------------------------


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as columns padded to their widest cell (the first row is the heading)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def region_cell(region: dict[str, Any]) -> str:
    endpoints = region.get("endpoints", [])
    usable = sum(1 for e in endpoints if e.get("usable"))
    share = region.get("share")
    state = region.get("state", region.get("admin", "?"))
    text = f"{state}, {usable}/{len(endpoints)} endpoints usable"
    if not region.get("usable"):
        text += ", NOT SERVING"
    recent = region.get("last_1m")
    if isinstance(recent, dict) and isinstance(recent.get("share"), int | float):
        text += f", {100 * recent['share']:.1f}% last minute"
    if isinstance(share, int | float):
        text += f", {100 * share:.1f}%" + (" since start" if recent is not None else "")
    return text


def format_status(results: Sequence[Result]) -> str:
    """Regions as rows, one column per node; then endpoints that are not plainly up."""
    names: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    notes: list[str] = []
    for result in results:
        for region in result.body.get("regions", []):
            name = region["name"]
            if name not in names:
                names.append(name)
            cells[(name, result.api)] = region_cell(region)
            for endpoint in region.get("endpoints", []):
                if endpoint.get("health") in ("up", "unchecked") and endpoint.get("usable"):
                    continue
                where = f" on {result.api}" if len(results) > 1 else ""
                notes.append(
                    f"{name}/{endpoint['address']}: health {endpoint.get('health')}, "
                    f"admin {endpoint.get('admin')} ({endpoint.get('detail', '')}){where}"
                )
    heading = ["region"] + [r.api if len(results) > 1 else "state" for r in results]
    rows = [heading] + [[n] + [cells.get((n, r.api), "-") for r in results] for n in names]
    out = [table(rows)]
    if notes:
        out += ["", *notes]
    fail_open = sorted({s for r in results for s in r.body.get("fail_open_now", [])})
    if fail_open:
        out += ["", "answering fail-open: " + ", ".join(fail_open)]
    return "\n".join(out)


def format_dry_run(body: dict[str, Any]) -> list[str]:
    """What a dry run says a change would do, a few lines per service it moves."""
    lines = [f"  from the {body.get('clients', 0)} client networks answered most recently:"]
    for service in body.get("services", []):

        def shares(of: dict[str, float]) -> str:
            return ", ".join(f"{region} {100 * share:.1f}%" for region, share in of.items())

        lines.append(f"  {service['service']} {service['family']}")
        lines.append(f"    before: {shares(service['before'])}")
        lines.append(f"    after:  {shares(service['after'])}")
        moved = ", ".join(f"{move}: {n}" for move, n in service["moved"].items())
        lines.append(f"    moved:  {moved}")
    if not body.get("services"):
        lines.append("  no answer among them would change")
    for text in body.get("safety", []):
        lines.append(f"  would need --force: {text}")
    if body.get("fail_open"):
        lines.append("  would answer fail-open: " + ", ".join(body["fail_open"]))
    return lines


def format_action(results: Sequence[Result]) -> str:
    """A mutation or reload: one line per node."""
    lines = []
    for result in results:
        body = result.body
        if body.get("dry_run") and "services" in body:
            target = body.get("endpoint") or body.get("region")
            lines.append(f"{result.api}: dry run: {target} {body.get('admin')} would change:")
            lines += format_dry_run(body)
            continue
        if body.get("dry_run"):
            verdict = "would load" if body.get("ok") else "would be refused"
            lines.append(f"{result.api}: dry run: the config {verdict}")
            lines += [f"  {error}" for error in body.get("errors", [])]
            continue
        done = body.get("admin") or ("reloaded" if body.get("ok") else "")
        target = body.get("endpoint") or body.get("region") or ""
        revision = f" (etcd revision {body['revision']})" if "revision" in body else ""
        generation = f" generation {body['generation']}" if "generation" in body else ""
        line = f"{result.api}: {target} {done}{generation}{revision}".replace("  ", " ")
        lines.append(line.rstrip())
        if body.get("warning"):
            lines.append(f"  warning: {body['warning']}")
    return "\n".join(lines)


def format_explain(results: Sequence[Result]) -> str:
    from gslb.explain import format_text

    if len(results) == 1:
        return format_text(results[0].body)
    return "\n\n".join(f"== {r.api}\n{format_text(r.body)}" for r in results)


def format_cluster(results: Sequence[Result]) -> str:
    out = []
    for result in results:
        etcd = result.body.get("etcd", {})
        state = "connected" if etcd.get("connected") else "DISCONNECTED"
        out.append(f"{result.api}: etcd {state}, revision {etcd.get('revision')}")
        rows = [["node", "alive", "generation", "config", "last seen"]]
        for node in result.body.get("nodes", []):
            rows.append(
                [
                    str(node.get("name")),
                    "alive" if node.get("alive") else "gone",
                    str(node.get("config_generation")),
                    "DIFFERS" if node.get("config_differs") else "same",
                    f"{node.get('last_seen', 0):.0f}",
                ]
            )
        out.append(table(rows))
    return "\n".join(out)


FORMATS: dict[str, Callable[[Sequence[Result]], str]] = {
    "status": format_status,
    "explain": format_explain,
    "cluster": format_cluster,
}
