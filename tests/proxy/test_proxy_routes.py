"""Routes: Host and path prefix pick a backend group (pure table, then a real proxy)."""

from __future__ import annotations

from collections import Counter

import pytest
from proxyhelpers import Env, Reply, make_spec, raw_request

from gslb.model import ProxyMethod, ProxyRoute
from gslb.proxy.routes import DEFAULT, RouteTable, normal_host, split_target

TABLE_ROUTES = (
    ProxyRoute("api.example.com", "/v2/", ("a",)),
    ProxyRoute("*.example.org", "/", ("b",)),
    ProxyRoute(None, "/static/", ("c",)),
    ProxyRoute("api.example.com", "/", ("d",)),
)
TABLE = RouteTable(TABLE_ROUTES)


@pytest.mark.parametrize(
    ("host", "target", "group"),
    [
        (b"api.example.com", b"/v2/users", 1),
        (b"API.Example.COM:8080", b"/v2/x?y=1", 1),  # case and port ignored
        (b"api.example.com.", b"/v2/", 1),  # trailing dot
        (b"api.example.com", b"/v1/users", 4),  # first match wins, in order
        (b"api.example.com", b"/static/a.css", 3),
        (b"www.example.org", b"/anything", 2),
        (b"a.b.example.org", b"/", 2),
        (b"example.org", b"/", DEFAULT),  # *. does not match the bare suffix
        (b"badexample.org", b"/", DEFAULT),
        (b"other.test", b"/static/x", 3),  # no host: any host
        (b"other.test", b"/v2/users", DEFAULT),
        (b"other.test", b"http://api.example.com/v2/u", 1),  # absolute form names the host
        (b"", b"/", DEFAULT),
    ],
)
def test_route_table_matches_first_route(host: bytes, target: bytes, group: int) -> None:
    assert TABLE.match(host, target) == group


def test_hosts_remembered_answer_as_before_and_stay_bounded() -> None:
    table = RouteTable(TABLE_ROUTES)
    for _ in range(2):  # the second time from what the table remembers of each host
        assert table.match(b"API.Example.COM:8080", b"/v2/x") == 1
        assert table.match(b"API.Example.COM:8080", b"/v1/x") == 4  # same host, other path
        assert table.match(b"www.example.org", b"/") == 2
        assert table.match(b"other.test", b"/static/x") == 3
    for i in range(5000):  # a client sending a new Host each time
        assert table.match(b"h%d.example.org" % i, b"/") == 2
    assert len(table._by_host) <= 1024
    assert table.match(b"api.example.com", b"/v2/") == 1


def test_no_routes_is_always_the_default() -> None:
    assert RouteTable(()).match(b"api.example.com", b"/v2/") == DEFAULT


def test_host_and_target_helpers() -> None:
    assert normal_host(b" Example.COM:80 ") == b"example.com"
    assert normal_host(b"[::1]:8080") == b"[::1]"
    assert split_target(b"/a/b?c=/d") == (None, b"/a/b")
    assert split_target(b"HTTP://h:1") == (b"h:1", b"/")


async def fetch(port: int, host: str, path: str, cookie: str | None = None) -> Reply:
    extra = f"Cookie: {cookie}\r\n" if cookie else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    return await raw_request(port, request.encode())


async def two_groups(env: Env, method: ProxyMethod = "round_robin") -> int:
    a = [await env.backend(f"a{i}", f"127.0.0.{i + 1}") for i in range(2)]
    d = [await env.backend(f"d{i}", f"127.0.0.{i + 3}") for i in range(2)]
    spec = make_spec(
        a + d,
        method,
        routes=(
            ProxyRoute("api.example.com", "/v2/", ("a0", "a1")),
            ProxyRoute(None, "/", ("d0", "d1")),
        ),
    )
    proxy = await env.proxy(spec)
    return proxy.port


async def test_requests_go_to_their_routes_group_only(env: Env) -> None:
    port = await two_groups(env)
    seen_a = [(await fetch(port, "API.example.com:80", "/v2/x")).body.decode() for _ in range(6)]
    assert Counter(seen_a) == {"a0": 3, "a1": 3}  # balanced within the group
    seen_d = [(await fetch(port, "api.example.com", "/v1/x")).body.decode() for _ in range(4)]
    seen_d += [(await fetch(port, "other.test", "/v2/x")).body.decode() for _ in range(4)]
    assert Counter(seen_d) == {"d0": 4, "d1": 4}


async def test_unrouted_requests_go_to_all_backends(env: Env) -> None:
    a = await env.backend("a0", "127.0.0.1")
    b = await env.backend("b0", "127.0.0.2")
    routes = (ProxyRoute("api.example.com", "/", ("a0",)),)
    proxy = await env.proxy(make_spec([a, b], routes=routes))
    seen = [(await fetch(proxy.port, "other.test", "/")).body.decode() for _ in range(4)]
    assert Counter(seen) == {"a0": 2, "b0": 2}
    seen = [(await fetch(proxy.port, "api.example.com", "/")).body.decode() for _ in range(3)]
    assert seen == ["a0"] * 3


async def test_a_group_all_down_answers_502_without_spilling(env: Env) -> None:
    port = await two_groups(env)
    for backend in env.backends[:2]:  # a0 and a1
        await backend.stop()
    for _ in range(3):
        reply = await fetch(port, "api.example.com", "/v2/x")
        assert reply.status == 502
    assert [b.hits for b in env.backends[2:]] == [0, 0]
    assert (await fetch(port, "api.example.com", "/v1/")).status == 200  # the other group


async def test_sticky_cookie_stays_within_the_group(env: Env) -> None:
    port = await two_groups(env, "sticky")
    # A cookie naming a backend of the other group is not followed: a new one is set.
    reply = await fetch(port, "api.example.com", "/v2/x", cookie="GSLB_BACKEND=d0")
    assert reply.body.decode() in ("a0", "a1")
    set_cookie = reply.header("Set-Cookie") or ""
    assert set_cookie.startswith(f"GSLB_BACKEND={reply.body.decode()};")
    chosen = reply.body.decode()
    again = await fetch(port, "api.example.com", "/v2/y", cookie=f"GSLB_BACKEND={chosen}")
    assert again.body.decode() == chosen
    assert again.header("Set-Cookie") is None
