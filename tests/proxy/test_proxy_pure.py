"""The proxy's pure parts, without sockets: balancers, passive marks, headers, auth, stats."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gslb.auth import bearer_ok, find_token, load_token
from gslb.histogram import Histogram
from gslb.model import Backend, ServerSettings
from gslb.proxy import headers as hdr
from gslb.proxy.backends import BackendTable
from gslb.proxy.balancers import (
    NONE,
    IpHash,
    LeastConn,
    RoundRobin,
    SmoothWeighted,
    Sticky,
    smooth_schedule,
)
from gslb.proxy.passive import CLEAR, Passive, record


@dataclass
class FakeBackend:
    name: str
    weight: int = 1
    in_flight: int = 0
    available: bool = True


@dataclass
class FakePool:
    backends: list[FakeBackend] = field(default_factory=list)
    generation: int = 0

    def set(self, i: int, available: bool) -> None:
        self.backends[i].available = available
        self.generation += 1


def pool(*weights: int) -> FakePool:
    return FakePool([FakeBackend(f"b{i}", w) for i, w in enumerate(weights)])


def picks(
    balancer: object, p: FakePool, n: int, client: str = "", cookie: str | None = None
) -> list[int]:
    return [balancer.choose(p, client, cookie, NONE) for _ in range(n)]  # type: ignore[attr-defined]


# -- balancers ----------------------------------------------------------------------------------


def test_round_robin_skips_unavailable_and_exclude() -> None:
    p = pool(1, 1, 1)
    rr = RoundRobin()
    assert picks(rr, p, 6) == [0, 1, 2, 0, 1, 2]
    p.set(1, False)
    assert picks(rr, p, 4) == [0, 2, 0, 2]
    assert rr.choose(p, "", None, 0) == 2
    p.set(0, False)
    p.set(2, False)
    assert rr.choose(p, "", None, NONE) == NONE


@pytest.mark.parametrize(
    ("weights", "period"),
    [
        ((5, 1, 1), [0, 0, 1, 0, 2, 0, 0]),  # nginx's own example
        ((1, 1, 1), [0, 1, 2]),
        ((2, 4), [1, 0, 1]),  # divided by the gcd
        ((3, 0, 1), [0, 0, 2, 0]),
        ((0, 0), []),
    ],
)
def test_smooth_schedule_table(weights: tuple[int, ...], period: list[int]) -> None:
    assert list(smooth_schedule(weights)) == period


@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=8))
def test_smooth_schedule_counts_are_proportional(weights: list[int]) -> None:
    schedule = smooth_schedule(weights)
    live = [w for w in weights if w]
    if not live:
        assert schedule == ()
        return
    import math

    g = math.gcd(*live)
    assert Counter(schedule) == {i: w // g for i, w in enumerate(weights) if w}


def test_smooth_weighted_follows_availability() -> None:
    p = pool(3, 1)
    sw = SmoothWeighted()
    assert Counter(picks(sw, p, 8)) == {0: 6, 1: 2}
    p.set(0, False)
    assert picks(sw, p, 3) == [1, 1, 1]
    assert sw.choose(p, "", None, 1) == NONE


def test_least_conn_prefers_idle_and_rotates_ties() -> None:
    p = pool(1, 1, 1)
    lc = LeastConn()
    p.backends[0].in_flight = 5
    p.backends[1].in_flight = 1
    assert lc.choose(p, "", None, NONE) == 2
    p.backends[2].in_flight = 1
    assert Counter(picks(lc, p, 10)) == {1: 5, 2: 5}  # a fair tie
    p.backends[0].weight = 10  # 5/10 < 1/1: weight counts
    assert lc.choose(p, "", None, NONE) == 0


def test_ip_hash_moves_only_the_lost_backends_clients() -> None:
    p = pool(1, 1, 1, 1)
    h = IpHash([b.name for b in p.backends], [1, 1, 1, 1])
    clients = [f"10.0.{i // 256}.{i % 256}" for i in range(2000)]
    before = {c: h.choose(p, c, None, NONE) for c in clients}
    share = Counter(before.values())
    assert all(400 <= share[i] <= 600 for i in range(4)), share
    p.set(2, False)
    after = {c: h.choose(p, c, None, NONE) for c in clients}
    for c in clients:
        if before[c] != 2:
            assert after[c] == before[c]
        else:
            assert after[c] in (0, 1, 3)
    moved = Counter(after[c] for c in clients if before[c] == 2)
    assert len(moved) == 3  # its clients spread over the others, not all onto one


def test_ip_hash_is_stable_across_instances() -> None:
    names, weights = ["a", "b", "c"], [1, 2, 1]
    p = FakePool([FakeBackend(n, w) for n, w in zip(names, weights, strict=True)])
    one, two = IpHash(names, weights), IpHash(names, weights)
    clients = [f"192.0.2.{i}" for i in range(200)]
    assert [one.choose(p, c, None, NONE) for c in clients] == [
        two.choose(p, c, None, NONE) for c in clients
    ]
    assert Counter(one.choose(p, c, None, NONE) for c in clients)[1] > 70  # weight 2


def test_sticky_uses_the_cookie_then_falls_back() -> None:
    p = pool(1, 1, 1)
    s = Sticky([b.name for b in p.backends], RoundRobin())
    assert picks(s, p, 3, cookie="b2") == [2, 2, 2]
    assert picks(s, p, 2, cookie="nosuch") == [0, 1]
    p.set(2, False)
    assert s.choose(p, "", "b2", NONE) in (0, 1)
    assert s.choose(p, "", "b1", 1) != 1


# -- passive marks ------------------------------------------------------------------------------


def test_passive_threshold_cooldown_and_probation() -> None:
    p = CLEAR
    p = record(p, False, 0.0, 3, 10.0)
    p = record(p, False, 1.0, 3, 10.0)
    assert not p.is_out(1.0)
    p = record(p, False, 2.0, 3, 10.0)
    assert p.is_out(2.0) and p.is_out(11.9) and not p.is_out(12.0)
    assert record(p, False, 5.0, 3, 10.0) is p  # in flight when it left: no extension
    p = record(p, False, 12.5, 3, 10.0)  # probation: one failure takes it out again
    assert p.is_out(13.0)
    assert record(p, True, 30.0, 3, 10.0) == CLEAR
    assert record(CLEAR, True, 1.0, 3, 10.0) is CLEAR
    assert record(Passive(failures=2), True, 0.0, 3, 1.0) == CLEAR


def test_request_dependent_failures_count_once_per_client() -> None:
    p = CLEAR
    for t in range(50):  # one client provoking resets/5xx: never out
        p = record(p, False, float(t), 2, 10.0, client="198.51.100.7")
        assert not p.is_out(float(t))
    assert p.count == 1
    p = record(p, False, 60.0, 2, 10.0, client="198.51.100.8")  # a second client: out
    assert p.is_out(60.0) and not p.is_out(70.0)
    # Probation after the cool-down: one client alone still cannot take it back out...
    for t in range(71, 80):
        p = record(p, False, float(t), 2, 10.0, client="198.51.100.7")
        assert not p.is_out(float(t))
    # ...but a connection refused can, at once.
    p = record(p, False, 80.0, 2, 10.0)
    assert p.is_out(80.0)
    # Mixed: one refused connection plus one client make two.
    q = record(record(CLEAR, False, 0.0, 2, 1.0, client="a"), False, 0.0, 2, 1.0)
    assert q.is_out(0.0)


def test_panic_mode_ignores_passive_marks_below_the_threshold() -> None:
    backends = [Backend(f"b{i}", f"http://127.0.0.1:{i + 1}", "127.0.0.1", i + 1) for i in range(4)]
    table = BackendTable(backends, panic_threshold=0.5)
    b0, b1, b2, b3 = table.backends
    table.outcome(b0, False, 0.0, 1, 10.0)
    table.outcome(b1, False, 0.0, 1, 10.0)  # 2 of 4 usable: 50% is not below 50%
    assert [s.available for s in table.backends] == [False, False, True, True]
    assert not table.panic
    generation = table.generation
    table.outcome(b2, False, 0.0, 1, 10.0)  # 1 of 4: passive marks are ignored
    assert table.panic and all(s.available for s in table.backends)
    assert table.generation > generation
    table.set_drained(b3, True)  # drained stays out, panic or not
    assert [s.available for s in table.backends] == [True, True, True, False]
    table.outcome(b2, True, 1.0, 1, 10.0)
    table.end_cooldown(b2, 11.0)
    table.set_drained(b3, False)
    table.end_cooldown(b0, 11.0)  # b0 and b1 back after their cool-down: 3, then 4 of 4
    assert not table.panic and [s.available for s in table.backends] == [True, False, True, True]
    off = BackendTable(backends)  # panic_threshold 0: never
    for s in off.backends:
        off.outcome(s, False, 0.0, 1, 10.0)
    assert not off.panic and not off.any_available()


# -- headers ------------------------------------------------------------------------------------


def pieces(*headers: tuple[bytes, bytes]) -> list[bytes]:
    out = [b""]
    for name, value in headers:
        out += (name, b": ", value, b"\r\n")
    return out


def test_roles_cover_hop_by_hop_both_ways() -> None:
    for name in hdr.HOP_BY_HOP:
        assert hdr.REQUEST_ROLES[name] != hdr.KEEP
        assert hdr.RESPONSE_ROLES[name] != hdr.KEEP
    assert hdr.REQUEST_ROLES[b"x-forwarded-proto"] == hdr.DROP  # replaced, never trusted
    assert hdr.REQUEST_ROLES[b"expect"] == hdr.EXPECT
    assert b"set-cookie" not in hdr.RESPONSE_ROLES
    assert b"x-forwarded-for" not in hdr.RESPONSE_ROLES


def test_request_head_rewrites() -> None:
    head = hdr.request_head(
        b"GET",
        b"/x",
        pieces((b"Host", b"h"), (b"X-Drop", b"1"), (b"Accept", b"*/*")),
        b"X-Drop, keep-alive",
        [b"1.2.3.4", b"5.6.7.8"],
        [],
        "127.0.0.9",
        b"http",
        b"Content-Length: 3\r\n",
        None,
    )
    assert head == (
        b"GET /x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n"
        b"X-Forwarded-For: 1.2.3.4, 5.6.7.8, 127.0.0.9\r\nX-Forwarded-Proto: http\r\n"
        b"Via: 1.1 gslb\r\nContent-Length: 3\r\n\r\n"
    )


def test_request_head_without_host_gets_one() -> None:
    head = hdr.request_head(b"GET", b"/", [b""], None, [], [b"1.0 a"], "::1", b"http", b"", b"bk")
    assert head == (
        b"GET / HTTP/1.1\r\nHost: bk\r\nX-Forwarded-For: ::1\r\n"
        b"X-Forwarded-Proto: http\r\nVia: 1.0 a, 1.1 gslb\r\n\r\n"
    )


def test_response_head_rewrites() -> None:
    head = hdr.response_head(
        200,
        b"OK",
        pieces((b"X-Hop", b"1"), (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")),
        b"close, X-Hop",
        [b"1.1 inner"],
        b"Content-Length: 10\r\n",
        True,
        b"Set-Cookie: GSLB_BACKEND=b1; Path=/; HttpOnly\r\n",
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Via: 1.1 inner, 1.1 gslb\r\nContent-Length: 10\r\n"
        b"Set-Cookie: GSLB_BACKEND=b1; Path=/; HttpOnly\r\nConnection: keep-alive\r\n\r\n"
    )
    closing = hdr.response_head(404, b"Not Found", [b""], None, [], b"", False)
    assert closing == b"HTTP/1.1 404 Not Found\r\nVia: 1.1 gslb\r\nConnection: close\r\n\r\n"


def test_named_by_connection() -> None:
    assert hdr.named_by_connection(None) == frozenset()
    assert hdr.named_by_connection(b"Keep-Alive") == frozenset()
    assert hdr.named_by_connection(b"close, X-A,x-b , ") == {b"x-a", b"x-b"}


def test_cookie_value_and_error_response() -> None:
    cookies = [b"a=1; GSLB=b2", b"c=3"]
    assert hdr.cookie_value(cookies, b"GSLB") == "b2"
    assert hdr.cookie_value(cookies, b"c") == "3"
    assert hdr.cookie_value(cookies, b"zz") is None
    err = hdr.error_response(502, "Bad Gateway", "no backend")
    assert err.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert err.endswith(
        b"Content-Length: 11\r\nVia: 1.1 gslb\r\nConnection: close\r\n\r\nno backend\n"
    )


# -- auth ---------------------------------------------------------------------------------------


def test_load_token_from_env_then_file(tmp_path: Path) -> None:
    settings = ServerSettings(token_env="MY_TOKEN")
    assert load_token(settings, {"MY_TOKEN": "  s3cret\n"}) == "s3cret"
    assert load_token(settings, {}) is None
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    with_file = ServerSettings(token_env="MY_TOKEN", token_file=str(token_file))
    assert load_token(with_file, {}) == "from-file"
    assert load_token(with_file, {"MY_TOKEN": "env-wins"}) == "env-wins"
    missing = ServerSettings(token_env="MY_TOKEN", token_file=str(tmp_path / "nope"))
    assert load_token(missing, {}) is None


def test_find_token_says_where_it_came_from_not_what_it_is(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    settings = ServerSettings(token_env="MY_TOKEN", token_file=str(token_file))
    assert find_token(settings, {"MY_TOKEN": "e"}) == ("e", "environment variable MY_TOKEN")
    assert find_token(settings, {}) == ("from-file", f"file {token_file}")
    token_file.write_text("\n")
    assert find_token(settings, {}) is None


@pytest.mark.parametrize(
    ("header", "token", "ok"),
    [
        ("Bearer abc", "abc", True),
        ("bearer abc", "abc", True),
        ("Bearer  abc ", "abc", True),
        ("Bearer abd", "abc", False),
        ("abc", "abc", False),
        ("Basic abc", "abc", False),
        (None, "abc", False),
        ("Bearer ", None, False),
        ("Bearer abc", None, False),
        ("Bearer ", "", False),
    ],
)
def test_bearer_ok(header: str | None, token: str | None, ok: bool) -> None:
    assert bearer_ok(header, token) is ok


# -- stats --------------------------------------------------------------------------------------


def test_histogram_quantiles() -> None:
    h = Histogram((0.001, 0.01, 0.1))
    for _ in range(90):
        h.observe(0.0005)
    for _ in range(9):
        h.observe(0.05)
    h.observe(5.0)
    assert h.quantile(0.5) == 0.001
    assert h.quantile(0.95) == 0.1
    assert h.quantile(0.999) == float("inf")
    assert h.cumulative() == [("0.001", 90), ("0.01", 90), ("0.1", 99), ("+Inf", 100)]
