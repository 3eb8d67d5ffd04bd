"""What the answer cache's entries cost in memory, and how `dns.cache_memory` is shared.

Each table entry is costed at the bytes it holds (keys, reply parts) plus a fixed
overhead for the Python objects around them: the entry's own object, the dictionary
slot and the ring slot of its table (gslb/evicting.py), and what hangs off it. The
overheads are measured, not guessed: `bench/dns/cache_costs.py` fills each table with
distinct entries under tracemalloc and reports the bytes allocated per entry minus the
bytes counted; the figures below are its output on CPython 3.11 (64-bit), rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from gslb.dns.answers import Variant

DEFAULT_CACHE_MEMORY: Final = 256_000_000  # bytes, `dns.cache_memory`

# Overheads per entry, in bytes: `bench/dns/cache_costs.py` measured 294 (queries), 246
# (questions), 262 (clients), 365 per answer entry and 71 per variant beyond its bytes
# (with bodies shared between equal replies, so counting each variant's body is on the
# safe side).
KNOWN: Final = 300  # a parsed query (Known + Parsed, their fields)
ENTRY: Final = 370  # an answer entry (Entry, its list, its first Variant's object)
VARIANT: Final = 80  # each variant's object besides its body and heads
CLIENT: Final = 270  # a client entry (Client and its address; locations are shared)
PEER: Final = 100  # the key of a client entry made from a peer address, not ECS bytes
QUESTION: Final = 250  # a question (its key's object, the Question and its name's object)


def variant(value: Variant) -> int:
    """The bytes a variant holds (its body and heads), plus its overhead."""
    return len(value.body) + 4 * len(value.heads[0]) + VARIANT


@dataclass(frozen=True, slots=True)
class Shares:
    """Bytes per table (None: no byte bound)."""

    queries: int | None
    answers: int | None
    clients: int | None
    questions: int | None


def shares(total: int | None) -> Shares:
    """`dns.cache_memory` split by what the tables hold under a resolver's traffic: parsed
    queries are the most numerous (one per question and client network), then answers
    and client networks; questions are small."""
    if total is None:
        return Shares(None, None, None, None)
    return Shares(
        queries=total * 45 // 100,
        answers=total * 30 // 100,
        clients=total * 20 // 100,
        questions=total * 5 // 100,
    )
