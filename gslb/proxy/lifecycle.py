"""The life cycle of one proxied exchange as an explicit state machine. Pure, no I/O.

As h11's `_state.py` does for a connection, the states an `Exchange` (gslb.proxy.exchange)
goes through and the events that move it are named here, and `TRANSITIONS` lists every move
there is; `TRANSITIONS[state, event]` (or `advance`) makes one and raises `IllegalTransition`
for any other, so a callback arriving when it cannot (a response after the client left, a
second end) is a loud bug rather than a silently corrupted connection.

    IDLE --HEAD--> READY --BEGIN--> CHOOSING --QUEUE--> QUEUED --CONNECT/SEND--> ...
    CHOOSING|REPLAYING|QUEUED --CONNECT--> CONNECTING --SEND--> AWAITING_RESPONSE
    CHOOSING|REPLAYING|QUEUED --SEND--> AWAITING_RESPONSE   (an idle pooled connection)
    CONNECTING|AWAITING_RESPONSE --RETRY--> REPLAYING       (another backend, nothing answered)
    AWAITING_RESPONSE --RESPONSE_HEAD--> RELAYING_RESPONSE --RESPONSE_END--> DONE
    AWAITING_RESPONSE --SWITCH--> SWITCHED                  (101: the connections are a tunnel)
    before the answer started --ANSWER--> DONE              (the proxy's own 502/503/504/400)
    RELAYING_RESPONSE --CUT--> ABORTED                      (the answer cannot be completed)
    any live state but IDLE --ABANDON--> ABANDONED          (the client went away: 499)

CHOOSING and REPLAYING last only while a backend is picked (within one call); they are states
so that the moves out of them say where a first try and a retry may go. The request body's
own progress is not part of this machine: a backend may answer before the body has ended, so
"body complete" is orthogonal to every state from READY to RELAYING_RESPONSE.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Generic, TypeVar


# IntEnum, not Enum: members hash and compare as ints (in C), and the exchange moves through
# four or five states per request, so a transition must cost a dict probe and nothing more.
class State(IntEnum):
    IDLE = 0  # the request's head is being parsed
    READY = 1  # the head is complete; waiting its turn (a pipelined request)
    CHOOSING = 2  # picking a backend for the first time
    QUEUED = 3  # waiting for a slot of a backend at its max_connections
    CONNECTING = 4  # a new connection to the backend is being opened
    AWAITING_RESPONSE = 5  # the head went to the backend; nothing of its answer yet
    REPLAYING = 6  # the backend failed before answering: picking another one
    RELAYING_RESPONSE = 7  # the backend's head went to the client; its body follows
    SWITCHED = 8  # the backend answered 101: the connections are a tunnel now (tunnel.py)
    DONE = 9  # answered in full: the backend's answer, or the proxy's own error response
    ABORTED = 10  # the answer had started and could not be finished: the connection is cut
    ABANDONED = 11  # the client went away first


class Event(IntEnum):
    HEAD = 0  # the request's head is complete
    BEGIN = 1  # its turn has come: forward it
    QUEUE = 2  # the chosen backend is at its cap
    CONNECT = 3  # no idle pooled connection: open one
    SEND = 4  # the head is written on a backend connection
    RETRY = 5  # the backend failed before any byte of its answer
    RESPONSE_HEAD = 6  # the backend's head arrived and was relayed
    SWITCH = 7  # the backend switched protocols
    RESPONSE_END = 8  # the backend's answer ended
    ANSWER = 9  # the proxy answers itself (no backend, timeout, failure, bad request body)
    CUT = 10  # the started answer failed or timed out
    ABANDON = 11  # the client connection closed


S = State
E = Event
# Where a backend may be chosen from: a first try, a retry, a wait for a slot that ended.
_PICKING = (S.CHOOSING, S.REPLAYING)
_BEFORE_ANSWER = (S.CHOOSING, S.REPLAYING, S.QUEUED, S.CONNECTING, S.AWAITING_RESPONSE)

_MOVES: dict[tuple[State, Event], State] = {
    (S.IDLE, E.HEAD): S.READY,
    (S.READY, E.BEGIN): S.CHOOSING,
    **{(s, E.QUEUE): S.QUEUED for s in _PICKING},
    **{(s, E.CONNECT): S.CONNECTING for s in (*_PICKING, S.QUEUED)},
    **{(s, E.SEND): S.AWAITING_RESPONSE for s in (*_PICKING, S.QUEUED, S.CONNECTING)},
    (S.CONNECTING, E.RETRY): S.REPLAYING,
    (S.AWAITING_RESPONSE, E.RETRY): S.REPLAYING,
    (S.AWAITING_RESPONSE, E.RESPONSE_HEAD): S.RELAYING_RESPONSE,
    (S.AWAITING_RESPONSE, E.SWITCH): S.SWITCHED,
    (S.RELAYING_RESPONSE, E.RESPONSE_END): S.DONE,
    **{(s, E.ANSWER): S.DONE for s in _BEFORE_ANSWER},
    (S.RELAYING_RESPONSE, E.CUT): S.ABORTED,
    **{
        (s, E.ABANDON): S.ABANDONED
        for s in (S.READY, S.QUEUED, S.CONNECTING, S.AWAITING_RESPONSE, S.RELAYING_RESPONSE)
    },
}

# States no event leaves: the exchange is over (counted, logged, handed back).
ENDED = frozenset({S.SWITCHED, S.DONE, S.ABORTED, S.ABANDONED})
# The backend's answer has begun reaching the client: no retry, no answer of our own.
ANSWER_STARTED = frozenset({S.RELAYING_RESPONSE, S.SWITCHED})


class IllegalTransition(Exception):
    """An event arrived in a state that has no move for it (a bug, never the client's doing)."""

    def __init__(self, state: IntEnum, event: IntEnum) -> None:
        super().__init__(f"no transition from {state.name} on {event.name}")
        self.state = state
        self.event = event


_S = TypeVar("_S", bound=IntEnum)
_E = TypeVar("_E", bound=IntEnum)


class Transitions(dict[tuple[_S, _E], _S], Generic[_S, _E]):
    """A transition table: `table[state, event]` is the next state, and a move the table
    does not have raises IllegalTransition (not KeyError). The proxy subscripts its tables
    directly: a hit costs the dict probe alone (`__missing__` runs only for a miss), where a
    call of `advance` per transition cost a function call on top, five times a request.
    (Also the client connection's table, gslb.proxy.connection_state.)"""

    def __missing__(self, key: tuple[_S, _E]) -> _S:
        raise IllegalTransition(*key)


TRANSITIONS: Transitions[State, Event] = Transitions(_MOVES)


def advance(state: State, event: Event) -> State:
    """The state after `event` in `state`; IllegalTransition when the table has no such move."""
    return TRANSITIONS[state, event]


# The members as module constants: the exchange reads them on every request, and a module
# global is one lookup where `State.DONE` is two.
IDLE = S.IDLE
READY = S.READY
CHOOSING = S.CHOOSING
QUEUED = S.QUEUED
CONNECTING = S.CONNECTING
AWAITING_RESPONSE = S.AWAITING_RESPONSE
REPLAYING = S.REPLAYING
RELAYING_RESPONSE = S.RELAYING_RESPONSE
SWITCHED = S.SWITCHED
DONE = S.DONE
ABORTED = S.ABORTED
ABANDONED = S.ABANDONED
HEAD = E.HEAD
BEGIN = E.BEGIN
QUEUE = E.QUEUE
CONNECT = E.CONNECT
SEND = E.SEND
RETRY = E.RETRY
RESPONSE_HEAD = E.RESPONSE_HEAD
SWITCH = E.SWITCH
RESPONSE_END = E.RESPONSE_END
ANSWER = E.ANSWER
CUT = E.CUT
ABANDON = E.ABANDON
