"""Passive health: a backend that fails too often in a row is taken out for a cool-down.

Pure: the caller says what happened, to whom and when. Passive marks must not be a lever a
client can pull, so failures come in two kinds:

* request-independent (`client=None`): the connection to the backend was refused or timed out
  while connecting. Nothing in a request can cause that, so each one counts.
* request-dependent (`client=` the client's address): a reset or EOF after the request was
  sent, a read timeout, a 5xx answer. One request can provoke these (a path that crashes the
  backend, a body it chokes on), so in one streak each client address counts once, however
  many such failures it provokes. A single client can therefore never take a backend out
  (with `fail_threshold` >= 2); it takes that many distinct clients failing in a row.

Any other answer is a success and clears the streak. After `threshold` counted failures the
backend is out until `now + cooldown`; when the cool-down is over it is tried again on
probation: one more request-independent failure takes it straight back out, one success
clears it; request-dependent failures need distinct clients again, as from a clean start (so
one client cannot keep a backend out forever by renewing its cool-down).

The proxy ignores passive marks altogether when too few backends would be left (see
`panic_threshold` in gslb.proxy.backends).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Passive:
    failures: int = 0  # request-independent failures in the current streak
    clients: frozenset[str] = frozenset()  # clients that saw a request-dependent failure
    out_until: float = 0.0  # clock time until which the backend is out; 0 when it is not
    probation: bool = False  # back from a cool-down, no success yet

    def is_out(self, now: float) -> bool:
        return now < self.out_until

    @property
    def count(self) -> int:
        """The failures that count toward the threshold."""
        return self.failures + len(self.clients)


CLEAR = Passive()


def record(
    p: Passive, ok: bool, now: float, threshold: int, cooldown: float, client: str | None = None
) -> Passive:
    """The state after one more outcome; `p` itself when nothing changes (compare with `is`).

    `client` is None for a request-independent failure, else the address of the client whose
    request failed."""
    if ok:
        return p if p == CLEAR else CLEAR
    if p.is_out(now):
        return p  # already out: requests that were in flight do not extend the cool-down
    if p.out_until and not p.probation:
        p = Passive(probation=True)  # the cool-down is over: the old streak is forgotten
    if client is None:
        if p.probation:
            return Passive(out_until=now + cooldown)
        after = Passive(p.failures + 1, p.clients, 0.0, p.probation)
    elif client in p.clients:
        return p  # the same client again: it counts once
    else:
        after = Passive(p.failures, p.clients | {client}, 0.0, p.probation)
    if after.count >= max(1, threshold):
        return Passive(out_until=now + cooldown)
    return after
