"""The proxy's admin port (aiohttp): health for the DNS tier, status, metrics, and drain.

GET  /health                   200, or 503 when no backend can take requests or draining
GET  /status                   backends, health, in-flight, drain state, traffic share
GET  /metrics                  Prometheus text from the proxy's own registry
POST /drain                    drain the whole proxy (as SIGTERM does)        token
POST /backends/{name}/drain    no new requests to it; in-flight ones finish   token
POST /backends/{name}/enable   take it back                                   token
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gslb.auth import bearer_ok


class AdminTarget(Protocol):
    """What the admin port reads and drives (the ProxyServer)."""

    @property
    def registry(self) -> CollectorRegistry: ...
    def healthy(self) -> tuple[bool, str]: ...
    def status(self) -> dict[str, Any]: ...
    def request_drain(self) -> None: ...
    def set_backend_drained(self, name: str, drained: bool) -> bool: ...


def make_admin_app(target: AdminTarget, token: str | None) -> web.Application:
    def authorized(request: web.Request) -> bool:
        return bearer_ok(request.headers.get("Authorization"), token)

    def unauthorized() -> web.Response:
        return web.json_response(
            {"error": "unauthorized", "detail": "a valid 'Authorization: Bearer' token is needed"},
            status=401,
        )

    async def health(request: web.Request) -> web.Response:
        ok, why = target.healthy()
        return web.json_response({"ok": ok, "detail": why}, status=200 if ok else 503)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(target.status())

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(target.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def drain(request: web.Request) -> web.Response:
        if not authorized(request):
            return unauthorized()
        target.request_drain()
        return web.json_response({"draining": True}, status=202)

    async def backend_drain(request: web.Request) -> web.Response:
        return _backend(request, drained=True)

    async def backend_enable(request: web.Request) -> web.Response:
        return _backend(request, drained=False)

    def _backend(request: web.Request, drained: bool) -> web.Response:
        if not authorized(request):
            return unauthorized()
        name = request.match_info["name"]
        if not target.set_backend_drained(name, drained):
            return web.json_response(
                {"error": "not found", "detail": f"no backend named {name!r}"}, status=404
            )
        return web.json_response({"backend": name, "drained": drained})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/drain", drain)
    app.router.add_post("/backends/{name}/drain", backend_drain)
    app.router.add_post("/backends/{name}/enable", backend_enable)
    return app
