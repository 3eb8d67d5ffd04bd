"""A tiny HTTP backend for the demo: it says which region and backend answered.

`gslb demo` runs several in its own process; docker-compose runs one per
container with `python -m gslb.demo_backend --region eu-west --name euw1`.
Every path answers 200 `region=eu-west backend=euw1`; `/health` answers `ok`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from aiohttp import web


def backend_app(region: str, name: str) -> web.Application:
    body = f"region={region} backend={name}\n"
    headers = {"X-Gslb-Region": region, "X-Gslb-Backend": name}

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers=headers)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=body, headers=headers)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", hello)
    return app


async def start_backend(region: str, name: str, host: str, port: int) -> web.AppRunner:
    """Start one backend; OSError when its address is taken. Stop it with `runner.cleanup()`."""
    runner = web.AppRunner(backend_app(region, name), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner


async def _serve(region: str, name: str, host: str, port: int) -> None:
    runner = await start_backend(region, name, host, port)
    print(f"demo backend {region}/{name} on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gslb.demo_backend", description=__doc__)
    parser.add_argument("--region", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.region, args.name, args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
