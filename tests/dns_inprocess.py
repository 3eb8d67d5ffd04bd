"""A real DnsServer on 127.0.0.1 (port 0) in a thread of the test process, so tests can
query it over real sockets and also look at its responder's tables."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from gslb.dns.responder import Responder
from gslb.dns.server import DnsServer
from gslb.model import HostPort


@contextmanager
def serving(responder: Responder) -> Iterator[int]:
    """Serve `responder` over UDP and TCP; yields the port."""
    loop = asyncio.new_event_loop()
    server = DnsServer(
        responder.handle_wire, [HostPort("127.0.0.1", 0)], cached=responder.answer_cached
    )
    started = threading.Event()
    ports: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        bound = loop.run_until_complete(server.start())
        ports.append(bound[0].port)
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "the DNS server did not start"
    try:
        yield ports[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
