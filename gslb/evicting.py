"""A bounded map that evicts one entry at a time (CLOCK, "second chance"), not all at once.

The DNS tables (answers, parsed queries, client entries, rankings) used to empty
themselves whole when full, so a burst of new keys (a resolver's new clients, a flood of
random names) threw the hot set away and every hot query paid a miss to refill it. CLOCK
keeps the entries in a ring of slots, each with a reference bit that a hit sets; to make
room, a hand sweeps the ring, clearing set bits and evicting the first entry whose bit is
clear. An entry asked for again within one sweep survives, and a new entry starts with
its bit clear, so one-off keys go before the hot ones (a burst only sweeps past them).
A hit costs a dictionary lookup and one byte write: no list to reorder, as LRU would have.

Two bounds: entries, and bytes, each entry costed by the size its owner gives (the bytes
it holds) plus a fixed overhead per entry for the objects around them, measured by the
owner (bench/dns/cache_costs.py). Not thread-safe, by design: one event loop owns it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_FREE = object()  # the key of a slot that holds nothing


class ClockCache(Generic[K, V]):
    """At most `max_entries` entries and `max_bytes` bytes (None: no byte bound)."""

    __slots__ = (
        "_costs",
        "_free",
        "_hand",
        "_keys",
        "_referenced",
        "_slots",
        "_values",
        "bytes",
        "evictions",
        "max_bytes",
        "max_entries",
        "on_evict",
        "overhead",
    )

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int | None = None,
        overhead: int = 0,
        on_evict: Callable[[V], None] | None = None,
    ) -> None:
        self.max_entries = max(1, max_entries)
        self.max_bytes = max_bytes
        self.overhead = overhead  # bytes counted per entry on top of its own size
        self.on_evict = on_evict  # told of each entry evicted (not of pop() or clear())
        self.bytes = 0  # what the entries held now are costed at
        self.evictions = 0
        self._slots: dict[K, int] = {}  # key -> its slot in the ring
        self._keys: list[object] = []  # per slot: its key, or _FREE
        self._values: list[V | None] = []
        self._costs: list[int] = []
        self._referenced = bytearray()  # per slot: hit since the hand last passed
        self._free: list[int] = []  # slots emptied by pop()
        self._hand = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: K) -> bool:
        return key in self._slots

    def get(self, key: K) -> V | None:
        """The value of `key` (and a second chance for it), or None."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        self._referenced[slot] = 1
        return self._values[slot]

    def peek(self, key: K) -> V | None:
        """The value of `key` without counting a hit."""
        slot = self._slots.get(key)
        return None if slot is None else self._values[slot]

    def put(self, key: K, value: V, size: int = 0) -> None:
        """Keep `value` under `key`, costed at `size` bytes plus the overhead, evicting
        others as the bounds require (an entry larger than the byte bound is not kept)."""
        cost = size + self.overhead
        if self.max_bytes is not None and cost > self.max_bytes:
            self.pop(key)
            return
        slot = self._slots.get(key)
        if slot is not None:  # replaced in place: it keeps its slot and its bit
            self.bytes += cost - self._costs[slot]
            self._values[slot] = value
            self._costs[slot] = cost
            self._make_room(0, keep=slot)
            return
        self._make_room(cost, keep=-1)
        if self._free:
            slot = self._free.pop()
            self._keys[slot] = key
            self._values[slot] = value
            self._costs[slot] = cost
            self._referenced[slot] = 0
        else:
            slot = len(self._keys)
            self._keys.append(key)
            self._values.append(value)
            self._costs.append(cost)
            self._referenced.append(0)
        self._slots[key] = slot
        self.bytes += cost

    def pop(self, key: K) -> V | None:
        slot = self._slots.pop(key, None)
        if slot is None:
            return None
        value = self._values[slot]
        self._release(slot)
        self._free.append(slot)
        return value

    def clear(self) -> None:
        self._slots.clear()
        self._keys.clear()
        self._values.clear()
        self._costs.clear()
        self._referenced.clear()
        self._free.clear()
        self._hand = 0
        self.bytes = 0

    def values(self) -> Iterator[V]:
        for slot in self._slots.values():
            value = self._values[slot]
            assert value is not None
            yield value

    def _make_room(self, cost: int, keep: int) -> None:
        """Evict until one more entry of `cost` fits (none more when `keep` is a slot
        being replaced: then only the bytes count, and that slot is never evicted)."""
        limit = self.max_bytes
        adding = keep < 0
        while self._slots and (
            (adding and len(self._slots) >= self.max_entries)
            or (limit is not None and self.bytes + cost > limit)
        ):
            if not self.evict(keep):
                return

    def evict(self, keep: int = -1) -> bool:
        """Evict one entry (never the one in slot `keep`); False when there is none."""
        keys, referenced = self._keys, self._referenced
        ring = len(keys)
        if not ring:
            return False
        # Two turns at most: the first clears every bit it passes, so the second finds one.
        for _ in range(2 * ring + 1):
            slot = self._hand
            self._hand = (slot + 1) % ring
            if slot == keep or keys[slot] is _FREE:
                continue
            if referenced[slot]:
                referenced[slot] = 0
                continue
            del self._slots[keys[slot]]  # type: ignore[arg-type]
            value = self._values[slot]
            self._release(slot)
            self._free.append(slot)
            self.evictions += 1
            if self.on_evict is not None and value is not None:
                self.on_evict(value)
            return True
        return False

    def _release(self, slot: int) -> None:
        self.bytes -= self._costs[slot]
        self._keys[slot] = _FREE
        self._values[slot] = None
        self._costs[slot] = 0
        self._referenced[slot] = 0
