"""The proxy's access log: one line per request, JSON or the combined format.

The traffic path only puts a tuple on a bounded queue (`put_nowait`); a writer thread formats
and writes the lines. When the queue is full the line is dropped and counted
(`gslb_proxy_access_log_dropped_total`): a slow disk never slows the requests down.
`reopen()` (SIGUSR1, after logrotate renamed the file) makes the writer open the path again;
lines queued before it go to the old file, lines after it to the new one. Path "-" is stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
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
BATCH = 512  # lines written per write call at most
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


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def json_line(e: Entry) -> str:
    t = e[0]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
    return json.dumps(
        {
            "time": stamp,
            "client": e[1],
            "method": _text(e[2]),
            "host": _text(e[3]),
            "path": _text(e[4]),
            "protocol": e[5],
            "status": e[6],
            "bytes": e[7],
            "duration": round(e[8], 6),
            "backend": e[9],
            "retries": e[10],
            "request_id": _text(e[11]),
            "referer": _text(e[12]),
            "user_agent": _text(e[13]),
        },
        ensure_ascii=True,
    )


def _quoted(value: bytes) -> str:
    """A value inside double quotes of a combined line: quotes, backslashes and control
    bytes escaped, "-" when empty."""
    if not value:
        return "-"
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
    g = time.gmtime(e[0])
    month = _MONTHS[g.tm_mon - 1]
    stamp = (
        f"{g.tm_mday:02d}/{month}/{g.tm_year:04d}:"
        f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} +0000"
    )
    request = _quoted(e[2] + b" " + e[4] + b" " + e[5].encode()) if e[2] else "-"
    return (
        f'{e[1] or "-"} - - [{stamp}] "{request}" {e[6]} {e[7] or "-"} '
        f'"{_quoted(e[12])}" "{_quoted(e[13])}" host="{_quoted(e[3])}" '
        f"duration={e[8]:.6f} backend={e[9]} retries={e[10]} request_id={_quoted(e[11])}"
    )


FORMATS = {"json": json_line, "combined": combined_line}


class AccessLog:
    """Open with `start()`; `log()` from the event loop; `close()` at the end."""

    def __init__(self, path: str, fmt: str, stats: ProxyStats, capacity: int = CAPACITY) -> None:
        self.path = path
        self._format = FORMATS[fmt]
        self._stats = stats
        self._queue: queue.Queue[Entry | str] = queue.Queue(capacity)
        self._file: IO[str] | None = None
        self._thread: threading.Thread | None = None
        self._reopen = threading.Event()

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
        """Queue one line; never blocks (a full queue drops it and counts the drop)."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._stats.access_log_dropped += 1

    def reopen(self) -> None:
        """Open the path again (logrotate's postrotate: SIGUSR1)."""
        self._reopen.set()
        # Wakes the writer, in order with the lines; when the queue is full the writer is
        # busy anyway and checks the flag after each batch.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_REOPEN)

    async def flush(self) -> None:
        """Returns once every line queued so far is written."""
        await asyncio.to_thread(self._queue.join)

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        await asyncio.to_thread(self._queue.put, _STOP)
        await asyncio.to_thread(thread.join)

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        q = self._queue
        running = True
        while running:
            batch = [q.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            lines: list[str] = []
            for item in batch:
                if isinstance(item, tuple):
                    lines.append(self._format(item))
                elif item == _REOPEN:
                    self._write(lines)
                    lines = []
                    self._do_reopen()
                else:
                    running = False
            self._write(lines)
            if self._reopen.is_set():
                self._do_reopen()
            for _ in batch:
                q.task_done()
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
        if not self._reopen.is_set():
            return
        self._reopen.clear()
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
