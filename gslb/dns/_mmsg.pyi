# The C module gslb/dns/_mmsg.c (built by `pip install`, Linux only); its pure-Python
# twin is gslb/dns/mmsg.py's _CtypesBatch.
from collections.abc import Callable

class Batch:
    """recvmmsg/sendmmsg buffers of one socket: `size` datagrams of up to `max_query`
    bytes in, as many replies of up to `max_reply` bytes out."""

    def __init__(self, fd: int, size: int, max_query: int, max_reply: int) -> None: ...
    def receive(self) -> int:
        """Read a batch: the number of datagrams, or -errno (-EAGAIN: none waiting)."""
    def wire(self, i: int, /) -> bytes:
        """Datagram i of the batch as received (cut at max_query)."""
    def name(self, i: int, /) -> bytes:
        """The raw sockaddr datagram i came from."""
    def queue(self, i: int, reply: bytes, /) -> bool:
        """Send `reply` to datagram i's sender at the next send(); False: it does not fit."""
    def answer_cached(self, cached: Callable[[bytes], bytes | None], /) -> list[int]:
        """Queue cached(wire) of every datagram; the rest: i where it gave None, -1 - i
        where it raised an Exception or gave what cannot be sent."""
    def send(self) -> tuple[int, int]:
        """Send the queued replies in datagram order: (failed and skipped, dropped because
        the send buffer was full)."""
