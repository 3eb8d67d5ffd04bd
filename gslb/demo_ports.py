"""Port 0 for `gslb demo`: a port free on every address that needs it, chosen before the start.

The demo's servers are child processes that bind their own sockets, and one port serves
several addresses (each region's proxy listens on the same port on its own loopback
address, since A records carry no port), so the kernel's "any free port" cannot be used
as is. Instead a port the kernel gives for the first address is tried on the others;
the probe sockets are held (without SO_REUSEADDR, so nothing else may bind them) until
every port is chosen, then released just before the children start.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence
from dataclasses import replace

from gslb.demo_layout import DemoLayout, DemoPorts

ATTEMPTS = 100
Listener = tuple[str, int]  # (host, socket type)


def _hold(stack: contextlib.ExitStack, host: str, kind: int, port: int) -> int:
    """Bind (host, port) and keep the socket in `stack`; the bound port (OSError if taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = stack.enter_context(socket.socket(family, kind))
    sock.bind((host, port))
    return int(sock.getsockname()[1])


def common_port(stack: contextlib.ExitStack, listeners: Sequence[Listener], span: int = 1) -> int:
    """A port p such that p .. p+span-1 are free for every (host, kind) in `listeners`; the
    sockets holding them are left in `stack`. OSError when none is found."""
    first_host, first_kind = listeners[0]
    for _ in range(ATTEMPTS):
        attempt = contextlib.ExitStack()
        try:
            port = _hold(attempt, first_host, first_kind, 0)
            if port + span - 1 > 65535:
                raise OSError("too close to 65535")
            for offset in range(span):
                for host, kind in listeners:
                    if (host, kind, offset) != (first_host, first_kind, 0):
                        _hold(attempt, host, kind, port + offset)
        except OSError:
            attempt.close()
            continue
        stack.enter_context(attempt)
        return port
    raise OSError(f"no port free on all of {', '.join(h for h, _ in listeners)}")


def choose_ports(layout: DemoLayout, ports: DemoPorts) -> DemoPorts:
    """`ports` with every 0 replaced by a port that is free now where `layout` needs it
    (`layout` was planned from `ports`). Raises OSError when no such port is found."""
    tcp, udp = socket.SOCK_STREAM, socket.SOCK_DGRAM
    with contextlib.ExitStack() as stack:
        dns = ports.dns or common_port(stack, [(layout.dns.host, udp), (layout.dns.host, tcp)])
        api = ports.api or common_port(stack, [(layout.api.host, tcp)])
        proxy, admin = ports.proxy, ports.proxy_admin
        if not proxy:
            proxy = common_port(stack, [(r.address, tcp) for r in layout.regions], span=2)
            admin = proxy + 1
        backends = [(b.listen.host, tcp) for r in layout.regions for b in r.backends]
        backend = ports.backend or common_port(stack, backends)
    return replace(ports, dns=dns, api=api, proxy=proxy, proxy_admin=admin, backend=backend)
