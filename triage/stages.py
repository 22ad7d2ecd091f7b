"""Wall time per scan stage, kept by one timer the scan owns.

Stages are timed where the scan runs them (`with timer.stage("match"): ...`), and lazy
streams such as the walk are timed only while they produce (`timer.timed("walk", it)`), so
no stage function takes a timer argument. Walking and hashing overlap: `walk` is the time
spent inside the walk, `walk_and_hash` the wall time of both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class StageTimer:
    def __init__(self, on_stage: Callable[[str, float], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._on_stage = on_stage  # told when a `stage` block ends (the CLI prints a line)

    def elapsed(self) -> float:
        """Seconds since the timer was made (the scan's wall time so far)."""
        return time.perf_counter() - self._t0

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextmanager
    def stage(self, name: str, announce: bool = True) -> Iterator[None]:
        """Time the block; `announce=False` for a stage entered many times (per chunk)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.add(name, dt)
            if announce and self._on_stage is not None:
                self._on_stage(name, dt)

    def timed(self, name: str, items: Iterable[T]) -> Iterator[T]:
        """Yield from `items`, adding the time spent producing each one to `name`."""
        it = iter(items)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.add(name, time.perf_counter() - t0)
                return
            self.add(name, time.perf_counter() - t0)
            yield item
