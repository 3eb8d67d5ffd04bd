"""A thread that appends chunks of bytes to a log file, so that a slow disk never blocks the
event loop (gslb.proxy.accesslog hands it whole buffers, never single lines).

While chunks keep coming the thread looks every POLL_INTERVAL, or at once for a command
(`flush`, `reopen`, `close`, `wake`), and writes every chunk queued by then, each with one
`os.write` (the GIL released during the system call). Putting a chunk then wakes nothing: a
wake per chunk cost far more than the writing (py-spy of bench/proxy's gslb-full under wrk:
17% of the proxy's samples in the hand-off and the woken thread, the woken thread taking the
GIL from the loop each time; 4.5% with a look every POLL_INTERVAL), so the thread takes what
a tenth of a second brought. A look that finds nothing puts the thread to sleep until the
next chunk or command, which wakes it: an idle proxy's writer does not wake at all.
`written` counts the lines of the chunks written so far (only the thread adds to it): the
loop side compares it with the lines it took, to bound what is waiting. Path "-" is the
process's standard output (`sys.stdout` when written).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections import deque
from concurrent.futures import Future

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1  # seconds between the thread's looks at the queue

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
        # deque's append and popleft are atomic: the loop appends, the thread pops
        self._items: deque[_Item] = deque()
        self._wake = threading.Event()
        self._idle = False  # the thread sleeps until woken (set and cleared by the thread)
        self.looks = 0  # times the thread woke up and looked at the queue
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
        """Queue `chunk` (`lines` lines) for the thread's next look; never blocks."""
        self._items.append((chunk, lines))
        if self._idle:  # only the first chunk after a quiet spell wakes the thread
            self._idle = False
            self._wake.set()

    def wake(self) -> None:
        """Have the thread look now rather than at its next interval (much is waiting)."""
        self._wake.set()

    def reopen(self) -> None:
        self._items.append(_REOPEN)
        self._wake.set()

    async def flush(self) -> None:
        """Returns once every chunk put so far is written."""
        if self._thread is None:
            return
        done: Future[None] = Future()
        self._items.append(done)
        self._wake.set()
        await asyncio.wrap_future(done)

    async def close(self) -> None:
        """Write what is queued, close the file, end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._items.append(_STOP)
        self._wake.set()
        await asyncio.to_thread(thread.join)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        items = self._items
        wake = self._wake
        busy = False
        while True:
            if busy:
                wake.wait(POLL_INTERVAL)
            else:
                self._idle = True  # before the look below: a chunk put after it wakes us
                if not items:
                    wake.wait()
                self._idle = False
            wake.clear()
            self.looks += 1
            busy = bool(items)
            while items:
                item = items.popleft()
                if isinstance(item, tuple):
                    self._write(item[0])
                    self.written += item[1]
                elif isinstance(item, Future):
                    item.set_result(None)
                elif item == _REOPEN:
                    self._reopen()
                else:  # _STOP
                    self._close_file()
                    return

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
