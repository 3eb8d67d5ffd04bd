"""How `gslb demo` stops: on SIGINT, SIGTERM or SIGHUP at any moment, with its temporary
directory removed on the way out.

While the event loop runs, the signals set an event and the demo stops its children in
order. Before and after it, SIGINT raises KeyboardInterrupt as usual, and SIGTERM and
SIGHUP raise `Terminated` (their default action would end the process on the spot and
leave the temporary directory behind). The directory is removed with those signals
blocked, so a second one cannot cut the removal short; it is delivered afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RAISING = (signal.SIGTERM, signal.SIGHUP)
Handler = Callable[[int, FrameType | None], Any] | int | None  # as signal.getsignal


class Terminated(BaseException):
    """SIGTERM or SIGHUP outside the event loop (a BaseException, as KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    for sig in RAISING:
        signal.signal(sig, signal.SIG_IGN)  # once: the stop has begun
    raise Terminated(signum)


def _restore(sig: signal.Signals, handler: Handler) -> None:
    # None: the handler was not set from Python; the default is the nearest thing.
    signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def terminated_raises() -> Iterator[None]:
    """Inside, SIGTERM and SIGHUP raise `Terminated`; the previous handlers are restored."""
    previous = {sig: signal.signal(sig, _raise) for sig in RAISING}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            _restore(sig, handler)


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    """A new directory under the temporary directory ($TMPDIR), removed on the way out."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        with signals_blocked():
            shutil.rmtree(path, ignore_errors=True)


def stop_on_signals(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event
) -> dict[signal.Signals, Handler]:
    """Each stop signal sets `stop`; the handlers it replaces, for `restore_signals`."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return previous


def restore_signals(
    loop: asyncio.AbstractEventLoop, previous: dict[signal.Signals, Handler]
) -> None:
    """Undo `stop_on_signals`: asyncio alone would leave SIGTERM and SIGHUP at their
    default action (the process ends, its directory stays)."""
    for sig, handler in previous.items():
        loop.remove_signal_handler(sig)
        _restore(sig, handler)
