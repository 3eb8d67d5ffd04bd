"""`gslb proxy`: run one region's proxy until SIGTERM/SIGINT; SIGHUP reloads its config,
SIGUSR1 reopens the access log."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from gslb.auth import load_token
from gslb.certificates import CertificateError
from gslb.config import load_config
from gslb.errors import ConfigError, Problem
from gslb.model import Config, HostPort, ProxySpec
from gslb.proxy.server import ProxyServer

log = logging.getLogger("gslb.proxy")


def region_proxy(config: Config, region: str) -> ProxySpec:
    """The region's proxy block, or a ConfigError saying why there is none."""
    found = config.regions.get(region)
    if found is None:
        known = ", ".join(sorted(config.regions)) or "none"
        raise ConfigError([Problem(config.directory, 0, f"no region {region!r} (known: {known})")])
    if found.proxy is None:
        raise ConfigError([Problem(found.file, 0, f"region {region!r} has no proxy: block")])
    return found.proxy


def main(config_dir: str, region: str, listen: HostPort | None, admin: HostPort | None) -> int:
    """Run the proxy in the foreground; 0 after a clean drain, 1 on a config error."""
    try:
        config = load_config(config_dir)
        spec = region_proxy(config, region)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    token = load_token(config.settings, os.environ)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return _run(_serve(config_dir, region, spec, token, listen, admin))


def _run(main_coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_coro)
    runner: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    return runner(main_coro)


async def _serve(
    config_dir: str,
    region: str,
    spec: ProxySpec,
    token: str | None,
    listen: HostPort | None,
    admin: HostPort | None,
) -> int:
    server = ProxyServer(spec, token=token, listen=listen, admin=admin)
    # What exists now lives as long as the process: keep the collector from scanning it
    # again and again, and collect the young generation less often. Requests make short-
    # lived objects at a high rate; fewer collections shorten the tail latency.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        await server.start()
    except (OSError, CertificateError) as e:
        print(f"gslb proxy: cannot start: {e}", file=sys.stderr)
        await server.close()
        return 1
    loop = asyncio.get_running_loop()

    def reload() -> None:
        try:
            new = region_proxy(load_config(config_dir), region)
        except ConfigError as e:
            for problem in e.problems:
                log.error("reload refused, keeping the running config: %s", problem)
            return
        try:
            server.reload(new)
        # A TLS file changed again since it was read, or the new HTTPS address is taken.
        except (CertificateError, OSError) as e:
            log.error("reload refused, keeping the running config: %s", e)

    loop.add_signal_handler(signal.SIGTERM, server.request_drain)
    loop.add_signal_handler(signal.SIGINT, server.request_drain)
    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGUSR1, server.reopen_logs)
    print(
        f"gslb proxy: region {region} on {server.address}"
        + (f", admin on port {server.admin_port}" if server.admin_port else "")
        + (f", https on {server.tls_address}" if server.tls_address else ""),
        file=sys.stderr,
        flush=True,
    )
    try:
        await server.finished.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
        await server.close()
    return 0
