"""The life of one client connection (gslb.proxy.frontend) as an explicit state machine.
Pure, no I/O; the same kind of table as the exchange's (gslb.proxy.lifecycle).

    OPEN --STOP--> LAST              (client EOF, a bad request, a slow pipelined head)
    OPEN --UPGRADE--> UPGRADING      (an Upgrade request: nothing more is parsed)
    UPGRADING --SWITCH--> TUNNEL     (the backend's 101: bytes are relayed, tunnel.py)
    any --CLOSE--> CLOSED            (closed by the proxy or by the client)

OPEN reads and answers requests one after another (keep-alive). LAST reads no further
request and closes once the answer in hand, if any, is sent; a connection in UPGRADING
becomes a tunnel on a 101 and closes after any other answer. STOP where reading has already
stopped changes nothing (an EOF after a bad request, or in a tunnel: the close follows);
CLOSE is the end and may come twice (the proxy closes, then the transport reports it lost).
"""

from __future__ import annotations

from enum import IntEnum

from gslb.proxy.lifecycle import Transitions


class Conn(IntEnum):
    OPEN = 0  # requests are read and answered in turn
    LAST = 1  # no further request is read: close after the answer in hand
    UPGRADING = 2  # an Upgrade request is being answered: a 101 makes this a tunnel
    TUNNEL = 3  # bytes relayed both ways (tunnel.py)
    CLOSED = 4  # closed, by either side


class ConnEvent(IntEnum):
    STOP = 0  # read no more requests
    UPGRADE = 1  # a request asks to switch protocols: the parser stops after its head
    SWITCH = 2  # the backend switched: the connection is a tunnel from now on
    CLOSE = 3  # the connection is closed (close, abort, or the transport lost it)


C = Conn
CONN_TRANSITIONS: Transitions[Conn, ConnEvent] = Transitions(
    {
        (C.OPEN, ConnEvent.STOP): C.LAST,
        **{(s, ConnEvent.STOP): s for s in (C.LAST, C.UPGRADING, C.TUNNEL, C.CLOSED)},
        (C.OPEN, ConnEvent.UPGRADE): C.UPGRADING,
        (C.UPGRADING, ConnEvent.SWITCH): C.TUNNEL,
        **{(s, ConnEvent.CLOSE): C.CLOSED for s in Conn},
    }
)

# Reading goes on (when not paused for other reasons) in these states only.
READING = frozenset({C.OPEN, C.TUNNEL})

OPEN = C.OPEN
LAST = C.LAST
UPGRADING = C.UPGRADING
TUNNEL = C.TUNNEL
CLOSED = C.CLOSED
STOP = ConnEvent.STOP
UPGRADE = ConnEvent.UPGRADE
SWITCH = ConnEvent.SWITCH
CLOSE = ConnEvent.CLOSE
