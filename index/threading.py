"""Which numba threading layer the search kernels use, and one place to set thread counts.

numba's parallel kernels and FAISS's OpenMP share this process. The choice, made when this
module is imported (before any parallel kernel runs, which is when numba fixes its layer):

- `tbb` is both thread- and fork-safe but needs `libtbb.so.12`, which is not installed here.
- `omp` (numba's GNU OpenMP pool, linked to the system `libgomp`) is thread-safe: the pipeline
  and dask worker threads may launch kernels concurrently. faiss-cpu ships its own renamed
  `libgomp-*.so`, so the two OpenMP runtimes keep separate pools and symbols and never step on
  each other; calls alternate rather than overlap, so capping both at n threads means at most
  n busy threads. GNU OpenMP is not fork-safe, but FAISS's copy already makes that true of the
  process: child processes must be spawned (dask.distributed spawns by default).
- `workqueue` needs nothing but aborts the process when two threads launch kernels at once, so
  it is used only when neither of the above loads, and then `kernel_lock` serialises launches.

numba's `"threadsafe"` setting expresses exactly this preference (tbb, else omp). A user's own
`NUMBA_THREADING_LAYER` environment variable is respected.

OpenMP threads busy-wait (spin) after each parallel region by default. With two runtimes taking
turns, one runtime's spinning threads occupy the cores the other needs, and on a shared
machine they compete with everyone else: measured here under load, 2-thread searches spent
3-4x more CPU than 1-thread ones. `OMP_WAIT_POLICY=PASSIVE` (set below unless the user set it)
makes idle threads sleep instead; each runtime reads it when it loads, so this module must be
imported before `faiss` (index.faiss_store does so) and before numba's first parallel launch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import numba

_config: Any = numba.config  # numba sets its attributes at run time; mypy cannot see them

log = logging.getLogger(__name__)


def _layer_loads(module: str) -> bool:
    try:
        __import__(f"numba.np.ufunc.{module}")
    except ImportError:
        return False
    return True


def _choose_layer() -> str:
    if "NUMBA_THREADING_LAYER" in os.environ:
        return str(_config.THREADING_LAYER)
    if _layer_loads("tbbpool") or _layer_loads("omppool"):
        return "threadsafe"
    log.warning("neither TBB nor OpenMP loads for numba; using workqueue with a launch lock")
    return "workqueue"


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REQUESTED_LAYER = _choose_layer()
_config.THREADING_LAYER = REQUESTED_LAYER
_launch_lock = threading.Lock()


@contextlib.contextmanager
def kernel_lock() -> Iterator[None]:
    """Hold around a parallel kernel launch: a real lock only under `workqueue`, which cannot
    run two launches at once (the other layers can, and should not be serialised)."""
    if REQUESTED_LAYER == "workqueue":
        with _launch_lock:
            yield
    else:
        yield


def set_threads(n: int) -> int:
    """Cap numba's and FAISS's OpenMP pools at `n` threads each (clamped to what numba
    started with, `NUMBA_NUM_THREADS`); returns the count applied.

    numba's setting is per calling thread (FAISS's is process-wide): worker threads that run
    searches should call this themselves, or the process should start with
    `NUMBA_NUM_THREADS` / `OMP_NUM_THREADS` set."""
    import faiss  # imported here: only callers that want FAISS capped pay its import

    n = max(1, min(int(n), _config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    return n


def active_layer() -> str:
    """The layer numba actually started ('omp', 'tbb', 'workqueue'), or 'not started yet'."""
    try:
        return str(numba.threading_layer())
    except ValueError:
        return "not started yet"
