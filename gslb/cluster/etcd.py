"""A small etcd v3 client over etcd's JSON gateway (`/v3/...`), on aiohttp.

Only what the cluster needs: range, transaction, lease grant/keep-alive and a
watch stream. Keys and values are bytes here and base64 on the wire. Every
foreign failure (connection refused, timeout, a gRPC error in the body, a lost
leader) becomes `EtcdUnavailable` at this boundary; a watch whose start revision
was compacted away raises `EtcdCompacted`.

Why not a PyPI client: the asyncio etcd v3 clients there are either unmaintained
or pull grpcio (a large native wheel) in; the gateway ships with every etcd.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from gslb.errors import GslbError

MAX_WATCH_MESSAGE = 16 * 1024 * 1024  # one watch response; a bigger one is a broken stream


class EtcdUnavailable(GslbError):
    """No etcd member answered, or none could commit (no quorum, no leader)."""


class EtcdCompacted(GslbError):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (oldest kept: {compact_revision})")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class Event:
    kind: Literal["put", "delete"]
    kv: KeyValue


@dataclass(frozen=True, slots=True)
class Range:
    revision: int  # the store's revision when read
    kvs: tuple[KeyValue, ...]
    count: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: tuple[dict[str, Any], ...]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with `prefix` (etcd's convention)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _kv(item: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(item.get("key", "")),
        value=base64.b64decode(item.get("value", "")),
        mod_revision=int(item.get("mod_revision", 0)),
        lease=int(item.get("lease", 0)),
    )


def _revision(body: dict[str, Any]) -> int:
    return int(body.get("header", {}).get("revision", 0))


# Transaction parts, as the gateway spells them.
def put_op(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    request: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        request["lease"] = str(lease)
    return {"request_put": request}


def delete_op(key: bytes, range_end: bytes | None = None) -> dict[str, Any]:
    request = {"key": b64(key)}
    if range_end is not None:
        request["range_end"] = b64(range_end)
    return {"request_delete_range": request}


def mod_revision_is(key: bytes, revision: int) -> dict[str, Any]:
    """Compare: the key was last written at `revision` (0: the key does not exist)."""
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


class EtcdClient:
    def __init__(
        self, endpoints: Sequence[str], *, timeout: float = 2.0, retry_for: float = 0.0
    ) -> None:
        self.endpoints = tuple(e.rstrip("/") for e in endpoints)
        self.timeout = timeout
        # A leader election (a member died) makes every member refuse for about one
        # election timeout; a call goes round the members again until `retry_for` is up
        # rather than failing an operator's request over a blip the cluster heals alone.
        self.retry_for = retry_for
        self._current = 0  # the member that answered last; tried first
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise EtcdUnavailable("etcd client is closed")
        return self._session

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to one member after another until one answers without an error, going
        round again (with a short backoff) until `retry_for` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        pause = 0.05
        while True:
            problems = await self._round(path, body)
            if isinstance(problems, dict):
                return problems
            left = deadline - loop.time()
            if left <= 0:
                raise EtcdUnavailable("; ".join(problems) or "no etcd endpoints")
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 0.4)

    async def _round(self, path: str, body: dict[str, Any]) -> dict[str, Any] | list[str]:
        """One try on each member: the first good answer, or what each member said."""
        problems: list[str] = []
        for step in range(len(self.endpoints)):
            index = (self._current + step) % len(self.endpoints)
            url = self.endpoints[index] + path
            try:
                async with self._http().post(
                    url,
                    json=body,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                    headers={"Grpc-Metadata-hasleader": "true"},
                ) as response:
                    raw = await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                problems.append(f"{self.endpoints[index]}: {type(exc).__name__} {exc}".strip())
                continue
            try:
                parsed = json.loads(raw) if raw else {}
            except ValueError:
                parsed = {}
            if status != 200 or not isinstance(parsed, dict) or "error" in parsed:
                message = parsed.get("error") or parsed.get("message") if parsed else None
                problems.append(f"{self.endpoints[index]}: HTTP {status} {message or ''}".strip())
                continue
            self._current = index
            return parsed
        return problems

    async def range_prefix(self, prefix: bytes) -> Range:
        body = await self._call(
            "/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        )
        kvs = tuple(_kv(item) for item in body.get("kvs", ()))
        return Range(_revision(body), kvs, int(body.get("count", 0)))

    async def get(self, key: bytes) -> KeyValue | None:
        body = await self._call("/v3/kv/range", {"key": b64(key)})
        kvs = body.get("kvs", ())
        return _kv(kvs[0]) if kvs else None

    async def keys_with_prefix(self, prefix: bytes) -> Range:
        body = await self._call(
            "/v3/kv/range",
            {"key": b64(prefix), "range_end": b64(prefix_end(prefix)), "keys_only": True},
        )
        kvs = tuple(_kv(item) for item in body.get("kvs", ()))
        return Range(_revision(body), kvs, int(body.get("count", 0)))

    async def txn(
        self,
        compare: Sequence[dict[str, Any]],
        success: Sequence[dict[str, Any]],
        failure: Sequence[dict[str, Any]] = (),
    ) -> TxnResult:
        body = await self._call(
            "/v3/kv/txn",
            {"compare": list(compare), "success": list(success), "failure": list(failure)},
        )
        return TxnResult(
            bool(body.get("succeeded", False)), _revision(body), tuple(body.get("responses", ()))
        )

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        return (await self.txn((), (put_op(key, value, lease),))).revision

    async def delete(self, key: bytes, range_end: bytes | None = None) -> int:
        return (await self.txn((), (delete_op(key, range_end),))).revision

    async def grant(self, ttl: int) -> int:
        body = await self._call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(body["ID"])

    async def keep_alive(self, lease: int) -> int:
        """Renew `lease` once; its remaining TTL. A lease that expired meanwhile is unavailable."""
        body = await self._call("/v3/lease/keepalive", {"ID": str(lease)})
        ttl = int(body.get("result", {}).get("TTL", 0))
        if ttl <= 0:
            raise EtcdUnavailable(f"lease {lease:x} expired")
        return ttl

    async def revoke(self, lease: int) -> None:
        await self._call("/v3/lease/revoke", {"ID": str(lease)})

    async def watch(
        self, prefix: bytes, start_revision: int
    ) -> AsyncIterator[tuple[int, tuple[Event, ...]]]:
        """Batches of events under `prefix` from `start_revision` on, each with the revision
        it brings the watcher to (progress notices come as empty batches), until the stream
        breaks (EtcdUnavailable) or the revision was compacted (EtcdCompacted)."""
        endpoint = self.endpoints[self._current]
        request = {
            "create_request": {
                "key": b64(prefix),
                "range_end": b64(prefix_end(prefix)),
                "start_revision": str(start_revision),
                "progress_notify": True,
            }
        }
        try:
            async with self._http().post(
                endpoint + "/v3/watch",
                json=request,
                timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout),
                headers={"Grpc-Metadata-hasleader": "true"},
            ) as response:
                if response.status != 200:
                    raise EtcdUnavailable(f"{endpoint}: watch refused: HTTP {response.status}")
                buffer = b""
                while True:
                    chunk = await response.content.readany()
                    if not chunk:
                        raise EtcdUnavailable(f"{endpoint}: watch stream closed")
                    buffer += chunk
                    if len(buffer) > MAX_WATCH_MESSAGE:
                        raise EtcdUnavailable(f"{endpoint}: watch message too large")
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield _watch_batch(line)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._current = (self._current + 1) % len(self.endpoints)
            raise EtcdUnavailable(f"{endpoint}: watch: {type(exc).__name__} {exc}") from exc


def _watch_batch(line: bytes) -> tuple[int, tuple[Event, ...]]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise EtcdUnavailable(f"watch: not JSON: {line[:80]!r}") from exc
    if "error" in message:
        raise EtcdUnavailable(f"watch: {message['error'].get('message', message['error'])}")
    result = message.get("result", {})
    if int(result.get("compact_revision", 0)):
        raise EtcdCompacted(int(result["compact_revision"]))
    if result.get("canceled"):
        raise EtcdUnavailable(f"watch canceled: {result.get('cancel_reason', 'no reason given')}")
    events: list[Event] = []
    revision = 0  # events: the last one's; a progress notice: its header's
    for item in result.get("events", ()):
        kind: Literal["put", "delete"] = "delete" if item.get("type") == "DELETE" else "put"
        kv = _kv(item["kv"])
        revision = max(revision, kv.mod_revision)
        events.append(Event(kind, kv))
    return (revision if events else _revision(result)), tuple(events)
