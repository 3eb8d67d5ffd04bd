"""The real `python -m gslb proxy` in a subprocess (under uvloop): SIGTERM, SIGHUP, config
errors, and memory that stays flat while large bodies stream through."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from proxyhelpers import TOKEN, Env, TestBackend, get, pattern, read_reply

ROOT = Path(__file__).resolve().parents[2]


def write_region(directory: Path, backends: list[TestBackend], extra: str = "") -> Path:
    members = "\n".join(
        f'    - {{name: {b.name}, url: "http://{b.host}:{b.port}"}}' for b in backends
    )
    (directory / "regions").mkdir(parents=True, exist_ok=True)
    (directory / "regions" / "r1.yaml").write_text(
        textwrap.dedent(
            """\
            region: r1
            location: {lat: 1, lon: 2}
            proxy:
              listen: 127.0.0.1:0
              admin: 127.0.0.1:0
              method: round_robin
              drain_timeout: 10s
            """
        )
        + f"  backends:\n{members}\n{extra}"
    )
    return directory


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    port: int
    admin_port: int

    def rss_peak_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        assert match
        return int(match.group(1))


@asynccontextmanager
async def run_proxy(config: Path) -> AsyncIterator[Running]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), GSLB_API_TOKEN=TOKEN)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gslb", "proxy", "--config", str(config), "--region", "r1"),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
            assert line, "the proxy exited before listening"
            found = re.search(r"on 127\.0\.0\.1:(\d+), admin on port (\d+)", line)
            if found:
                break
        stderr = proc.stderr

        async def drain() -> None:  # keep reading so that logging never blocks the proxy
            while await stderr.readline():
                pass

        drainer = asyncio.create_task(drain())
        yield Running(proc, int(found.group(1)), int(found.group(2)))
        await drainer
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_lets_every_long_request_finish(env: Env, tmp_path: Path) -> None:
    backends = await env.three()
    async with run_proxy(write_region(tmp_path, backends)) as proxy:
        longs = [asyncio.create_task(get(proxy.port, "/slow?s=1.0")) for _ in range(12)]
        while sum(b.in_flight for b in backends) < 12:
            await asyncio.sleep(0.01)  # all twelve reached their backends
        proxy.proc.send_signal(signal.SIGTERM)
        async with aiohttp.ClientSession() as s:
            # The DNS tier sees it leave as soon as the signal is handled (it arrives
            # asynchronously, so ask until it was), while the long requests go on.
            health = f"http://127.0.0.1:{proxy.admin_port}/health"
            for _ in range(200):
                async with s.get(health) as r:
                    if r.status == 503:
                        break
                await asyncio.sleep(0.01)
            assert r.status == 503
            assert not any(t.done() for t in longs)
        replies = await asyncio.gather(*longs)
        assert [r.status for r in replies] == [200] * 12
        assert Counter(r.body for r in replies) == {b"b0": 4, b"b1": 4, b"b2": 4}
        assert await asyncio.wait_for(proxy.proc.wait(), 10) == 0


async def test_sighup_reloads_backends_without_failing_requests(env: Env, tmp_path: Path) -> None:
    backends = await env.three()
    config = write_region(tmp_path, backends[:2])
    async with run_proxy(config) as proxy:
        assert {(await get(proxy.port)).body for _ in range(4)} == {b"b0", b"b1"}
        stop = asyncio.Event()
        statuses: list[int] = []

        async def traffic() -> None:
            while not stop.is_set():
                statuses.append((await get(proxy.port)).status)

        task = asyncio.create_task(traffic())
        write_region(tmp_path, backends[1:])
        proxy.proc.send_signal(signal.SIGHUP)
        while backends[2].hits == 0:
            await asyncio.sleep(0.01)
        hits_b0 = backends[0].hits
        mark = len(statuses)
        while len(statuses) < mark + 10:
            await asyncio.sleep(0.01)
        # A bad file is refused and the running config stays.
        (tmp_path / "regions" / "r1.yaml").write_text("region: r1\nproxy: {method: nope}\n")
        proxy.proc.send_signal(signal.SIGHUP)
        mark = len(statuses)
        while len(statuses) < mark + 10:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        assert statuses and set(statuses) == {200}
        assert backends[0].hits == hits_b0  # removed by the reload
        assert {(await get(proxy.port)).body for _ in range(4)} == {b"b1", b"b2"}
        proxy.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proxy.proc.wait(), 10) == 0


async def test_config_errors_are_printed_as_file_line_message(tmp_path: Path) -> None:
    (tmp_path / "regions").mkdir()
    (tmp_path / "regions" / "r1.yaml").write_text(
        "region: r1\nlocation: {lat: 1, lon: 2}\nproxy:\n  listen: 127.0.0.1:0\n"
        "  method: fastest\n  backends:\n    - {name: a, url: 'http://127.0.0.1:1'}\n"
    )
    code = (
        "import sys; from gslb.proxy.app import main; "
        f"sys.exit(main({str(tmp_path)!r}, 'r1', None, None))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert re.search(r"r1\.yaml:5: .*fastest", err.decode()), err.decode()
    path = tmp_path / "regions" / "r1.yaml"
    path.write_text(path.read_text().replace("fastest", "round_robin"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code.replace("'r1'", "'nosuch'"),
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1 and "nosuch" in err.decode()


async def test_large_bodies_stream_with_flat_memory(env: Env, tmp_path: Path) -> None:
    b = await env.backend("solo")
    b.read_delay = 0.0005  # a backend slower than the client: the proxy must push back
    async with run_proxy(write_region(tmp_path, [b])) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/") as r:  # warm up: pools, parsers, imports
                assert r.status == 200
            before = proxy.rss_peak_kib()
            size = 64 * 1024 * 1024
            data = pattern(0, 8 * 1024 * 1024)

            async def body() -> AsyncIterator[bytes]:
                for _ in range(size // len(data)):
                    yield data

            async with s.post(f"{url}/upload", data=body()) as r:
                result = await r.json()
            digest = hashlib.sha256()
            for _ in range(size // len(data)):
                digest.update(data)
            assert result == {"sha256": digest.hexdigest(), "size": size, "backend": "solo"}
            async with s.get(f"{url}/big?n={size}") as r:
                got = 0
                async for chunk in r.content.iter_chunked(1 << 20):
                    got += len(chunk)
                    await asyncio.sleep(0.001)  # a client slower than the backend
            assert got == size
            grown = proxy.rss_peak_kib() - before
        assert grown < 16 * 1024, f"proxy peak memory grew by {grown} KiB for 64 MiB each way"
        proxy.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proxy.proc.wait(), 10) == 0


@dataclass
class DrainTally:
    answered: int = 0  # complete responses
    after_term: int = 0  # of those, sent after SIGTERM
    told_close: int = 0  # responses that said Connection: close
    clean_closes: int = 0  # EOF seen before a byte of a new request was sent
    refused: int = 0  # reconnects refused once the listener closed
    errors: list[str] = field(default_factory=list)  # a request written and not answered


async def keep_alive_client(
    port: int, tally: DrainTally, term: asyncio.Event, think: float
) -> None:
    """Requests in a loop on one keep-alive connection; a new connection after a close."""
    request = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            tally.refused += 1
            return
        try:
            while True:
                if think:
                    await asyncio.sleep(think)
                if reader.at_eof():
                    tally.clean_closes += 1
                    break
                writer.write(request)
                try:
                    reply = await read_reply(reader)
                except (asyncio.IncompleteReadError, ConnectionError) as e:
                    tally.errors.append(f"{type(e).__name__} after SIGTERM={term.is_set()}")
                    return
                tally.answered += 1
                tally.after_term += term.is_set()
                if reply.status != 200:
                    tally.errors.append(f"status {reply.status}")
                if (reply.header("Connection") or "").lower() == "close":
                    tally.told_close += 1
                    break
        finally:
            writer.close()


async def test_sigterm_loses_no_request_on_keep_alive_connections(env: Env, tmp_path: Path) -> None:
    backends = await env.three()
    extra = "  drain_grace: 500ms\n  drain_close_spread: 500ms\n"
    async with run_proxy(write_region(tmp_path, backends, extra)) as proxy:
        tally = DrainTally()
        term = asyncio.Event()
        # 50 clients, 40 sending back to back and 10 pausing between requests (less than the
        # grace): at any moment some connections are idle with the client about to write,
        # which is what closing idle connections at once loses (13 to 20 of 50 measured).
        clients = [
            asyncio.create_task(keep_alive_client(proxy.port, tally, term, 0.0 if i % 5 else 0.02))
            for i in range(50)
        ]
        while tally.answered < 1000:
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        started = loop.time()
        proxy.proc.send_signal(signal.SIGTERM)
        term.set()
        await asyncio.wait_for(asyncio.gather(*clients), 10)
        code = await asyncio.wait_for(proxy.proc.wait(), 10)
        took = loop.time() - started
        assert tally.errors == []
        assert code == 0 and took < 10  # within drain_timeout
        assert tally.after_term > 0  # requests were answered during the drain
        assert tally.told_close + tally.clean_closes >= 50  # each connection was ended
        assert tally.refused == 50  # and nobody got back in
