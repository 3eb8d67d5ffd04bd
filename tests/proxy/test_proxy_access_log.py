"""The access log, with a real proxy writing to a real file: fields, X-Request-Id, the
combined format, dropped lines, and SIGUSR1 reopening the file in a real `gslb proxy`."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from proxyhelpers import Env, get, make_spec, raw_request
from test_proxy_process import run_proxy, write_region

from gslb.model import AccessLogSpec
from gslb.proxy.accesslog import AccessLog
from gslb.proxy.stats import ProxyStats


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def sent_headers(body: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in json.loads(body)["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


async def test_json_lines_carry_every_field_and_the_request_id(env: Env, tmp_path: Path) -> None:
    b = await env.backend("solo")
    path = tmp_path / "access.log"
    proxy = await env.proxy(make_spec([b], access_log=AccessLogSpec(str(path), "json")))
    kept = await get(proxy.port, "/echo?x=1", X_Request_Id="client-id-42", User_Agent="probe/1.0")
    fresh = await get(proxy.port, "/echo")
    too_long = await get(proxy.port, "/echo", X_Request_Id="a" * 200)
    refused = await raw_request(proxy.port, b"GET /two HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert (kept.status, fresh.status, too_long.status, refused.status) == (200, 200, 200, 400)
    assert proxy.access_log is not None
    await proxy.access_log.flush()
    entries = [json.loads(line) for line in lines(path)]
    assert len(entries) == 4
    first, second, third, fourth = entries
    assert set(first) >= {
        "time",
        "client",
        "method",
        "host",
        "path",
        "status",
        "bytes",
        "duration",
        "backend",
        "retries",
        "request_id",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert first["client"] == "127.0.0.1"
    assert (first["method"], first["host"], first["path"]) == ("GET", "test", "/echo?x=1")
    assert (first["status"], first["backend"], first["retries"]) == (200, "solo", 0)
    assert first["bytes"] == len(kept.body)
    assert 0 <= first["duration"] < 10
    assert first["user_agent"] == "probe/1.0"
    # The client's id is kept, sent to the backend and returned.
    assert first["request_id"] == "client-id-42"
    assert sent_headers(kept.body)["x-request-id"] == ["client-id-42"]
    assert kept.header("X-Request-Id") == "client-id-42"
    # None sent, or one too long: a new one, the same in the log, upstream and the answer.
    for entry, reply in ((second, fresh), (third, too_long)):
        rid = entry["request_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        assert sent_headers(reply.body)["x-request-id"] == [rid]
        assert reply.header("X-Request-Id") == rid
    assert second["request_id"] != third["request_id"]
    assert (fourth["status"], fourth["backend"], fourth["path"]) == (400, "-", "/two")


async def test_a_retry_is_logged_with_the_backend_that_answered(env: Env, tmp_path: Path) -> None:
    dead = await env.backend("dead", "127.0.0.1")
    live = await env.backend("live", "127.0.0.2")
    await dead.stop()
    path = tmp_path / "access.log"
    proxy = await env.proxy(make_spec([dead, live], access_log=AccessLogSpec(str(path), "json")))
    assert (await get(proxy.port)).status == 200  # round robin starts with the dead one
    assert proxy.access_log is not None
    await proxy.access_log.flush()
    (entry,) = [json.loads(line) for line in lines(path)]
    assert (entry["backend"], entry["retries"], entry["status"]) == ("live", 1, 200)


async def test_combined_format(env: Env, tmp_path: Path) -> None:
    b = await env.backend("solo")
    path = tmp_path / "access.log"
    proxy = await env.proxy(make_spec([b], access_log=AccessLogSpec(str(path), "combined")))
    reply = await get(
        proxy.port, "/echo?q=1", X_Request_Id="rid-1", User_Agent='ua "quoted"', Referer="r"
    )
    assert reply.status == 200
    assert proxy.access_log is not None
    await proxy.access_log.flush()
    (line,) = lines(path)
    found = re.fullmatch(
        r"127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "
        r'"GET /echo\?q=1 HTTP/1\.1" 200 (\d+) "r" "ua \\"quoted\\"" host="test" '
        r"duration=\d+\.\d{6} backend=solo retries=0 request_id=rid-1",
        line,
    )
    assert found, line
    assert int(found.group(1)) == len(reply.body)


async def test_a_full_queue_drops_lines_and_counts_them(env: Env, tmp_path: Path) -> None:
    stats = ProxyStats()
    log = AccessLog(str(tmp_path / "x.log"), "json", stats, capacity=2)  # writer not started
    entry = (0.0, "c", b"GET", b"h", b"/", "HTTP/1.1", 200, 0, 0.0, "b", 0, b"id", b"", b"")
    for _ in range(5):
        log.log(entry)
    assert stats.access_log_dropped == 3
    b = await env.backend("solo")
    proxy = await env.proxy(
        make_spec([b], access_log=AccessLogSpec(str(tmp_path / "a.log"), "json"))
    )
    proxy.stats.access_log_dropped = 7
    assert b"gslb_proxy_access_log_dropped_total 7.0" in generate_latest(proxy.registry)


async def wait_for_lines(path: Path, n: int) -> list[str]:
    """The real proxy writes from its own thread in another process: look until it did."""
    for _ in range(1000):
        if path.exists() and len(lines(path)) >= n:
            return lines(path)
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never got {n} lines")


async def test_sigusr1_reopens_the_file_after_it_was_renamed(env: Env, tmp_path: Path) -> None:
    b = await env.backend("solo")
    path = tmp_path / "access.log"
    config = write_region(tmp_path, [b], f'  access_log: {{path: "{path}", format: json}}\n')
    async with run_proxy(config) as proxy:
        assert (await get(proxy.port, "/before")).status == 200
        assert len(await wait_for_lines(path, 1)) == 1
        rotated = tmp_path / "access.log.1"
        path.rename(rotated)
        proxy.proc.send_signal(signal.SIGUSR1)
        await wait_for_lines(path, 0)  # the reopen created the file again
        assert (await get(proxy.port, "/after")).status == 200
        (after,) = await wait_for_lines(path, 1)
        assert json.loads(after)["path"] == "/after"
        assert [json.loads(x)["path"] for x in lines(rotated)] == ["/before"]
        proxy.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proxy.proc.wait(), 10) == 0


async def test_dash_writes_to_stdout(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b], access_log=AccessLogSpec("-", "json")))
    assert (await get(proxy.port, "/out")).status == 200
    assert proxy.access_log is not None
    await proxy.access_log.flush()
    proxy.reopen_logs()  # nothing to reopen: stdout stays
    assert (await get(proxy.port, "/still")).status == 200
    await proxy.access_log.flush()
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["path"] for line in out] == ["/out", "/still"]
