"""The proxy's access log: one line per request, JSON or the combined format.

Buffered as nginx's `access_log ... buffer= flush=`: the event loop formats each line and
appends it to a buffer; a full buffer (BUFFER characters) or one FLUSH_INTERVAL old goes to a
writer thread as one chunk of bytes, which it writes with one `os.write` (the GIL released
meanwhile) at its next look (gslb.proxy.logwriter: every 0.1 s, sooner when half the bound
is waiting). The thread touches no line and no Python object of the traffic path, so it never
holds the GIL long enough to stall the loop, and a slow disk stalls only the thread. Beyond
CAPACITY lines taken but not yet written a line is dropped and counted
(`gslb_proxy_access_log_dropped_total`): memory stays bounded when the disk cannot keep up.
`reopen()` (SIGUSR1, after logrotate renamed the file) makes the writer open the path again;
lines taken before it go to the old file, lines after it to the new one. Path "-" is stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time

from gslb.proxy.logwriter import LogWriter
from gslb.proxy.stats import ProxyStats

CAPACITY = 16384  # lines taken but not yet written, before new ones are dropped
BUFFER = 64 * 1024  # characters of lines handed to the writer as one chunk
FLUSH_INTERVAL = 0.1  # seconds a line waits for its chunk to fill at most
REQUEST_ID_HEADER = b"X-Request-Id"
_REQUEST_ID = re.compile(rb"[!-~]{1,128}")  # printable ASCII, no spaces, bounded

# (time, client, method, host, path, version, status, bytes, duration, backend, retries,
#  request id, referer, user agent)
Entry = tuple[float, str, bytes, bytes, bytes, str, int, int, float, str, int, bytes, bytes, bytes]

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
    if value.isalnum() or _PLAIN.fullmatch(value):  # isalnum: ids of hex digits, quickly
        return '"' + value.decode("ascii") + '"'
    return json.dumps(value.decode("latin-1"), ensure_ascii=True)


_JSON_CACHE_SIZE = 1024
_json_cache: dict[bytes, str] = {}  # the event loop's only


def _json_cached(value: bytes) -> str:
    """`_json_string` of a value that repeats from request to request (method, host, path,
    referer, user agent): one dict probe instead of a match and a decode. Emptied when full,
    so it stays bounded whatever clients send."""
    s = _json_cache.get(value)
    if s is None:
        if len(_json_cache) >= _JSON_CACHE_SIZE:
            _json_cache.clear()
        s = _json_cache[value] = _json_string(value)
    return s


class _Clock:
    """Formats time stamps: the seconds part once per second, an ISO stamp once per
    millisecond (many lines share one at full speed), not once per line."""

    __slots__ = ("_clf", "_iso", "_iso_ms", "_ms", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._iso = ""
        self._clf = ""
        self._ms = -1
        self._iso_ms = ""

    def _tick(self, second: int) -> None:
        g = time.gmtime(second)
        self._second = second
        self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", g)
        self._clf = (
            f"{g.tm_mday:02d}/{_MONTHS[g.tm_mon - 1]}/{g.tm_year:04d}:"
            f"{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d} +0000"
        )

    def iso(self, t: float) -> str:
        ms = int(t * 1000)
        if ms != self._ms:
            second = ms // 1000
            if second != self._second:
                self._tick(second)
            self._ms = ms
            self._iso_ms = f"{self._iso}.{ms % 1000:03d}Z"
        return self._iso_ms

    def clf(self, t: float) -> str:
        second = int(t)
        if second != self._second:
            self._tick(second)
        return self._clf


_clock = _Clock()  # used by the event loop only


def json_line(e: Entry) -> str:
    # Written by hand rather than with json.dumps of a dict: a third of the cost, and the
    # keys and their order are fixed. Strings from the client go through _json_string.
    return (
        f'{{"time": "{_clock.iso(e[0])}", "client": "{e[1]}", '
        f'"method": {_json_cached(e[2])}, "host": {_json_cached(e[3])}, '
        f'"path": {_json_cached(e[4])}, "protocol": "{e[5]}", "status": {e[6]}, '
        f'"bytes": {e[7]}, "duration": {round(e[8], 6)!r}, "backend": "{e[9]}", '
        f'"retries": {e[10]}, "request_id": {_json_string(e[11])}, '
        f'"referer": {_json_cached(e[12])}, "user_agent": {_json_cached(e[13])}}}'
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

    The loop formats each line as it is taken, into a list of lines; a list of BUFFER
    characters, or one FLUSH_INTERVAL old, is joined and handed to the writer as one chunk.
    The bound counts lines taken but not yet written: `_accepted` (the loop's) against the
    writer's `written`.
    """

    def __init__(
        self,
        path: str,
        fmt: str,
        stats: ProxyStats,
        capacity: int | None = None,
        buffer: int | None = None,
    ) -> None:
        self.path = path
        self._format = FORMATS[fmt]
        self._stats = stats
        # Read here, not as defaults, so that a test can lower them for a whole proxy.
        self._capacity = CAPACITY if capacity is None else capacity
        self._buffer = BUFFER if buffer is None else buffer
        self._lines: list[str] = []
        self._size = 0  # characters in _lines, newlines left out
        self._accepted = 0
        self._timer: asyncio.TimerHandle | None = None
        self._writer = LogWriter(path)

    def start(self) -> None:
        """Open the file (raises OSError when it cannot be) and start the writer."""
        self._writer.start()

    def log(self, entry: Entry) -> None:
        """Take one line; never blocks (beyond the bound it is dropped and counted)."""
        if self._accepted - self._writer.written >= self._capacity:
            self._stats.access_log_dropped += 1
            return
        self._accepted += 1
        line = self._format(entry)
        lines = self._lines
        lines.append(line)
        self._size += len(line)
        if self._size >= self._buffer:
            self._hand_over()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a script, a test): hand over at once
                self._hand_over()
            else:
                self._timer = loop.call_later(FLUSH_INTERVAL, self._hand_over)

    def _hand_over(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines = self._lines
        if lines:
            lines.append("")  # the last line's newline
            writer = self._writer
            writer.put("\n".join(lines).encode("ascii", "replace"), len(lines) - 1)
            self._lines = []
            self._size = 0
            if self._accepted - writer.written > self._capacity // 2:
                writer.wake()  # the writer's next look may come too late for the bound

    def reopen(self) -> None:
        """Open the path again (logrotate's postrotate: SIGUSR1). Lines taken before go to
        the old file, lines after to the new one."""
        self._hand_over()
        self._writer.reopen()

    async def flush(self) -> None:
        """Returns once every line taken so far is written."""
        self._hand_over()
        await self._writer.flush()

    async def close(self) -> None:
        """Write every line taken so far, then close the file."""
        self._hand_over()
        await self._writer.close()
