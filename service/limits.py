"""Per-key request rates and per-address failed-key counts, in memory (one service process)."""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    """A token bucket per key: `rate` requests a second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, name: str) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(name, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[name] = (tokens - 1, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1 - tokens) / self.rate


class FailedKeys:
    """Counts requests with a missing or wrong key per client address; past `limit` within
    `window` seconds the address is refused (429) until its failures age out."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.setdefault(address, deque())
        while times and times[0] < now - self.window:
            times.popleft()
        return times

    def blocked(self, address: str) -> float:
        now = time.monotonic()
        with self._lock:
            times = self._recent(address, now)
            if len(times) >= self.limit:
                return times[0] + self.window - now
            if not times:
                self._seen.pop(address, None)
            return 0.0

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(address, now).append(now)
