"""Thread budgets: one thread per library in a hashing worker, and a scan's own process held
to as many threads as the scan has workers, so `--workers N` uses N cores throughout.

A hashing worker is one process meant to keep one core busy. Left alone, the libraries it
calls each start a pool sized to the machine: OpenCV's `parallel_for_` (resize, colour
conversion, ORB's pyramid), numba's parallel kernels and OpenBLAS. With one worker those
pools quietly borrow the other cores, and with one worker per core they oversubscribe:
2 workers x 2 OpenCV threads on 2 cores, plus the scan's own process, time-slice against
each other. `limit_threads(1)` caps every pool at one thread; the executors call it once in
each worker before its first batch (the local pool as its initializer; on Dask, every
worker when the scan connects and each task thread on its first batch).

After hashing, matching and in-case linking run in the scan's own process on numba's and
FAISS's parallel kernels. `scan_threads(n)` gives them the scan's N cores there too (and
puts the previous counts back afterwards), instead of every core of the machine whatever N
was asked for.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Read by OpenMP, OpenBLAS and numba when they load: in a worker, a library first imported
# after the call (a decoder's dependency) starts with one thread too.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")

_worker_limited = False


def limit_threads(n: int = 1) -> dict[str, int]:
    """Hold this worker process to `n` threads per library: the environment for libraries
    not loaded yet and OpenCV and OpenBLAS now (once), and numba for the calling thread
    (its count is per thread: a Dask worker's task thread must call this itself)."""
    global _worker_limited
    if not _worker_limited:
        launched = _numba_launched()
        for name in THREAD_VARIABLES:
            if name == "NUMBA_NUM_THREADS" and launched:
                continue  # numba rereads it at each compile and refuses a changed count
            os.environ[name] = str(n)
        if not launched and "numba" in sys.modules:
            # numba read the variable on import (a preloaded module imported it): read it
            # again now, or the pool `_set` launches takes the old count and the first
            # compile in this worker (a cold cache) refuses the variable's new value
            from numba.core import config

            config.reload_config()
        _set(n)
        _worker_limited = True
    else:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    return thread_counts()


def _numba_launched() -> bool:
    """Whether numba's thread pool already runs in this process (its size is then fixed)."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(parallel, "_is_initialized", False))


@contextmanager
def scan_threads(n: int | None) -> Iterator[None]:
    """Within the block, numba, FAISS, OpenCV and OpenBLAS use at most `n` threads in this
    process (None: leave them as they are); the previous counts are restored after."""
    if n is None:
        yield
        return
    before = thread_counts()
    _set(max(1, n))
    try:
        yield
    finally:
        _set(before["numba"], opencv=before["opencv"], blas=before.get("openblas"),
             faiss=before.get("faiss"))


def thread_counts() -> dict[str, int]:
    """The thread counts OpenCV, numba, OpenBLAS and (when loaded) FAISS use here now."""
    import cv2
    import numba

    counts = {"opencv": int(cv2.getNumThreads()), "numba": int(numba.get_num_threads())}
    blas = _openblas_threads()
    if blas is not None:
        counts["openblas"] = blas
    if "faiss" in sys.modules:
        counts["faiss"] = int(sys.modules["faiss"].omp_get_max_threads())
    return counts


def _set(n: int, *, opencv: int | None = None, blas: int | None = None,
         faiss: int | None = None) -> None:
    import cv2
    import numba

    cv2.setNumThreads(n if opencv is None else opencv)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    _set_openblas_threads(n if blas is None else blas)
    if "faiss" in sys.modules:  # only a process that searches has it loaded
        sys.modules["faiss"].omp_set_num_threads(n if faiss is None else faiss)


def _openblas() -> tuple[object, str] | None:
    """numpy's OpenBLAS, as loaded in this process, and the pattern of its symbol names.

    Called through ctypes rather than adding threadpoolctl for two calls. numpy's wheels
    bundle `scipy_openblas` with prefixed symbols (`scipy_openblas_set_num_threads64_`); the
    loaded copy is found in this process's memory map, where numpy's import put it."""
    import ctypes

    import numpy  # noqa: F401 - loads the library being looked for

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = sorted({line.split()[-1] for line in maps
                            if "openblas" in line and ".so" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                if hasattr(lib, f"{prefix}set_num_threads{suffix}"):
                    return lib, f"{prefix}%s{suffix}"
    return None


def _set_openblas_threads(n: int) -> None:
    found = _openblas()
    if found is not None:
        lib, pattern = found
        getattr(lib, pattern % "set_num_threads")(n)


def _openblas_threads() -> int | None:
    found = _openblas()
    if found is None:
        return None
    lib, pattern = found
    return int(getattr(lib, pattern % "get_num_threads")())
