"""The `gslb` command: serve, proxy, check, explain, ctl, demo."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import random
import sys
from collections.abc import Sequence

from gslb.errors import ConfigError, GslbError
from gslb.model import HostPort


def _host_port(text: str) -> HostPort:
    from gslb.config.fields import parse_host_port

    try:
        return parse_host_port(text, min_port=0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def package_version() -> str:
    """The installed distribution's version, else `gslb.__version__` (a source checkout
    run without installing), else "unknown"."""
    from importlib import metadata

    try:
        return metadata.version("gslb")
    except metadata.PackageNotFoundError:
        import gslb

        return str(getattr(gslb, "__version__", "unknown"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gslb", description="DNS global server load balancer")
    parser.add_argument("--version", action="version", version=f"gslb {package_version()}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="authoritative DNS + health checks + admin API")
    serve.add_argument("--config", default="zones", help="config directory (default: zones)")
    serve.add_argument(
        "--dns",
        type=_host_port,
        action="append",
        help="HOST:PORT for UDP and TCP; repeat for several (default: gslb.yaml)",
    )
    serve.add_argument("--api", type=_host_port, help="admin API HOST:PORT (default: gslb.yaml)")
    serve.add_argument("--workers", type=int, help="DNS worker processes (SO_REUSEPORT)")

    proxy = sub.add_parser("proxy", help="a region's L7 HTTP proxy")
    proxy.add_argument("--config", default="zones")
    proxy.add_argument("--region", required=True)
    proxy.add_argument("--listen", type=_host_port)
    proxy.add_argument("--admin", type=_host_port)

    check = sub.add_parser("check", help="validate a config directory")
    check.add_argument("--config", default="zones")

    explain = sub.add_parser(
        "explain", help="show how a query would be answered: offline, or by a running node"
    )
    explain.add_argument("name")
    explain.add_argument(
        "--client", required=True, help="client IP, or IP/PREFIX to act as an ECS subnet"
    )
    explain.add_argument("--type", default="A", dest="qtype")
    explain.add_argument("--config", default="zones")
    explain.add_argument("--json", action="store_true", help="print the trace as JSON")
    explain.add_argument(
        "--seed",
        type=int,
        help="offline: draw the random choices (weighted policy, weighted and all selection) "
        "from this seed, for output that repeats",
    )
    explain.add_argument(
        "--api",
        metavar="URL",
        help="ask a running node (e.g. http://127.0.0.1:8053) instead: its live health, "
        "and in a cluster where its own verdicts are outvoted",
    )

    from gslb import ctl

    ctl.add_parser(sub)

    from gslb.dnssec import tools as dnssec_tools

    dnssec_tools.add_parser(sub)

    demo = sub.add_parser(
        "demo", help="the whole topology on loopback", epilog="A port of 0: any free port."
    )
    demo.add_argument("--config", default="zones")
    demo.add_argument("--dns-port", type=int, default=5353)
    demo.add_argument("--api-port", type=int, default=8053)
    demo.add_argument(
        "--proxy-port",
        type=int,
        default=8080,
        help="each region's proxy port (its admin port is the next one)",
    )
    demo.add_argument("--backend-port", type=int, default=8000)
    return parser


def _print_errors(exc: ConfigError) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)


def cmd_check(config_dir: str) -> int:
    from gslb.config import load_config

    try:
        config = load_config(config_dir)
    except ConfigError as exc:
        _print_errors(exc)
        return 1
    services = sum(len(z.services) for z in config.zones)
    print(
        f"{config_dir}: ok: {len(config.zones)} zone(s), {len(config.regions)} region(s), "
        f"{services} service(s)"
    )
    return 0


def cmd_explain(
    config_dir: str,
    name: str,
    client_text: str,
    qtype: str,
    as_json: bool,
    api: str | None,
    seed: int | None = None,
) -> int:
    from gslb.explain import explain_offline, explain_online

    if api is not None and seed is not None:
        print("gslb explain: --seed is for offline explain (a node draws its own)", file=sys.stderr)
        return 2
    try:
        if api is not None:
            result = explain_online(api, name, client_text, qtype)
        else:
            rng = random.Random(seed)
            result = explain_offline(config_dir, name, client_text, qtype, rng)
    except ConfigError as exc:
        _print_errors(exc)
        return 1
    except ValueError as exc:
        print(f"gslb explain: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        from gslb.explain import format_text

        print(format_text(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "check":
            return cmd_check(args.config)
        if args.command == "explain":
            try:
                ipaddress.ip_network(args.client, strict=False)
            except ValueError:
                print(
                    f"gslb explain: --client {args.client!r} is not an IP address", file=sys.stderr
                )
                return 2
            return cmd_explain(
                args.config, args.name, args.client, args.qtype, args.json, args.api, args.seed
            )
        if args.command == "ctl":
            from gslb import ctl

            return ctl.run(args)
        if args.command == "dnssec":
            from gslb.dnssec import tools as dnssec_tools

            return dnssec_tools.run(args)
        if args.command == "serve":
            from gslb.runtime import serve

            return serve(args.config, dns=args.dns, api=args.api, workers=args.workers)
        if args.command == "proxy":
            from gslb.proxy.app import main as proxy_main

            return proxy_main(args.config, args.region, args.listen, args.admin)
        if args.command == "demo":
            from gslb.demo import run_demo

            return run_demo(
                args.config,
                dns_port=args.dns_port,
                api_port=args.api_port,
                proxy_port=args.proxy_port,
                backend_port=args.backend_port,
            )
    except ConfigError as exc:
        _print_errors(exc)
        return 1
    except GslbError as exc:
        print(f"gslb: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
