"""A whole `gslb serve` (the Runtime: DNS, admin API, status page) in a thread of the test
process, on loopback with ports the kernel picks, so a test can give it a fake clock and
still reach it over real sockets, from its own code or from another process (Chromium)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query

from gslb.model import HostPort
from gslb.runtime import Runtime


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class InProcess:
    runtime: Runtime
    dns_port: int
    api_port: int
    token: str

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.api}/v1/status", timeout=5) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def post(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(
            self.api + path,
            method="POST",
            data=b"",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def ask(self, name: str, subnet: str, prefix: int = 24) -> set[str]:
        """The A addresses answered for a client in `subnet` (ECS)."""
        query = dns.message.make_query(
            name, "A", use_edns=0, options=[dns.edns.ECSOption(subnet, prefix)]
        )
        reply = dns.query.udp(query, "127.0.0.1", port=self.dns_port, timeout=2)
        return {rd.address for rrset in reply.answer for rd in rrset}


@contextmanager
def running(
    config_dir: Path, *, clock: FakeClock, environ: Mapping[str, str]
) -> Iterator[InProcess]:
    """Start a Runtime on `config_dir` in its own event loop thread; stop it on exit."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    made: list[Runtime] = []
    failed: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            runtime = Runtime(
                str(config_dir),
                dns=[HostPort("127.0.0.1", 0)],
                api=HostPort("127.0.0.1", 0),
                environ=environ,
                clock=clock,
            )
            loop.run_until_complete(runtime.start())
            made.append(runtime)
        except BaseException as exc:  # handed to the test thread
            failed.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runtime.stop())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(20), "the runtime did not start"
    if failed:
        raise failed[0]
    runtime = made[0]
    assert runtime.api_port is not None
    token = environ.get("GSLB_API_TOKEN", "")
    try:
        yield InProcess(runtime, runtime.dns_bound[0].port, runtime.api_port, token)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(20)
