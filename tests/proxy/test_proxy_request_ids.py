"""New request ids, drawn in batches (gslb.proxy.request_ids), without sockets."""

from __future__ import annotations

import re

from gslb.proxy.request_ids import RequestIds


def test_ids_are_32_hex_digits_and_unique_across_batches() -> None:
    ids = RequestIds(batch=4)
    drawn = [ids.new() for _ in range(4 * 50 + 3)]  # 51 batches, the last one begun
    assert all(re.fullmatch(rb"[0-9a-f]{32}", i) for i in drawn)
    assert len(set(drawn)) == len(drawn)


def test_two_servers_draw_different_ids() -> None:
    assert RequestIds().new() != RequestIds().new()
