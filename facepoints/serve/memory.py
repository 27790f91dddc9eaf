"""Memory the service can account for: a byte budget that admits requests, RSS readings, and giving freed memory back.

Counting requests does not bound memory: one 50-megapixel PNG costs as much as
hundreds of small photos. So each request reserves the bytes its decode will
need (estimated from the header) and waits, first come first served, until
they fit. glibc keeps freed heap pages and grows its mmap threshold after big
frees, which is why RSS stayed at its peak after a burst; ``tune_malloc`` pins
the threshold (big buffers are mmapped and unmapped on free) and ``trim``
hands the rest back after heavy work.
"""

import ctypes
import ctypes.util
import functools
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


@dataclass
class ByteBudget:
    """An async FIFO semaphore counted in bytes; a request larger than the whole budget runs alone."""

    capacity: int
    used: int = 0
    peak: int = 0
    _waiters: deque = field(default_factory=deque)

    def _fits(self, n: int) -> bool:
        return self.used + n <= self.capacity or self.used == 0

    async def acquire(self, n: int) -> int:
        """Wait until ``n`` bytes fit (after those who came first); returns the amount to ``release``."""
        n = max(0, min(int(n), self.capacity))
        if not self._waiters and self._fits(n):
            self._take(n)
            return n
        waiter = (n, anyio.Event())
        self._waiters.append(waiter)
        try:
            await waiter[1].wait()
        except BaseException:
            if waiter[1].is_set():  # granted while being cancelled: hand it back
                self._release(n)
            else:
                self._waiters.remove(waiter)
                self._grant()
            raise
        return n

    def release(self, n: int) -> None:
        self._release(n)

    @asynccontextmanager
    async def reserve(self, n: int) -> AsyncIterator[None]:
        taken = await self.acquire(n)
        try:
            yield
        finally:
            self._release(taken)

    def _take(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)

    def _release(self, n: int) -> None:
        self.used -= n
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            n, event = self._waiters.popleft()
            self._take(n)
            event.set()

    @property
    def waiting(self) -> int:
        return len(self._waiters)


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident memory of this process in bytes; (0, 0) where /proc is unavailable."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0, 0


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only (not musl, not macOS)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune_malloc(mmap_threshold: int = 1024 * 1024, arenas: int = 2) -> bool:
    """Make glibc return big buffers to the OS on free; for the server process only (it is process-wide)."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok &= libc.mallopt(M_TRIM_THRESHOLD, 8 * mmap_threshold) == 1
    ok &= libc.mallopt(M_ARENA_MAX, arenas) == 1
    return bool(ok)


def trim() -> None:
    """Give freed heap pages back to the OS (all arenas); a no-op outside glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
