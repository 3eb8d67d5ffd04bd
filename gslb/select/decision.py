"""What selection decides, as values: the `Decision` and the trace `gslb explain` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from gslb.plan import RRSet

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True, slots=True)
class Step:
    step: str
    detail: str


@dataclass(frozen=True, slots=True)
class Steering:
    """What the steering of a service decided, for metrics and explain."""

    service: str
    region: str | None
    addresses: tuple[str, ...]
    fail_open: bool


@dataclass(frozen=True, slots=True)
class Decision:
    rcode: int
    authoritative: bool
    answer: tuple[RRSet, ...] = ()
    authority: tuple[RRSet, ...] = ()
    additional: tuple[RRSet, ...] = ()
    scope: int = 0  # the ECS scope prefix the answer depended on
    zone: str | None = None
    steering: Steering | None = None
    trace: tuple[Step, ...] = field(default=(), compare=False)


class Trace:
    """Collects explain steps; a no-op unless explaining, to keep the query path lean."""

    __slots__ = ("enabled", "steps")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.steps: list[Step] = []

    def __call__(self, step: str, detail: str) -> None:
        if self.enabled:
            self.steps.append(Step(step, detail))


QUIET = Trace(False)  # shared by every untraced call: it never records anything
