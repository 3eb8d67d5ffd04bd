"""The proxy's access log: one line per request, JSON or the combined format.

The traffic path only appends a tuple to a list; batches of them go to a writer thread that
formats and writes the lines. Beyond CAPACITY lines not yet written, a line is dropped and
counted (`gslb_proxy_access_log_dropped_total`): a slow disk never slows the requests down.
`reopen()` (SIGUSR1, after logrotate renamed the file) makes the writer open the path again;
lines queued before it go to the old file, lines after it to the new one. Path "-" is stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from typing import IO, Final

from gslb.proxy.stats import ProxyStats

log = logging.getLogger(__name__)

CAPACITY = 16384  # lines waiting for the writer before new ones are dropped
BATCH = 512  # lines handed to the writer at once at most
HAND_OVER_DELAY = 0.05  # seconds a line waits for its batch at most
REQUEST_ID_HEADER = b"X-Request-Id"
_REQUEST_ID = re.compile(rb"[!-~]{1,128}")  # printable ASCII, no spaces, bounded

# (time, client, method, host, path, version, status, bytes, duration, backend, retries,
#  request id, referer, user agent)
Entry = tuple[float, str, bytes, bytes, bytes, str, int, int, float, str, int, bytes, bytes, bytes]

_REOPEN: Final = "reopen"
_STOP: Final = "stop"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def request_id(sent: bytes | None) -> bytes:
    """The client's X-Request-Id when it is printable ASCII of at most 128 bytes, else a new
    random one (32 hex digits)."""
    if sent is not None and _REQUEST_ID.fullmatch(sent):
        return sent
    return os.urandom(16).hex().encode()


_PLAIN = re.compile(rb"[ !#-\[\]-~]*")  # printable ASCII that JSON needs no escape for


def _json_string(value: bytes) -> str:
    """A JSON string for header bytes: taken as is when plain, else escaped (latin-1)."""
    if _PLAIN.fullmatch(value):
        return '"' + value.decode("ascii") + '"'
    return json.dumps(value.decode("latin-1"), ensure_ascii=True)


class _Clock:
    """Formats the seconds part of time stamps once per second, not once per line."""

    __slots__ = ("_clf", "_iso", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._iso = ""
        self._clf = ""

    def _tick(self, second: int) -> None:
        g = time.gmtime(second)
        self._second = second
        self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", g)
        self._clf = (
            f"{g.tm_mday:02d}/{_MONTHS[g.tm_mon - 1]}/{g.tm_year:04d}:"
            f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} +0000"
        )

    def iso(self, t: float) -> str:
        second = int(t)
        if second != self._second:
            self._tick(second)
        return f"{self._iso}.{int(t % 1 * 1000):03d}Z"

    def clf(self, t: float) -> str:
        second = int(t)
        if second != self._second:
            self._tick(second)
        return self._clf


_clock = _Clock()  # used by the writer thread only


def json_line(e: Entry) -> str:
    # Written by hand rather than with json.dumps of a dict: a third of the cost, and the
    # keys and their order are fixed. Strings from the client go through _json_string.
    return (
        f'{{"time": "{_clock.iso(e[0])}", "client": "{e[1]}", '
        f'"method": {_json_string(e[2])}, "host": {_json_string(e[3])}, '
        f'"path": {_json_string(e[4])}, "protocol": "{e[5]}", "status": {e[6]}, '
        f'"bytes": {e[7]}, "duration": {round(e[8], 6)!r}, "backend": "{e[9]}", '
        f'"retries": {e[10]}, "request_id": {_json_string(e[11])}, '
        f'"referer": {_json_string(e[12])}, "user_agent": {_json_string(e[13])}}}'
    )


def _quoted(value: bytes) -> str:
    """A value inside double quotes of a combined line: quotes, backslashes and control
    bytes escaped, "-" when empty."""
    if not value:
        return "-"
    if _PLAIN.fullmatch(value):
        return value.decode("ascii")
    out = []
    for byte in value:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def combined_line(e: Entry) -> str:
    """Apache/nginx "combined", then key=value fields: host, duration, backend, retries, id."""
    stamp = _clock.clf(e[0])
    request = _quoted(e[2] + b" " + e[4] + b" " + e[5].encode()) if e[2] else "-"
    return (
        f'{e[1] or "-"} - - [{stamp}] "{request}" {e[6]} {e[7] or "-"} '
        f'"{_quoted(e[12])}" "{_quoted(e[13])}" host="{_quoted(e[3])}" '
        f"duration={e[8]:.6f} backend={e[9]} retries={e[10]} request_id={_quoted(e[11])}"
    )


FORMATS = {"json": json_line, "combined": combined_line}


class AccessLog:
    """Open with `start()`; `log()` from the event loop; `close()` at the end.

    The loop side appends to a plain list and hands it to the writer as one batch when it
    holds BATCH lines or HAND_OVER_DELAY after its first line: one queue operation and one
    thread wake per batch, not per request. The bound counts lines accepted but not yet
    written (the loop writes `_accepted`, the writer `_written`; each has one writer).
    """

    def __init__(self, path: str, fmt: str, stats: ProxyStats, capacity: int = CAPACITY) -> None:
        self.path = path
        self._format = FORMATS[fmt]
        self._stats = stats
        self._capacity = capacity
        self._pending: list[Entry] = []
        self._accepted = 0
        self._written = 0
        self._timer: asyncio.TimerHandle | None = None
        self._batches: queue.Queue[list[Entry] | str] = queue.Queue()  # bounded by _capacity
        self._file: IO[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the file (raises OSError when it cannot be) and start the writer."""
        self._file = self._open()
        self._thread = threading.Thread(target=self._run, name="gslb-access-log", daemon=True)
        self._thread.start()

    def _open(self) -> IO[str]:
        if self.path == "-":
            return sys.stdout
        return open(self.path, "a", encoding="ascii", errors="replace", buffering=1 << 16)

    def log(self, entry: Entry) -> None:
        """Take one line; never blocks (beyond the bound it is dropped and counted)."""
        if self._accepted - self._written >= self._capacity:
            self._stats.access_log_dropped += 1
            return
        self._accepted += 1
        pending = self._pending
        pending.append(entry)
        if len(pending) >= BATCH:
            self._hand_over()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a script, a test): hand over at once
                self._hand_over()
            else:
                self._timer = loop.call_later(HAND_OVER_DELAY, self._hand_over)

    def _hand_over(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._batches.put(self._pending)
            self._pending = []

    def reopen(self) -> None:
        """Open the path again (logrotate's postrotate: SIGUSR1). Lines taken before go to
        the old file, lines after to the new one."""
        self._hand_over()
        self._batches.put(_REOPEN)

    async def flush(self) -> None:
        """Returns once every line taken so far is written."""
        self._hand_over()
        await asyncio.to_thread(self._batches.join)

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        self._hand_over()
        self._batches.put(_STOP)
        await asyncio.to_thread(thread.join)

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        batches = self._batches
        while True:
            item = batches.get()
            if isinstance(item, list):
                fmt = self._format
                self._write([fmt(entry) for entry in item])
                self._written += len(item)
            elif item == _REOPEN:
                self._do_reopen()
            batches.task_done()
            if item == _STOP:
                break
        self._close_file()

    def _write(self, lines: list[str]) -> None:
        f = self._file
        if not lines or f is None:
            return
        try:
            f.write("\n".join(lines) + "\n")
            f.flush()
        except (OSError, ValueError) as e:
            log.warning("access log %s: %s", self.path, e)

    def _do_reopen(self) -> None:
        if self.path == "-":
            return
        try:
            new = self._open()
        except OSError as e:
            log.error("access log %s cannot be reopened, keeping the old file: %s", self.path, e)
            return
        self._close_file()
        self._file = new
        log.info("access log %s reopened", self.path)

    def _close_file(self) -> None:
        f, self._file = self._file, None
        if f is not None and f is not sys.stdout:
            try:
                f.close()
            except OSError as e:
                log.warning("access log %s: %s", self.path, e)
