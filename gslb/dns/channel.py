"""Messages of any size between the runtime and its DNS workers, over a non-blocking pipe.

The pipe is a socket pair the event loop watches, so it is non-blocking at both ends (the
loop makes it so), and one write or read moves at most what the socket buffer holds
(about 200 KB): a 5,000-endpoint plan (over 500 KB pickled) never fits in one.
`multiprocessing.Connection.send_bytes` then raises `BlockingIOError` half-way, and
`recv_bytes` on a partial message raises too. So each end frames messages itself:

* `Frames` (pure): bytes in, whole messages out; an 8-byte length before each message.
* `Channel`: one end of the pipe on the running loop. `send` queues a framed message and
  writes what the socket takes now, the rest when the loop says it is writable; incoming
  bytes go through `Frames` and each whole message to `on_message`. The outbox is bounded:
  an end that stops reading (a wedged worker) is closed, not fed forever.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable

LENGTH_BYTES = 8
READ_SIZE = 1 << 20
MAX_OUTBOX = 256 << 20  # bytes queued for a peer that does not read before giving up on it


class FrameError(ValueError):
    """A length prefix larger than any message we send: the stream is not ours."""


class Frames:
    """Splits a byte stream into the messages written with `frame`."""

    def __init__(self, max_message: int = MAX_OUTBOX) -> None:
        self._buffer = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by `data` (maybe none)."""
        buffer = self._buffer
        buffer += data
        messages = []
        start = 0
        while len(buffer) - start >= LENGTH_BYTES:
            size = int.from_bytes(buffer[start : start + LENGTH_BYTES], "big")
            if size > self._max:
                raise FrameError(f"message of {size} bytes announced")
            end = start + LENGTH_BYTES + size
            if len(buffer) < end:
                break
            messages.append(bytes(buffer[start + LENGTH_BYTES : end]))
            start = end
        del buffer[:start]
        return messages


def frame(message: bytes) -> bytes:
    return len(message).to_bytes(LENGTH_BYTES, "big") + message


class Channel:
    """One end of a pipe, driven by the running event loop (see the module docstring)."""

    def __init__(
        self,
        fd: int,
        on_message: Callable[[bytes], None],
        on_close: Callable[[], None],
    ) -> None:
        self._fd = fd
        self._on_message = on_message
        self._on_close = on_close
        self._frames = Frames()
        self._outbox: deque[memoryview] = deque()
        self._queued = 0
        self._writing = False
        self._loop = asyncio.get_running_loop()
        self.closed = False
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)

    @property
    def queued(self) -> int:
        """Bytes sent but not yet taken by the socket."""
        return self._queued

    def send(self, message: bytes) -> None:
        if self.closed:
            return
        data = frame(message)
        if self._queued + len(data) > MAX_OUTBOX:
            self.close()  # the peer has not read for hundreds of MB: it is wedged
            return
        self._outbox.append(memoryview(data))
        self._queued += len(data)
        self._flush()

    def _flush(self) -> None:
        outbox = self._outbox
        while outbox:
            head = outbox[0]
            try:
                written = os.write(self._fd, head)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            self._queued -= written
            if written == len(head):
                outbox.popleft()
            else:
                outbox[0] = head[written:]
        if outbox and not self._writing:
            self._loop.add_writer(self._fd, self._flush)
            self._writing = True
        elif not outbox and self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        try:
            messages = self._frames.feed(data)
        except FrameError:
            self.close()
            return
        for message in messages:
            if self.closed:
                return
            self._on_message(message)

    def close(self) -> None:
        """Stop reading and writing (the fd itself belongs to its Connection)."""
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        self._outbox.clear()
        self._queued = 0
        self._on_close()
