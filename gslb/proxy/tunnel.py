"""A switched connection (WebSocket or another `Upgrade`): bytes relayed both ways, as is.

After the backend's `101 Switching Protocols` (relayed by `gslb.proxy.exchange`), the client
connection and the backend connection hand every byte they read to their `Tunnel`, which writes
it to the other side. Flow control: when one side's write buffer is over its high-water mark,
the other side stops reading until it drains. Either side closing closes the other (after what
was already written to it is flushed); no byte either way for `tunnel_idle_timeout` closes both.
While draining, an open tunnel keeps its client connection open (it counts as in flight) until
it ends or the drain timeout cuts it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from gslb.proxy.backends import BackendState
from gslb.proxy.shared import Shared
from gslb.proxy.upstream import UpstreamConnection

PAUSE_TUNNEL = 8  # the backend's write buffer is full (a reason for the client's pause)


class TunnelClient(Protocol):
    """What a tunnel needs of its client connection."""

    transport: asyncio.Transport | None

    def pause(self, reason: int) -> None: ...
    def resume(self, reason: int) -> None: ...
    def close(self) -> None: ...


class Tunnel:
    __slots__ = ("_backend", "_ended", "_idle_timeout", "client", "last_io", "shared", "upstream")

    def __init__(
        self,
        client: TunnelClient,
        upstream: UpstreamConnection,
        backend: BackendState | None,
        shared: Shared,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.shared = shared
        self._backend = backend  # its in_flight counts this tunnel until it ends
        self._idle_timeout = shared.snapshot.spec.tunnel_idle_timeout
        self._ended = False
        self.last_io = shared.loop.time()
        upstream.tunnel = self
        upstream.resume_reading()
        shared.stats.tunnels_open += 1

    # -- bytes ----------------------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        transport = self.upstream.transport
        if transport is not None and not self._ended:
            self.last_io = self.shared.loop.time()
            transport.write(data)

    def from_backend(self, data: bytes) -> None:
        transport = self.client.transport
        if transport is not None and not self._ended:
            self.last_io = self.shared.loop.time()
            transport.write(data)

    # -- flow control ---------------------------------------------------------------------------

    def client_pause_writing(self) -> None:
        self.upstream.pause_reading()

    def client_resume_writing(self) -> None:
        self.upstream.resume_reading()

    def backend_pause_writing(self) -> None:
        self.client.pause(PAUSE_TUNNEL)

    def backend_resume_writing(self) -> None:
        self.client.resume(PAUSE_TUNNEL)

    # -- the end ----------------------------------------------------------------------------------

    def client_closed(self) -> None:
        """The client connection is gone: close the backend's (flushing what it was sent)."""
        if self._end():
            self._close_upstream()

    def backend_closed(self) -> None:
        """The backend connection is gone: close the client's once its writes are flushed."""
        if self._end():
            self.client.close()

    def check(self, now: float) -> None:
        """The server's sweep: close an idle tunnel."""
        if not self._ended and now >= self.last_io + self._idle_timeout:
            self.close()

    def close(self) -> None:
        if self._end():
            self._close_upstream()
            self.client.close()

    def _close_upstream(self) -> None:
        conn = self.upstream
        conn.tunnel = None
        conn.closed = True
        if conn.transport is not None:
            conn.transport.close()

    def _end(self) -> bool:
        """Mark the tunnel ended; False when it already was."""
        if self._ended:
            return False
        self._ended = True
        self.shared.stats.tunnels_open -= 1
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.in_flight -= 1
        return True
