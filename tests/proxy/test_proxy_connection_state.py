"""The client connection's state machine (gslb.proxy.connection_state): its table, and the
moves a real proxy's connections make over real sockets."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from itertools import product

import pytest
from proxyhelpers import Env, RecordedMoves, make_spec, read_reply

from gslb.model import Backend
from gslb.proxy import frontend
from gslb.proxy.connection_state import CONN_TRANSITIONS, READING, Conn, ConnEvent
from gslb.proxy.lifecycle import IllegalTransition

C = Conn
CE = ConnEvent
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"


@pytest.mark.parametrize(
    ("events", "end"),
    [
        ([CE.CLOSE], C.CLOSED),  # keep-alive until either side closes
        ([CE.STOP, CE.CLOSE, CE.CLOSE], C.CLOSED),  # a bad request: closed, then reported lost
        ([CE.UPGRADE, CE.SWITCH, CE.STOP, CE.CLOSE], C.CLOSED),  # a tunnel, the client's EOF
        ([CE.UPGRADE, CE.CLOSE], C.CLOSED),  # an Upgrade answered other than with 101
    ],
)
def test_lives(events: list[ConnEvent], end: Conn) -> None:
    state = C.OPEN
    for event in events:
        state = CONN_TRANSITIONS[state, event]
    assert state is end


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (C.OPEN, CE.SWITCH),  # a tunnel no request asked for
        (C.LAST, CE.SWITCH),  # a tunnel after reading stopped for another reason
        (C.LAST, CE.UPGRADE),  # a request parsed after reading stopped
        (C.CLOSED, CE.UPGRADE),
        (C.CLOSED, CE.SWITCH),
        (C.TUNNEL, CE.UPGRADE),
    ],
)
def test_forbidden_moves_raise(state: Conn, event: ConnEvent) -> None:
    with pytest.raises(IllegalTransition) as caught:
        CONN_TRANSITIONS[state, event]
    assert (caught.value.state, caught.value.event) == (state, event)


def test_reading_only_while_open_or_tunnelling() -> None:
    assert {s for s in Conn if s in READING} == {C.OPEN, C.TUNNEL}
    illegal = sum((s, e) not in CONN_TRANSITIONS for s, e in product(Conn, ConnEvent))
    assert illegal == 8


async def test_keep_alive_then_a_bad_request_moves_through_the_table(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves = RecordedMoves(CONN_TRANSITIONS)
    monkeypatch.setattr(frontend, "CONN_TRANSITIONS", moves)
    b = await env.backend("solo")
    proxy = await env.proxy(make_spec([b]))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for _ in range(2):
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (await read_reply(reader)).status == 200
        assert moves.events == []  # OPEN throughout keep-alive
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nbad header\r\n\r\n")
        assert (await read_reply(reader)).status == 400
        assert await reader.read() == b""  # closed after the 400
    finally:
        writer.close()
    await proxy.drain()  # connection_lost has run once the drain finds no connection
    assert moves.events == [CE.STOP, CE.CLOSE, CE.CLOSE]


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Whether the other side closed (a FIN, or the reset of an abort) with nothing sent."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


async def test_a_101_after_the_client_connection_was_cut_makes_no_tunnel(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """The proxy cuts a connection waiting for its 101 (UPGRADING, as a drain timeout does),
    then the backend switches: the backend connection is closed, no move raises."""
    arrived = asyncio.Event()  # the request reached the backend
    answer = asyncio.Event()
    closed = asyncio.Event()

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        arrived.set()
        await answer.wait()
        writer.write(SWITCHED)
        await writer.drain()
        assert await closed_by_peer(reader)  # the proxy closed its side
        closed.set()
        writer.close()

    server = await asyncio.start_server(backend, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        raw = Backend("raw", f"http://127.0.0.1:{port}", "127.0.0.1", port)
        proxy = await env.proxy(replace(make_spec([]), backends=(raw,)))
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
        await arrived.wait()
        assert proxy._shared is not None
        (conn,) = proxy._shared.connections
        conn.abort()  # as the drain timeout cuts what is left
        answer.set()
        await asyncio.wait_for(closed.wait(), 5)
        assert await closed_by_peer(reader)
        writer.close()
    finally:
        server.close()
    assert "no transition" not in caplog.text
