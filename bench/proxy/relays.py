"""The least a Python proxy can do per request: relays for bench/proxy/ceiling.py.

    python bench/proxy/relays.py tcp|http LISTEN_PORT BACKEND_PORT [BACKEND_PORT ...]

`tcp`: each client connection gets its own backend connection (the backends in turn) and
bytes are copied both ways as they come, with flow control: two callbacks and two writes
per keep-alive request, no parsing, no headers, no balancing per request. `http`: the
same, and each direction's bytes also go through httptools' parser, as a proxy must to know
where a message ends. Neither is a proxy anyone should run (no X-Forwarded-For, no
timeouts, no health, one backend per client connection); they measure what uvloop and the
interpreter cost before any proxy logic, so that a target can be checked against what is
reachable in Python at all. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from collections.abc import Callable
from typing import Protocol

import httptools
import uvloop


class _Parser(Protocol):
    def feed_data(self, data: bytes) -> None: ...


ParserKind = Callable[["_Side"], _Parser]


class _Side(asyncio.Protocol):
    """One end of a relayed pair: what it receives is written to `peer`."""

    def __init__(self, parser_kind: ParserKind | None) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []  # received before the peer connected
        self.parser = parser_kind(self) if parser_kind is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's: no asyncio subclass

    def data_received(self, data: bytes) -> None:
        if self.parser is not None:
            self.parser.feed_data(data)
        peer = self.peer
        if peer is None or peer.transport is None:
            self.pending.append(data)
            return
        peer.transport.write(data)

    def flush_to(self, peer: _Side) -> None:
        assert peer.transport is not None
        for data in self.pending:
            peer.transport.write(data)
        self.pending.clear()

    # Flow control: a slow reader pauses the other side's reading.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Client(_Side):
    def __init__(self, backends: itertools.cycle[int], parser_kind: ParserKind | None) -> None:
        super().__init__(parser_kind)
        self._backends = backends
        self._parser_kind = parser_kind

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect(next(self._backends)))

    async def _connect(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        kind = self._parser_kind
        _, backend = await loop.create_connection(
            lambda: _Side(_response_parser if kind is not None else None), "127.0.0.1", port
        )
        backend.peer, self.peer = self, backend
        self.flush_to(backend)
        backend.flush_to(self)


def _request_parser(side: _Side) -> _Parser:
    return httptools.HttpRequestParser(side)


def _response_parser(side: _Side) -> _Parser:
    return httptools.HttpResponseParser(side)


async def serve(kind: str, port: int, backend_ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    backends = itertools.cycle(backend_ports)
    parser = _request_parser if kind == "http" else None
    server = await loop.create_server(
        lambda: _Client(backends, parser),
        "127.0.0.1",
        port,
        backlog=1024,
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


def main() -> int:
    kind, port, *backends = sys.argv[1:]
    if kind not in ("tcp", "http") or not backends:
        sys.exit(__doc__)
    uvloop.run(serve(kind, int(port), [int(p) for p in backends]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
