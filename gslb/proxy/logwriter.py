"""A thread that appends chunks of bytes to a log file, so that a slow disk never blocks the
event loop (gslb.proxy.accesslog hands it whole buffers, never single lines).

Each chunk is written with `os.write` (the GIL is released during the system call), so the
thread holds the GIL for a few microseconds per chunk: it never competes with the loop for
long. `written` counts the lines of the chunks written so far (only the thread adds to it):
the loop side compares it with the lines it took to bound what is waiting. `reopen()` opens
the path again (logrotate), `flush()` waits until everything put before it is written.
Path "-" is the process's standard output (`sys.stdout`, as it is when a chunk is written).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sys
import threading
from concurrent.futures import Future

log = logging.getLogger(__name__)

_REOPEN = "reopen"
_STOP = "stop"
# A chunk and the number of lines in it; a command; or a future set once what came before
# it is written.
_Item = tuple[bytes, int] | str | Future[None]


class LogWriter:
    """Open with `start()`; `put()` chunks from one thread (the event loop); `close()`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.written = 0  # lines written (or lost to a write error): added to by the thread
        self._fd: int | None = None  # None: standard output
        self._items: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._failing = False  # a write failed: warn again only once one succeeded

    def start(self) -> None:
        """Open the file (raises OSError when it cannot be) and start the thread."""
        self._fd = self._open()
        self._thread = threading.Thread(target=self._run, name="gslb-access-log", daemon=True)
        self._thread.start()

    def _open(self) -> int | None:
        if self.path == "-":
            return None
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def put(self, chunk: bytes, lines: int) -> None:
        """Queue `chunk` (`lines` lines) for writing; never blocks."""
        self._items.put((chunk, lines))

    def reopen(self) -> None:
        self._items.put(_REOPEN)

    async def flush(self) -> None:
        """Returns once every chunk put so far is written."""
        if self._thread is None:
            return
        done: Future[None] = Future()
        self._items.put(done)
        await asyncio.wrap_future(done)

    async def close(self) -> None:
        """Write what is queued, close the file, end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._items.put(_STOP)
        await asyncio.to_thread(thread.join)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        items = self._items
        while True:
            item = items.get()
            if isinstance(item, tuple):
                self._write(item[0])
                self.written += item[1]
            elif isinstance(item, Future):
                item.set_result(None)
            elif item == _REOPEN:
                self._reopen()
            else:  # _STOP
                break
        self._close_file()

    def _write(self, chunk: bytes) -> None:
        try:
            fd = self._fd
            if fd is None:
                sys.stdout.write(chunk.decode("ascii", "replace"))
                sys.stdout.flush()
            else:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        except (OSError, ValueError) as e:
            if not self._failing:
                log.warning("access log %s: %s", self.path, e)
            self._failing = True
            return
        self._failing = False

    def _reopen(self) -> None:
        if self.path == "-":
            return
        try:
            new = self._open()
        except OSError as e:
            log.error("access log %s cannot be reopened, keeping the old file: %s", self.path, e)
            return
        self._close_file()
        self._fd = new
        log.info("access log %s reopened", self.path)

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError as e:
                log.warning("access log %s: %s", self.path, e)
