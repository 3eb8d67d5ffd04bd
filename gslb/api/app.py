"""The admin API of `gslb serve` (aiohttp, JSON).

Reads are open; mutations need `Authorization: Bearer <token>`. Every error is a
JSON body `{"error": ...}` with a 4xx status. The handlers only translate HTTP
to calls on the `Controller` (the runtime), which owns all state changes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gslb.auth import bearer_ok
from gslb.cluster.store import ClusterUnavailable
from gslb.explain import explain
from gslb.safety import SafetyRefused
from gslb.select.client import GeoLookup
from gslb.state import View

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Controller(Protocol):
    """What the API drives; implemented by `gslb.runtime.Runtime`."""

    token: str | None
    registry: CollectorRegistry

    def view(self) -> View: ...
    def geo_lookup(self) -> GeoLookup | None: ...
    def status(self) -> dict[str, Any]: ...
    def cluster_view(self) -> dict[str, Any] | None: ...
    def cluster_health_notes(self) -> dict[str, Any] | None: ...
    async def set_region(
        self, region: str, admin: str, actor: str, reason: str, *, force: bool, dry_run: bool
    ) -> dict[str, Any]: ...
    async def set_endpoint(
        self,
        region: str,
        address: str,
        admin: str,
        actor: str,
        reason: str,
        *,
        force: bool,
        dry_run: bool,
    ) -> dict[str, Any]: ...
    async def reload(self, actor: str, dry_run: bool = False) -> dict[str, Any]: ...


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def error_json(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_json(exc.status, str(exc), **exc.extra)
    except SafetyRefused as exc:
        return error_json(409, str(exc), rule="min_serving_regions", services=exc.broken)
    except ClusterUnavailable as exc:
        # Never a silent local change: without etcd's commit the mutation is refused.
        return error_json(503, str(exc), cluster={"connected": False})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_json(exc.status, exc.reason)


def _actor(request: web.Request) -> str:
    peer = request.remote or "unknown"
    who = request.headers.get("X-Gslb-Actor", "").strip()[:64]
    return f"{who}@{peer}" if who else peer


@dataclass(frozen=True, slots=True)
class Mutation:
    """What a mutation call asks besides its target: `{"reason": "...", "force": true}`
    in the body (both optional) and `?dry_run=true`."""

    reason: str = ""
    force: bool = False  # past the safety rules (audited)
    dry_run: bool = False  # change nothing, say what the change would do


async def _mutation(request: web.Request) -> Mutation:
    """The mutation's options; 400 for a body or query that is not what they allow."""
    flag = request.query.get("dry_run", "false").lower()
    if flag not in ("true", "false", "1", "0"):
        raise ApiError(400, "dry_run must be true or false")
    dry_run = flag in ("true", "1")
    if not request.can_read_body:
        return Mutation(dry_run=dry_run)
    raw = await request.read()
    if not raw.strip():
        return Mutation(dry_run=dry_run)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict) or not set(body) <= {"reason", "force"}:
        raise ApiError(400, 'body must be a JSON object like {"reason": "...", "force": false}')
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ApiError(400, "reason must be a string")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise ApiError(400, "force must be true or false")
    return Mutation(reason[:500], force, dry_run)


class AdminApi:
    def __init__(self, controller: Controller) -> None:
        self.c = controller
        self._rng = random.Random()

    def _authorize(self, request: web.Request) -> None:
        if not self.c.token:
            raise ApiError(
                403,
                "mutations are off: no API token is configured "
                "(set the environment variable named by api.token_env, "
                "GSLB_API_TOKEN by default, or api.token_file)",
            )
        if not bearer_ok(request.headers.get("Authorization"), self.c.token):
            raise ApiError(401, "missing or wrong bearer token")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "generation": self.c.view().plan.generation})

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.c.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.c.status())

    async def explain(self, request: web.Request) -> web.Response:
        query = request.query
        name = query.get("name", "").strip()
        client = query.get("client", "").strip()
        if not name or not client:
            raise ApiError(
                400,
                "name and client are required, e.g. "
                "/v1/explain?name=www.example.com&type=A&client=192.0.2.1",
            )
        try:
            result = explain(
                self.c.view(), self.c.geo_lookup(), name, client, query.get("type", "A"), self._rng
            )
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        notes = self.c.cluster_health_notes()
        if notes is not None:
            result["cluster"] = notes  # health as the cluster decided, and where this node differs
        return web.json_response(result)

    async def region_action(self, request: web.Request) -> web.Response:
        self._authorize(request)
        asked = await _mutation(request)
        action = request.match_info["action"]
        admin = {"disable": "disabled", "enable": "enabled", "drain": "draining"}[action]
        region = request.match_info["region"]
        if region not in self.c.view().plan.config.regions:
            raise ApiError(404, f"no region {region!r}")
        return web.json_response(
            await self.c.set_region(
                region,
                admin,
                _actor(request),
                asked.reason,
                force=asked.force,
                dry_run=asked.dry_run,
            )
        )

    async def endpoint_action(self, request: web.Request) -> web.Response:
        self._authorize(request)
        asked = await _mutation(request)
        region = request.match_info["region"]
        address = request.match_info["address"]
        regions = self.c.view().plan.config.regions
        if region not in regions:
            raise ApiError(404, f"no region {region!r}")
        if address not in regions[region].distinct_endpoints():
            raise ApiError(404, f"region {region!r} has no endpoint {address!r}")
        action = request.match_info["action"]
        admin = {"disable": "disabled", "enable": "enabled", "drain": "draining"}[action]
        return web.json_response(
            await self.c.set_endpoint(
                region,
                address,
                admin,
                _actor(request),
                asked.reason,
                force=asked.force,
                dry_run=asked.dry_run,
            )
        )

    async def cluster(self, request: web.Request) -> web.Response:
        view = self.c.cluster_view()
        if view is None:
            raise ApiError(404, "this node runs alone: no cluster: block in gslb.yaml")
        return web.json_response(view)

    async def reload(self, request: web.Request) -> web.Response:
        self._authorize(request)
        asked = await _mutation(request)
        result = await self.c.reload(_actor(request), dry_run=asked.dry_run)
        return web.json_response(result, status=200 if result["ok"] else 422)

    async def page(self, request: web.Request) -> web.Response:
        try:
            html = resources.files("gslb.api").joinpath("static/index.html").read_text()
        except (FileNotFoundError, ModuleNotFoundError):
            html = "<!doctype html><title>gslb</title><p>See <a href=/v1/status>/v1/status</a>"
        return web.Response(text=html, content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {
            ".js": "application/javascript",
            ".css": "text/css",
            ".svg": "image/svg+xml",
            ".json": "application/json",
        }
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or suffix not in types:
            raise ApiError(404, "not found")
        try:
            data = resources.files("gslb.api").joinpath(f"static/{name}").read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ApiError(404, "not found") from exc
        return web.Response(body=data, content_type=types[suffix])


def make_app(controller: Controller) -> web.Application:
    api = AdminApi(controller)
    app = web.Application(middlewares=[errors_as_json], client_max_size=64 * 1024)
    routes: Sequence[tuple[str, str, Handler]] = (
        ("GET", "/", api.page),
        ("GET", "/static/{name}", api.static),
        ("GET", "/healthz", api.healthz),
        ("GET", "/metrics", api.metrics),
        ("GET", "/v1/status", api.status),
        ("GET", "/v1/explain", api.explain),
        ("GET", "/v1/cluster", api.cluster),
        ("POST", "/v1/regions/{region}/{action:disable|enable|drain}", api.region_action),
        (
            "POST",
            "/v1/regions/{region}/endpoints/{address}/{action:disable|enable|drain}",
            api.endpoint_action,
        ),
        ("POST", "/v1/reload", api.reload),
    )
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app
