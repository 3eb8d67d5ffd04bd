"""The access log's writer thread (gslb/proxy/logwriter.py) against a real file: chunks are
written without a command, and an idle writer sleeps instead of looking ten times a second."""

from __future__ import annotations

import time
from pathlib import Path

from gslb.proxy.logwriter import POLL_INTERVAL, LogWriter


def wait_for_text(path: Path, text: bytes, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_bytes():
        assert time.monotonic() < deadline, f"{text!r} never reached {path}"
        time.sleep(0.01)


async def test_an_idle_writer_does_not_wake_and_a_chunk_wakes_it(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    writer = LogWriter(str(path))
    writer.start()
    try:
        writer.put(b"first\n", 1)  # no flush: the chunk itself gets the thread going
        wait_for_text(path, b"first\n")
        deadline = time.monotonic() + 5
        while not writer._idle:  # the look after the write finds nothing: asleep from then
            assert time.monotonic() < deadline, "the writer never went idle"
            time.sleep(0.01)
        looks = writer.looks
        time.sleep(POLL_INTERVAL * 5)  # a polling writer would look five more times
        assert writer.looks == looks
        writer.put(b"second\n", 1)  # after a quiet spell: written without a command either
        wait_for_text(path, b"second\n")
        assert writer.written == 2
    finally:
        await writer.close()
    assert path.read_bytes() == b"first\nsecond\n"
