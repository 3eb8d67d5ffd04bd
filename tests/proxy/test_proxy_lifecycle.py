"""The exchange's state machine (gslb.proxy.lifecycle): without sockets, every legal move
lands where the table says and every other (state, event) pair raises; over real sockets,
the proxy's exchanges make exactly the moves of the table."""

from __future__ import annotations

import asyncio
from itertools import product

import pytest
from proxyhelpers import Env, RecordedMoves, TestBackend, get, make_spec

from gslb.proxy import exchange
from gslb.proxy.lifecycle import (
    ANSWER_STARTED,
    ENDED,
    TRANSITIONS,
    Event,
    IllegalTransition,
    State,
    Transitions,
    advance,
)
from gslb.proxy.server import ProxyServer

S = State
E = Event

# Every life an exchange can have, as the proxy drives it (exchange.py).
LIVES = [
    ("pooled connection", [E.HEAD, E.BEGIN, E.SEND, E.RESPONSE_HEAD, E.RESPONSE_END], S.DONE),
    (
        "new connection",
        [E.HEAD, E.BEGIN, E.CONNECT, E.SEND, E.RESPONSE_HEAD, E.RESPONSE_END],
        S.DONE,
    ),
    (
        "queued for a slot",
        [E.HEAD, E.BEGIN, E.QUEUE, E.SEND, E.RESPONSE_HEAD, E.RESPONSE_END],
        S.DONE,
    ),
    ("queue full or timed out", [E.HEAD, E.BEGIN, E.QUEUE, E.ANSWER], S.DONE),
    ("no backend", [E.HEAD, E.BEGIN, E.ANSWER], S.DONE),
    (
        "retried after a reset",
        [E.HEAD, E.BEGIN, E.SEND, E.RETRY, E.CONNECT, E.SEND, E.RESPONSE_HEAD, E.RESPONSE_END],
        S.DONE,
    ),
    ("retry after a refused connect", [E.HEAD, E.BEGIN, E.CONNECT, E.RETRY, E.ANSWER], S.DONE),
    ("retry that queues", [E.HEAD, E.BEGIN, E.SEND, E.RETRY, E.QUEUE, E.ANSWER], S.DONE),
    ("backend timeout", [E.HEAD, E.BEGIN, E.SEND, E.ANSWER], S.DONE),
    ("websocket", [E.HEAD, E.BEGIN, E.SEND, E.SWITCH], S.SWITCHED),
    ("answer cut", [E.HEAD, E.BEGIN, E.SEND, E.RESPONSE_HEAD, E.CUT], S.ABORTED),
    (
        "client gone while relaying",
        [E.HEAD, E.BEGIN, E.SEND, E.RESPONSE_HEAD, E.ABANDON],
        S.ABANDONED,
    ),
    ("client gone while pipelined", [E.HEAD, E.ABANDON], S.ABANDONED),
    ("client gone while queued", [E.HEAD, E.BEGIN, E.QUEUE, E.ABANDON], S.ABANDONED),
    ("client gone while connecting", [E.HEAD, E.BEGIN, E.CONNECT, E.ABANDON], S.ABANDONED),
]


@pytest.mark.parametrize(("name", "events", "end"), LIVES, ids=[life[0] for life in LIVES])
def test_lives(name: str, events: list[Event], end: State) -> None:
    state = S.IDLE
    for event in events:
        state = advance(state, event)
    assert state is end
    assert state in ENDED


# The moves that must not exist, each a bug the machine catches.
FORBIDDEN = [
    (S.IDLE, E.BEGIN),  # forwarded before its head is complete
    (S.READY, E.SEND),  # sent before its turn
    (S.RELAYING_RESPONSE, E.RETRY),  # a retry after bytes of the answer reached the client
    (S.RELAYING_RESPONSE, E.ANSWER),  # a 502 after a 200's head
    (S.RELAYING_RESPONSE, E.RESPONSE_HEAD),  # two heads
    (S.DONE, E.RESPONSE_END),  # two ends
    (S.DONE, E.ABANDON),  # counted twice (200 and 499)
    (S.ABANDONED, E.RESPONSE_HEAD),  # an answer for a client that is gone
    (S.SWITCHED, E.RESPONSE_END),  # an end after the tunnel took the connection
    (S.QUEUED, E.RETRY),  # a retry with no backend tried
]


@pytest.mark.parametrize(("state", "event"), FORBIDDEN)
def test_forbidden_moves_raise(state: State, event: Event) -> None:
    assert (state, event) not in TRANSITIONS
    with pytest.raises(IllegalTransition) as caught:
        advance(state, event)
    assert caught.value.state is state
    assert caught.value.event is event
    assert state.name in str(caught.value) and event.name in str(caught.value)


def test_every_pair_outside_the_table_raises() -> None:
    illegal = 0
    for state, event in product(State, Event):
        if (state, event) in TRANSITIONS:
            assert advance(state, event) is TRANSITIONS[state, event]
            continue
        illegal += 1
        with pytest.raises(IllegalTransition):
            advance(state, event)
    assert illegal == len(State) * len(Event) - len(TRANSITIONS)
    assert illegal > 0


def test_ended_states_have_no_way_out() -> None:
    for state, event in product(ENDED, Event):
        assert (state, event) not in TRANSITIONS


def test_every_state_is_reachable_and_every_live_state_can_end() -> None:
    reached = {S.IDLE}
    frontier = [S.IDLE]
    while frontier:
        state = frontier.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src is state and dst not in reached:
                reached.add(dst)
                frontier.append(dst)
    assert reached == set(State)
    for state in set(State) - ENDED - {S.IDLE}:
        assert any(src is state and dst in ENDED for (src, _), dst in TRANSITIONS.items())


def test_answer_started_excludes_retry_and_own_answer() -> None:
    for state in ANSWER_STARTED:
        assert (state, E.RETRY) not in TRANSITIONS
        assert (state, E.ANSWER) not in TRANSITIONS


# -- the machine in a running proxy: the moves its exchanges make, over real sockets --------


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> RecordedMoves:
    """Every move the proxy's exchanges make (gslb.proxy.exchange subscripts its module's
    `TRANSITIONS`)."""
    recorder = RecordedMoves(TRANSITIONS)
    monkeypatch.setattr(exchange, "TRANSITIONS", recorder)
    return recorder


async def test_a_proxied_request_moves_through_the_table(env: Env, moves: RecordedMoves) -> None:
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    assert (await get(proxy.port)).status == 200  # a new backend connection
    assert moves.events == [E.HEAD, E.BEGIN, E.CONNECT, E.SEND, E.RESPONSE_HEAD, E.RESPONSE_END]
    moves.events.clear()
    assert (await get(proxy.port)).status == 200  # the pooled one
    assert moves.events == [E.HEAD, E.BEGIN, E.SEND, E.RESPONSE_HEAD, E.RESPONSE_END]


async def test_a_retry_and_a_502_are_moves_of_the_table(env: Env, moves: RecordedMoves) -> None:
    dead, alive = await env.backend("dead"), await env.backend("alive")
    proxy = await env.proxy(make_spec([dead, alive]))
    await dead.stop()
    replies = [await get(proxy.port) for _ in range(2)]
    assert [r.body for r in replies] == [b"alive", b"alive"]
    assert E.RETRY in moves.events  # the request that went to the dead backend first
    assert moves.events.count(E.RESPONSE_END) == 2
    await alive.stop()
    moves.events.clear()
    reply = await get(proxy.port)
    assert reply.status == 502
    assert moves.events[-1] is E.ANSWER
    assert E.RESPONSE_HEAD not in moves.events


async def _proxy_with_a_bug(
    env: Env, monkeypatch: pytest.MonkeyPatch, event: Event
) -> tuple[TestBackend, ProxyServer]:
    """A proxy whose transition table has a bug planted: `event` is refused as illegal."""

    class Broken(Transitions[State, Event]):
        def __getitem__(self, key: tuple[State, Event]) -> State:
            if key[1] is event:
                raise IllegalTransition(*key)
            return super().__getitem__(key)

    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    monkeypatch.setattr(exchange, "TRANSITIONS", Broken(TRANSITIONS))
    return b, proxy


async def test_an_illegal_move_while_parsing_a_request_is_logged_not_a_400(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    b, proxy = await _proxy_with_a_bug(env, monkeypatch, E.HEAD)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 3) == b""  # cut, no "400 malformed request"
    writer.close()
    assert "no transition from IDLE on HEAD" in caplog.text
    assert b.hits == 0


async def test_an_illegal_move_on_a_response_is_logged_not_blamed_on_the_parser(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, proxy = await _proxy_with_a_bug(env, monkeypatch, E.RESPONSE_HEAD)
    reply = await get(proxy.port)
    assert reply.status == 502
    assert b"bad response from backend" not in reply.body
    assert "no transition from AWAITING_RESPONSE on RESPONSE_HEAD" in caplog.text
