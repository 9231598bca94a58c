"""Giving a worker's freed memory back to the operating system after a big batch (standard library only).

A batch of long texts allocates hundreds of MB (word pieces and offsets, padded inputs, activations, logits, the
responses and their JSON) and frees it once answered; glibc's malloc keeps much of what was freed in its heaps and
arenas for reuse, so the worker's RSS would stay hundreds of MB above its baseline for good. ``malloc_trim(0)``
hands the free pages back. It costs tens of milliseconds after a big batch, so it runs only after batches of many
word pieces, whose own cost is seconds (measured in docs/PERFORMANCE.md, "Memory"). Where the C library is not
glibc (musl, macOS) there is nothing to call and releasing does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

# Padded word pieces of a batch above which the handler releases memory; the measurements behind it (RSS after
# batches of each size, the cost of a release): docs/PERFORMANCE.md, "Memory".
DEFAULT_RELEASE_MEMORY_AFTER_PIECES = 8_192
# TorchServe encodes and sends the responses after handle() returns, allocating their JSON then; a second release
# this long after a big batch hands that back too (sending even 16 responses of entities takes well under this).
DEFAULT_SECOND_RELEASE_SECONDS = 2.0

Trim = Callable[[int], int]


class _Array(Protocol):
    @property
    def size(self) -> int: ...


def padded_pieces(inputs: Iterable[_Array]) -> int:
    """Padded word pieces of a batch: the elements of every forward pass's ``input_ids``."""
    return sum(int(array.size) for array in inputs)


def should_release(pieces: int, threshold: int) -> bool:
    """Release after a batch of more than ``threshold`` padded word pieces; a threshold of 0 never releases."""
    return threshold > 0 and pieces > threshold


@functools.cache
def _glibc_malloc_trim() -> Trim | None:
    """glibc's ``malloc_trim``, or None where the process's C library has none (looked up on first use)."""
    try:
        process = ctypes.CDLL(None)  # the symbols already loaded into this process, the C library's among them
    except OSError:
        return None
    trim = getattr(process, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_memory(trim: Trim | None = None) -> float | None:
    """Hand freed heap memory back to the OS; the seconds it took, or None where there is no glibc to ask.

    ``trim`` replaces glibc's ``malloc_trim`` (tests); by default it is looked up once per process. ctypes lets go
    of the GIL during the call, and glibc locks each arena as it trims it, so any thread may call this.
    """
    trim = trim if trim is not None else _glibc_malloc_trim()
    if trim is None:
        return None
    started = time.perf_counter()
    trim(0)  # 0: keep no padding at the top of the heap; every arena's free pages go back, not only the top's
    return time.perf_counter() - started


class MemoryReleaser:
    """One worker's releases: right after a batch of more than ``threshold`` padded word pieces, and once more
    ``second_after`` seconds later for what TorchServe allocated sending its responses (one pending second release
    at a time: a later big batch moves it)."""

    def __init__(
        self, threshold: int, second_after: float = DEFAULT_SECOND_RELEASE_SECONDS, trim: Trim | None = None
    ) -> None:
        self.threshold = threshold
        self.second_after = second_after
        self._trim = trim
        self._lock = threading.Lock()
        self._pending: threading.Timer | None = None

    def after_batch(self, pieces: int) -> float | None:
        """Release now if the batch was big, and schedule the second release; the seconds the first one took, None
        when it did not run (a small batch, or no glibc)."""
        if not should_release(pieces, self.threshold):
            return None
        seconds = release_memory(self._trim)
        if seconds is None:
            return None
        timer = threading.Timer(self.second_after, self._second_release)
        timer.daemon = True  # never keeps a stopping worker alive
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
            self._pending = timer
        timer.start()
        return seconds

    def _second_release(self) -> None:
        with self._lock:
            if self._pending is threading.current_thread():  # not a later batch's timer, set meanwhile
                self._pending = None
        release_memory(self._trim)

    def wait_for_pending(self, timeout: float) -> bool:
        """Wait for the pending second release, if any (tests); True when none is left."""
        with self._lock:
            pending = self._pending
        if pending is not None:
            pending.join(timeout)
            return not pending.is_alive()
        return True
