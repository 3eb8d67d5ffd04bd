"""ClockCache: bounded by entries and bytes, one eviction at a time, hot keys kept."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gslb.evicting import ClockCache


def test_both_bounds_hold_under_a_million_distinct_inserts() -> None:
    evicted: list[int] = []
    cache: ClockCache[int, bytes] = ClockCache(
        max_entries=5000, max_bytes=300_000, overhead=40, on_evict=lambda v: evicted.append(1)
    )
    for i in range(1_000_000):
        cache.put(i, b"x", size=i % 50)
        if i % 997 == 0:
            assert len(cache) <= 5000
            assert cache.bytes <= 300_000
    assert len(cache) <= 5000 and cache.bytes <= 300_000
    assert cache.evictions == len(evicted) >= 1_000_000 - 5000
    # What the entries held are costed at adds up to what it counts.
    assert cache.bytes == sum(40 + k % 50 for k in range(1_000_000) if k in cache)


def burst_with_hot_keys(get: object, put: object, hot: int, burst: int) -> int:
    """Misses of the hot keys while a burst of new keys goes in, each hot key asked once
    every `hot` new keys (as a popular name is, between a resolver's one-off names)."""
    assert callable(get) and callable(put)
    for key in range(hot):
        put(("hot", key), key)
    misses = 0
    for i in range(burst):
        put(("new", i), i)
        key = ("hot", i % hot)
        if get(key) is None:
            misses += 1
            put(key, i % hot)
    return misses


def test_a_hot_set_survives_a_burst_of_new_keys_which_clear_all_does_not() -> None:
    cache: ClockCache[tuple[str, int], int] = ClockCache(max_entries=1000)
    assert burst_with_hot_keys(cache.get, cache.put, hot=100, burst=20_000) == 0
    assert cache.evictions >= 19_000

    table: dict[tuple[str, int], int] = {}

    def clear_all_put(key: tuple[str, int], value: int) -> None:
        if len(table) >= 1000:
            table.clear()  # the answer cache's former policy
        table[key] = value

    assert burst_with_hot_keys(table.get, clear_all_put, hot=100, burst=20_000) > 1000


def test_replacing_an_entry_keeps_it_and_recosts_it() -> None:
    cache: ClockCache[str, str] = ClockCache(max_entries=3, max_bytes=100)
    cache.put("a", "1", 10)
    cache.put("b", "2", 10)
    cache.put("a", "3", 50)
    assert cache.get("a") == "3" and cache.bytes == 60 and len(cache) == 2
    cache.put("c", "4", 45)  # over the bytes: one goes, the new one stays
    assert "c" in cache and cache.bytes <= 100
    assert cache.pop("c") == "4" and "c" not in cache
    cache.put("big", "x", 101)  # larger than the whole bound: not kept
    assert "big" not in cache and cache.bytes <= 100
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and cache.get("a") is None


def test_an_entry_asked_for_since_the_hand_passed_goes_last() -> None:
    cache: ClockCache[int, int] = ClockCache(max_entries=4)
    for k in range(4):
        cache.put(k, k)
    cache.get(0)
    cache.get(2)
    cache.put(4, 4)  # 1 is the first unreferenced one the hand finds
    assert sorted(k for k in range(5) if k in cache) == [0, 2, 3, 4]
    cache.put(5, 5)  # then 3 (0 and 2 lost their second chance on the way)
    assert sorted(k for k in range(6) if k in cache) == [0, 2, 4, 5]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "get", "pop"]), st.integers(0, 30), st.integers(0, 40)),
        max_size=300,
    ),
    st.integers(1, 12),
    st.none() | st.integers(20, 200),
)
def test_it_is_a_map_of_what_it_holds_within_its_bounds(
    ops: list[tuple[str, int, int]], max_entries: int, max_bytes: int | None
) -> None:
    cache: ClockCache[int, int] = ClockCache(
        max_entries=max_entries, max_bytes=max_bytes, overhead=5
    )
    model: dict[int, int] = {}  # the last value put under each key
    for op, key, value in ops:
        if op == "put":
            cache.put(key, value, size=value)
            model[key] = value
        elif op == "pop":
            assert cache.pop(key) in (None, model.pop(key, None))
        else:
            got = cache.get(key)
            assert got is None or got == model[key]  # evicted, or the right value
        assert len(cache) <= max_entries
        assert max_bytes is None or cache.bytes <= max_bytes
        assert cache.bytes == sum(5 + model[k] for k in model if k in cache)
        assert set(cache.values()) <= set(model.values())
