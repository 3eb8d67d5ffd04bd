"""Composition root of `gslb serve`: wires config, state, monitors, DNS and the API.

The runtime is the single writer of the (plan, state) view: monitors, the admin
API and reloads all come here, a new `View` is built and one reference swapped.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

from gslb.config import load_config
from gslb.dns.responder import Responder, View
from gslb.dns.server import Bound, DnsServer
from gslb.geo import GeoDatabase, NoGeo, open_geo
from gslb.model import Config, HostPort
from gslb.plan import compile_plan
from gslb.state import State

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        config_dir: str,
        *,
        dns: Sequence[HostPort] | None = None,
        api: HostPort | None = None,
    ) -> None:
        self.config_dir = config_dir
        self._dns_override = tuple(dns) if dns else None
        self._api_override = api
        config = load_config(config_dir)
        self.generation = 1
        self._view = View(compile_plan(config, self.generation), State())
        self.geo: GeoDatabase | NoGeo = open_geo(config.settings.geoip_database)
        self.responder = Responder(
            self.view,
            None if isinstance(self.geo, NoGeo) else self.geo,
            udp_cap=config.settings.max_udp_size,
        )
        self.dns: DnsServer | None = None
        self.dns_bound: list[Bound] = []
        self._stopped = asyncio.Event()

    @property
    def config(self) -> Config:
        return self._view.plan.config

    def view(self) -> View:
        return self._view

    async def start(self) -> None:
        settings = self.config.settings
        listen = self._dns_override or settings.dns_listen
        self.dns = DnsServer(
            self.responder.handle_wire, listen, tcp_idle_timeout=settings.tcp_idle_timeout
        )
        self.dns_bound = await self.dns.start()
        for bound in self.dns_bound:
            # Printed, not only logged: scripts and tests read the bound port from here.
            print(f"dns {bound.host} {bound.port}", flush=True)

    async def stop(self) -> None:
        if self.dns is not None:
            await self.dns.close()
        self.geo.close()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


async def _serve(runtime: Runtime) -> None:
    await runtime.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("gslb serving; Ctrl-C stops", flush=True)
    await stop.wait()
    await runtime.stop()


def serve(
    config_dir: str,
    *,
    dns: Sequence[HostPort] | None = None,
    api: HostPort | None = None,
    workers: int | None = None,
) -> int:
    runtime = Runtime(config_dir, dns=dns, api=api)
    asyncio.run(_serve(runtime))
    return 0
